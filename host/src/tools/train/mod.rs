//! `lightning.train`: builds a registered model and fits it on its data. Its result types are
//! in [`output`], the progress it reports in [`reporter`].

mod output;
mod reporter;

pub use output::{ResumedFrom, TrainOutput, TrainedModel, TrainerReport};
use reporter::Reporter;

use super::accelerator::{DeviceReport, Placement};
use super::args::{self, DataArgs, LimitsArg, ModelSpec, TrainerArgs, TrainerOptions};
use super::checkpoint::{Checkpointer, Restored};
use super::model_run::{
    self, RunModel, RunRequest, Settled, num_parameters, of_model, run_failed, settle,
};
use super::results;
use super::schema::{self, Shown};
use crate::checkpoint;
use crate::data::Dataset;
use crate::plot;
use crate::protocol::{CallContext, CallToolResult, Image, LogLevel, ToolDefinition};
use crate::runtime::Runtime;
use crate::sandbox::{Limits, ModelInstance, RegisteredModel, Split};
use crate::trainer::{self, EpochRecord, FitConfig, FitStart};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The tool's name.
pub const NAME: &str = "lightning.train";

/// Arguments of `lightning.train`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    /// The model to train: `_target_` plus hyperparameters.
    pub model: ModelSpec,
    /// PyTorch Lightning Trainer options.
    pub trainer: Option<TrainerArgs>,
    /// Lower limits for this run.
    ///
    /// Each at most the server's (`lightning.inspect` `environment` shows them);
    /// `timeout_seconds` bounds the whole training.
    pub limits: Option<LimitsArg>,
    /// Data to train and validate on instead of the model's own.
    pub data: Option<DataArgs>,
    /// A checkpoint to resume from (e.g. a checkpoint_path returned earlier).
    ///
    /// Relative to the server's checkpoint directory, as Lightning's
    /// `trainer.fit(ckpt_path=...)`: its weights, optimizer state, epoch, step and
    /// early-stopping state; training continues with the epoch after the one it was written
    /// in, up to `trainer.max_epochs` in all.
    pub ckpt_path: Option<String>,
    /// Also return the learning curve as a PNG image (default false).
    ///
    /// Loss, the other metrics and the learning rate per epoch, after the JSON text.
    pub plot: Option<bool>,
    /// Run in the background: return a run_id at once (see lightning.runs).
    pub background: Option<bool>,
}

/// A checked `lightning.train` call.
#[derive(Debug)]
pub struct Request {
    run: RunRequest,
    plot: bool,
}

impl Request {
    /// What every run tool's request has.
    pub(super) fn run(&self) -> &RunRequest {
        &self.run
    }
}

/// Parses and checks `lightning.train` arguments against the server's `limits`.
pub(super) fn parse(arguments: &Value, limits: &Limits) -> Result<Request, String> {
    let args: TrainArgs = args::parse(arguments)?;
    Ok(Request {
        run: RunRequest {
            data: args.data,
            ckpt_path: args.ckpt_path,
            background: args.background.unwrap_or(false),
            ..RunRequest::new(args.model, args.trainer, args.limits, limits)?
        },
        plot: args.plot.unwrap_or(false),
    })
}

/// The options `tools/list` shows inside `lightning.train`'s object arguments.
pub(super) const SHOWN: &Shown = &[
    (
        "trainer",
        &[
            "max_epochs",
            "max_steps",
            "seed",
            "accelerator",
            "limit_train_batches",
            "limit_val_batches",
            "val_check_interval",
            "accumulate_grad_batches",
            "gradient_clip_val",
            "enable_checkpointing",
            "callbacks",
        ],
    ),
    ("limits", &["timeout_seconds"]),
    (
        "data",
        &[
            "train",
            "val",
            "csv",
            "dataset",
            "input_shape",
            "batch_size",
            "shuffle",
        ],
    ),
];

pub(super) fn definition() -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Train a model",
        description: "Builds a registered model (model._target_ plus hyperparameters) in the \
            WebAssembly sandbox and fits it with PyTorch Lightning's trainer options, on the \
            model's own data or on `data` (inline arrays, a CSV file, a built-in dataset), \
            validating and writing a checkpoint. Returns metrics (train_loss, val_loss, \
            val_acc, ...), the per-epoch history and checkpoint_path (pass it as ckpt_path to \
            validate/test/predict, or here to resume). Every option: lightning.inspect \
            {what: help}.",
        input_schema: schema::listed::<TrainArgs>(SHOWN),
    }
}

/// A training prepared to run: the registered model, the hyperparameters settled against
/// the data and the checkpoint to resume from, the data loaded, the run directory claimed.
/// Nothing of the model has run yet.
struct Prepared {
    settled: Settled,
    plot: bool,
    /// `lightning_logs/version_N`, when the logger or checkpointing is on.
    log_dir: Option<String>,
}

/// What a finished fit leaves for its result.
struct Executed<'a> {
    report: trainer::FitReport,
    num_parameters: usize,
    hyperparameters: Value,
    device: DeviceReport,
    resumed_from: Option<ResumedFrom>,
    checkpointer: Option<Checkpointer<'a>>,
    fit_seconds: f64,
}

/// Runs a checked `lightning.train` call at `placement`: prepared, executed, recorded.
pub(super) fn run(
    runtime: &Runtime,
    request: Request,
    placement: &Placement,
    ctx: &CallContext,
) -> Result<CallToolResult, String> {
    let started = Instant::now();
    let target = request.run.model.target.clone();
    of_model(runtime, &target, |model| {
        let mut prepared = prepare(runtime, model, request)?;
        let executed = execute(runtime, &mut prepared, placement, ctx).inspect_err(|_| {
            // A run that wrote nothing (no checkpoint yet) leaves no run directory behind.
            if let Some(dir) = &prepared.log_dir {
                let _ = runtime.checkpoint_dir().remove_if_empty(dir);
            }
        })?;
        record(runtime, prepared, executed, started)
    })
}

/// Loads the data, settles the hyperparameters (the request's, the checkpoint's, the data's
/// sizes) and claims the run directory.
fn prepare(
    runtime: &Runtime,
    model: Arc<RegisteredModel>,
    request: Request,
) -> Result<Prepared, String> {
    let splits = [Split::Train, Split::Validation];
    let settled = settle(runtime, model, request.run, true, (&splits, false))?;
    let options = &settled.options;
    // Lightning's run directory: lightning_logs/version_N, with the CSV logger's metrics.csv
    // and the checkpoints.
    let log_dir = if options.enable_checkpointing || options.logger {
        let root = format!("{}/lightning_logs", options.default_root_dir);
        let claimed = runtime
            .checkpoint_dir()
            .claim_dir(&root, "version_")
            .map_err(|e| format!("cannot create the run directory: {e}"))?;
        Some(claimed)
    } else {
        None
    };
    Ok(Prepared {
        settled,
        plot: request.plot,
        log_dir,
    })
}

/// Builds the model at `placement`, restores the checkpoint, and fits it, checkpointing as
/// it goes.
fn execute<'a>(
    runtime: &'a Runtime,
    prepared: &mut Prepared,
    placement: &Placement,
    ctx: &'a CallContext<'_>,
) -> Result<Executed<'a>, String> {
    // The run slot is held while `built` lives.
    let mut built = model_run::build(runtime, &mut prepared.settled, placement, ctx)?;
    let instance = &mut built.instance;
    let settled = &prepared.settled;
    let (start, resumed_from) = match built.restored.take() {
        Some(restored) => resume_point(restored, &settled.options, &settled.limits)
            .map_err(|e| format!("ckpt_path: {e}"))?,
        None => (FitStart::default(), None),
    };
    let (mut train, val) = fit_data(settled, instance)?;
    let config = fit_config(settled);
    let num_parameters = num_parameters(instance);
    let device = placement.report();
    let message = format!(
        "training {} ({num_parameters} parameters) on {} ({}), seed {}",
        settled.target(),
        device.name,
        device.backend,
        settled.options.seed
    );
    ctx.log(LogLevel::Info, NAME, json!(message));
    let checkpointer = checkpointer(runtime, prepared, &built.hyperparameters);
    let mut reporter = Reporter::new(ctx, checkpointer);
    let fit_started = Instant::now();
    let report = trainer::fit(
        instance,
        &config,
        &mut train,
        val.as_ref(),
        start,
        &mut reporter,
    )
    .map_err(|e| run_failed("training", e))?;
    reporter.record_point(None);
    Ok(Executed {
        report,
        num_parameters,
        hyperparameters: built.hyperparameters,
        device,
        resumed_from,
        checkpointer: reporter.checkpointer,
        fit_seconds: fit_started.elapsed().as_secs_f64(),
    })
}

/// The training and validation data, as the model gives them or as the call does; data from
/// the call must fit the model, which is checked on its first batch before training starts
/// rather than mid-epoch. With `overfit_batches` the training data is not shuffled.
fn fit_data(
    settled: &Settled,
    instance: &mut ModelInstance,
) -> Result<(Dataset, Option<Dataset>), String> {
    let data = &settled.data;
    let mut train = data
        .split(instance, Split::Train, false)?
        .ok_or("the model brings no training data of its own: give data.train or data.csv")?;
    let val = data.split(instance, Split::Validation, false)?;
    if data.gives_training_data() {
        let first = train
            .labelled_batch(0)
            .map_err(|e| format!("data.train: {e}"))?;
        instance.forward(first.inputs).map_err(|e| {
            format!(
                "data.train does not fit the model: {e} (compare its hyperparameters, \
                 lightning.inspect what=models, with the data; data.input_shape reshapes \
                 samples)"
            )
        })?;
    }
    // Lightning 2's overfit_batches trains on the same batches every epoch.
    if settled.options.overfit_batches.is_some() {
        train = train.unshuffled();
    }
    Ok((train, val))
}

/// The fit's configuration: the trainer's, within the run's step limit; Lightning 2's
/// `overfit_batches` runs that many training batches and as many validation batches.
fn fit_config(settled: &Settled) -> FitConfig {
    let fit = &settled.options.fit;
    let (limit_train_batches, limit_val_batches) = match settled.options.overfit_batches {
        Some(limit) => (limit, limit),
        None => (fit.limit_train_batches, fit.limit_val_batches),
    };
    FitConfig {
        limit_train_batches,
        limit_val_batches,
        max_total_steps: settled.limits.max_total_steps,
        ..fit.clone()
    }
}

/// The checkpointer of a run with checkpointing on: Lightning's default ModelCheckpoint
/// keeps the latest checkpoint.
fn checkpointer<'a>(
    runtime: &'a Runtime,
    prepared: &Prepared,
    hyperparameters: &Value,
) -> Option<Checkpointer<'a>> {
    let options = &prepared.settled.options;
    let dir = prepared
        .log_dir
        .as_ref()
        .filter(|_| options.enable_checkpointing)?;
    Some(Checkpointer::new(
        runtime,
        options.model_checkpoint.clone().unwrap_or_default(),
        dir,
        &prepared.settled.model,
        hyperparameters.clone(),
    ))
}

/// Writes `metrics.csv` and the final checkpoint, and makes the result: its figures, the
/// history (downsampled when long) and, when asked, the learning curve.
fn record(
    runtime: &Runtime,
    prepared: Prepared,
    executed: Executed<'_>,
    started: Instant,
) -> Result<CallToolResult, String> {
    let options = &prepared.settled.options;
    if let Some(dir) = prepared.log_dir.as_ref().filter(|_| options.logger) {
        write_metrics_csv(runtime, dir, &executed.report.history)
            .map_err(|e| format!("trained, but cannot write metrics.csv: {e}"))?;
    }
    let (checkpoint_path, best_model_score) = match &executed.checkpointer {
        Some(checkpointer) => {
            checkpointer.finish(&executed.report.metrics)?;
            checkpointer
                .best()
                .map_or((None, None), |(score, path)| (Some(path), score))
        }
        None => (None, None),
    };
    let plot = prepared.plot;
    let mut output = output(prepared, executed, started)?;
    output.checkpoint_path = checkpoint_path;
    output.best_model_score = best_model_score;
    // A curve that cannot be drawn does not undo the training: the result says why instead.
    let start_step = output.resumed_from.as_ref().map_or(0, |r| r.global_step);
    let image = match plot.then(|| plot::learning_curve(&output.history, start_step)) {
        Some(Ok(png)) => Some(png),
        Some(Err(e)) => {
            output.plot_error = Some(format!("the learning curve could not be drawn: {e}"));
            None
        }
        None => None,
    };
    if let Some(kept) = results::downsample(&output.history) {
        output.history_records = Some(output.history.len());
        output.history = kept;
    }
    let structured =
        serde_json::to_value(output).map_err(|e| format!("cannot write the result: {e}"))?;
    let result = CallToolResult::success(structured);
    Ok(match image {
        Some(data) => result.with_image(Image {
            data,
            mime_type: "image/png",
        }),
        None => result,
    })
}

/// Writes the fit's `history` as Lightning's CSV logger does, to `dir/metrics.csv`.
fn write_metrics_csv(runtime: &Runtime, dir: &str, history: &[EpochRecord]) -> Result<(), String> {
    let table = trainer::history_csv(history)?;
    runtime
        .checkpoint_dir()
        .write(&format!("{dir}/metrics.csv"), table.as_bytes())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The result's figures, before the checkpoints and the curve are added.
fn output(
    prepared: Prepared,
    executed: Executed<'_>,
    started: Instant,
) -> Result<TrainOutput, String> {
    let Prepared {
        settled:
            Settled {
                model,
                fitted,
                data,
                options,
                ..
            },
        log_dir,
        ..
    } = prepared;
    let Executed {
        report,
        num_parameters,
        hyperparameters,
        device,
        resumed_from,
        fit_seconds,
        ..
    } = executed;
    let Value::Object(hyperparameters) = hyperparameters else {
        return Err("the model's hyperparameters are not an object".into());
    };
    let max_steps = options.fit.max_steps;
    Ok(TrainOutput {
        status: "completed",
        model: TrainedModel {
            model: RunModel::new(&model, num_parameters),
            hyperparameters,
            from_data: fitted.from_data,
        },
        trainer: TrainerReport {
            max_epochs: options.fit.max_epochs,
            max_steps: max_steps.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
            accelerator: device.accelerator,
            devices: 1,
            device,
            seed: options.seed,
            current_epoch: report.epochs,
            global_step: report.global_step,
            stopped_early: report.stopped_early,
        },
        metrics: report.metrics,
        log_dir,
        checkpoint_path: None,
        best_model_score: None,
        data: data.report(),
        resumed_from,
        samples_per_second: report.samples as f64 / fit_seconds.max(1e-9),
        history: report.history,
        history_records: None,
        duration_seconds: started.elapsed().as_secs_f64(),
        plot_error: None,
    })
}

/// The checkpoint `restored` says where the fit resumes; a checkpoint that has nothing left
/// to train or lies beyond the run's step limit is refused.
fn resume_point(
    restored: Restored,
    options: &TrainerOptions,
    limits: &Limits,
) -> Result<(FitStart, Option<ResumedFrom>), String> {
    let Restored {
        shown,
        meta,
        optimizer_tensors,
    } = restored;
    let optimizer_state = meta.optimizer.is_some();
    let start = checkpoint::fit_start(meta, optimizer_tensors);
    if start.global_step > limits.max_total_steps {
        return Err(format!(
            "{shown} was written after {} optimizer steps, beyond this run's limit of {} \
             (total_steps)",
            start.global_step, limits.max_total_steps
        ));
    }
    if let Some(max_steps) = options.fit.max_steps.filter(|m| start.global_step >= *m) {
        return Err(format!(
            "{shown} was written after {} optimizer steps, so trainer.max_steps {max_steps} \
             is already reached: raise it to train further",
            start.global_step
        ));
    }
    let max_epochs = options.fit.max_epochs;
    if start.epoch >= max_epochs {
        return Err(format!(
            "{shown} was written in epoch {} (0-based), so {max_epochs} epoch(s) are already \
             trained: raise trainer.max_epochs to train further",
            start.epoch.saturating_sub(1)
        ));
    }
    let resumed = ResumedFrom {
        ckpt_path: shown,
        epoch: start.epoch,
        global_step: start.global_step,
        optimizer_state,
    };
    Ok((start, Some(resumed)))
}
