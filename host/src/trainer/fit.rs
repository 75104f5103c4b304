//! The fit loop: batches through the guest's `training-step`, optimizer steps at the rate the
//! learning-rate schedule sets, validation at the end of (or within) epochs, and at every
//! validation the early-stopping check and the checkpoint moment. A fit may start where a
//! checkpoint left off.

use super::early_stopping::{EarlyStoppingState, Watch};
use super::{
    BatchLimit, EpochRecord, FitConfig, FitObserver, FitProgress, FitReport, MetricAccumulator,
    Metrics, Stage, TrainError, ValCheckInterval, add_grads, backward_step, evaluate,
    forward_output, optimizer_step,
};
use crate::cancel::Cancelled;
use crate::data::Dataset;
use crate::sandbox::{LimitExceeded, ModelInstance, SandboxError};
use crate::tensor::{Interval, LrSchedule, Optimizer, OptimizerConfig, OptimizerState, Tensor};

/// Where a fit starts: at the beginning, or where a checkpoint left off (Lightning's
/// `ckpt_path`).
#[derive(Debug, Default)]
pub struct FitStart {
    /// The first epoch to run (epochs before it are done).
    pub epoch: u32,
    /// Optimizer steps already taken.
    pub global_step: u64,
    /// The optimizer the checkpoint's state belongs to, and that state.
    pub optimizer: Option<(OptimizerConfig, OptimizerState)>,
    /// The early-stopping watch's state.
    pub early_stopping: Option<EarlyStoppingState>,
}

/// What a checkpoint holds besides the weights so that a fit can resume from it.
#[derive(Debug)]
pub struct TrainingState<'a> {
    /// The optimizer, with its per-parameter state.
    pub optimizer: &'a Optimizer,
    /// The early-stopping watch's state.
    pub early_stopping: Option<EarlyStoppingState>,
}

/// Trains `model` on `train` (reshuffled each epoch if it shuffles) from `start`, validating
/// on `val` as `config` says, telling `observer` how it goes.
pub fn fit(
    model: &mut ModelInstance,
    config: &FitConfig,
    train: &mut Dataset,
    val: Option<&Dataset>,
    start: FitStart,
    observer: &mut dyn FitObserver,
) -> Result<FitReport, TrainError> {
    // Whatever the model logged while it was built or loaded its data is not a step's metric;
    // what it printed then is reported now.
    model.take_logged();
    forward_output(model, observer);
    let optimization = model.configure_optimizers()?;
    let mut optimizer = Optimizer::new(&optimization.optimizer, model.parameters().len());
    if let Some((saved, state)) = start.optimizer {
        restore_optimizer(model, &mut optimizer, &saved, state)?;
    }
    let scheduled = optimization.scheduler.as_ref();
    let intervals_done = match scheduled.map(|s| s.interval) {
        Some(Interval::Step) => start.global_step,
        _ => u64::from(start.epoch),
    };
    let mut schedule = LrSchedule::new(f64::from(optimization.optimizer.lr()), scheduled)
        .map_err(SandboxError::Model)?;
    // A resumed schedule is replayed to where it was (Burn's schedulers advance one interval
    // at a time): bounded by the run's step and epoch limits, and cancellable.
    if let Some(interval) = schedule.interval() {
        for done in 0..intervals_done {
            if done % 4096 == 0 && observer.cancelled() {
                return Err(Cancelled.into());
            }
            schedule.advance(interval)?;
        }
    }
    optimizer.set_lr(schedule.lr());
    let lr_metric = scheduled.map(|_| format!("lr-{}", optimization.optimizer.class_name()));

    // Lightning skips validation that would run no batch.
    let val = val.filter(|v| config.limit_val_batches.apply(v.num_batches()) > 0);
    let train_batches = config.limit_train_batches.apply(train.num_batches());
    let accumulate = config.accumulate_grad_batches.max(1);
    let steps_per_epoch = train_batches.div_ceil(accumulate) as u64;
    let val_every = validation_period(config.val_check_interval, train_batches, val.is_some())?;
    let mut report = FitReport {
        epochs: start.epoch,
        global_step: start.global_step,
        metrics: Metrics::new(),
        stopped_early: false,
        history: Vec::new(),
        samples: 0,
    };
    let epochs_left = config.max_epochs.saturating_sub(start.epoch);
    let planned = start
        .global_step
        .saturating_add(u64::from(epochs_left).saturating_mul(steps_per_epoch));
    let total_steps = config.max_steps.map_or(planned, |max| max.min(planned));
    let run_steps = total_steps.saturating_sub(start.global_step);
    if run_steps > config.max_total_steps {
        return Err(LimitExceeded::TotalSteps {
            planned: run_steps,
            limit: config.max_total_steps,
        }
        .into());
    }
    if let Some(val) = val {
        // Lightning: at most the validation batches the run would validate on.
        let limited = config.limit_val_batches.apply(val.num_batches());
        let sanity = config
            .num_sanity_val_steps
            .map_or(limited, |n| n.min(limited));
        if sanity > 0 {
            evaluate(
                model,
                val,
                BatchLimit::Count(sanity),
                Stage::Validation,
                &*observer,
            )?;
        }
    }
    let mut watch = config
        .early_stopping
        .clone()
        .map(|rule| Watch::new(rule, start.early_stopping));
    let progress = |report: &FitReport, batch: usize| FitProgress {
        epoch: report.epochs,
        max_epochs: config.max_epochs,
        global_step: report.global_step,
        total_steps,
        batch,
        batches: train_batches,
    };
    let steps_left =
        |report: &FitReport| config.max_steps.is_none_or(|max| report.global_step < max);
    let mut stop_requested = false;
    // Lightning skips fitting when there is no training batch to run.
    while train_batches > 0 && report.epochs < config.max_epochs && steps_left(&report) {
        train.start_epoch(report.epochs);
        let validates =
            val.is_some() && (report.epochs + 1).is_multiple_of(config.check_val_every_n_epoch);
        let mut epoch = MetricAccumulator::default();
        let mut pending: Option<Vec<Option<Tensor>>> = None;
        let mut in_window = 0;
        let mut lr_used = optimizer.lr();
        let mut end_validation: Option<Metrics> = None;
        let mut stopping = false;
        let mut batches_run = 0;
        for index in 0..train_batches {
            if observer.cancelled() {
                return Err(Cancelled.into());
            }
            let batch = train.labelled_batch(index)?;
            let size = batch.size();
            let scale = 1.0 / accumulate as f32;
            let grads = backward_step(model, batch.inputs, batch.targets, batch.index, scale)?;
            pending = Some(match pending.take() {
                None => grads,
                Some(sum) => add_grads(sum, grads)?,
            });
            in_window += 1;
            report.samples += size as u64;
            epoch.add(model.take_logged(), size);
            forward_output(model, observer);
            let done = index + 1;
            batches_run = done;
            if in_window == accumulate || done == train_batches {
                lr_used = optimizer.lr();
                let grads = pending.take().unwrap_or_default();
                optimizer_step(model, &mut optimizer, grads, config.gradient_clip)?;
                report.global_step += 1;
                in_window = 0;
                schedule.advance(Interval::Step)?;
                optimizer.set_lr(schedule.lr());
                observer.step_end(&progress(&report, done));
            }
            // An epoch cut short by max_steps still validates at its end.
            let ends_epoch = done == train_batches || !steps_left(&report);
            let val_check =
                validates && (done.is_multiple_of(val_every) || ends_epoch && done < train_batches);
            if let Some(val) = val.filter(|_| val_check) {
                let metrics = evaluate(
                    model,
                    val,
                    config.limit_val_batches,
                    Stage::Validation,
                    &*observer,
                )?;
                if ends_epoch {
                    end_validation = Some(metrics);
                } else {
                    report.metrics.extend(metrics.clone());
                    let record = EpochRecord {
                        epoch: report.epochs,
                        global_step: report.global_step,
                        metrics,
                    };
                    stop_requested |=
                        check(model, &optimizer, &mut watch, &record, &report, observer)?;
                    report.history.push(record);
                    // Lightning stops mid-epoch once min_epochs are done.
                    if stop_requested && report.epochs >= config.min_epochs {
                        stopping = true;
                    }
                }
            }
            if stopping || ends_epoch {
                break;
            }
        }
        let mut logged = epoch.finish();
        if let Some(name) = &lr_metric {
            logged.insert(name.clone(), lr_used);
        }
        let validated_at_end = end_validation.is_some();
        logged.extend(end_validation.unwrap_or_default());
        report.metrics.extend(logged.clone());
        let record = EpochRecord {
            epoch: report.epochs,
            global_step: report.global_step,
            metrics: logged,
        };
        observer.epoch_end(&progress(&report, batches_run), &report.metrics);
        schedule.advance(Interval::Epoch)?;
        optimizer.set_lr(schedule.lr());
        if validated_at_end || val.is_none() {
            stop_requested |= check(model, &optimizer, &mut watch, &record, &report, observer)?;
        }
        report.history.push(record);
        report.epochs += 1;
        // A stop held back by min_epochs stays requested, as in Lightning.
        if stopping || stop_requested && report.epochs >= config.min_epochs {
            report.stopped_early = true;
            break;
        }
    }
    Ok(report)
}

/// The training batches between validations of a validating epoch; `val_check_interval` as
/// a batch count may not exceed the epoch (Lightning refuses it too).
fn validation_period(
    interval: ValCheckInterval,
    train_batches: usize,
    has_val: bool,
) -> Result<usize, TrainError> {
    match interval {
        ValCheckInterval::Fraction(f) => Ok(((train_batches as f64 * f).floor() as usize).max(1)),
        ValCheckInterval::Batches(n) if has_val && n > train_batches => {
            Err(TrainError::Setup(format!(
                "val_check_interval ({n}) must be at most the number of training batches per epoch \
             ({train_batches}); give a fraction (0.0-1.0] to validate within every epoch"
            )))
        }
        ValCheckInterval::Batches(n) => Ok(n.max(1)),
    }
}

/// A validation (or epoch) ended with `record`: the early-stopping check on the fit's latest
/// metrics, then the checkpoint moment with the watch's updated state; `Ok(true)` when the
/// watch asks to stop.
fn check(
    model: &ModelInstance,
    optimizer: &Optimizer,
    watch: &mut Option<Watch>,
    record: &EpochRecord,
    report: &FitReport,
    observer: &mut dyn FitObserver,
) -> Result<bool, TrainError> {
    let stop = match watch.as_mut() {
        Some(watch) => watch.should_stop(&report.metrics)?,
        None => false,
    };
    let state = TrainingState {
        optimizer,
        early_stopping: watch.as_ref().map(Watch::state),
    };
    observer
        .checkpoint(model, &state, record)
        .map_err(TrainError::Checkpoint)?;
    Ok(stop)
}

/// Gives `optimizer` the state a checkpoint saved for `saved`, which must be the optimizer the
/// model configures now.
fn restore_optimizer(
    model: &ModelInstance,
    optimizer: &mut Optimizer,
    saved: &OptimizerConfig,
    state: OptimizerState,
) -> Result<(), TrainError> {
    let now = optimizer.config().class_name();
    if saved.class_name() != now {
        return Err(TrainError::Setup(format!(
            "the checkpoint holds the state of {}, but the model now configures {now}",
            saved.class_name()
        )));
    }
    let names: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    let shapes: Vec<Vec<usize>> = model.parameters().iter().map(|p| p.value.shape()).collect();
    optimizer
        .import_state(&names, &shapes, state, model.device())
        .map_err(|e| TrainError::Setup(format!("the checkpoint's optimizer state: {e}")))
}
