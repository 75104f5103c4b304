//! A template lightning-mcp model: a two-layer classifier with layer norm. Copy this crate,
//! rename `TARGET`, and change what you need: hyperparameters, layers, `forward`, the steps,
//! the optimizer, or a `dataset` of its own.

use lightning_mcp_guest_sdk::log;
use lightning_mcp_guest_sdk::prelude::*;

/// What a request's `model` object may set (besides `_target_`): each field's default and
/// bounds beside it; unknown fields are errors.
#[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
#[serde(default, deny_unknown_fields)]
struct Hparams {
    #[hparam(default = 4, range = 1..=65_536)]
    input_dim: u32,
    #[hparam(default = 32, range = 1..=65_536)]
    hidden_dim: u32,
    #[hparam(default = 3, range = 2..=65_536)]
    num_classes: u32,
    #[hparam(default = 0.01, check = check::learning_rate)]
    lr: f32,
    /// `adam`, `adamw` or `sgd`.
    optimizer: OptimizerName,
}

struct TinyNet {
    hparams: Hparams,
    hidden: Linear,
    norm: LayerNorm,
    output: Linear,
}

impl LightningModule for TinyNet {
    type Hyperparameters = Hparams;
    const TARGET: &'static str = "my_project.models.TinyNet";
    const SUMMARY: &'static str = "Template model: input_dim -> hidden_dim (layer norm, ReLU) \
        -> num_classes, cross-entropy, optimizer(lr).";

    /// Checks the hyperparameters and declares the parameters (named after each layer's kind
    /// and place: `linear_0.weight`, `layer_norm_0.weight`, ...).
    fn new(h: &Hparams) -> Result<Self> {
        h.validate()?;
        Ok(Self {
            hparams: h.clone(),
            hidden: LinearConfig::new(h.input_dim, h.hidden_dim).build()?,
            norm: LayerNormConfig::new(h.hidden_dim).build()?,
            output: LinearConfig::new(h.hidden_dim, h.num_classes).build()?,
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
        self.hparams.optimizer.with_lr(self.hparams.lr).into()
    }
}

export_model!(TinyNet);
