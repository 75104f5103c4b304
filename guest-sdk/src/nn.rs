//! Layers built from small config structs, in the style of Burn's `nn` module.

use crate::param::{Init, parameter};
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};

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
        let y = x.matmul(&self.weight.transpose(0, 1)?)?;
        match &self.bias {
            Some(b) => &y + b,
            None => Ok(y),
        }
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
        if (0.0..1.0).contains(&p) {
            Ok(Self { p })
        } else {
            Err(Error::new(format!("dropout must be in [0, 1), got {p}")))
        }
    }

    /// Applies dropout (the host makes it the identity outside training steps).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.dropout(self.p)
    }
}
