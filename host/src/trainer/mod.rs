//! The fit loop: batches through the guest's `training-step`, backward and optimizer steps on
//! the host-owned parameters, per-epoch metrics, validation after each epoch.

mod metrics;

pub use metrics::{MetricAccumulator, Metrics};

use crate::cancel::Cancelled;
use crate::data::{DataError, Dataset};
use crate::sandbox::{GuestLine, LimitExceeded, ModelInstance, SandboxError};
use crate::tensor::{self, Optimizer, Tensor, TensorError};

/// How many batches of a pass to run: a count, or a fraction of the batches (Lightning's
/// `limit_*_batches`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchLimit {
    /// At most this many batches.
    Count(usize),
    /// This fraction of the batches (0.0 to 1.0), at least one when the fraction is above 0.
    Fraction(f64),
}

impl Default for BatchLimit {
    fn default() -> Self {
        Self::Fraction(1.0)
    }
}

impl BatchLimit {
    /// The number of batches to run out of `available`.
    pub fn apply(self, available: usize) -> usize {
        match self {
            Self::Count(n) => n.min(available),
            Self::Fraction(f) if f <= 0.0 => 0,
            Self::Fraction(f) => ((available as f64 * f).floor() as usize)
                .max(1)
                .min(available),
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Passes over the training data.
    pub max_epochs: u32,
    /// Stop after this many optimizer steps, if set.
    pub max_steps: Option<u64>,
    /// Training batches per epoch.
    pub limit_train_batches: BatchLimit,
    /// Validation batches per validation pass.
    pub limit_val_batches: BatchLimit,
    /// Most optimizer steps the fit may plan; more is refused before it starts.
    pub max_total_steps: u64,
}

/// How a fit ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Epochs run (the last may have been cut short by `max_steps`).
    pub epochs: u32,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// The last epoch's training metrics and the last validation's metrics.
    pub metrics: Metrics,
}

/// Where a fit stands, as an observer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FitProgress {
    /// The epoch running (0-based).
    pub epoch: u32,
    /// Epochs planned.
    pub max_epochs: u32,
    /// Optimizer steps taken so far.
    pub global_step: u64,
    /// Optimizer steps planned: epochs × batches per epoch, capped by `max_steps`.
    pub total_steps: u64,
    /// Training batches done in this epoch.
    pub batch: usize,
    /// Training batches per epoch.
    pub batches: usize,
}

/// Watches a fit: told after every step and epoch, asked before every batch whether to stop.
pub trait FitObserver {
    /// Whether the fit must stop now (it then fails with [`TrainError::Cancelled`]).
    fn cancelled(&self) -> bool {
        false
    }
    /// A training step finished.
    fn step_end(&mut self, _progress: &FitProgress) {}
    /// An epoch finished, validation included; `metrics` are the fit's latest metrics.
    fn epoch_end(&mut self, _progress: &FitProgress, _metrics: &Metrics) {}
    /// The model printed these lines (told after each step and validation pass).
    fn model_output(&mut self, _lines: Vec<GuestLine>) {}
}

/// Tells `observer` what `model` printed since the last call, if anything.
fn forward_output(model: &mut ModelInstance, observer: &mut dyn FitObserver) {
    let lines = model.take_output();
    if !lines.is_empty() {
        observer.model_output(lines);
    }
}

/// An observer that watches nothing and never stops a fit.
impl FitObserver for () {}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model failed or broke a sandbox limit.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A host op failed (backward, optimizer step).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The data could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The fit would break a limit of the run.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// A training step returned something that is not a finite scalar loss.
    #[error("{0}")]
    Loss(String),
    /// The observer asked the fit to stop.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// Trains `model` on `train` (reshuffled each epoch if it shuffles), validating on `val` after
/// each epoch, telling `observer` how it goes.
pub fn fit(
    model: &mut ModelInstance,
    config: &FitConfig,
    train: &mut Dataset,
    val: Option<&Dataset>,
    observer: &mut dyn FitObserver,
) -> Result<FitReport, TrainError> {
    // Whatever the model logged while it was built or loaded its data is not a step's metric;
    // what it printed then is reported now.
    model.take_logged();
    forward_output(model, observer);
    let optimizer_config = model.configure_optimizers()?;
    let mut optimizer = Optimizer::new(&optimizer_config, model.parameters().len());
    let train_batches = config.limit_train_batches.apply(train.num_batches());
    let mut report = FitReport {
        epochs: 0,
        global_step: 0,
        metrics: Metrics::new(),
    };
    let planned = u64::from(config.max_epochs).saturating_mul(train_batches as u64);
    let total_steps = config.max_steps.map_or(planned, |max| max.min(planned));
    if total_steps > config.max_total_steps {
        return Err(LimitExceeded::TotalSteps {
            planned: total_steps,
            limit: config.max_total_steps,
        }
        .into());
    }
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
    while report.epochs < config.max_epochs && steps_left(&report) {
        train.start_epoch(report.epochs);
        let mut epoch = MetricAccumulator::default();
        for index in 0..train_batches {
            if !steps_left(&report) {
                break;
            }
            if observer.cancelled() {
                return Err(Cancelled.into());
            }
            let batch = train.labelled_batch(index)?;
            let size = batch.size();
            training_step(
                model,
                &mut optimizer,
                batch.inputs,
                batch.targets,
                batch.index,
            )?;
            epoch.add(model.take_logged(), size);
            report.global_step += 1;
            forward_output(model, observer);
            observer.step_end(&progress(&report, index + 1));
        }
        report.metrics.extend(epoch.finish());
        if let Some(val) = val {
            report.metrics.extend(evaluate(
                model,
                val,
                config.limit_val_batches,
                Stage::Validation,
                &*observer,
            )?);
        }
        observer.epoch_end(&progress(&report, train_batches), &report.metrics);
        report.epochs += 1;
    }
    Ok(report)
}

/// One training step: the guest's `training-step` on a batch, backward from the loss it
/// returns — which must be a finite scalar — and an optimizer step on every parameter the
/// loss reaches.
pub fn training_step(
    model: &mut ModelInstance,
    optimizer: &mut Optimizer,
    inputs: Tensor,
    targets: Tensor,
    batch_index: u32,
) -> Result<(), TrainError> {
    let backward = model
        .training_step(inputs, targets, batch_index)
        .map_err(TrainError::from)
        .and_then(|loss| {
            check_loss(&loss, batch_index)?;
            Ok(tensor::backward(&loss)?)
        });
    model.end_step(backward.is_ok());
    let mut grads = backward?;
    model.update_parameters(
        |index, param| match tensor::take_grad(&param, &mut grads)? {
            Some(grad) => Ok(optimizer.step(index, param, grad)?),
            None => Ok(param),
        },
    )
}

/// Refuses a loss that is not one finite number: nothing sensible can be learnt from it.
fn check_loss(loss: &Tensor, batch_index: u32) -> Result<(), TrainError> {
    if loss.num_elements() != 1 {
        return Err(TrainError::Loss(format!(
            "training_step must return a scalar loss, got a tensor of shape {:?} (batch {batch_index})",
            loss.shape()
        )));
    }
    let value = tensor::to_scalar("loss", loss)?;
    if !value.is_finite() {
        return Err(TrainError::Loss(format!(
            "training_step returned a loss of {value} (batch {batch_index}): training diverged \
             or the model computes an invalid loss; try a lower learning rate"
        )));
    }
    Ok(())
}

/// Which evaluation loop to run: Lightning's `validate` or `test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The guest's `validation-step` on validation data.
    Validation,
    /// The guest's `test-step` on test data.
    Test,
}

/// An evaluation pass: the guest's step hook for `stage` on each batch, the metrics it logs
/// averaged (weighted by batch size); stops when `observer` says so.
pub fn evaluate(
    model: &mut ModelInstance,
    data: &Dataset,
    limit: BatchLimit,
    stage: Stage,
    observer: &dyn FitObserver,
) -> Result<Metrics, TrainError> {
    let mut pass = MetricAccumulator::default();
    for index in 0..limit.apply(data.num_batches()) {
        if observer.cancelled() {
            return Err(Cancelled.into());
        }
        let batch = data.labelled_batch(index)?;
        let size = batch.size();
        match stage {
            Stage::Validation => model.validation_step(batch.inputs, batch.targets, batch.index)?,
            Stage::Test => model.test_step(batch.inputs, batch.targets, batch.index)?,
        }
        pass.add(model.take_logged(), size);
    }
    Ok(pass.finish())
}

/// A prediction pass: the guest's `predict-step` on each batch's inputs; returns the outputs,
/// one tensor per batch. Stops when `observer` says so.
pub fn predict(
    model: &mut ModelInstance,
    data: &Dataset,
    limit: BatchLimit,
    observer: &dyn FitObserver,
) -> Result<Vec<Tensor>, TrainError> {
    let mut outputs = Vec::new();
    for index in 0..limit.apply(data.num_batches()) {
        if observer.cancelled() {
            return Err(Cancelled.into());
        }
        let (batch_index, inputs) = data.inputs_batch(index)?;
        outputs.push(model.predict_step(inputs, batch_index)?);
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::BatchLimit;

    #[test]
    fn batch_limits_follow_lightning() {
        assert_eq!(BatchLimit::Count(3).apply(8), 3);
        assert_eq!(BatchLimit::Count(30).apply(8), 8);
        assert_eq!(BatchLimit::Fraction(1.0).apply(8), 8);
        assert_eq!(BatchLimit::Fraction(0.25).apply(8), 2);
        assert_eq!(BatchLimit::Fraction(0.01).apply(8), 1);
        assert_eq!(BatchLimit::Fraction(0.0).apply(8), 0);
        assert_eq!(BatchLimit::Fraction(0.5).apply(0), 0);
    }
}
