//! `lightning.checkpoint`: writes a model's weights, loads weights into a model, lists
//! checkpoints — only under `--checkpoint-dir`. The format is described in
//! [`crate::checkpoint`].

use super::args::{self, LimitsArg, ModelSpec, TrainerArgs};
use super::model_run::{build_on_cpu, num_parameters, of_model};
use super::schema::{self, Shown};
use super::sizes;
use crate::checkpoint::{self, Checkpoint, CheckpointMeta, EXTENSION};
use crate::protocol::{CallContext, ToolDefinition};
use crate::runtime::Runtime;
use crate::sandbox::{Limits, ModelInstance, RegisteredModel};
use crate::tensor::NamedValues;
use crate::trainer::{EpochRecord, Metrics, Mode, TrainingState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The tool's name.
pub const NAME: &str = "lightning.checkpoint";

/// Most checkpoints `list` returns.
const MAX_LISTED: usize = 1000;

/// What to do: save a model's weights, load a checkpoint into a model, or list checkpoints.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum CheckpointArgs {
    /// Builds the model and writes its (initial) weights to `path`.
    Save(Box<SaveArgs>),
    /// Builds the model and loads the weights at `path` into it, checking every name and
    /// shape.
    Load(Box<LoadArgs>),
    /// Lists the checkpoints under `directory`.
    List(ListArgs),
}

/// Arguments of `action: save`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveArgs {
    /// The checkpoint file, relative to the checkpoint directory (save, load).
    ///
    /// Save adds `.safetensors` when it is missing.
    pub path: String,
    /// The model to build (save, load).
    pub model: ModelSpec,
    /// Trainer options (save): `seed` seeds the model's initialisation.
    pub trainer: Option<TrainerArgs>,
    /// Lower limits for building the model (save, load).
    ///
    /// Each at most the server's.
    pub limits: Option<LimitsArg>,
}

/// Arguments of `action: load`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadArgs {
    /// The checkpoint, relative to the checkpoint directory.
    pub path: String,
    /// The model to load it into (its parameter names and shapes must be the checkpoint's).
    pub model: ModelSpec,
    /// Lower limits for building the model.
    ///
    /// Each at most the server's.
    pub limits: Option<LimitsArg>,
}

/// Arguments of `action: list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The directory to list with its subdirectories (list; default `.`).
    ///
    /// Relative to the checkpoint directory.
    pub directory: Option<String>,
}

/// A checked call.
#[derive(Debug)]
pub enum Request {
    /// Save.
    Save {
        path: String,
        model: ModelSpec,
        seed: u64,
        limits: Limits,
    },
    /// Load.
    Load {
        path: String,
        model: ModelSpec,
        limits: Limits,
    },
    /// List.
    List { directory: String },
}

/// One listed checkpoint.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    path: String,
    size_bytes: u64,
}

pub(super) fn definition() -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Save, load and list checkpoints",
        description: "action=save: builds the model (model._target_ plus hyperparameters) and \
            writes its weights to `path`; action=load: builds the model and loads the \
            checkpoint at `path` into it, reporting the epoch, step and metrics it was saved \
            with (names and shapes must match exactly); action=list: the checkpoints under \
            `directory`. Paths are relative to the server's checkpoint directory.",
        input_schema: schema::listed::<CheckpointArgs>(SHOWN),
    }
}

/// The options `tools/list` shows inside `lightning.checkpoint`'s object arguments.
pub(super) const SHOWN: &Shown = &[("trainer", &["seed"]), ("limits", &["timeout_seconds"])];

/// Parses and checks `lightning.checkpoint` arguments against the server's `limits`.
pub(super) fn parse(arguments: &Value, limits: &Limits) -> Result<Request, String> {
    Ok(match args::parse::<CheckpointArgs>(arguments)? {
        CheckpointArgs::Save(a) => {
            let options = a.trainer.unwrap_or_default().resolve()?;
            Request::Save {
                path: with_extension(&a.path),
                model: a.model,
                seed: options.seed,
                limits: a.limits.unwrap_or_default().apply(limits, false)?,
            }
        }
        CheckpointArgs::Load(a) => Request::Load {
            path: a.path,
            model: a.model,
            limits: a.limits.unwrap_or_default().apply(limits, false)?,
        },
        CheckpointArgs::List(a) => Request::List {
            directory: a.directory.unwrap_or_else(|| ".".to_string()),
        },
    })
}

/// `path`, ending in `.safetensors`.
fn with_extension(path: &str) -> String {
    if path.ends_with(&format!(".{EXTENSION}")) {
        path.to_string()
    } else {
        format!("{path}.{EXTENSION}")
    }
}

pub(super) fn run(runtime: &Runtime, request: Request, ctx: &CallContext) -> Result<Value, String> {
    match request {
        Request::Save {
            path,
            model,
            seed,
            limits,
        } => of_model(runtime, &model.target, |registered| {
            save_initial(runtime, &registered, &model, (seed, &limits), &path, ctx)
        }),
        Request::Load {
            path,
            model,
            limits,
        } => of_model(runtime, &model.target, |registered| {
            load_into(runtime, &registered, &model, &limits, &path, ctx)
        }),
        Request::List { directory } => list(runtime, directory),
    }
}

/// `action: save`: builds `model` from `spec` with `seed` and writes its initial weights to
/// `path`.
fn save_initial(
    runtime: &Runtime,
    model: &RegisteredModel,
    spec: &ModelSpec,
    (seed, limits): (u64, &Limits),
    path: &str,
    ctx: &CallContext,
) -> Result<Value, String> {
    let (_slot, instance, hyperparameters) =
        build_on_cpu(runtime, model, spec, (limits, seed), ctx)?;
    let meta = CheckpointMeta::new(
        &model.description.target,
        &model.description.class_name,
        hyperparameters,
        0,
        0,
        &Metrics::new(),
    );
    let (written, size) = save(runtime, &instance, meta, None, path)?;
    Ok(json!({
        "action": "save",
        "path": written,
        "model_class": model.description.class_name,
        "target": model.description.target,
        "num_parameters": num_parameters(&instance),
        "size_bytes": size,
    }))
}

/// `action: load`: builds `model` (with the checkpoint's hyperparameters where `spec` leaves
/// them out) and loads the checkpoint at `path` into it, every name and shape checked.
fn load_into(
    runtime: &Runtime,
    model: &RegisteredModel,
    spec: &ModelSpec,
    limits: &Limits,
    path: &str,
    ctx: &CallContext,
) -> Result<Value, String> {
    let opened = open(runtime, path, limits, false)?;
    let defaults = &model.description.hyperparameters;
    let saved = opened.hyperparameters_for(model);
    let spec = sizes::fit(spec, defaults, saved, None)?.spec;
    let (_slot, mut instance, _) = build_on_cpu(runtime, model, &spec, (limits, 0), ctx)?;
    let Restored { shown, meta, .. } = restore(&mut instance, model, opened)?;
    Ok(json!({
        "action": "load",
        "path": shown,
        "model_class": model.description.class_name,
        "target": model.description.target,
        "num_parameters": num_parameters(&instance),
        "epoch": meta.epoch,
        "global_step": meta.global_step,
        "metrics": meta.metrics,
        "hyperparameters": meta.hyperparameters,
        "checkpoint_of": meta.target,
        "optimizer": meta.optimizer.as_ref().map(|o| o.config.class_name()),
    }))
}

/// `action: list`: the checkpoints under `directory`, as many as the result holds.
fn list(runtime: &Runtime, directory: String) -> Result<Value, String> {
    let found = runtime
        .checkpoint_dir()
        .list(&directory, EXTENSION, MAX_LISTED)
        .map_err(|e| e.to_string())?;
    let found_all = found.len() < MAX_LISTED;
    let listed: Vec<Listed> = found
        .into_iter()
        .map(|(path, size_bytes)| Listed {
            name: path.rsplit('/').next().unwrap_or(&path).to_string(),
            path,
            size_bytes,
        })
        .collect();
    // What the result can hold, beside its other fields.
    let budget = runtime.max_result_bytes().saturating_sub(1024);
    let (checkpoints, cut) = within(listed, budget);
    Ok(json!({
        "action": "list",
        "directory": directory,
        "count": checkpoints.len(),
        "truncated": cut || !found_all,
        "checkpoints": checkpoints,
    }))
}

/// The first of `listed` whose JSON fits in `budget` bytes, and whether any were left out.
fn within(listed: Vec<Listed>, budget: usize) -> (Vec<Listed>, bool) {
    let mut used = 0usize;
    let mut kept = Vec::with_capacity(listed.len());
    let total = listed.len();
    for entry in listed {
        used = used.saturating_add(super::results::json_len(&entry).saturating_add(1));
        if used > budget {
            break;
        }
        kept.push(entry);
    }
    let cut = kept.len() < total;
    (kept, cut)
}

/// Writes `instance`'s weights with `meta` (and, from a fit, its `training` state) to `path`
/// under the checkpoint directory; returns the path as clients name it and the file's size.
pub(super) fn save(
    runtime: &Runtime,
    instance: &ModelInstance,
    meta: CheckpointMeta,
    training: Option<&TrainingState<'_>>,
    path: &str,
) -> Result<(String, usize), String> {
    let bytes = checkpoint::capture(instance, meta, training)
        .and_then(|c| checkpoint::encode(&c))
        .map_err(|e| format!("cannot write the checkpoint: {e}"))?;
    let dir = runtime.checkpoint_dir();
    let written = dir
        .write(path, &bytes)
        .map_err(|e| format!("cannot write the checkpoint: {e}"))?;
    Ok((dir.display(&written), bytes.len()))
}

/// A checkpoint read and decoded before its model is built: the model is built with the
/// hyperparameters it was saved with, unless the request gives others.
pub(super) struct Opened {
    /// The path as clients name it.
    pub shown: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

impl Opened {
    /// The hyperparameters the checkpoint's model was built with, when it is of `model`
    /// (another model's hyperparameters mean nothing to it).
    pub(super) fn hyperparameters_for(&self, model: &RegisteredModel) -> Option<&Value> {
        let meta = &self.checkpoint.meta;
        (meta.target == model.description.target).then_some(&meta.hyperparameters)
    }
}

/// Reads the checkpoint at `path` under the checkpoint directory, with `optimizer_state`
/// (resuming) its optimizer state tensors too. It may be of another model than `model` (a
/// port of the same network, say): its weights then load when every name and shape matches,
/// as a strict `load_state_dict` does.
pub(super) fn open(
    runtime: &Runtime,
    path: &str,
    limits: &Limits,
    optimizer_state: bool,
) -> Result<Opened, String> {
    let dir = runtime.checkpoint_dir();
    // Weights, and at most twice as much optimizer state (Adam's two moments), each held
    // like the model's own tensors; the header is small.
    let max_bytes = (limits.max_tensor_bytes as u64)
        .saturating_mul(3)
        .saturating_add(1 << 20);
    let (real, bytes) = dir.read(path, max_bytes).map_err(|e| e.to_string())?;
    let shown = dir.display(&real);
    let checkpoint =
        checkpoint::decode(&bytes, optimizer_state).map_err(|e| format!("{shown}: {e}"))?;
    Ok(Opened { shown, checkpoint })
}

/// A checkpoint loaded into a model: what of it the weights leave.
pub(super) struct Restored {
    /// The path as clients name it.
    pub shown: String,
    /// The checkpoint's metadata.
    pub meta: CheckpointMeta,
    /// Its optimizer state tensors (empty unless opened for resuming).
    pub optimizer_tensors: Vec<NamedValues>,
}

/// Loads an opened checkpoint's weights into `instance`, a fresh instance of `model`.
pub(super) fn restore(
    instance: &mut ModelInstance,
    model: &RegisteredModel,
    opened: Opened,
) -> Result<Restored, String> {
    let Opened { shown, checkpoint } = opened;
    let Checkpoint {
        params,
        optimizer_tensors,
        meta,
    } = checkpoint;
    checkpoint::restore(instance, params).map_err(|e| {
        // Weights of another model rarely fit: say whose they are.
        match meta.target != model.description.target {
            true => format!("{shown}: {e} (it is a checkpoint of {})", meta.target),
            false => format!("{shown}: {e}"),
        }
    })?;
    Ok(Restored {
        shown,
        meta,
        optimizer_tensors,
    })
}

/// Lightning's `ModelCheckpoint`, resolved: what to keep at every validation (every epoch
/// without validation data).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRule {
    /// The metric that ranks checkpoints; `None`: the latest epochs are kept.
    pub monitor: Option<String>,
    /// Whether lower or higher is better.
    pub mode: Mode,
    /// How many to keep (`None`: all).
    pub save_top_k: Option<usize>,
    /// Also keep `last.safetensors`.
    pub save_last: bool,
    /// The file name template.
    pub filename: String,
}

impl Default for CheckpointRule {
    /// Lightning's default `ModelCheckpoint`: the latest checkpoint, named `epoch=E-step=S`.
    fn default() -> Self {
        Self {
            monitor: None,
            mode: Mode::Min,
            save_top_k: Some(1),
            save_last: false,
            filename: "{epoch}-{step}".into(),
        }
    }
}

/// Writes a run's checkpoints as a [`CheckpointRule`] says, deleting those that fall out of
/// the top k.
pub(super) struct Checkpointer<'a> {
    runtime: &'a Runtime,
    rule: CheckpointRule,
    /// The run directory's `checkpoints/`, relative to the checkpoint root.
    dir: String,
    target: String,
    class: String,
    hyperparameters: Value,
    /// (score, path), best first (or newest first without a monitor).
    kept: Vec<(f64, String)>,
    last: Option<String>,
}

impl<'a> Checkpointer<'a> {
    /// A checkpointer writing into `run_dir/checkpoints`.
    pub(super) fn new(
        runtime: &'a Runtime,
        rule: CheckpointRule,
        run_dir: &str,
        model: &RegisteredModel,
        hyperparameters: Value,
    ) -> Self {
        Self {
            runtime,
            rule,
            dir: format!("{run_dir}/checkpoints"),
            target: model.description.target.clone(),
            class: model.description.class_name.clone(),
            hyperparameters,
            kept: Vec::new(),
            last: None,
        }
    }

    /// The best checkpoint kept (the newest without a monitor), with its score.
    pub(super) fn best(&self) -> Option<(Option<f64>, String)> {
        let monitored = self.rule.monitor.is_some();
        self.kept
            .first()
            .map(|(score, path)| (monitored.then_some(*score), path.clone()))
            .or_else(|| self.last.clone().map(|path| (None, path)))
    }

    /// Checks that a monitored metric was ever seen.
    pub(super) fn finish(&self, logged: &Metrics) -> Result<(), String> {
        match &self.rule.monitor {
            Some(m) if !logged.contains_key(m) => Err(format!(
                "the model checkpoint monitors {m:?}, which the model did not log (logged: {})",
                logged
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Ok(()),
        }
    }

    fn write(
        &self,
        instance: &ModelInstance,
        state: &TrainingState<'_>,
        record: &EpochRecord,
        name: &str,
    ) -> Result<String, String> {
        let meta = CheckpointMeta::new(
            &self.target,
            &self.class,
            self.hyperparameters.clone(),
            record.epoch,
            record.global_step,
            &record.metrics,
        );
        save(
            self.runtime,
            instance,
            meta,
            Some(state),
            &format!("{}/{name}.{EXTENSION}", self.dir),
        )
        .map(|(path, _)| path)
    }

    /// At a checkpoint moment of the fit: writes the checkpoint if it makes the top k, with
    /// the training `state` a resumed fit needs, drops the one it pushes out, and rewrites
    /// `last` when asked. Returns the newest checkpoint written, if any was.
    pub(super) fn save_point(
        &mut self,
        instance: &ModelInstance,
        state: &TrainingState<'_>,
        record: &EpochRecord,
    ) -> Result<Option<String>, String> {
        if self.rule.save_last {
            self.last = Some(self.write(instance, state, record, "last")?);
        }
        let score = match &self.rule.monitor {
            // Epochs without the metric (no validation that epoch) are not ranked.
            Some(m) => match record.metrics.get(m) {
                Some(v) if v.is_finite() => *v,
                _ => return Ok(self.last.clone()),
            },
            // Without a monitor the latest is best: ranked by step (two validations within an
            // epoch share its number).
            None => record.global_step as f64,
        };
        let better = |a: f64, b: f64| match (&self.rule.monitor, self.rule.mode) {
            (None, _) | (Some(_), Mode::Max) => a > b,
            (Some(_), Mode::Min) => a < b,
        };
        let k = self.rule.save_top_k.unwrap_or(usize::MAX);
        let makes_it = k > 0
            && (self.kept.len() < k || self.kept.last().is_some_and(|(w, _)| better(score, *w)));
        if !makes_it {
            return Ok(self.last.clone());
        }
        let path = self.write(
            instance,
            state,
            record,
            &file_name(&self.rule.filename, record),
        )?;
        let at = self
            .kept
            .iter()
            .position(|(s, _)| better(score, *s))
            .unwrap_or(self.kept.len());
        self.kept.insert(at, (score, path.clone()));
        while self.kept.len() > k {
            if let Some((_, dropped)) = self.kept.pop() {
                let still_used = self.kept.iter().any(|(_, p)| *p == dropped);
                if !still_used && let Err(e) = self.runtime.checkpoint_dir().remove(&dropped) {
                    tracing::warn!("removing checkpoint {dropped}: {e}");
                }
            }
        }
        Ok(Some(path))
    }
}

/// Lightning's checkpoint file name: `{epoch}`, `{step}`, `{metric}` and `{metric:.Nf}`
/// become `epoch=E`, `step=S`, `metric=value`; a placeholder with no value is left out.
fn file_name(template: &str, record: &EpochRecord) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else {
            out.push_str(rest.get(open..).unwrap_or_default());
            return out;
        };
        let field = after.get(..close).unwrap_or_default();
        let (name, precision) = match field.split_once(":.") {
            Some((name, spec)) => (name, spec.trim_end_matches('f').parse::<usize>().ok()),
            None => (field, None),
        };
        let value = match name {
            "epoch" => Some(record.epoch.to_string()),
            "step" => Some(record.global_step.to_string()),
            metric => record.metrics.get(metric).map(|v| match precision {
                Some(p) => format!("{v:.p$}"),
                None => v.to_string(),
            }),
        };
        if let Some(value) = value {
            out.push_str(&format!("{name}={value}"));
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::file_name;
    use crate::trainer::{EpochRecord, Metrics};

    #[test]
    fn file_names_follow_lightning() {
        let record = EpochRecord {
            epoch: 3,
            global_step: 48,
            metrics: Metrics::from([("val_loss".to_string(), 0.26789)]),
        };
        assert_eq!(file_name("{epoch}-{step}", &record), "epoch=3-step=48");
        assert_eq!(
            file_name("best-{epoch}-{val_loss:.2f}", &record),
            "best-epoch=3-val_loss=0.27"
        );
        assert_eq!(file_name("{val_acc}x", &record), "x");
        assert_eq!(file_name("open{epoch", &record), "open{epoch");
    }
}
