//! The [`LightningModule`] trait a model implements, and what its hooks return.

use crate::{Result, Tensor, log};
use serde::{Serialize, de::DeserializeOwned};

/// The optimizer a model asks for, with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0 disables it).
        momentum: f32,
        /// Momentum dampening.
        dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW`.
    AdamW {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f32) -> Self {
        Self::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Adam with learning rate `lr` and PyTorch's defaults (betas 0.9/0.999, eps 1e-8).
    pub fn adam(lr: f32) -> Self {
        Self::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with learning rate `lr` and PyTorch's defaults (weight decay 0.01).
    pub fn adamw(lr: f32) -> Self {
        Self::AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

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
        let logits = self.forward(&inputs)?;
        log::log_tensor("val_loss", &logits.cross_entropy(&targets)?)?;
        log::log_tensor("val_acc", &logits.accuracy(&targets)?)
    }

    /// One test step; logs `test_loss` and `test_acc` by default.
    fn test_step(&mut self, inputs: Tensor, targets: Tensor, batch_index: u32) -> Result<()> {
        let _ = batch_index;
        let logits = self.forward(&inputs)?;
        log::log_tensor("test_loss", &logits.cross_entropy(&targets)?)?;
        log::log_tensor("test_acc", &logits.accuracy(&targets)?)
    }

    /// One prediction step; `forward` by default.
    fn predict_step(&mut self, inputs: Tensor, batch_index: u32) -> Result<Tensor> {
        let _ = batch_index;
        self.forward(&inputs)
    }

    /// The optimizer; Adam with lr 1e-3 by default.
    fn configure_optimizers(&self) -> Optimizer {
        Optimizer::adam(1e-3)
    }

    /// The model's own data for `split`, if it brings any; `seed` is the run's seed.
    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        let _ = (split, seed);
        Ok(None)
    }
}
