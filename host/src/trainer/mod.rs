//! The fit loop: batches through the guest's `training-step`, backward and optimizer steps on
//! the host-owned parameters, per-epoch metrics, validation after each epoch.

mod metrics;

pub use metrics::{MetricAccumulator, Metrics};

use crate::data::{DataError, Dataset};
use crate::sandbox::{ModelInstance, SandboxError};
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
}

/// Trains `model` on `train`, validating on `val` after each epoch.
pub fn fit(
    model: &mut ModelInstance,
    config: &FitConfig,
    train: &Dataset,
    val: Option<&Dataset>,
) -> Result<FitReport, TrainError> {
    // Whatever the model logged while it was built or loaded its data is not a step's metric.
    model.take_logged();
    let optimizer_config = model.configure_optimizers()?;
    let mut optimizer = Optimizer::new(&optimizer_config, model.parameters().len());
    let train_batches = config.limit_train_batches.apply(train.num_batches());
    let mut report = FitReport {
        epochs: 0,
        global_step: 0,
        metrics: Metrics::new(),
    };
    let steps_left =
        |report: &FitReport| config.max_steps.is_none_or(|max| report.global_step < max);
    while report.epochs < config.max_epochs && steps_left(&report) {
        let mut epoch = MetricAccumulator::default();
        for index in 0..train_batches {
            if !steps_left(&report) {
                break;
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
        }
        report.metrics.extend(epoch.finish());
        if let Some(val) = val {
            report
                .metrics
                .extend(validate(model, val, config.limit_val_batches)?);
        }
        report.epochs += 1;
    }
    Ok(report)
}

/// One training step: the guest's `training-step` on a batch, backward from the loss it
/// returns, and an optimizer step on every parameter the loss reaches.
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
        .and_then(|loss| Ok(tensor::backward(&loss)?));
    model.end_step(backward.is_ok());
    let mut grads = backward?;
    model.update_parameters(
        |index, param| match tensor::take_grad(&param, &mut grads)? {
            Some(grad) => Ok(optimizer.step(index, param, grad)?),
            None => Ok(param),
        },
    )
}

/// A validation pass: the guest's `validation-step` on each batch, metrics averaged.
pub fn validate(
    model: &mut ModelInstance,
    data: &Dataset,
    limit: BatchLimit,
) -> Result<Metrics, TrainError> {
    let mut pass = MetricAccumulator::default();
    for index in 0..limit.apply(data.num_batches()) {
        let batch = data.labelled_batch(index)?;
        let size = batch.size();
        model.validation_step(batch.inputs, batch.targets, batch.index)?;
        pass.add(model.take_logged(), size);
    }
    Ok(pass.finish())
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
