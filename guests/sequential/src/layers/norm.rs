//! Normalisation: `batch_norm` over dim 0 of the sample, `layer_norm` over its last dim.

use super::{Layer, MAX_WIDTH, Module, Step, dim, small};
use lightning_mcp_guest_sdk::nn::{BatchNormConfig, LayerNormConfig};
use lightning_mcp_guest_sdk::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// `torch.nn.BatchNorm1d` / `BatchNorm2d` over dim 0 of the sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm {
    /// Weight of each batch in the running statistics.
    #[serde(default = "tenth")]
    momentum: f32,
    /// Added to the variance.
    #[serde(default = "small")]
    eps: f32,
}

/// Serde default `0.1` (batch norm's momentum).
fn tenth() -> f32 {
    0.1
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "batch_norm"
    }

    /// `[c]`, `[c, l]` or `[c, h, w]`, unchanged.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let features = match input {
            [c] | [c, _] | [c, _, _] => *c,
            _ => {
                return Err(format!(
                    "expects an input [features], [channels, length] or [channels, height, \
                     width], got {input:?}"
                ));
            }
        };
        if features > MAX_WIDTH as usize {
            return Err(format!(
                "normalises dim 0 of the input {input:?}, more than {MAX_WIDTH} features"
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1], got {}", self.momentum));
        }
        positive_eps(self.eps)?;
        // Weight and bias, and the running mean and variance.
        Ok(Step {
            output: input.to_vec(),
            parameters: 4 * features as u64,
        })
    }

    fn build(&self, input: &[usize], name: &str) -> Result<Module> {
        let config = BatchNormConfig {
            momentum: self.momentum,
            eps: self.eps,
            ..BatchNormConfig::new(dim(input.first())?)
        };
        let norm = config.init(name)?;
        Ok(Box::new(move |x: &Tensor| norm.forward(x)))
    }
}

/// `torch.nn.LayerNorm` over the last dim.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNorm {
    /// Added to the variance.
    #[serde(default = "small")]
    eps: f32,
}

impl Layer for LayerNorm {
    fn kind(&self) -> &'static str {
        "layer_norm"
    }

    /// Any shape, unchanged.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let features = input.last().copied().unwrap_or(0);
        if features > MAX_WIDTH as usize {
            return Err(format!(
                "normalises the last dim of the input {input:?}, more than {MAX_WIDTH} features"
            ));
        }
        positive_eps(self.eps)?;
        Ok(Step {
            output: input.to_vec(),
            parameters: 2 * features as u64,
        })
    }

    fn build(&self, input: &[usize], name: &str) -> Result<Module> {
        let config = LayerNormConfig {
            eps: self.eps,
            ..LayerNormConfig::new(dim(input.last())?)
        };
        let norm = config.init(name)?;
        Ok(Box::new(move |x: &Tensor| norm.forward(x)))
    }
}

/// `eps` when it is a finite number > 0.
fn positive_eps(eps: f32) -> Result<(), String> {
    match eps.is_finite() && eps > 0.0 {
        true => Ok(()),
        false => Err(format!("eps must be a finite number > 0, got {eps}")),
    }
}
