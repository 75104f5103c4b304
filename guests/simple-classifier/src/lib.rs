//! `lightning_mcp.models.simple.SimpleClassifier`: the Python project's example model — one
//! linear layer, cross-entropy, Adam — with its own seeded synthetic data.

use lightning_mcp_guest_sdk::prelude::*;

/// Largest `input_dim` or `num_classes` accepted.
const MAX_DIM: u32 = 65_536;

#[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    #[hparam(default = 4, range = 1..=MAX_DIM)]
    input_dim: u32,
    #[hparam(default = 3, range = 2..=MAX_DIM)]
    num_classes: u32,
    #[hparam(default = 1e-3, check = check::learning_rate)]
    lr: f32,
}

struct SimpleClassifier {
    hparams: Hyperparameters,
    layer: Linear,
}

impl LightningModule for SimpleClassifier {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.simple.SimpleClassifier";
    const SUMMARY: &'static str = "One linear layer (input_dim -> num_classes), cross-entropy, \
        Adam(lr). Brings seeded synthetic data: standard-normal inputs with random labels \
        (train 64, val 32, test 32, predict 16 samples; batch size 8).";

    fn new(h: &Hyperparameters) -> Result<Self> {
        h.validate()?;
        Ok(Self {
            hparams: h.clone(),
            layer: LinearConfig::new(h.input_dim, h.num_classes).init("layer")?,
        })
    }

    /// `[batch, input_dim] -> [batch, num_classes]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(x)
    }

    fn configure_optimizers(&self) -> Optimization {
        Optimizer::adam(self.hparams.lr).into()
    }

    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        let (samples, stream) = match split {
            Split::Train => (64, 0),
            Split::Validation => (32, 1),
            Split::Test => (32, 2),
            Split::Predict => (16, 3),
        };
        let seed = seed.wrapping_mul(4).wrapping_add(stream);
        let dim = self.hparams.input_dim as usize;
        let inputs = Tensor::randn(&[samples, dim], seed)?;
        let targets = match split {
            Split::Predict => None,
            _ => {
                let classes = self.hparams.num_classes as f32;
                let draws = Tensor::uniform(&[samples], 0.0, classes, seed ^ 0x5eed)?;
                let labels: Vec<i64> = draws
                    .to_f32_vec()?
                    .into_iter()
                    .map(|v| (v as i64).min(classes as i64 - 1))
                    .collect();
                Some(Tensor::from_i64(&labels, &[samples])?)
            }
        };
        Ok(Some(Dataset {
            inputs,
            targets,
            batch_size: 8,
        }))
    }
}

export_model!(SimpleClassifier);
