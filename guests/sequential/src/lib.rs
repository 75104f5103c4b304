//! `lightning_mcp.models.sequential.Sequential`: a model that is its config — a list of layers
//! (like `torch.nn.Sequential`), a loss and an optimizer. Every config is checked before any
//! parameter exists: the per-sample shape is walked through all layers first (see `plan`),
//! and an error names the layer, its type and the shape that does not fit.

mod layers;
mod plan;

use layers::{LayerSpec, Module, Shape};
use lightning_mcp_guest_sdk::prelude::*;
use lightning_mcp_guest_sdk::{DType, log};

/// The losses on offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Loss {
    /// Cross-entropy of logits `[classes]` against class indices; logs accuracy too.
    #[default]
    CrossEntropy,
    /// Mean squared error against targets of the output's shape.
    Mse,
}

/// The model's config: the request's `model` object without `_target_`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// The shape of one sample, without the batch dim.
    input_shape: Vec<u32>,
    /// The layers, in order.
    layers: Vec<LayerSpec>,
    /// The loss.
    loss: Loss,
    /// The optimizer, with PyTorch's defaults besides `lr` and `weight_decay`.
    optimizer: OptimizerName,
    /// Learning rate, in (0, 10].
    lr: f32,
    /// Weight decay (L2 penalty; decoupled for AdamW), >= 0; absent: PyTorch's default (0,
    /// AdamW 0.01).
    weight_decay: Option<f32>,
    /// An optional learning-rate scheduler.
    lr_scheduler: Option<LrScheduler>,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            input_shape: vec![2],
            layers: vec![
                LayerSpec::linear(32),
                LayerSpec::Relu {},
                LayerSpec::linear(2),
            ],
            loss: Loss::CrossEntropy,
            optimizer: OptimizerName::Adam,
            lr: 0.01,
            weight_decay: None,
            lr_scheduler: None,
        }
    }
}

impl Hyperparameters {
    /// `input_shape`, as sizes.
    fn sample_shape(&self) -> Shape {
        self.input_shape.iter().map(|d| *d as usize).collect()
    }
}

/// The model: its config and the layers built from it.
struct Sequential {
    /// The config.
    hparams: Hyperparameters,
    /// The layers built from `hparams.layers`, in order.
    modules: Vec<Module>,
}

impl LightningModule for Sequential {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.sequential.Sequential";
    const SUMMARY: &'static str = "A model that is its config, like torch.nn.Sequential: \
        input_shape (one sample without the batch dim, e.g. [4] or [1, 8, 8]) and a list of \
        layers, each {\"type\": ...} with PyTorch's arguments and defaults: linear {out, bias}, \
        conv2d {out_channels, kernel_size, stride, padding, dilation, groups, bias}, \
        max_pool2d / avg_pool2d {kernel_size, stride, padding}, adaptive_avg_pool2d \
        {output_size} (sizes an integer or [h, w]), flatten, dropout {p}, batch_norm \
        {momentum, eps}, layer_norm {eps}, relu, gelu, tanh, sigmoid, and embedding \
        {num_embeddings, embedding_dim} as the first layer (integer token ids in). The shapes \
        are checked through all layers before any parameter is made. loss cross_entropy \
        (the last layer gives [classes]; logs *_loss and *_acc) or mse (logs *_loss); \
        optimizer adam, adamw or sgd with lr, weight_decay and an optional lr_scheduler. \
        Brings no data: give it in the request as nested arrays (data.train/val/test/predict), \
        a CSV file (data.csv), or a built-in dataset (data.dataset \"iris\": 4 features, 3 \
        classes; \"digits\": images [1, 8, 8] in [0, 1], 10 classes; data.input_shape reshapes \
        each sample, e.g. [64]).";

    fn new(h: &Hyperparameters) -> Result<Self> {
        let plan = h.validate()?;
        let modules = h
            .layers
            .iter()
            .zip(&plan.inputs)
            .enumerate()
            .map(|(i, (spec, input))| {
                spec.layer()
                    .build(input, &format!("layers.{i}"))
                    .map_err(|e| spec.error(i, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hparams: h.clone(),
            modules,
        })
    }

    /// `[batch, ..input_shape] -> [batch, ..output]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let mut layers = self.hparams.layers.iter().zip(&self.modules).enumerate();
        layers.try_fold(x.clone(), |h, (i, (spec, module))| {
            module(&h).map_err(|e| spec.error(i, e))
        })
    }

    /// The loss, logging `train_loss` (and `train_acc` for cross-entropy).
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<Tensor> {
        self.evaluate(&inputs, &targets, "train")
    }

    /// Logs `val_loss` (and `val_acc` for cross-entropy).
    fn validation_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<()> {
        self.evaluate(&inputs, &targets, "val").map(drop)
    }

    /// Logs `test_loss` (and `test_acc` for cross-entropy).
    fn test_step(&mut self, inputs: Tensor, targets: Tensor, _batch_index: u32) -> Result<()> {
        self.evaluate(&inputs, &targets, "test").map(drop)
    }

    fn configure_optimizers(&self) -> Optimization {
        let h = &self.hparams;
        let optimizer = h.optimizer.with_lr(h.lr);
        let optimizer = match h.weight_decay {
            Some(weight_decay) => optimizer.with_weight_decay(weight_decay),
            None => optimizer,
        };
        match h.lr_scheduler {
            Some(scheduler) => optimizer.with_scheduler(scheduler),
            None => optimizer.into(),
        }
    }
}

impl Sequential {
    /// The batch's per-sample shape must be `input_shape`.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let shape = x.shape();
        let expected = self.hparams.sample_shape();
        match shape.split_first() {
            Some((_, sample)) if sample == expected.as_slice() => Ok(()),
            _ => Err(Error::new(format!(
                "Sequential expects inputs [batch, {}] (input_shape {expected:?}), got {shape:?}; \
                 set input_shape, or data.input_shape to reshape each sample",
                expected
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The loss of a batch, logged as `{prefix}_loss` (with `{prefix}_acc` for
    /// cross-entropy).
    fn evaluate(&mut self, inputs: &Tensor, targets: &Tensor, prefix: &str) -> Result<Tensor> {
        let outputs = self.forward(inputs)?;
        match self.hparams.loss {
            Loss::CrossEntropy => log::classification(prefix, &outputs, targets),
            Loss::Mse => {
                let loss = outputs.mse(&regression_targets(targets, &outputs.shape())?)?;
                log::log_tensor(&format!("{prefix}_loss"), &loss)?;
                Ok(loss)
            }
        }
    }
}

/// MSE targets as f32 in the outputs' shape: integer targets become floats, and targets
/// `[batch]` fit outputs `[batch, 1]`.
fn regression_targets(targets: &Tensor, output: &[usize]) -> Result<Tensor> {
    let shape = targets.shape();
    let fits = shape == output || matches!((shape.as_slice(), output), ([n], [m, 1]) if n == m);
    if !fits {
        return Err(Error::new(format!(
            "loss mse: the targets {shape:?} do not match the outputs {output:?}"
        )));
    }
    let shape: Vec<i64> = output.iter().map(|d| *d as i64).collect();
    targets.cast(DType::F32)?.reshape(&shape)
}

export_model!(Sequential);
