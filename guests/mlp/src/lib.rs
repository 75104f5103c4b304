//! `lightning_mcp.models.mlp.MLP`: a multilayer perceptron classifier with configurable hidden
//! sizes, activation and dropout, and its own seeded, linearly separable synthetic data.

use lightning_mcp_guest_sdk::log;
use lightning_mcp_guest_sdk::prelude::*;

/// Largest width of any layer.
const MAX_WIDTH: u32 = 65_536;
/// Most hidden layers.
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    #[hparam(default = 8, range = 1..=MAX_WIDTH)]
    input_dim: u32,
    #[hparam(default = vec![64, 32], range = 1..=MAX_WIDTH, max_len = MAX_DEPTH)]
    hidden_dims: Vec<u32>,
    #[hparam(default = 4, range = 2..=MAX_WIDTH)]
    num_classes: u32,
    #[hparam(default = Activation::Relu)]
    activation: Activation,
    #[hparam(check = check::fraction)]
    dropout: f32,
    #[hparam(default = 0.01, check = check::learning_rate)]
    lr: f32,
    optimizer: OptimizerName,
    lr_scheduler: Option<LrScheduler>,
}

struct Mlp {
    hparams: Hyperparameters,
    layers: Vec<Linear>,
    dropout: Dropout,
}

impl LightningModule for Mlp {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.mlp.MLP";
    const SUMMARY: &'static str = "Multilayer perceptron classifier: input_dim -> hidden_dims (with activation \
        and dropout) -> num_classes, cross-entropy; optimizer adam, adamw or sgd with lr, and an \
        optional lr_scheduler ({\"name\": \"step\"|\"cosine\"|\"linear\", ...}). Brings seeded synthetic data: \
        Gaussian clusters, one per class, that are linearly separable (train 512, val 128, \
        test 128, predict 32 samples; batch size 32).";

    fn class_name() -> &'static str {
        "MLP"
    }

    fn new(h: &Hyperparameters) -> Result<Self> {
        h.validate()?;
        let widths: Vec<u32> = std::iter::once(h.input_dim)
            .chain(h.hidden_dims.iter().copied())
            .chain(std::iter::once(h.num_classes))
            .collect();
        // PyTorch's names for an nn.Sequential of Linear layers: `layers.0.weight`, ...
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, pair)| LinearConfig::new(pair[0], pair[1]).init(&format!("layers.{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hparams: h.clone(),
            layers,
            dropout: Dropout::new(h.dropout)?,
        })
    }

    /// `[batch, input_dim] -> [batch, num_classes]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (hidden, output) = self.layers.split_at(self.layers.len().saturating_sub(1));
        let mut h = x.clone();
        for layer in hidden {
            h = self
                .dropout
                .forward(&self.hparams.activation.forward(&layer.forward(&h)?)?)?;
        }
        output.iter().try_fold(h, |h, layer| layer.forward(&h))
    }

    /// Cross-entropy, logging `train_loss` and `train_acc`.
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<Tensor> {
        log::classification("train", &self.forward(&inputs)?, &targets)
    }

    fn configure_optimizers(&self) -> Optimization {
        let optimizer = self.hparams.optimizer.with_lr(self.hparams.lr);
        match self.hparams.lr_scheduler {
            Some(scheduler) => optimizer.with_scheduler(scheduler),
            None => optimizer.into(),
        }
    }

    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        let (samples, offset) = match split {
            Split::Train => (512, 0),
            Split::Validation => (128, 1),
            Split::Test => (128, 2),
            Split::Predict => (32, 3),
        };
        let (inputs, labels) = clusters(
            samples,
            self.hparams.input_dim as usize,
            self.hparams.num_classes as usize,
            seed.wrapping_add(offset),
        )?;
        let targets = match split {
            Split::Predict => None,
            _ => Some(labels),
        };
        Ok(Some(Dataset {
            inputs,
            targets,
            batch_size: 32,
        }))
    }
}

/// `samples` points in `dim` dims: sample `i` has class `i % classes` and lies near that
/// class's centre, with normal noise of std 0.5, so a linear model separates the classes
/// whenever `dim` covers the centres' code (`dim >= log2(classes) + 1`).
fn clusters(samples: usize, dim: usize, classes: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let noise = Tensor::randn(&[samples, dim], seed)?.to_f32_vec()?;
    let labels: Vec<i64> = (0..samples).map(|i| (i % classes) as i64).collect();
    // Class c sits at ±3 on the first `bits` axes, the sign pattern being the binary code of
    // c + 1 (distinct for every class); other axes are centred on 0.
    let bits = (usize::BITS - classes.leading_zeros()) as usize;
    let points: Vec<f32> = noise
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let (class, axis) = ((k / dim) % classes, k % dim);
            let centre = match axis < bits {
                true if ((class + 1) >> axis) & 1 == 1 => 3.0,
                true => -3.0,
                false => 0.0,
            };
            centre + 0.5 * n
        })
        .collect();
    Ok((
        Tensor::from_f32(&points, &[samples, dim])?,
        Tensor::from_i64(&labels, &[samples])?,
    ))
}

export_model!(Mlp);
