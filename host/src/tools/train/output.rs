//! What `lightning.train` returns.

use crate::tools::accelerator::DeviceReport;
use crate::tools::data::DataReport;
use crate::tools::model_run::RunModel;
use crate::trainer::{EpochRecord, Metrics};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// What a successful `lightning.train` returns (its `structuredContent`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainOutput {
    /// `completed`.
    pub status: &'static str,
    /// The model trained.
    pub model: TrainedModel,
    /// The trainer settings used and where the fit ended.
    pub trainer: TrainerReport,
    /// Per-epoch means of the last epoch's logged values (`train_loss`, ...) and of the last
    /// validation (`val_loss`, `val_acc`, ...).
    pub metrics: Metrics,
    /// The run's directory, relative to the server's checkpoint directory
    /// (`lightning_logs/version_N`, holding `metrics.csv` and `checkpoints/`); `null` when
    /// neither the logger nor checkpointing is on.
    pub log_dir: Option<String>,
    /// The checkpoint to use, relative to the server's checkpoint directory: the last epoch's,
    /// or with a model-checkpoint callback its best (Lightning's `best_model_path`); `null`
    /// with `trainer.enable_checkpointing: false`.
    pub checkpoint_path: Option<String>,
    /// The monitored metric of that best checkpoint (Lightning's `best_model_score`).
    pub best_model_score: Option<f64>,
    /// Where the data came from, when it was a file (`data.csv`).
    pub data: Option<DataReport>,
    /// The checkpoint training resumed from (`ckpt_path`), and where it stood.
    pub resumed_from: Option<ResumedFrom>,
    /// Every epoch's metrics, in order, and those of validations within epochs
    /// (`val_check_interval`).
    ///
    /// At most 100 records: a longer run's are evenly spaced, the first and last kept
    /// (`metrics.csv` in `log_dir` has every epoch).
    pub history: Vec<EpochRecord>,
    /// When `history` was downsampled: how many records the run had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_records: Option<usize>,
    /// Training samples per second of the fit (its steps, backward passes and validation).
    pub samples_per_second: f64,
    /// Wall-clock time of the whole call.
    pub duration_seconds: f64,
    /// With `plot: true`, why the learning curve could not be drawn (the training stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plot_error: Option<String>,
}

/// The model part of a training result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainedModel {
    /// Its class, target and size.
    #[serde(flatten)]
    pub model: RunModel,
    /// The hyperparameters the model resolved (given ones plus defaults).
    pub hyperparameters: Map<String, Value>,
    /// The hyperparameters the request left out and the data determined (`input_dim`,
    /// `num_classes`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_data: Vec<String>,
}

/// Where a resumed training started.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ResumedFrom {
    /// The checkpoint, relative to the server's checkpoint directory.
    pub ckpt_path: String,
    /// The first epoch this call trained.
    pub epoch: u32,
    /// Optimizer steps taken before.
    pub global_step: u64,
    /// Whether the checkpoint held the optimizer's state (a weights-only checkpoint, as
    /// `lightning.checkpoint` `save` writes, restarts the optimizer).
    pub optimizer_state: bool,
}

/// The trainer part of a training result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainerReport {
    /// Epochs asked for.
    pub max_epochs: u32,
    /// Step limit, `-1` for none.
    pub max_steps: i64,
    /// The accelerator used: `cpu` or `gpu`.
    pub accelerator: &'static str,
    /// Devices used.
    pub devices: u32,
    /// The device trained on.
    pub device: DeviceReport,
    /// The seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Epochs run.
    pub current_epoch: u32,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// Whether the early-stopping callback ended the fit.
    pub stopped_early: bool,
}
