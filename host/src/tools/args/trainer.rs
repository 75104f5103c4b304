//! The trainer's options (`trainer`), with PyTorch Lightning's names, resolved into the fit's
//! configuration and the other loops' options.

use super::callbacks::CallbackArg;
use super::devices::{Accelerator, Devices};
use crate::tools::accelerator::DeviceRequest;
use crate::tools::checkpoint::CheckpointRule;
use crate::trainer::{BatchLimit, EarlyStopping, FitConfig, GradientClip, ValCheckInterval};
use schemars::JsonSchema;
use serde::Deserialize;

/// Largest `max_epochs`.
pub const MAX_EPOCHS: u32 = 1_000_000;
/// Largest `max_steps`.
pub const MAX_STEPS: i64 = 1_000_000_000;

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

/// What a trainer option left out means: the option's `default` in its schema, and what
/// [`TrainerArgs::resolve`] takes.
mod default {
    pub const MAX_EPOCHS: u32 = 1000;
    /// No step limit.
    pub const MAX_STEPS: i64 = -1;
    /// Every batch.
    pub const ALL_BATCHES: f64 = 1.0;
    pub const SEED: u64 = 0;
    pub const ENABLE_CHECKPOINTING: bool = true;
    pub const LOGGER: bool = true;
    pub const DEFAULT_ROOT_DIR: &str = ".";
    pub const MIN_EPOCHS: u32 = 0;
    /// `check_val_every_n_epoch` and `accumulate_grad_batches`.
    pub const AT_LEAST_ONE: u32 = 1;
    pub const NUM_SANITY_VAL_STEPS: i64 = 2;
    pub const NO_CLIPPING: f64 = 0.0;
}

/// Trainer options, with PyTorch Lightning's names. Options not listed here are refused.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainerArgs {
    /// Passes over the training data.
    #[schemars(range(min = 1, max = MAX_EPOCHS), extend("default" = default::MAX_EPOCHS))]
    pub max_epochs: Option<u32>,
    /// Stop after this many optimizer steps (-1: no limit).
    #[schemars(extend("default" = default::MAX_STEPS))]
    pub max_steps: Option<i64>,
    /// Training batches per epoch: a count or a fraction.
    #[schemars(extend("default" = default::ALL_BATCHES))]
    pub limit_train_batches: Option<BatchLimitArg>,
    /// Validation batches per validation: a count or a fraction (0: no validation).
    #[schemars(extend("default" = default::ALL_BATCHES))]
    pub limit_val_batches: Option<BatchLimitArg>,
    /// Test batches (`lightning.test`): a count or a fraction.
    #[schemars(extend("default" = default::ALL_BATCHES))]
    pub limit_test_batches: Option<BatchLimitArg>,
    /// Prediction batches (`lightning.predict`): a count or a fraction.
    #[schemars(extend("default" = default::ALL_BATCHES))]
    pub limit_predict_batches: Option<BatchLimitArg>,
    /// Seed of initialisation, shuffling, dropout and the model's own data.
    ///
    /// The same seed on the same backend gives the same numbers.
    #[schemars(extend("default" = default::SEED))]
    pub seed: Option<u64>,
    /// Where to run (auto: a real GPU when there is one, else the CPU).
    ///
    /// `cpu`; `auto`; `gpu` or `wgpu` (any wgpu adapter, software ones included); `cuda` (an
    /// NVIDIA adapter) or `mps` (an Apple one), both through wgpu. `lightning.inspect`
    /// environment lists which are usable here.
    #[schemars(extend("default" = Accelerator::default()))]
    pub accelerator: Option<Accelerator>,
    /// Write a checkpoint when training ends.
    #[schemars(extend("default" = default::ENABLE_CHECKPOINTING))]
    pub enable_checkpointing: Option<bool>,
    /// Write each epoch's metrics to `metrics.csv` in the run directory.
    ///
    /// As Lightning's CSVLogger does.
    #[schemars(extend("default" = default::LOGGER))]
    pub logger: Option<bool>,
    /// Where `lightning_logs/version_N/` goes.
    ///
    /// Relative to the server's checkpoint directory.
    #[schemars(extend("default" = default::DEFAULT_ROOT_DIR))]
    pub default_root_dir: Option<String>,
    /// 1 or `"auto"`, or `[k]`: GPU adapter k.
    ///
    /// The adapters are `lightning.inspect` environment's `gpu_adapters`; training on more
    /// than one device is not supported.
    pub devices: Option<Devices>,
    /// Epochs early stopping may not cut.
    #[schemars(extend("default" = default::MIN_EPOCHS))]
    pub min_epochs: Option<u32>,
    /// Validate after every n-th epoch.
    #[schemars(extend("default" = default::AT_LEAST_ONE))]
    pub check_val_every_n_epoch: Option<u32>,
    /// Validate within an epoch: a fraction of it or a number of batches.
    ///
    /// A fraction of a validating epoch's training batches in (0.0, 1.0] (1.0: at its end),
    /// or a number of training batches; each validation is a point where early stopping
    /// checks and checkpoints are written.
    #[schemars(extend("default" = default::ALL_BATCHES))]
    pub val_check_interval: Option<BatchLimitArg>,
    /// Validation batches run before training to catch errors early (-1: all).
    ///
    /// Their metrics are discarded.
    #[schemars(extend("default" = default::NUM_SANITY_VAL_STEPS))]
    pub num_sanity_val_steps: Option<i64>,
    /// Batches whose gradients make one optimizer step.
    ///
    /// Each loss is divided by it, and the gradients summed.
    #[schemars(extend("default" = default::AT_LEAST_ONE))]
    pub accumulate_grad_batches: Option<u32>,
    /// Clip gradients to this joint L2 norm before each step (0: none).
    ///
    /// With `gradient_clip_algorithm: "value"`, clamp each element to ±this instead.
    #[schemars(extend("default" = default::NO_CLIPPING))]
    pub gradient_clip_val: Option<f64>,
    /// `norm` or `value`.
    #[schemars(extend("default" = ClipAlgorithm::default()))]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
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
            min_epochs: self.min_epochs.unwrap_or(default::MIN_EPOCHS),
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
            seed: self.seed.unwrap_or(default::SEED),
            accelerator: self.accelerator.unwrap_or_default(),
            devices,
            enable_checkpointing: self
                .enable_checkpointing
                .unwrap_or(default::ENABLE_CHECKPOINTING),
            logger: self.logger.unwrap_or(default::LOGGER),
            default_root_dir: self
                .default_root_dir
                .clone()
                .unwrap_or_else(|| default::DEFAULT_ROOT_DIR.into()),
            overfit_batches,
            model_checkpoint,
        };
        Ok(match fast_dev_run_batches {
            None => options,
            Some(batches) => fast_dev_run(options, batches),
        })
    }

    fn max_epochs(&self) -> Result<u32, String> {
        let max_epochs = self.max_epochs.unwrap_or(default::MAX_EPOCHS);
        if !(1..=MAX_EPOCHS).contains(&max_epochs) {
            return Err(format!(
                "trainer.max_epochs must be between 1 and {MAX_EPOCHS}, got {max_epochs}"
            ));
        }
        Ok(max_epochs)
    }

    fn max_steps(&self) -> Result<Option<u64>, String> {
        match self.max_steps.unwrap_or(default::MAX_STEPS) {
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
        match self
            .num_sanity_val_steps
            .unwrap_or(default::NUM_SANITY_VAL_STEPS)
        {
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

/// `value` (1 when left out), refused when 0, for option `field`.
fn at_least_one(field: &str, value: Option<u32>) -> Result<u32, String> {
    match value {
        Some(0) => Err(format!("trainer.{field} must be at least 1")),
        v => Ok(v.unwrap_or(default::AT_LEAST_ONE)),
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

/// A `limit_*_batches` option, all batches when absent.
fn resolve_limit(limit: Option<BatchLimitArg>, field: &str) -> Result<BatchLimit, String> {
    limit.map_or(Ok(BatchLimit::default()), |l| l.resolve(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_default_the_schema_shows_is_what_leaving_the_option_out_means() {
        let resolved = |args: TrainerArgs| format!("{:?}", args.resolve().expect("resolves"));
        let left_out = resolved(TrainerArgs::default());
        let mut shown = 0;
        for (name, schema) in crate::tools::schema::options::<TrainerArgs>() {
            let Some(default) = schema.get("default") else {
                continue;
            };
            let given = serde_json::from_value(json!({&name: default})).expect("a default parses");
            assert_eq!(resolved(given), left_out, "{name}: {default}");
            shown += 1;
        }
        assert_eq!(shown, 18, "options that show their default");
    }
}
