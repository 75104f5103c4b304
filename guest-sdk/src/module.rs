//! The [`LightningModule`] trait a model implements, and what its hooks return.

use crate::{Optimization, Optimizer, Result, Tensor, log};
use serde::{Serialize, de::DeserializeOwned};

/// A data split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data.
    Validation,
    /// Test data.
    Test,
    /// Inputs to predict.
    Predict,
}

/// Data a model brings itself (like Lightning's `*_dataloader` hooks).
#[derive(Debug)]
pub struct Dataset {
    /// `[samples, ...]`.
    pub inputs: Tensor,
    /// Labels or regression targets with `samples` as the first dim; `None` for predict.
    pub targets: Option<Tensor>,
    /// Batch size of the model's own loader.
    pub batch_size: u32,
}

/// A model, in the shape of PyTorch Lightning's `LightningModule`.
///
/// Only [`new`](Self::new) and [`forward`](Self::forward) are required. The step defaults
/// treat the model as a classifier: cross-entropy on `forward`'s logits, logging
/// `train_loss`, `val_loss`/`val_acc` and `test_loss`/`test_acc`; override them for anything
/// else.
pub trait LightningModule: Sized + 'static {
    /// Hyperparameters, parsed from the request's `model` object (without `_target_`).
    /// Use `#[serde(default, deny_unknown_fields)]` so defaults fill gaps and typos are errors.
    type Hyperparameters: Serialize + DeserializeOwned + Default;

    /// The `_target_` clients use, e.g. `my_project.models.Net`.
    const TARGET: &'static str;
    /// One paragraph for `lightning.inspect` `what: models`.
    const SUMMARY: &'static str;

    /// The class name reported as `model.class`: by default the last segment of
    /// [`TARGET`](Self::TARGET).
    fn class_name() -> &'static str {
        Self::TARGET.rsplit('.').next().unwrap_or(Self::TARGET)
    }

    /// Checks the hyperparameters and declares the parameters (with [`crate::param`] or the
    /// layers in [`crate::nn`]). An error should name the offending field.
    fn new(hparams: &Self::Hyperparameters) -> Result<Self>;

    /// The forward pass.
    fn forward(&mut self, inputs: &Tensor) -> Result<Tensor>;

    /// One training step; returns the loss to minimise.
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<Tensor> {
        let _ = batch_index;
        let loss = self.forward(&inputs)?.cross_entropy(&targets)?;
        log::log_tensor("train_loss", &loss)?;
        Ok(loss)
    }

    /// One validation step; logs `val_loss` and `val_acc` by default.
    fn validation_step(&mut self, inputs: Tensor, targets: Tensor, batch_index: u32) -> Result<()> {
        let _ = batch_index;
        log::classification("val", &self.forward(&inputs)?, &targets).map(drop)
    }

    /// One test step; logs `test_loss` and `test_acc` by default.
    fn test_step(&mut self, inputs: Tensor, targets: Tensor, batch_index: u32) -> Result<()> {
        let _ = batch_index;
        log::classification("test", &self.forward(&inputs)?, &targets).map(drop)
    }

    /// One prediction step; `forward` by default.
    fn predict_step(&mut self, inputs: Tensor, batch_index: u32) -> Result<Tensor> {
        let _ = batch_index;
        self.forward(&inputs)
    }

    /// The optimizer and its learning-rate scheduler, like Lightning's
    /// `configure_optimizers`: Adam with lr 1e-3 and no scheduler by default. Return an
    /// [`Optimizer`] `.into()` for no scheduler, or `optimizer.with_scheduler(...)`.
    fn configure_optimizers(&self) -> Optimization {
        Optimizer::adam(1e-3).into()
    }

    /// The model's own data for `split`, if it brings any; `seed` is the run's seed.
    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        let _ = (split, seed);
        Ok(None)
    }
}
