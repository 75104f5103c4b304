//! The layer types. Each is one [`Layer`]: its `type` name, what it does to a sample's shape,
//! and the module it builds; [`LayerSpec`] is the config's tagged union of them.

mod conv;
mod dense;
mod elementwise;
mod norm;
mod pool;
mod window;

use conv::Conv2d;
use dense::{Embedding, Linear};
use elementwise::{Dropout, Elementwise, Flatten};
use lightning_mcp_guest_sdk::{Error, Result, Tensor, check};
use norm::{BatchNorm, LayerNorm};
use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use serde::{Deserialize, Serialize};

/// Largest width, channel count or embedding size of any layer.
const MAX_WIDTH: u32 = 65_536;

/// A per-sample shape, without the batch dim.
pub type Shape = Vec<usize>;

/// A built layer: its forward pass over a batch.
pub type Module = Box<dyn Fn(&Tensor) -> Result<Tensor>>;

/// Values in `shape`, saturating.
pub fn volume(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |n, d| n.saturating_mul(*d as u64))
}

/// What one layer does to the per-sample shape.
pub struct Step {
    /// The output shape.
    pub output: Shape,
    /// Parameters and buffers the layer declares.
    pub parameters: u64,
}

impl Step {
    /// A layer without parameters.
    fn reshaped(output: Shape) -> Self {
        Self {
            output,
            parameters: 0,
        }
    }
}

/// One layer type, given its arguments. Errors of the shape walk are bare strings: the caller
/// names the layer.
pub trait Layer {
    /// The `type` name.
    fn kind(&self) -> &'static str;

    /// Why the layer cannot take the per-sample `input` at its place (`first`: as the first
    /// layer); most layers go anywhere.
    fn check_place(&self, _input: &[usize], _first: bool) -> Result<(), String> {
        Ok(())
    }

    /// The output shape and parameter count for a per-sample `input`, or why it does not fit.
    fn step(&self, input: &[usize]) -> Result<Step, String>;

    /// Declares the parameters, named `{name}.*`, for a per-sample `input` that
    /// [`step`](Self::step) accepted.
    fn build(&self, input: &[usize], name: &str) -> Result<Module>;
}

/// One layer of the config, tagged by `type`, with PyTorch's argument names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `torch.nn.Linear` over the last dim.
    Linear(Linear),
    /// `torch.nn.Conv2d` of `[channels, height, width]`.
    Conv2d(Conv2d),
    /// `torch.nn.MaxPool2d`.
    MaxPool2d(MaxPool2d),
    /// `torch.nn.AvgPool2d` (padded cells count toward the mean).
    AvgPool2d(AvgPool2d),
    /// `torch.nn.AdaptiveAvgPool2d`.
    AdaptiveAvgPool2d(AdaptiveAvgPool2d),
    /// `torch.nn.Flatten`: everything but the batch dim into one.
    Flatten {},
    /// `torch.nn.Dropout`.
    Dropout(Dropout),
    /// `torch.nn.BatchNorm1d` / `BatchNorm2d` over dim 0 of the sample.
    BatchNorm(BatchNorm),
    /// `torch.nn.LayerNorm` over the last dim.
    LayerNorm(LayerNorm),
    /// `max(x, 0)`.
    Relu {},
    /// GELU.
    Gelu {},
    /// `tanh(x)`.
    Tanh {},
    /// Logistic sigmoid.
    Sigmoid {},
    /// `torch.nn.Embedding` of integer token ids; only as the first layer.
    Embedding(Embedding),
}

impl LayerSpec {
    /// `torch.nn.Linear(.., out)` with a bias.
    pub fn linear(out: u32) -> Self {
        LayerSpec::Linear(Linear::new(out))
    }

    /// The layer type, with its arguments.
    pub fn layer(&self) -> &dyn Layer {
        match self {
            LayerSpec::Linear(linear) => linear,
            LayerSpec::Conv2d(conv) => conv,
            LayerSpec::MaxPool2d(pool) => pool,
            LayerSpec::AvgPool2d(pool) => pool,
            LayerSpec::AdaptiveAvgPool2d(pool) => pool,
            LayerSpec::Flatten {} => &Flatten,
            LayerSpec::Dropout(dropout) => dropout,
            LayerSpec::BatchNorm(norm) => norm,
            LayerSpec::LayerNorm(norm) => norm,
            LayerSpec::Relu {} => &Elementwise::RELU,
            LayerSpec::Gelu {} => &Elementwise::GELU,
            LayerSpec::Tanh {} => &Elementwise::TANH,
            LayerSpec::Sigmoid {} => &Elementwise::SIGMOID,
            LayerSpec::Embedding(embedding) => embedding,
        }
    }

    /// An error about this layer as `layers[index]`, naming its type.
    pub fn error(&self, index: usize, message: impl std::fmt::Display) -> Error {
        Error::new(format!(
            "layers[{index}] ({}): {message}",
            self.layer().kind()
        ))
    }
}

/// Serde default `true`.
fn yes() -> bool {
    true
}

/// Serde default `1e-5` (a norm's eps).
fn small() -> f32 {
    1e-5
}

/// A field's value when it lies in `min..=max`, else an error naming it (the SDK's check, as
/// the message a layer's error wraps).
fn bounded(field: &str, value: u32, min: u32, max: u32) -> Result<u32, String> {
    check::within(field, value, min..=max).map_err(|e| e.to_string())
}

/// A dim of a checked shape (0 when absent), as the SDK's configs take it.
fn dim(size: Option<&usize>) -> Result<u32> {
    let size = size.copied().unwrap_or(0);
    u32::try_from(size).map_err(|_| Error::new(format!("dim {size} is too large")))
}
