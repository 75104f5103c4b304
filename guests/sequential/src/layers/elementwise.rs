//! Layers without parameters that take each value on its own: `flatten` (which only
//! reshapes), `dropout` and the activations.

use super::{Layer, Module, Step, volume};
use lightning_mcp_guest_sdk::nn::{self, Activation};
use lightning_mcp_guest_sdk::{Result, Tensor, check};
use serde::{Deserialize, Serialize};

/// `torch.nn.Flatten`: everything but the batch dim into one.
pub struct Flatten;

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }

    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let values = usize::try_from(volume(input)).unwrap_or(usize::MAX);
        Ok(Step::reshaped(vec![values]))
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        Ok(Box::new(|x: &Tensor| x.flatten(1, -1)))
    }
}

/// `torch.nn.Dropout`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    #[serde(default = "half")]
    p: f32,
}

/// Serde default `0.5` (dropout).
fn half() -> f32 {
    0.5
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }

    fn step(&self, input: &[usize]) -> Result<Step, String> {
        check::fraction("p", self.p).map_err(|e| e.to_string())?;
        Ok(Step::reshaped(input.to_vec()))
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        let dropout = nn::Dropout::new(self.p)?;
        Ok(Box::new(move |x: &Tensor| dropout.forward(x)))
    }
}

/// An elementwise activation, under its `type` name.
pub struct Elementwise {
    /// The `type` name.
    kind: &'static str,
    /// The function.
    activation: Activation,
}

impl Elementwise {
    /// `max(x, 0)`.
    pub const RELU: Self = Self::new("relu", Activation::Relu);
    /// GELU.
    pub const GELU: Self = Self::new("gelu", Activation::Gelu);
    /// `tanh(x)`.
    pub const TANH: Self = Self::new("tanh", Activation::Tanh);
    /// Logistic sigmoid.
    pub const SIGMOID: Self = Self::new("sigmoid", Activation::Sigmoid);

    /// `activation` as the layer type `kind`.
    const fn new(kind: &'static str, activation: Activation) -> Self {
        Self { kind, activation }
    }
}

impl Layer for Elementwise {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn step(&self, input: &[usize]) -> Result<Step, String> {
        Ok(Step::reshaped(input.to_vec()))
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        let activation = self.activation;
        Ok(Box::new(move |x: &Tensor| activation.forward(x)))
    }
}
