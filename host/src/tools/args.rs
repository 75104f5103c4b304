//! Argument types shared by the tools, parsed with serde (errors name the field) and described
//! with schemars (so the schemas `tools/list` and help show cannot drift from the parser).

use super::accelerator::DeviceRequest;
use super::bounds::Bounds;
use super::checkpoint::CheckpointRule;
use crate::sandbox::{Limits, Split};
use crate::trainer::{BatchLimit, EarlyStopping, FitConfig, GradientClip, Mode, ValCheckInterval};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// Largest `max_epochs`.
pub const MAX_EPOCHS: u32 = 1_000_000;
/// Largest `max_steps`.
pub const MAX_STEPS: i64 = 1_000_000_000;

/// Parses tool arguments into `T` after checking them against [`Bounds::ARGUMENTS`]; the
/// error names the offending field.
pub fn parse<T: DeserializeOwned>(arguments: &Value) -> Result<T, String> {
    parse_within(arguments, &Bounds::ARGUMENTS)
}

/// Parses tool arguments into `T` after checking them against `bounds`.
pub fn parse_within<T: DeserializeOwned>(arguments: &Value, bounds: &Bounds) -> Result<T, String> {
    bounds.check(arguments)?;
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid arguments: {inner}")
        } else {
            format!("invalid arguments: {path}: {inner}")
        }
    })
}

/// A registered `_target_` and its hyperparameters as further keys.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct ModelSpec {
    /// A registered model, e.g. `lightning_mcp.models.mlp.MLP` (inspect what=models).
    ///
    /// Never a path or an import.
    #[serde(rename = "_target_")]
    pub target: String,
    /// Every other key is a hyperparameter of the model (e.g. `input_dim`, `num_classes`,
    /// `lr`); unknown or mistyped ones are an error that names them.
    #[serde(flatten)]
    pub hyperparameters: Map<String, Value>,
}

impl ModelSpec {
    /// The hyperparameters as the JSON object the guest's `init` receives.
    pub fn hyperparameters_json(&self) -> String {
        Value::Object(self.hyperparameters.clone()).to_string()
    }
}

/// Where tensors live: PyTorch Lightning's `accelerator` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    /// The CPU (Burn's flex backend).
    Cpu,
    /// A real GPU when there is one (never a software rasteriser), else the CPU.
    #[default]
    Auto,
    /// A GPU through wgpu, software ones (lavapipe) included.
    Gpu,
    /// A GPU through wgpu (explicitly).
    Wgpu,
    /// An NVIDIA GPU (through wgpu).
    Cuda,
    /// An Apple GPU (through wgpu).
    Mps,
}

impl Accelerator {
    /// The value as requests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
            Self::Mps => "mps",
        }
    }

    /// Every value.
    pub const ALL: [Self; 6] = [
        Self::Cpu,
        Self::Auto,
        Self::Gpu,
        Self::Wgpu,
        Self::Cuda,
        Self::Mps,
    ];
}

/// Which devices: a count (only 1 is supported), `"auto"`, or a list of adapter indices
/// (`[k]`: adapter k of `lightning.inspect` environment's `gpu_adapters`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Devices {
    /// A number of devices.
    Count(u32),
    /// Adapter indices.
    Indices(Vec<u32>),
    /// `"auto"`: one device.
    Named(String),
}

impl Devices {
    fn resolve(&self) -> Result<DeviceRequest, String> {
        match self {
            Self::Count(1) => Ok(DeviceRequest::One),
            Self::Named(name) if name == "auto" => Ok(DeviceRequest::One),
            Self::Indices(indices) => match indices.as_slice() {
                [k] => Ok(DeviceRequest::Adapter(*k as usize)),
                [] => Err("trainer.devices: the list of adapter indices is empty".into()),
                more => Err(format!(
                    "trainer.devices: training on {} devices is not supported yet; give one \
                     adapter index",
                    more.len()
                )),
            },
            Self::Count(0) => Err("trainer.devices must be at least 1".into()),
            Self::Count(n) => Err(format!(
                "trainer.devices: training on {n} devices is not supported yet; use 1"
            )),
            Self::Named(other) => Err(format!(
                "trainer.devices must be 1, \"auto\" or [adapter index], got {other:?}"
            )),
        }
    }
}

/// A batch limit: an integer is a number of batches, a float a fraction of them.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BatchLimitArg {
    /// A number of batches.
    Count(u64),
    /// A fraction of the batches, 0.0 to 1.0.
    Fraction(f64),
}

impl BatchLimitArg {
    fn resolve(self, field: &str) -> Result<BatchLimit, String> {
        match self {
            Self::Count(n) => Ok(BatchLimit::Count(usize::try_from(n).unwrap_or(usize::MAX))),
            Self::Fraction(f) if (0.0..=1.0).contains(&f) => Ok(BatchLimit::Fraction(f)),
            Self::Fraction(f) => Err(format!(
                "trainer.{field} must be an integer number of batches or a fraction in [0.0, 1.0], got {f}"
            )),
        }
    }
}

/// Trainer options, with PyTorch Lightning's names. Options not listed here are refused.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainerArgs {
    /// Passes over the training data (default 1000).
    #[schemars(range(min = 1, max = MAX_EPOCHS))]
    pub max_epochs: Option<u32>,
    /// Stop after this many optimizer steps (default -1: no limit).
    pub max_steps: Option<i64>,
    /// Training batches per epoch: a count or a fraction (default 1.0).
    pub limit_train_batches: Option<BatchLimitArg>,
    /// Validation batches per validation: a count or a fraction (0: no validation).
    pub limit_val_batches: Option<BatchLimitArg>,
    /// Test batches (`lightning.test`): a count or a fraction (default 1.0).
    pub limit_test_batches: Option<BatchLimitArg>,
    /// Prediction batches (`lightning.predict`): a count or a fraction (default 1.0).
    pub limit_predict_batches: Option<BatchLimitArg>,
    /// Seed of initialisation, shuffling, dropout and the model's own data (default 0).
    ///
    /// The same seed on the same backend gives the same numbers.
    pub seed: Option<u64>,
    /// Where to run (default auto: a real GPU when there is one, else the CPU).
    ///
    /// `cpu`; `auto`; `gpu` or `wgpu` (any wgpu adapter, software ones included); `cuda` (an
    /// NVIDIA adapter) or `mps` (an Apple one), both through wgpu. `lightning.inspect`
    /// environment lists which are usable here.
    pub accelerator: Option<Accelerator>,
    /// Write a checkpoint when training ends (default true).
    pub enable_checkpointing: Option<bool>,
    /// Write each epoch's metrics to `metrics.csv` in the run directory (default true).
    ///
    /// As Lightning's CSVLogger does.
    pub logger: Option<bool>,
    /// Where `lightning_logs/version_N/` goes (default `.`).
    ///
    /// Relative to the server's checkpoint directory.
    pub default_root_dir: Option<String>,
    /// 1 or `"auto"`, or `[k]`: GPU adapter k.
    ///
    /// The adapters are `lightning.inspect` environment's `gpu_adapters`; training on more
    /// than one device is not supported.
    pub devices: Option<Devices>,
    /// Epochs early stopping may not cut (default 0).
    pub min_epochs: Option<u32>,
    /// Validate after every n-th epoch (default 1).
    pub check_val_every_n_epoch: Option<u32>,
    /// Validate within an epoch: a fraction of it or a number of batches (default 1.0).
    ///
    /// A fraction of a validating epoch's training batches in (0.0, 1.0] (1.0: at its end),
    /// or a number of training batches; each validation is a point where early stopping
    /// checks and checkpoints are written.
    pub val_check_interval: Option<BatchLimitArg>,
    /// Validation batches run before training to catch errors early (default 2; -1: all).
    ///
    /// Their metrics are discarded.
    pub num_sanity_val_steps: Option<i64>,
    /// Batches whose gradients make one optimizer step (default 1).
    ///
    /// Each loss is divided by it, and the gradients summed.
    pub accumulate_grad_batches: Option<u32>,
    /// Clip gradients to this joint L2 norm before each step (default 0: none).
    ///
    /// With `gradient_clip_algorithm: "value"`, clamp each element to ±this instead.
    pub gradient_clip_val: Option<f64>,
    /// `norm` (default) or `value`.
    pub gradient_clip_algorithm: Option<ClipAlgorithm>,
    /// A smoke test: `true` or n runs n training and n validation batches, once.
    ///
    /// One epoch, without sanity steps, early stopping, logger or checkpoint.
    pub fast_dev_run: Option<FastDevRun>,
    /// Train and validate on this many batches (or fraction), unshuffled.
    ///
    /// Lightning 2's overfit_batches: a quick check that the model can fit a little data.
    pub overfit_batches: Option<BatchLimitArg>,
    /// Accepted as Lightning's; runs here are always deterministic.
    ///
    /// The same seed on the same backend gives the same numbers, whatever it says.
    pub deterministic: Option<Deterministic>,
    /// `32`, `"32"` or `"32-true"`: float32, what the backends compute in.
    ///
    /// Anything else is refused.
    pub precision: Option<Precision>,
    /// `early_stopping` and `model_checkpoint` callbacks.
    ///
    /// E.g. `{"type": "early_stopping", "monitor": "val_loss", "mode": "min", "patience": 3,
    /// "min_delta": 0.0}`; help topic `callbacks` lists their options.
    pub callbacks: Option<Vec<CallbackArg>>,
}

/// Lightning's `gradient_clip_algorithm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClipAlgorithm {
    /// Scale all gradients together to the joint L2 norm.
    #[default]
    Norm,
    /// Clamp every element.
    Value,
}

/// Lightning's `fast_dev_run`: a flag or a number of batches.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FastDevRun {
    /// `true`: one batch.
    Flag(bool),
    /// This many batches.
    Batches(u64),
}

/// Lightning's `deterministic`: a flag or `"warn"`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Deterministic {
    /// `true` or `false`.
    Flag(bool),
    /// `"warn"`.
    Mode(String),
}

/// Lightning's `precision`: a number or a string.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Precision {
    /// E.g. `32`.
    Bits(i64),
    /// E.g. `"32-true"`.
    Name(String),
}

/// A callback.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallbackArg {
    /// Lightning's `EarlyStopping`.
    EarlyStopping(EarlyStoppingArg),
    /// Lightning's `ModelCheckpoint`.
    ModelCheckpoint(ModelCheckpointArg),
}

/// Lightning's `ModelCheckpoint(monitor, mode, save_top_k, save_last, filename)`: checkpoints
/// written after every epoch into the run's `checkpoints/`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCheckpointArg {
    /// The metric that ranks checkpoints; without it, the latest epoch is kept.
    pub monitor: Option<String>,
    /// `min` (default) or `max`.
    pub mode: Option<ModeArg>,
    /// How many of the best (or latest) checkpoints to keep (default 1; -1: all; 0: none).
    pub save_top_k: Option<i64>,
    /// Also keep `last.safetensors`, the latest epoch's (default false).
    pub save_last: Option<bool>,
    /// The file name without extension: `{epoch}`, `{step}` and `{metric}` or
    /// `{metric:.2f}` become `epoch=3`, `step=48`, `val_loss=0.27` (default
    /// `{epoch}-{step}`).
    pub filename: Option<String>,
}

/// Lightning's `EarlyStopping(monitor, mode, patience, min_delta)`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingArg {
    /// The metric to watch (default `val_loss`).
    pub monitor: Option<String>,
    /// `min` (default) or `max`.
    pub mode: Option<ModeArg>,
    /// Checks without improvement before stopping (default 3).
    pub patience: Option<u32>,
    /// The least change that counts as improvement (default 0.0).
    pub min_delta: Option<f64>,
}

/// Which way a monitored metric improves.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

/// Validated trainer options.
#[derive(Clone, Debug)]
pub struct TrainerOptions {
    /// The fit loop's settings (its `max_total_steps` is the run's limit, set by the caller).
    pub fit: FitConfig,
    /// Test batches.
    pub limit_test_batches: BatchLimit,
    /// Prediction batches.
    pub limit_predict_batches: BatchLimit,
    /// The run's seed.
    pub seed: u64,
    /// The accelerator asked for.
    pub accelerator: Accelerator,
    /// The devices asked for.
    pub devices: DeviceRequest,
    /// Whether training ends by writing a checkpoint.
    pub enable_checkpointing: bool,
    /// Whether training writes `metrics.csv`.
    pub logger: bool,
    /// Where checkpoints go, relative to the checkpoint directory.
    pub default_root_dir: String,
    /// Train on these training batches only, unshuffled, and validate on as many.
    pub overfit_batches: Option<BatchLimit>,
    /// Checkpoints after every epoch, when the callback is given.
    pub model_checkpoint: Option<CheckpointRule>,
}

impl TrainerArgs {
    /// Checks ranges and picks the device.
    pub fn resolve(&self) -> Result<TrainerOptions, String> {
        // Checked in this order: with several mistakes, the first named is the same as ever.
        let max_epochs = self.max_epochs()?;
        let max_steps = self.max_steps()?;
        let devices = self
            .devices
            .as_ref()
            .map_or(Ok(DeviceRequest::One), Devices::resolve)?;
        check_precision(self.precision.as_ref())?;
        self.check_deterministic()?;
        let check_val_every_n_epoch =
            at_least_one("check_val_every_n_epoch", self.check_val_every_n_epoch)?;
        let accumulate_grad_batches =
            at_least_one("accumulate_grad_batches", self.accumulate_grad_batches)? as usize;
        let num_sanity_val_steps = self.num_sanity_val_steps()?;
        let gradient_clip = self.gradient_clip()?;
        let (early_stopping, model_checkpoint) = self.callbacks()?;
        let overfit_batches = self.overfit_batches()?;
        let fast_dev_run_batches = self.fast_dev_run()?;
        let val_check_interval = self.val_check_interval()?;
        let fit = FitConfig {
            max_epochs,
            max_steps,
            limit_train_batches: resolve_limit(self.limit_train_batches, "limit_train_batches")?,
            limit_val_batches: resolve_limit(self.limit_val_batches, "limit_val_batches")?,
            max_total_steps: u64::MAX,
            min_epochs: self.min_epochs.unwrap_or(0),
            check_val_every_n_epoch,
            val_check_interval,
            num_sanity_val_steps,
            accumulate_grad_batches,
            gradient_clip,
            early_stopping,
        };
        let options = TrainerOptions {
            fit,
            limit_test_batches: resolve_limit(self.limit_test_batches, "limit_test_batches")?,
            limit_predict_batches: resolve_limit(
                self.limit_predict_batches,
                "limit_predict_batches",
            )?,
            seed: self.seed.unwrap_or(0),
            accelerator: self.accelerator.unwrap_or_default(),
            devices,
            enable_checkpointing: self.enable_checkpointing.unwrap_or(true),
            logger: self.logger.unwrap_or(true),
            default_root_dir: self.default_root_dir.clone().unwrap_or_else(|| ".".into()),
            overfit_batches,
            model_checkpoint,
        };
        Ok(match fast_dev_run_batches {
            None => options,
            Some(batches) => fast_dev_run(options, batches),
        })
    }

    fn max_epochs(&self) -> Result<u32, String> {
        let max_epochs = self.max_epochs.unwrap_or(1000);
        if !(1..=MAX_EPOCHS).contains(&max_epochs) {
            return Err(format!(
                "trainer.max_epochs must be between 1 and {MAX_EPOCHS}, got {max_epochs}"
            ));
        }
        Ok(max_epochs)
    }

    fn max_steps(&self) -> Result<Option<u64>, String> {
        match self.max_steps.unwrap_or(-1) {
            -1 => Ok(None),
            n if (1..=MAX_STEPS).contains(&n) => Ok(Some(n.unsigned_abs())),
            n => Err(format!(
                "trainer.max_steps must be -1 (no limit) or between 1 and {MAX_STEPS}, got {n}"
            )),
        }
    }

    fn check_deterministic(&self) -> Result<(), String> {
        match &self.deterministic {
            Some(Deterministic::Mode(mode)) if mode != "warn" => Err(format!(
                "trainer.deterministic must be true, false or \"warn\", got {mode:?}"
            )),
            _ => Ok(()),
        }
    }

    fn num_sanity_val_steps(&self) -> Result<Option<usize>, String> {
        match self.num_sanity_val_steps.unwrap_or(2) {
            -1 => Ok(None),
            n => usize::try_from(n).map(Some).map_err(|_| {
                format!("trainer.num_sanity_val_steps must be -1 (all) or at least 0, got {n}")
            }),
        }
    }

    fn gradient_clip(&self) -> Result<Option<GradientClip>, String> {
        match self.gradient_clip_val {
            None | Some(0.0) => Ok(None),
            Some(v) if v.is_finite() && v > 0.0 => Ok(Some(
                match self.gradient_clip_algorithm.unwrap_or_default() {
                    ClipAlgorithm::Norm => GradientClip::Norm(v as f32),
                    ClipAlgorithm::Value => GradientClip::Value(v as f32),
                },
            )),
            Some(v) => Err(format!(
                "trainer.gradient_clip_val must be a finite number >= 0, got {v}"
            )),
        }
    }

    /// The early-stopping and model-checkpoint callbacks, each at most once.
    fn callbacks(&self) -> Result<(Option<EarlyStopping>, Option<CheckpointRule>), String> {
        let mut early_stopping = None;
        let mut model_checkpoint = None;
        for callback in self.callbacks.iter().flatten() {
            let twice = match callback {
                CallbackArg::EarlyStopping(e) => early_stopping.replace(e.resolve()?).is_some(),
                CallbackArg::ModelCheckpoint(m) => model_checkpoint.replace(m.resolve()?).is_some(),
            };
            if twice {
                return Err("trainer.callbacks: at most one callback of each type".into());
            }
        }
        Ok((early_stopping, model_checkpoint))
    }

    fn overfit_batches(&self) -> Result<Option<BatchLimit>, String> {
        Ok(self
            .overfit_batches
            .map(|l| l.resolve("overfit_batches"))
            .transpose()?
            .filter(|l| *l != BatchLimit::Count(0) && *l != BatchLimit::Fraction(0.0)))
    }

    /// The batches of a `fast_dev_run`, when asked for one.
    fn fast_dev_run(&self) -> Result<Option<usize>, String> {
        match self.fast_dev_run {
            None | Some(FastDevRun::Flag(false)) => Ok(None),
            Some(FastDevRun::Flag(true)) => Ok(Some(1)),
            Some(FastDevRun::Batches(0)) => {
                Err("trainer.fast_dev_run must be true, false or at least 1".into())
            }
            Some(FastDevRun::Batches(n)) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    fn val_check_interval(&self) -> Result<ValCheckInterval, String> {
        match self.val_check_interval {
            None => Ok(ValCheckInterval::default()),
            Some(BatchLimitArg::Count(n)) if n >= 1 => Ok(ValCheckInterval::Batches(
                usize::try_from(n).unwrap_or(usize::MAX),
            )),
            Some(BatchLimitArg::Fraction(f)) if f > 0.0 && f <= 1.0 => {
                Ok(ValCheckInterval::Fraction(f))
            }
            Some(other) => Err(format!(
                "trainer.val_check_interval must be a fraction in (0.0, 1.0] or a number of \
                 training batches >= 1, got {}",
                match other {
                    BatchLimitArg::Count(n) => n.to_string(),
                    BatchLimitArg::Fraction(f) => f.to_string(),
                }
            )),
        }
    }
}

/// `value` (default 1), refused when 0, for option `field`.
fn at_least_one(field: &str, value: Option<u32>) -> Result<u32, String> {
    match value {
        Some(0) => Err(format!("trainer.{field} must be at least 1")),
        v => Ok(v.unwrap_or(1)),
    }
}

/// Lightning's `fast_dev_run`: `batches` of each loop, one epoch, no sanity check, no
/// checkpoint or logger, whatever the other options say.
fn fast_dev_run(options: TrainerOptions, batches: usize) -> TrainerOptions {
    TrainerOptions {
        fit: FitConfig {
            max_epochs: 1,
            max_steps: Some(batches as u64),
            limit_train_batches: BatchLimit::Count(batches),
            limit_val_batches: BatchLimit::Count(batches),
            num_sanity_val_steps: Some(0),
            check_val_every_n_epoch: 1,
            val_check_interval: ValCheckInterval::default(),
            early_stopping: None,
            ..options.fit
        },
        limit_test_batches: BatchLimit::Count(batches),
        limit_predict_batches: BatchLimit::Count(batches),
        enable_checkpointing: false,
        logger: false,
        ..options
    }
}

/// Refuses a precision the CPU backend does not compute in.
fn check_precision(precision: Option<&Precision>) -> Result<(), String> {
    match precision {
        None | Some(Precision::Bits(32)) => Ok(()),
        Some(Precision::Name(name)) if name == "32" || name == "32-true" => Ok(()),
        Some(other) => Err(format!(
            "trainer.precision {} is not supported: the CPU backend computes in float32 \
             (precision 32, \"32\" or \"32-true\")",
            match other {
                Precision::Bits(b) => b.to_string(),
                Precision::Name(n) => format!("{n:?}"),
            }
        )),
    }
}

impl ModelCheckpointArg {
    fn resolve(&self) -> Result<CheckpointRule, String> {
        let filename = self
            .filename
            .clone()
            .unwrap_or_else(|| "{epoch}-{step}".into());
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.=+{}:".contains(c);
        if filename.is_empty() || filename.len() > 200 || !filename.chars().all(allowed) {
            return Err(format!(
                "trainer.callbacks model_checkpoint.filename must be 1 to 200 characters of \
                 [A-Za-z0-9_.=+-] and {{placeholders}}, got {filename:?}"
            ));
        }
        // `{metric:.Nf}`: N digits, as many as an f64 holds at most.
        let placeholders = filename
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next());
        for spec in placeholders {
            if let Some((_, precision)) = spec.split_once(":.") {
                let digits = precision.trim_end_matches('f');
                if !digits.parse::<usize>().is_ok_and(|p| p <= 17) {
                    return Err(format!(
                        "trainer.callbacks model_checkpoint.filename: the precision in {{{spec}}} \
                         must be 0 to 17 digits"
                    ));
                }
            }
        }
        let save_top_k = match self.save_top_k.unwrap_or(1) {
            -1 => None,
            k if k >= 0 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
            k => {
                return Err(format!(
                    "trainer.callbacks model_checkpoint.save_top_k must be -1 (all) or at \
                     least 0, got {k}"
                ));
            }
        };
        Ok(CheckpointRule {
            monitor: self.monitor.clone(),
            mode: match self.mode {
                None | Some(ModeArg::Min) => Mode::Min,
                Some(ModeArg::Max) => Mode::Max,
            },
            save_top_k,
            save_last: self.save_last.unwrap_or(false),
            filename,
        })
    }
}

impl EarlyStoppingArg {
    fn resolve(&self) -> Result<EarlyStopping, String> {
        let min_delta = self.min_delta.unwrap_or(0.0);
        if !(min_delta.is_finite() && min_delta >= 0.0) {
            return Err(format!(
                "trainer.callbacks early_stopping.min_delta must be a finite number >= 0, got \
                 {min_delta}"
            ));
        }
        Ok(EarlyStopping {
            monitor: self.monitor.clone().unwrap_or_else(|| "val_loss".into()),
            mode: match self.mode {
                None | Some(ModeArg::Min) => Mode::Min,
                Some(ModeArg::Max) => Mode::Max,
            },
            patience: self.patience.unwrap_or(3),
            min_delta,
        })
    }
}

/// A `limit_*_batches` option, all batches when absent.
fn resolve_limit(limit: Option<BatchLimitArg>, field: &str) -> Result<BatchLimit, String> {
    limit.map_or(Ok(BatchLimit::default()), |l| l.resolve(field))
}

/// Limits a request sets for its own run: each may lower the server's limit, never raise it.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsArg {
    /// Wall-clock budget of this call, in seconds (fractions allowed).
    pub timeout_seconds: Option<f64>,
    /// Largest guest linear memory, in MiB.
    pub guest_memory_mib: Option<u64>,
    /// Largest sum of the host tensors the model holds, in MiB.
    ///
    /// Live tensors, datasets and the autodiff graph of a step.
    pub tensor_memory_mib: Option<u64>,
    /// Most tensor handles the model may hold at once.
    pub tensor_handles: Option<u64>,
    /// Highest tensor rank.
    pub tensor_rank: Option<u64>,
    /// Most elements of one tensor.
    pub tensor_elements: Option<u64>,
    /// Most elements of one guest table.
    pub table_elements: Option<u64>,
    /// Most core instances the component may create.
    pub instances: Option<u64>,
    /// Most optimizer steps the run may plan.
    pub total_steps: Option<u64>,
    /// Largest batch.
    pub batch_size: Option<u64>,
    /// Most samples in one dataset.
    pub dataset_samples: Option<u64>,
}

impl LimitsArg {
    /// The server's `limits` lowered by this request. A value of 0, or above the server's,
    /// is an error naming the limit; `timeout_seconds` lowers the training budget when
    /// `training`, else the call budget.
    pub fn apply(&self, server: &Limits, training: bool) -> Result<Limits, String> {
        fn lower(name: &str, asked: Option<u64>, max: usize, unit: u64) -> Result<usize, String> {
            let Some(asked) = asked else {
                return Ok(max);
            };
            let max_in_units = max as u64 / unit;
            if asked == 0 || asked > max_in_units {
                return Err(format!(
                    "limits.{name} must be between 1 and the server's limit of {max_in_units}, \
                     got {asked}; a request may lower a limit, never raise it"
                ));
            }
            Ok(usize::try_from(asked.saturating_mul(unit)).unwrap_or(max))
        }
        const MIB: u64 = 1 << 20;
        let mut limits = server.clone();
        limits.max_guest_memory = lower(
            "guest_memory_mib",
            self.guest_memory_mib,
            server.max_guest_memory,
            MIB,
        )?;
        limits.max_tensor_bytes = lower(
            "tensor_memory_mib",
            self.tensor_memory_mib,
            server.max_tensor_bytes,
            MIB,
        )?;
        limits.max_handles = lower("tensor_handles", self.tensor_handles, server.max_handles, 1)?;
        limits.max_tensor_rank = lower("tensor_rank", self.tensor_rank, server.max_tensor_rank, 1)?;
        limits.max_tensor_elements = lower(
            "tensor_elements",
            self.tensor_elements,
            server.max_tensor_elements,
            1,
        )?;
        limits.max_table_elements = lower(
            "table_elements",
            self.table_elements,
            server.max_table_elements,
            1,
        )?;
        limits.max_instances = lower("instances", self.instances, server.max_instances, 1)?;
        limits.max_batch_size = lower("batch_size", self.batch_size, server.max_batch_size, 1)?;
        limits.max_dataset_samples = lower(
            "dataset_samples",
            self.dataset_samples,
            server.max_dataset_samples,
            1,
        )?;
        if let Some(asked) = self.total_steps {
            if asked == 0 || asked > server.max_total_steps {
                return Err(format!(
                    "limits.total_steps must be between 1 and the server's limit of {}, got \
                     {asked}; a request may lower a limit, never raise it",
                    server.max_total_steps
                ));
            }
            limits.max_total_steps = asked;
        }
        if let Some(seconds) = self.timeout_seconds {
            let budget = if training {
                &mut limits.train_timeout
            } else {
                &mut limits.call_timeout
            };
            let max = budget.as_secs_f64();
            if !(seconds > 0.0 && seconds <= max) {
                return Err(format!(
                    "limits.timeout_seconds must be above 0 and at most the server's limit of \
                     {max} s, got {seconds}; a request may lower a limit, never raise it"
                ));
            }
            *budget = Duration::try_from_secs_f64(seconds)
                .map_err(|e| format!("limits.timeout_seconds: {seconds} is not a duration: {e}"))?;
        }
        Ok(limits)
    }
}

/// Data given in the request instead of the model's own: inline arrays per split, a CSV file
/// or a built-in dataset.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataArgs {
    /// Training data: {inputs, targets}.
    pub train: Option<LabelledData>,
    /// Validation data: {inputs, targets}.
    pub val: Option<LabelledData>,
    /// Test data: {inputs, targets}.
    pub test: Option<LabelledData>,
    /// Inputs to predict: {inputs}.
    pub predict: Option<InputsData>,
    /// A CSV file under the server's data directory: {path, target, ...}.
    ///
    /// Instead of `train`/`val`/`test`/`predict`; help topic `data` lists its options.
    pub csv: Option<CsvArgs>,
    /// A built-in dataset: `iris` or `digits`.
    ///
    /// Instead of the other sources: fixed training, validation and test splits (the test
    /// rows are also the prediction inputs).
    pub dataset: Option<String>,
    /// One sample's input shape, e.g. `[1, 8, 8]` to see 64 columns as an image.
    ///
    /// Or `[64]` to see an image as a vector: the same number of values per sample.
    pub input_shape: Option<Vec<usize>>,
    /// Samples per batch (default 32).
    #[schemars(range(min = 1))]
    pub batch_size: Option<u64>,
    /// Reshuffle the training data every epoch (default false).
    ///
    /// Seeded by `trainer.seed`, as PyTorch's `DataLoader(shuffle=True)`.
    pub shuffle: Option<bool>,
}

/// A CSV file as data: feature columns as inputs, a target column as targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvArgs {
    /// The file, relative to the server's data directory (`--data-dir`).
    pub path: String,
    /// The target column: its name, or its index without a header.
    ///
    /// Text labels become class indices in sorted order (reported as `data.classes`); whole
    /// numbers are class indices; other numbers are values (regression). Absent: inputs only
    /// (prediction).
    pub target: Option<String>,
    /// The feature columns, in order (default: every column but the target).
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether the first row names the columns (default true).
    pub header: Option<bool>,
    /// The fraction of rows held out as validation data (default 0).
    ///
    /// Drawn with `trainer.seed`.
    pub val_split: Option<f64>,
}

/// Samples with targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelledData {
    /// One row per sample, nested arrays of numbers (e.g. `[[5.1, 3.5], [4.9, 3.0]]`), as f32.
    #[schemars(with = "Vec<Value>")]
    pub inputs: Value,
    /// One target per sample.
    ///
    /// Whole numbers (`2` or `2.0`) are class indices for a classifier; other numbers are
    /// values (f32, regression).
    #[schemars(with = "Vec<Value>")]
    pub targets: Value,
}

/// Samples without targets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputsData {
    /// One row per sample, nested arrays of numbers, as f32.
    #[schemars(with = "Vec<Value>")]
    pub inputs: Value,
}

impl DataArgs {
    /// The request's `(name, inputs, targets)` for `split`, if it gives that split.
    pub fn split(&self, split: Split) -> Option<(&'static str, &Value, Option<&Value>)> {
        match split {
            Split::Train => self
                .train
                .as_ref()
                .map(|d| ("train", &d.inputs, Some(&d.targets))),
            Split::Validation => self
                .val
                .as_ref()
                .map(|d| ("val", &d.inputs, Some(&d.targets))),
            Split::Test => self
                .test
                .as_ref()
                .map(|d| ("test", &d.inputs, Some(&d.targets))),
            Split::Predict => self.predict.as_ref().map(|d| ("predict", &d.inputs, None)),
        }
    }

    /// Whether the request gives any split as nested arrays.
    pub fn has_arrays(&self) -> bool {
        self.train.is_some() || self.val.is_some() || self.test.is_some() || self.predict.is_some()
    }

    /// The batch size of the request's data.
    pub fn batch_size(&self) -> Result<usize, String> {
        match self.batch_size.unwrap_or(32) {
            0 => Err("data.batch_size must be at least 1".into()),
            n => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}
