//! A template lightning-mcp model: a two-layer classifier with layer norm. Copy this crate,
//! rename `TARGET`, and change what you need: hyperparameters, layers, `forward`, the steps,
//! the optimizer, or a `dataset` of its own.

use lightning_mcp_guest_sdk::prelude::*;
use lightning_mcp_guest_sdk::{check, log};

/// What a request's `model` object may set (besides `_target_`); unknown fields are errors.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    input_dim: u32,
    hidden_dim: u32,
    num_classes: u32,
    lr: f32,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            input_dim: 4,
            hidden_dim: 32,
            num_classes: 3,
            lr: 0.01,
        }
    }
}

struct TinyNet {
    hidden: Linear,
    norm: LayerNorm,
    output: Linear,
    lr: f32,
}

impl LightningModule for TinyNet {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "my_project.models.TinyNet";
    const SUMMARY: &'static str = "Template model: input_dim -> hidden_dim (layer norm, ReLU) \
        -> num_classes, cross-entropy, Adam(lr).";

    /// Checks the hyperparameters and declares the parameters.
    fn new(h: &Hyperparameters) -> Result<Self> {
        check::learning_rate("lr", h.lr)?;
        Ok(Self {
            hidden: LinearConfig::new(h.input_dim, h.hidden_dim).init("hidden")?,
            norm: LayerNormConfig::new(h.hidden_dim).init("norm")?,
            output: LinearConfig::new(h.hidden_dim, h.num_classes).init("output")?,
            lr: h.lr,
        })
    }

    /// `[batch, input_dim] -> [batch, num_classes]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(&self.hidden.forward(x)?)?.relu()?;
        self.output.forward(&h)
    }

    /// Cross-entropy, logging `train_loss` and `train_acc` (validation and test steps keep
    /// the SDK's classifier defaults: `val_loss`, `val_acc`, `test_loss`, `test_acc`).
    fn training_step(&mut self, inputs: Tensor, targets: Tensor, _batch: u32) -> Result<Tensor> {
        log::classification("train", &self.forward(&inputs)?, &targets)
    }

    fn configure_optimizers(&self) -> Optimization {
        Optimizer::adam(self.lr).into()
    }
}

export_model!(TinyNet);
