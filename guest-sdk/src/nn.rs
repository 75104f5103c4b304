//! Layers built from small config structs, in the style of Burn's `nn` module.

use crate::param::{Init, buffer, parameter};
use crate::{Conv2dOptions, Error, Result, Tensor};
use serde::{Deserialize, Serialize};

pub use crate::naming::scope;

/// A sliding window along one axis: the output sizes of a convolution or pooling, computed as
/// the host computes them.
pub use lightning_mcp_shapes::Window;

/// Configuration of a [`Linear`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: u32,
    /// Output features.
    pub d_output: u32,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl LinearConfig {
    /// `d_input -> d_output` with a bias.
    pub fn new(d_input: u32, d_output: u32) -> Self {
        Self {
            d_input,
            d_output,
            bias: true,
        }
    }

    /// Sets whether the layer has a bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The layer, its parameters named after its kind and place: `linear_0`, `linear_1`, …
    /// in the [`scope`] being built (see [`Self::init`] to name them yourself).
    pub fn build(&self) -> Result<Linear> {
        self.init(&crate::naming::next_name("linear"))
    }

    /// Declares the layer's parameters as `{name}.weight` (`[d_output, d_input]`, PyTorch's
    /// layout) and `{name}.bias`, initialised like `torch.nn.Linear`
    /// (uniform in `±1/sqrt(d_input)`).
    pub fn init(&self, name: &str) -> Result<Linear> {
        if self.d_input == 0 || self.d_output == 0 {
            return Err(Error::new(format!(
                "{name}: a linear layer needs at least one input and one output feature, got {} -> {}",
                self.d_input, self.d_output
            )));
        }
        let bound = 1.0 / (self.d_input as f32).sqrt();
        let init = Init::Uniform(-bound, bound);
        let (d_in, d_out) = (self.d_input as usize, self.d_output as usize);
        let weight = parameter(&format!("{name}.weight"), &[d_out, d_in], init)?;
        let bias = if self.bias {
            Some(parameter(&format!("{name}.bias"), &[d_out], init)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

/// `y = x Wᵀ + b`.
#[derive(Debug)]
pub struct Linear {
    /// `[d_output, d_input]`.
    pub weight: Tensor,
    /// `[d_output]`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `[.., d_input] -> [.., d_output]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// An elementwise activation, named as in configs (`"relu"`, `"gelu"`, `"tanh"`, `"sigmoid"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// GELU.
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
}

impl Activation {
    /// Applies the activation.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}

/// Dropout with probability `p` (active only during training steps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f32,
}

impl Dropout {
    /// Dropout with probability `p`, which must be in `[0, 1)`.
    pub fn new(p: f32) -> Result<Self> {
        crate::check::fraction("dropout", p)?;
        Ok(Self { p })
    }

    /// Applies dropout (the host makes it the identity outside training steps).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.dropout(self.p)
    }
}

/// Configuration of a [`Conv2d`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: u32,
    /// Output channels.
    pub out_channels: u32,
    /// Kernel `(height, width)`.
    pub kernel_size: (u32, u32),
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
    /// Whether the layer adds a bias.
    pub bias: bool,
}

impl Conv2dConfig {
    /// `in_channels -> out_channels` with a `kernel_size` kernel, PyTorch's default options and
    /// a bias.
    pub fn new(in_channels: u32, out_channels: u32, kernel_size: (u32, u32)) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel_size,
            options: Conv2dOptions::default(),
            bias: true,
        }
    }

    /// Sets the stride, padding, dilation and groups.
    pub fn with_options(mut self, options: Conv2dOptions) -> Self {
        self.options = options;
        self
    }

    /// The layer, its parameters named after its kind and place: `conv2d_0`, `conv2d_1`, …
    /// in the [`scope`] being built (see [`Self::init`] to name them yourself).
    pub fn build(&self) -> Result<Conv2d> {
        self.init(&crate::naming::next_name("conv2d"))
    }

    /// Declares `{name}.weight` (`[out, in / groups, kh, kw]`) and `{name}.bias` (`[out]`),
    /// initialised like `torch.nn.Conv2d` (uniform in `±1/sqrt(fan_in)`).
    pub fn init(&self, name: &str) -> Result<Conv2d> {
        let (kh, kw) = self.kernel_size;
        let groups = self.options.groups;
        if groups == 0 {
            return Err(Error::new(format!(
                "{name}: a convolution needs at least one group"
            )));
        }
        if self.in_channels == 0 || self.out_channels == 0 || kh == 0 || kw == 0 {
            return Err(Error::new(format!(
                "{name}: a convolution needs channels and a kernel of at least 1, got {} -> {} \
                 with kernel {kh}x{kw}",
                self.in_channels, self.out_channels
            )));
        }
        if !self.in_channels.is_multiple_of(groups) || !self.out_channels.is_multiple_of(groups) {
            return Err(Error::new(format!(
                "{name}: {} input and {} output channels do not divide into {groups} groups",
                self.in_channels, self.out_channels
            )));
        }
        let per_group = (self.in_channels / groups) as usize;
        let fan_in = per_group * kh as usize * kw as usize;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let init = Init::Uniform(-bound, bound);
        let shape = [
            self.out_channels as usize,
            per_group,
            kh as usize,
            kw as usize,
        ];
        let weight = parameter(&format!("{name}.weight"), &shape, init)?;
        let bias = if self.bias {
            Some(parameter(
                &format!("{name}.bias"),
                &[self.out_channels as usize],
                init,
            )?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            options: self.options,
        })
    }
}

/// A 2-D convolution: `[n, in, h, w] -> [n, out, h', w']`.
#[derive(Debug)]
pub struct Conv2d {
    /// `[out, in / groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// Applies the convolution.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.options)
    }
}

/// Configuration of a [`BatchNorm`] layer (PyTorch's `BatchNorm1d`/`BatchNorm2d`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Channels (dim 1 of the input).
    pub num_features: u32,
    /// Weight of each batch in the running statistics (PyTorch's default 0.1).
    pub momentum: f32,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
}

impl BatchNormConfig {
    /// Batch norm over `num_features` channels with PyTorch's defaults.
    pub fn new(num_features: u32) -> Self {
        Self {
            num_features,
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// The layer, its parameters named after its kind and place: `batch_norm_0`, `batch_norm_1`, …
    /// in the [`scope`] being built (see [`Self::init`] to name them yourself).
    pub fn build(&self) -> Result<BatchNorm> {
        self.init(&crate::naming::next_name("batch_norm"))
    }

    /// Declares `{name}.weight` (ones) and `{name}.bias` (zeros), and the buffers
    /// `{name}.running_mean` (zeros) and `{name}.running_var` (ones), PyTorch's state-dict
    /// names.
    pub fn init(&self, name: &str) -> Result<BatchNorm> {
        if self.num_features == 0 {
            return Err(Error::new(format!(
                "{name}: batch norm needs at least one feature"
            )));
        }
        let c = [self.num_features as usize];
        Ok(BatchNorm {
            weight: parameter(&format!("{name}.weight"), &c, Init::Ones)?,
            bias: parameter(&format!("{name}.bias"), &c, Init::Zeros)?,
            running_mean: buffer(&format!("{name}.running_mean"), &c, Init::Zeros)?,
            running_var: buffer(&format!("{name}.running_var"), &c, Init::Ones)?,
            momentum: self.momentum,
            eps: self.eps,
        })
    }
}

/// Batch normalisation over dim 1 of `[n, c, ...]`, with running statistics for evaluation.
#[derive(Debug)]
pub struct BatchNorm {
    /// `[c]`.
    pub weight: Tensor,
    /// `[c]`.
    pub bias: Tensor,
    /// `[c]` buffer.
    pub running_mean: Tensor,
    /// `[c]` buffer.
    pub running_var: Tensor,
    /// Weight of each batch in the running statistics.
    pub momentum: f32,
    /// Added to the variance.
    pub eps: f32,
}

impl BatchNorm {
    /// Normalises with the batch's statistics in training steps, the running ones otherwise.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.batch_norm(
            &self.running_mean,
            &self.running_var,
            Some(&self.weight),
            Some(&self.bias),
            self.momentum,
            self.eps,
        )
    }
}

/// Configuration of a [`LayerNorm`] layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// Size of the normalised (last) dim.
    pub d_model: u32,
    /// Added to the variance (default 1e-5).
    pub eps: f32,
}

impl LayerNormConfig {
    /// Layer norm over a last dim of `d_model` with PyTorch's default `eps`.
    pub fn new(d_model: u32) -> Self {
        Self { d_model, eps: 1e-5 }
    }

    /// The layer, its parameters named after its kind and place: `layer_norm_0`, `layer_norm_1`, …
    /// in the [`scope`] being built (see [`Self::init`] to name them yourself).
    pub fn build(&self) -> Result<LayerNorm> {
        self.init(&crate::naming::next_name("layer_norm"))
    }

    /// Declares `{name}.weight` (ones) and `{name}.bias` (zeros).
    pub fn init(&self, name: &str) -> Result<LayerNorm> {
        if self.d_model == 0 {
            return Err(Error::new(format!(
                "{name}: layer norm needs a dim of at least 1"
            )));
        }
        let d = [self.d_model as usize];
        Ok(LayerNorm {
            weight: parameter(&format!("{name}.weight"), &d, Init::Ones)?,
            bias: parameter(&format!("{name}.bias"), &d, Init::Zeros)?,
            eps: self.eps,
        })
    }
}

/// Layer normalisation over the last dim.
#[derive(Debug)]
pub struct LayerNorm {
    /// `[d_model]`.
    pub weight: Tensor,
    /// `[d_model]`.
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// `[.., d_model] -> [.., d_model]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.layer_norm(Some(&self.weight), Some(&self.bias), self.eps)
    }
}

/// Configuration of an [`Embedding`] table.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingConfig {
    /// Rows of the table (the vocabulary size).
    pub num_embeddings: u32,
    /// Size of each row.
    pub embedding_dim: u32,
}

impl EmbeddingConfig {
    /// A `num_embeddings x embedding_dim` table.
    pub fn new(num_embeddings: u32, embedding_dim: u32) -> Self {
        Self {
            num_embeddings,
            embedding_dim,
        }
    }

    /// The layer, its parameters named after its kind and place: `embedding_0`, `embedding_1`, …
    /// in the [`scope`] being built (see [`Self::init`] to name them yourself).
    pub fn build(&self) -> Result<Embedding> {
        self.init(&crate::naming::next_name("embedding"))
    }

    /// Declares `{name}.weight` (`[num_embeddings, embedding_dim]`), standard normal like
    /// `torch.nn.Embedding`.
    pub fn init(&self, name: &str) -> Result<Embedding> {
        if self.num_embeddings == 0 || self.embedding_dim == 0 {
            return Err(Error::new(format!(
                "{name}: an embedding needs at least one row and one column, got {}x{}",
                self.num_embeddings, self.embedding_dim
            )));
        }
        let shape = [self.num_embeddings as usize, self.embedding_dim as usize];
        Ok(Embedding {
            weight: parameter(&format!("{name}.weight"), &shape, Init::Normal(1.0))?,
        })
    }
}

/// A lookup table: i64 indices of any shape -> `indices ++ [embedding_dim]`.
#[derive(Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// The rows at `indices`.
    pub fn forward(&self, indices: &Tensor) -> Result<Tensor> {
        indices.embedding(&self.weight)
    }
}
