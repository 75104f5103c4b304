//! `conv2d`: `torch.nn.Conv2d` over `[channels, height, width]`.

use super::window::{Size2, Window2d, image};
use super::{Layer, MAX_WIDTH, Module, Step, bounded, dim, yes};
use lightning_mcp_guest_sdk::nn::Conv2dConfig;
use lightning_mcp_guest_sdk::{Conv2dOptions, Result, Tensor};
use serde::{Deserialize, Serialize};

/// A convolution, as `torch.nn.Conv2d` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    /// Output channels.
    out_channels: u32,
    /// Kernel size.
    kernel_size: Size2,
    /// Step of the kernel.
    #[serde(default = "Size2::one")]
    stride: Size2,
    /// Zeros added on each side.
    #[serde(default = "Size2::zero")]
    padding: Size2,
    /// Spacing of the kernel's cells.
    #[serde(default = "Size2::one")]
    dilation: Size2,
    /// Channel groups.
    #[serde(default = "one")]
    groups: u32,
    /// Whether it adds a bias.
    #[serde(default = "yes")]
    bias: bool,
}

/// Serde default `1` (groups).
fn one() -> u32 {
    1
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "conv2d"
    }

    /// `[in, h, w] -> [out, h', w']`.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let (channels, _, _) = image(input)?;
        let out = bounded("out_channels", self.out_channels, 1, MAX_WIDTH)?;
        let groups = bounded("groups", self.groups, 1, MAX_WIDTH)?;
        let window = Window2d::new(self.kernel_size, self.stride, self.padding, self.dilation)?;
        let g = groups as usize;
        if !channels.is_multiple_of(g) || !(out as usize).is_multiple_of(g) {
            return Err(format!(
                "{channels} input and {out} output channels (input {input:?}) do not divide \
                 into {groups} groups"
            ));
        }
        let (oh, ow) = window.output(input, &self.describe())?;
        let weights = u64::from(out)
            .saturating_mul((channels / g) as u64)
            .saturating_mul(window.area());
        let bias = if self.bias { u64::from(out) } else { 0 };
        Ok(Step {
            output: vec![out as usize, oh, ow],
            parameters: weights.saturating_add(bias),
        })
    }

    fn build(&self, input: &[usize], name: &str) -> Result<Module> {
        let conv = self.config(dim(input.first())?).init(name)?;
        Ok(Box::new(move |x: &Tensor| conv.forward(x)))
    }
}

impl Conv2d {
    /// The kernel, with its dilation and padding unless they are the defaults.
    fn describe(&self) -> String {
        match (self.dilation.hw(), self.padding.hw()) {
            ((1, 1), (0, 0)) => format!("kernel {}", self.kernel_size),
            _ => format!(
                "kernel {} (dilation {}, padding {})",
                self.kernel_size, self.dilation, self.padding
            ),
        }
    }

    /// The SDK's config for `in_channels` input channels.
    fn config(&self, in_channels: u32) -> Conv2dConfig {
        let options = Conv2dOptions {
            stride: self.stride.hw(),
            padding: self.padding.hw(),
            dilation: self.dilation.hw(),
            groups: self.groups,
        };
        Conv2dConfig {
            bias: self.bias,
            ..Conv2dConfig::new(in_channels, self.out_channels, self.kernel_size.hw())
                .with_options(options)
        }
    }
}
