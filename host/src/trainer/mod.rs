//! The fit loop: batches through the guest's `training-step`, backward and optimizer steps on
//! the host-owned parameters, per-epoch metrics, validation after each epoch.

mod early_stopping;
mod fit;
mod metrics;

pub use early_stopping::{EarlyStopping, EarlyStoppingState};
pub use fit::{FitStart, TrainingState, fit};
pub use metrics::{MetricAccumulator, Metrics};

use crate::cancel::Cancelled;
use crate::data::{DataError, Dataset};
use crate::sandbox::{GuestLine, LimitExceeded, ModelInstance, SandboxError};
use crate::tensor::{self, Optimizer, Tensor, TensorError};
use std::time::Instant;

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
    /// Epochs early stopping may not cut (Lightning's `min_epochs`).
    pub min_epochs: u32,
    /// Validate after every `n`-th epoch.
    pub check_val_every_n_epoch: u32,
    /// How often to validate within an epoch that validates.
    pub val_check_interval: ValCheckInterval,
    /// Validation batches run before training starts, their metrics discarded (`None`: all).
    pub num_sanity_val_steps: Option<usize>,
    /// Batches whose gradients are summed into one optimizer step.
    pub accumulate_grad_batches: usize,
    /// Clipping of the gradients before each optimizer step.
    pub gradient_clip: Option<GradientClip>,
    /// Stop when a monitored metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
}

/// How often a validating epoch validates (Lightning's `val_check_interval`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValCheckInterval {
    /// After every this fraction of the epoch's training batches (1.0: at its end).
    Fraction(f64),
    /// After every this many training batches.
    Batches(usize),
}

impl Default for ValCheckInterval {
    fn default() -> Self {
        Self::Fraction(1.0)
    }
}

/// How gradients are clipped before an optimizer step (Lightning's `gradient_clip_val` with
/// `gradient_clip_algorithm`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradientClip {
    /// Scale all gradients down together so that their joint L2 norm is at most this.
    Norm(f32),
    /// Clamp every gradient element into `[-v, v]`.
    Value(f32),
}

/// Which way a monitored metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How a fit ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Epochs done, those before a resumed fit's start included (the last may have been cut
    /// short by `max_steps` or early stopping).
    pub epochs: u32,
    /// Optimizer steps taken.
    pub global_step: u64,
    /// The last epoch's training metrics and the last validation's metrics.
    pub metrics: Metrics,
    /// Whether early stopping ended the fit.
    pub stopped_early: bool,
    /// Every epoch's metrics, in order.
    pub history: Vec<EpochRecord>,
    /// Training samples stepped through.
    pub samples: u64,
}

/// `history` as Lightning's CSVLogger writes `metrics.csv`: a header `epoch,step,<every
/// metric, sorted>`, then a row per epoch, empty where the epoch did not log the metric.
pub fn history_csv(history: &[EpochRecord]) -> Result<String, String> {
    let names: std::collections::BTreeSet<&String> =
        history.iter().flat_map(|h| h.metrics.keys()).collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = ["epoch", "step"]
        .into_iter()
        .map(str::to_string)
        .chain(names.iter().map(|n| (*n).clone()));
    out.write_record(header).map_err(|e| e.to_string())?;
    for record in history {
        let row = [record.epoch.to_string(), record.global_step.to_string()]
            .into_iter()
            .chain(names.iter().map(|n| {
                record
                    .metrics
                    .get(*n)
                    .map(f64::to_string)
                    .unwrap_or_default()
            }));
        out.write_record(row).map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// What an epoch, or a validation within one, logged.
#[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct EpochRecord {
    /// The epoch (0-based).
    pub epoch: u32,
    /// Optimizer steps taken by then.
    pub global_step: u64,
    /// At an epoch's end: its training metrics (with the learning rate as `lr-<Optimizer>`
    /// when a scheduler drives it), and its validation's when it validated at its end; within
    /// an epoch (`val_check_interval`): that validation's metrics.
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
    /// A validation (or, without validation data, an epoch) ended with `record`: the moment
    /// to checkpoint `model` and the `state` a resumed fit needs. An error ends the fit.
    fn checkpoint(
        &mut self,
        _model: &ModelInstance,
        _state: &TrainingState<'_>,
        _record: &EpochRecord,
    ) -> Result<(), String> {
        Ok(())
    }
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
    /// Checkpointing during the fit failed.
    #[error("{0}")]
    Checkpoint(String),
    /// The trainer options or the checkpoint resumed from do not fit this run.
    #[error("{0}")]
    Setup(String),
    /// The observer asked the fit to stop.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
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
    let grads = backward_step(model, inputs, targets, batch_index, 1.0)?;
    optimizer_step(model, optimizer, grads, None)
}

/// How many times a training step's own time its backward pass may take, at most: a matrix
/// product's backward is two products of the same size, and a step's time includes the
/// guest's own code, which has no backward.
const BACKWARD_COST: u32 = 3;

/// The guest's `training-step` on a batch and backward from its loss times `scale` (`1/k`
/// when gradients of `k` batches are accumulated); returns each parameter's gradient (`None`
/// where the loss does not reach it).
pub fn backward_step(
    model: &mut ModelInstance,
    inputs: Tensor,
    targets: Tensor,
    batch_index: u32,
    scale: f32,
) -> Result<Vec<Option<Tensor>>, TrainError> {
    let started = Instant::now();
    let backward = model
        .training_step(inputs, targets, batch_index)
        .map_err(TrainError::from)
        .and_then(|loss| {
            check_loss(&loss, batch_index)?;
            // Backward runs to its end once started: it must fit before the deadline.
            model.ensure_time_for(started.elapsed().saturating_mul(BACKWARD_COST))?;
            let loss = if scale == 1.0 {
                loss
            } else {
                tensor::mul_scalar(&loss, scale)?
            };
            Ok(tensor::backward(&loss)?)
        });
    model.end_step(backward.is_ok());
    let mut grads = backward?;
    model
        .parameters()
        .iter()
        .map(|p| Ok(tensor::take_grad(&p.value, &mut grads)?))
        .collect()
}

/// Sums two steps' gradients, parameter by parameter.
fn add_grads(
    sum: Vec<Option<Tensor>>,
    more: Vec<Option<Tensor>>,
) -> Result<Vec<Option<Tensor>>, TrainError> {
    sum.into_iter()
        .zip(more)
        .map(|pair| match pair {
            (Some(a), Some(b)) => Ok(Some(tensor::add(&a, &b)?)),
            (a, b) => Ok(a.or(b)),
        })
        .collect()
}

/// Clips `grads` as `clip` says, then one optimizer step on every parameter with a gradient.
pub fn optimizer_step(
    model: &mut ModelInstance,
    optimizer: &mut Optimizer,
    grads: Vec<Option<Tensor>>,
    clip: Option<GradientClip>,
) -> Result<(), TrainError> {
    let mut grads = match clip {
        None => grads,
        Some(GradientClip::Value(v)) => grads
            .into_iter()
            .map(|g| g.map(|g| tensor::clamp(&g, -v, v)).transpose())
            .collect::<Result<_, _>>()?,
        Some(GradientClip::Norm(max)) => {
            let mut squares = 0.0f64;
            for g in grads.iter().flatten() {
                let sum = tensor::sum(&tensor::mul(g, g)?)?;
                squares += f64::from(tensor::to_scalar("grad-norm", &sum)?);
            }
            let norm = squares.sqrt();
            if norm > f64::from(max) {
                // PyTorch's clip_grad_norm_: scale by max / (norm + 1e-6).
                let factor = (f64::from(max) / (norm + 1e-6)) as f32;
                grads
                    .into_iter()
                    .map(|g| g.map(|g| tensor::mul_scalar(&g, factor)).transpose())
                    .collect::<Result<_, _>>()?
            } else {
                grads
            }
        }
    };
    model.update_parameters(
        |index, param| match grads.get_mut(index).and_then(Option::take) {
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
