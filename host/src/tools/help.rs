//! Help on demand (`lightning.inspect` with `what: "help"`): what `tools/list` leaves out to
//! stay small. Each topic's options come from the same types the tools parse, with their whole
//! descriptions, so help cannot drift from what the server accepts.

use super::args::{
    CsvArgs, DataArgs, EarlyStoppingArg, LimitsArg, ModelCheckpointArg, TrainerArgs,
};
use super::evaluate::{EvaluateOutput, PredictOutput};
use super::runs::RunsArgs;
use super::schema::options;
use super::train::TrainOutput;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A help topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    /// Every `trainer` option.
    Trainer,
    /// The `early_stopping` and `model_checkpoint` callbacks.
    Callbacks,
    /// The forms of `data`: inline arrays, a CSV file, a built-in dataset.
    Data,
    /// Every `limits` option, with this server's values.
    Limits,
    /// Learning-rate schedulers (the `lr_scheduler` hyperparameter).
    Schedulers,
    /// Where checkpoints go, resuming, loading.
    Checkpoints,
    /// What each tool returns.
    Results,
    /// Runs: background runs, `lightning.runs`, Tasks, restarts, retention.
    Runs,
    /// Writing a model in Python for `lightning.register`.
    Python,
}

impl Topic {
    /// Every topic, in the order the index lists them.
    const ALL: [Self; 9] = [
        Self::Trainer,
        Self::Callbacks,
        Self::Data,
        Self::Limits,
        Self::Schedulers,
        Self::Checkpoints,
        Self::Results,
        Self::Runs,
        Self::Python,
    ];

    /// The topic as requests spell it.
    fn name(self) -> &'static str {
        match self {
            Self::Trainer => "trainer",
            Self::Callbacks => "callbacks",
            Self::Data => "data",
            Self::Limits => "limits",
            Self::Schedulers => "schedulers",
            Self::Checkpoints => "checkpoints",
            Self::Results => "results",
            Self::Runs => "runs",
            Self::Python => "python",
        }
    }

    /// What the topic covers, in a paragraph.
    fn summary(self) -> &'static str {
        match self {
            Self::Trainer => {
                "PyTorch Lightning's Trainer arguments, under `trainer` in lightning.train, \
                 validate, test, predict and checkpoint (save: `seed`). A tool accepts every \
                 option; those it has no use for (max_epochs in lightning.test) change nothing. \
                 An option not listed here is refused with its name."
            }
            Self::Callbacks => {
                "`trainer.callbacks` is a list of objects, each with a `type`: \
                 `early_stopping` (Lightning's EarlyStopping) stops when a monitored metric \
                 stops improving; `model_checkpoint` (Lightning's ModelCheckpoint) writes a \
                 checkpoint after every validation and keeps the best `save_top_k`, and \
                 lightning.train then returns the best as `checkpoint_path`. At most one of \
                 each, e.g. [{\"type\": \"early_stopping\", \"monitor\": \"val_loss\", \
                 \"patience\": 3}]."
            }
            Self::Data => {
                "Without `data`, a model trains and evaluates on its own data (its `dataset` \
                 hook). `data` replaces it in one of three forms: inline arrays per split \
                 (`train`, `val`, `test`: {inputs, targets}; `predict`: {inputs}); `csv`: a \
                 file under the server's data directory, feature columns as inputs and a target \
                 column as targets (text labels become class indices in sorted order, reported \
                 as data.classes; `val_split` holds out validation rows); `dataset`: a \
                 built-in dataset, `iris` (4 features, 3 classes) or `digits` (8×8 images as 64 \
                 features, 10 classes). Inputs are f32; targets that are all whole numbers \
                 are class indices, others are values (regression). `input_shape` reshapes each \
                 sample, e.g. [1, 8, 8] for a CNN on 64 columns. A model's sizes left out of \
                 `model` come from the data (input_dim, input_shape, in_channels and \
                 image_size, num_classes: the built-in models' names), or from the checkpoint \
                 at ckpt_path; a size that disagrees with the data is refused, naming both."
            }
            Self::Limits => {
                "Every run is bounded by the server's limits (its command-line flags). A \
                 request's `limits` may lower any of them for that call, never raise one; \
                 `server` below holds this server's values."
            }
            Self::Schedulers => {
                "Models built with the guest SDK (the built-in MLP and Sequential, for \
                 example) take an `lr_scheduler` hyperparameter: one object named by its \
                 schedule, with PyTorch's argument names and defaults, optionally warmed up \
                 and advanced per step instead of per epoch. lightning.train reports the \
                 learning rate of every epoch as `lr` in history."
            }
            Self::Checkpoints => {
                "lightning.train writes lightning_logs/version_N/ under the server's checkpoint \
                 directory (or under trainer.default_root_dir within it): metrics.csv and \
                 checkpoints/*.safetensors (weights, optimizer state, epoch and step), and \
                 returns `checkpoint_path`. Pass that path as `ckpt_path` to lightning.validate, \
                 test and predict (weights), or to lightning.train to resume (its epoch, step, \
                 optimizer and early-stopping state). lightning.checkpoint saves a model's \
                 initial weights (action save), loads a checkpoint into a model to check it \
                 (load) and lists checkpoints (list). Every path is relative to the \
                 checkpoint directory; `..` and absolute paths are refused."
            }
            Self::Results => {
                "Each tool returns one JSON object (also as text), `status` first: \
                 `completed`, or `failed` with `error` naming the cause and the fix. \
                 `fields` below describes each tool's successful result. A result stays \
                 within the server's bound (--max-result-kb, 100 KB by default; environment \
                 shows it as max_result_bytes): predictions past it go to a JSON Lines file \
                 under the checkpoint directory (`predictions_file`), with the first 10 rows \
                 in the result; `history` keeps at most 100 records (metrics.csv has every \
                 epoch). Every train/validate/test/predict result (a failed one too) names its \
                 `run_id`: lightning.runs shows, compares and returns the run later, after a \
                 restart too; `background: true` returns {status: queued, run_id} at once."
            }
            Self::Runs => {
                "Every lightning.train, validate, test and predict call is a run, kept in the \
                 server's run store (SQLite in the checkpoint directory) with its arguments, \
                 status (queued, working, completed, failed, cancelled), progress, per-epoch \
                 history, newest checkpoint and result; each result names its run_id. \
                 `background: true` returns {status: queued, run_id} at once; the run is tied \
                 to no connection. MCP Tasks (2025-11-25, and the 2026-07-28 extension) reach \
                 the same runs: a task id is a run id. lightning.runs lists (newest first, \
                 next_cursor to page), gets, returns the result of, cancels, deletes and \
                 compares runs. After a restart, a training that wrote a checkpoint resumes \
                 from its newest one; other unfinished runs fail, \"server restarted\". Ended \
                 runs are kept for --run-ttl-hours (30 days by default), at most \
                 --max-stored-runs (10,000). `options` below: lightning.runs' arguments."
            }
            Self::Python => {
                "With --allow-register and componentize-py on the server, lightning.register \
                 {\"python\": <source>} builds one Python module into a model (about 10 s), \
                 which then trains like any other. The module imports the SDK (`import \
                 lightning_mcp as L; from lightning_mcp import nn`), subclasses \
                 L.LightningModule with `target`, `summary` and `hyperparameters` (L.hparam(\
                 default, range=(lo, hi), choices=[...], check=L.learning_rate | L.fraction)), \
                 declares its layers in __init__(self, hparams) (nn.Linear, Conv2d, \
                 BatchNorm, LayerNorm, Embedding, Dropout, initialised as PyTorch's; \
                 `with nn.scope(name):` prefixes their parameter names), defines forward(x), \
                 and ends with `LightningModule = L.export(Net)`. Tensors have Python's \
                 operators and PyTorch's methods (relu, softmax(dim), matmul, transpose, \
                 reshape, flatten, sum, mean, argmax, cross_entropy, mse, masked_fill, \
                 cast); every op runs on the host. The hooks default to a classifier: \
                 training_step(x, y, batch_index) and validation_step/test_step return the \
                 loss (self.log(name, value) logs; self.log_classification(stage, logits, y) \
                 logs loss and accuracy), predict_step returns outputs, \
                 configure_optimizers returns L.Adam(lr=...) (or SGD, AdamW, with \
                 .with_scheduler(L.Scheduler.cosine(t_max=...))), dataset(split, seed) may \
                 return (inputs, targets, batch_size). Top-level code runs at build time: \
                 keep it to definitions. A Python exception becomes the hook's error. \
                 `example` below is a complete model."
            }
        }
    }

    /// The topic's options, or other reference material, by name.
    fn details(self) -> Map<String, Value> {
        let mut details = Map::new();
        match self {
            Self::Trainer => {
                details.insert("options".into(), Value::Object(options::<TrainerArgs>()));
            }
            Self::Callbacks => {
                details.insert(
                    "early_stopping".into(),
                    Value::Object(options::<EarlyStoppingArg>()),
                );
                details.insert(
                    "model_checkpoint".into(),
                    Value::Object(options::<ModelCheckpointArg>()),
                );
            }
            Self::Data => {
                details.insert("options".into(), Value::Object(options::<DataArgs>()));
                details.insert("csv".into(), Value::Object(options::<CsvArgs>()));
                details.insert(
                    "examples".into(),
                    json!([
                        {"train": {"inputs": [[5.1, 3.5], [6.2, 2.9]], "targets": [0, 1]}},
                        {"csv": {"path": "iris.csv", "target": "species", "val_split": 0.2}},
                        {"dataset": "digits", "input_shape": [1, 8, 8]},
                    ]),
                );
            }
            Self::Limits => {
                details.insert("options".into(), Value::Object(options::<LimitsArg>()));
            }
            Self::Schedulers => {
                details.insert(
                    "examples".into(),
                    json!([
                        {"name": "step", "step_size": 10, "gamma": 0.5},
                        {"name": "cosine", "t_max": 100, "eta_min": 0.0},
                        {"name": "linear", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
                        {"name": "cosine", "t_max": 1000, "interval": "step", "warmup_iters": 100,
                         "warmup_start_factor": 0.01},
                    ]),
                );
                details.insert(
                    "options".into(),
                    json!({
                        "name": "step (StepLR), cosine (CosineAnnealingLR) or linear (LinearLR)",
                        "step_size, gamma": "step: decay by gamma (default 0.1) every step_size intervals",
                        "t_max, eta_min": "cosine: half a cosine over t_max intervals down to eta_min (default 0)",
                        "start_factor, end_factor, total_iters": "linear: factor from start_factor (default 1/3) to end_factor (default 1) over total_iters (default 5)",
                        "interval": "epoch (default) or step: when the schedule advances",
                        "warmup_iters, warmup_start_factor": "a linear warm-up over warmup_iters intervals (default 0) from warmup_start_factor (default 1/3)",
                    }),
                );
            }
            Self::Checkpoints => {}
            Self::Python => {
                details.insert("example".into(), Value::from(PYTHON_EXAMPLE));
            }
            Self::Runs => {
                details.insert("options".into(), Value::Object(options::<RunsArgs>()));
            }
            Self::Results => {
                details.insert(
                    "fields".into(),
                    json!({
                        "lightning.train": options::<TrainOutput>(),
                        "lightning.validate, lightning.test": options::<EvaluateOutput>(),
                        "lightning.predict": options::<PredictOutput>(),
                    }),
                );
            }
        }
        details
    }
}

/// A complete Python model, as the `python` topic shows it (tests build and train it).
const PYTHON_EXAMPLE: &str = include_str!("../../../examples/python-model/residual_mlp.py");

/// The help on `topic`, or the index of topics.
pub fn help(topic: Option<Topic>, limits: Value) -> Value {
    let Some(topic) = topic else {
        return index();
    };
    let mut answer = Map::new();
    answer.insert("topic".into(), Value::from(topic.name()));
    answer.insert("summary".into(), Value::from(topic.summary()));
    answer.extend(topic.details());
    if topic == Topic::Limits {
        answer.insert("server".into(), limits);
    }
    Value::Object(answer)
}

/// Every topic with what it covers, and where the rest lives.
fn index() -> Value {
    let topics: Map<String, Value> = Topic::ALL
        .iter()
        .map(|t| (t.name().to_string(), Value::from(t.summary())))
        .collect();
    json!({
        "topics": topics,
        "ask": "lightning.inspect {\"what\": \"help\", \"topic\": <one of topics>}",
        "models": "lightning.inspect {\"what\": \"models\"} lists every model target with its \
                   hyperparameters, their types and defaults",
        "environment": "lightning.inspect {\"what\": \"environment\"}: versions, devices, \
                        usable accelerators, limits",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_answers_with_its_summary_and_the_index_lists_them_all() {
        let index = help(None, json!({}));
        for topic in Topic::ALL {
            let answer = help(Some(topic), json!({}));
            assert_eq!(answer.get("topic"), Some(&json!(topic.name())));
            assert!(
                index
                    .pointer(&format!("/topics/{}", topic.name()))
                    .is_some()
            );
            let text = answer.to_string();
            assert!(!text.contains("$ref"), "{text}");
        }
    }

    #[test]
    fn the_trainer_topic_lists_every_trainer_option_with_its_whole_description() {
        let answer = help(Some(Topic::Trainer), json!({}));
        let options = answer.get("options").and_then(Value::as_object);
        let names: Vec<&str> = options
            .into_iter()
            .flatten()
            .map(|(n, _)| n.as_str())
            .collect();
        for name in [
            "max_epochs",
            "val_check_interval",
            "callbacks",
            "overfit_batches",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
}
