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
    // Lightning skips validation that would run no batch.
    let val = val.filter(|v| config.limit_val_batches.apply(v.num_batches()) > 0);
    let plan = FitPlan::new(config, train.num_batches(), val.is_some(), &start)?;
    let mut fit = FitLoop::start(model, config, plan, start, observer)?;
    if let Some(val) = val {
        fit.sanity_check(val)?;
    }
    while fit.has_epochs_left() {
        if fit.run_epoch(train, val)? == EpochEnd::Stop {
            fit.report.stopped_early = true;
            break;
        }
    }
    Ok(fit.report)
}

/// What a fit settles before its first batch: how many batches and optimizer steps it runs,
/// and when a validating epoch validates.
struct FitPlan {
    /// Training batches per epoch.
    train_batches: usize,
    /// Batches whose gradients make one optimizer step.
    accumulate: usize,
    /// Training batches between validations within a validating epoch.
    val_every: usize,
    /// Optimizer steps the whole fit plans, those before a resumed start included.
    total_steps: u64,
}

impl FitPlan {
    /// The plan for `config` on `available` training batches from `start`; a plan over the
    /// step limit is refused before anything runs.
    fn new(
        config: &FitConfig,
        available: usize,
        has_val: bool,
        start: &FitStart,
    ) -> Result<Self, TrainError> {
        let train_batches = config.limit_train_batches.apply(available);
        let accumulate = config.accumulate_grad_batches.max(1);
        let steps_per_epoch = train_batches.div_ceil(accumulate) as u64;
        let val_every = validation_period(config.val_check_interval, train_batches, has_val)?;
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
        Ok(Self {
            train_batches,
            accumulate,
            val_every,
            total_steps,
        })
    }

    /// Whether a validating epoch validates after its `done`-th batch: every `val_every`
    /// batches, and at the end of an epoch cut short (by `max_steps`) too.
    fn validates_after(&self, done: usize, ends_epoch: bool) -> bool {
        let cut_short = ends_epoch && done < self.train_batches;
        done.is_multiple_of(self.val_every) || cut_short
    }
}

/// How an epoch ended for the fit.
#[derive(Debug, PartialEq, Eq)]
enum EpochEnd {
    /// The fit goes on (if epochs and steps are left).
    Continue,
    /// Early stopping ends the fit.
    Stop,
}

/// What an epoch gathers while its batches run.
struct EpochRun {
    /// The training metrics the steps logged.
    logged: MetricAccumulator,
    /// Gradients summed over the accumulation window so far.
    pending: Option<Vec<Option<Tensor>>>,
    /// Batches in the current accumulation window.
    in_window: usize,
    /// The learning rate of the epoch's last optimizer step.
    lr_used: f64,
    /// The validation at the epoch's end, when it ran.
    end_validation: Option<Metrics>,
    /// Training batches run.
    batches_run: usize,
}

/// A fit under way: the model, its optimizer and schedule, the early-stopping watch and the
/// report so far.
struct FitLoop<'a> {
    model: &'a mut ModelInstance,
    config: &'a FitConfig,
    plan: FitPlan,
    observer: &'a mut dyn FitObserver,
    optimizer: Optimizer,
    schedule: LrSchedule,
    /// The metric the learning rate is logged as when a scheduler drives it.
    lr_metric: Option<String>,
    watch: Option<Watch>,
    report: FitReport,
    /// The watch asked to stop; it stays asked until `min_epochs` are done, as in Lightning.
    stop_requested: bool,
}

impl<'a> FitLoop<'a> {
    /// The model's optimizer and schedule, restored to where `start` left them.
    fn start(
        model: &'a mut ModelInstance,
        config: &'a FitConfig,
        plan: FitPlan,
        start: FitStart,
        observer: &'a mut dyn FitObserver,
    ) -> Result<Self, TrainError> {
        let optimization = model.configure_optimizers()?;
        let mut optimizer = Optimizer::new(&optimization.optimizer, model.parameters().len());
        if let Some((saved, state)) = start.optimizer {
            restore_optimizer(model, &mut optimizer, &saved, state)?;
        }
        let scheduled = optimization.scheduler.as_ref();
        let mut schedule = LrSchedule::new(f64::from(optimization.optimizer.lr()), scheduled)
            .map_err(SandboxError::Model)?;
        let intervals_done = match schedule.interval() {
            Some(Interval::Step) => start.global_step,
            _ => u64::from(start.epoch),
        };
        replay_schedule(&mut schedule, intervals_done, &*observer)?;
        optimizer.set_lr(schedule.lr());
        let watch = config
            .early_stopping
            .clone()
            .map(|rule| Watch::new(rule, start.early_stopping));
        Ok(Self {
            lr_metric: scheduled.map(|_| format!("lr-{}", optimization.optimizer.class_name())),
            model,
            config,
            plan,
            observer,
            optimizer,
            schedule,
            watch,
            report: FitReport {
                epochs: start.epoch,
                global_step: start.global_step,
                metrics: Metrics::new(),
                stopped_early: false,
                history: Vec::new(),
                samples: 0,
            },
            stop_requested: false,
        })
    }

    /// Lightning's sanity check: validation batches before training, their metrics
    /// discarded; at most the batches the run would validate on.
    fn sanity_check(&mut self, val: &Dataset) -> Result<(), TrainError> {
        let limited = self.config.limit_val_batches.apply(val.num_batches());
        let sanity = self
            .config
            .num_sanity_val_steps
            .map_or(limited, |n| n.min(limited));
        if sanity > 0 {
            let limit = BatchLimit::Count(sanity);
            evaluate(self.model, val, limit, Stage::Validation, &*self.observer)?;
        }
        Ok(())
    }

    /// Whether another epoch runs: epochs and steps are left, and there is a training batch
    /// (Lightning skips fitting without one).
    fn has_epochs_left(&self) -> bool {
        self.plan.train_batches > 0
            && self.report.epochs < self.config.max_epochs
            && self.steps_left()
    }

    /// Whether `max_steps` (if set) leaves another optimizer step.
    fn steps_left(&self) -> bool {
        let global_step = self.report.global_step;
        self.config.max_steps.is_none_or(|max| global_step < max)
    }

    /// One epoch: its batches (with any validation within), then its end.
    fn run_epoch(
        &mut self,
        train: &mut Dataset,
        val: Option<&Dataset>,
    ) -> Result<EpochEnd, TrainError> {
        train.start_epoch(self.report.epochs);
        let mut epoch = EpochRun {
            logged: MetricAccumulator::default(),
            pending: None,
            in_window: 0,
            lr_used: self.optimizer.lr(),
            end_validation: None,
            batches_run: 0,
        };
        let stopped_within = self.run_batches(train, val, &mut epoch)?;
        self.end_epoch(epoch, val.is_some())?;
        let stop = stopped_within || self.stop_requested && self.min_epochs_done();
        Ok(if stop {
            EpochEnd::Stop
        } else {
            EpochEnd::Continue
        })
    }

    /// The epoch's training batches, each followed by the optimizer step and the validation
    /// due after it; `Ok(true)` when early stopping cut the epoch short.
    fn run_batches(
        &mut self,
        train: &Dataset,
        val: Option<&Dataset>,
        epoch: &mut EpochRun,
    ) -> Result<bool, TrainError> {
        let every_n = self.config.check_val_every_n_epoch;
        let val = val.filter(|_| (self.report.epochs + 1).is_multiple_of(every_n));
        for index in 0..self.plan.train_batches {
            if self.observer.cancelled() {
                return Err(Cancelled.into());
            }
            self.train_batch(train, index, epoch)?;
            let done = index + 1;
            epoch.batches_run = done;
            if epoch.in_window == self.plan.accumulate || done == self.plan.train_batches {
                self.step(epoch, done)?;
            }
            // An epoch cut short by max_steps still validates at its end.
            let ends_epoch = done == self.plan.train_batches || !self.steps_left();
            if let Some(val) = val.filter(|_| self.plan.validates_after(done, ends_epoch)) {
                let metrics = self.validate(val)?;
                if ends_epoch {
                    epoch.end_validation = Some(metrics);
                } else if self.validated_within_epoch(metrics)? {
                    return Ok(true);
                }
            }
            if ends_epoch {
                break;
            }
        }
        Ok(false)
    }

    /// The guest's training step on batch `index`, its gradients added to the window's.
    fn train_batch(
        &mut self,
        train: &Dataset,
        index: usize,
        epoch: &mut EpochRun,
    ) -> Result<(), TrainError> {
        let batch = train.labelled_batch(index)?;
        let size = batch.size();
        let scale = 1.0 / self.plan.accumulate as f32;
        let grads = backward_step(self.model, batch.inputs, batch.targets, batch.index, scale)?;
        epoch.pending = Some(match epoch.pending.take() {
            None => grads,
            Some(sum) => add_grads(sum, grads)?,
        });
        epoch.in_window += 1;
        self.report.samples += size as u64;
        epoch.logged.add(self.model.take_logged(), size);
        forward_output(self.model, self.observer);
        Ok(())
    }

    /// The optimizer step on the window's gradients, then the schedule's step.
    fn step(&mut self, epoch: &mut EpochRun, done: usize) -> Result<(), TrainError> {
        epoch.lr_used = self.optimizer.lr();
        let grads = epoch.pending.take().unwrap_or_default();
        optimizer_step(
            self.model,
            &mut self.optimizer,
            grads,
            self.config.gradient_clip,
        )?;
        self.report.global_step += 1;
        epoch.in_window = 0;
        self.schedule.advance(Interval::Step)?;
        self.optimizer.set_lr(self.schedule.lr());
        self.observer.step_end(&self.progress(done));
        Ok(())
    }

    /// A validation pass of at most `limit_val_batches`.
    fn validate(&mut self, val: &Dataset) -> Result<Metrics, TrainError> {
        let limit = self.config.limit_val_batches;
        evaluate(self.model, val, limit, Stage::Validation, &*self.observer)
    }

    /// A validation within the epoch (`val_check_interval`) is recorded and checked;
    /// `Ok(true)` when it stops the fit now (Lightning stops mid-epoch once `min_epochs` are
    /// done).
    fn validated_within_epoch(&mut self, metrics: Metrics) -> Result<bool, TrainError> {
        self.report.metrics.extend(metrics.clone());
        let record = self.record(metrics);
        self.check(&record)?;
        self.report.history.push(record);
        Ok(self.stop_requested && self.min_epochs_done())
    }

    /// The epoch's end: its metrics (with the learning rate and the validation at its end),
    /// the schedule's epoch, the check when it validated (or never validates), the history.
    fn end_epoch(&mut self, epoch: EpochRun, has_val: bool) -> Result<(), TrainError> {
        let mut logged = epoch.logged.finish();
        if let Some(name) = &self.lr_metric {
            logged.insert(name.clone(), epoch.lr_used);
        }
        let validated_at_end = epoch.end_validation.is_some();
        logged.extend(epoch.end_validation.unwrap_or_default());
        self.report.metrics.extend(logged.clone());
        let record = self.record(logged);
        self.observer
            .epoch_end(&self.progress(epoch.batches_run), &self.report.metrics);
        self.schedule.advance(Interval::Epoch)?;
        self.optimizer.set_lr(self.schedule.lr());
        if validated_at_end || !has_val {
            self.check(&record)?;
        }
        self.report.history.push(record);
        self.report.epochs += 1;
        Ok(())
    }

    /// `metrics` as a history record at this point of the fit.
    fn record(&self, metrics: Metrics) -> EpochRecord {
        EpochRecord {
            epoch: self.report.epochs,
            global_step: self.report.global_step,
            metrics,
        }
    }

    /// A validation (or epoch) ended with `record`: the early-stopping check on the fit's
    /// latest metrics, then the checkpoint moment with the watch's updated state.
    fn check(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        if let Some(watch) = self.watch.as_mut() {
            self.stop_requested |= watch.should_stop(&self.report.metrics)?;
        }
        let state = TrainingState {
            optimizer: &self.optimizer,
            early_stopping: self.watch.as_ref().map(Watch::state),
        };
        self.observer
            .checkpoint(self.model, &state, record)
            .map_err(TrainError::Checkpoint)
    }

    /// Whether early stopping may end the fit: `min_epochs` are done.
    fn min_epochs_done(&self) -> bool {
        self.report.epochs >= self.config.min_epochs
    }

    /// Where the fit stands after the epoch's `batch`-th batch.
    fn progress(&self, batch: usize) -> FitProgress {
        FitProgress {
            epoch: self.report.epochs,
            max_epochs: self.config.max_epochs,
            global_step: self.report.global_step,
            total_steps: self.plan.total_steps,
            batch,
            batches: self.plan.train_batches,
        }
    }
}

/// Replays a resumed schedule to where it was (Burn's schedulers advance one interval at a
/// time): bounded by the run's step and epoch limits, and cancellable.
fn replay_schedule(
    schedule: &mut LrSchedule,
    intervals_done: u64,
    observer: &dyn FitObserver,
) -> Result<(), TrainError> {
    let Some(interval) = schedule.interval() else {
        return Ok(());
    };
    for done in 0..intervals_done {
        if done % 4096 == 0 && observer.cancelled() {
            return Err(Cancelled.into());
        }
        schedule.advance(interval)?;
    }
    Ok(())
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
