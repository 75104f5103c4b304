//! Pooling over `[channels, height, width]`: `max_pool2d`, `avg_pool2d` and
//! `adaptive_avg_pool2d`.

use super::window::{Size2, Window2d, image};
use super::{Layer, MAX_WIDTH, Module, Step};
use lightning_mcp_guest_sdk::{Pool2dOptions, Result, Tensor};
use serde::{Deserialize, Serialize};

/// A pooling window, as `torch.nn.MaxPool2d` / `AvgPool2d` take it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "PoolJson")]
pub struct Pool {
    /// Window size.
    kernel_size: Size2,
    /// Step of the window (default: the kernel size).
    stride: Size2,
    /// Cells added on each side, at most half the kernel.
    padding: Size2,
}

/// A [`Pool`] as requested, before its stride defaults to the kernel size.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolJson {
    /// Window size.
    kernel_size: Size2,
    /// Step of the window.
    #[serde(default)]
    stride: Option<Size2>,
    /// Cells added on each side.
    #[serde(default = "Size2::zero")]
    padding: Size2,
}

impl From<PoolJson> for Pool {
    fn from(json: PoolJson) -> Self {
        Self {
            kernel_size: json.kernel_size,
            stride: json.stride.unwrap_or(json.kernel_size),
            padding: json.padding,
        }
    }
}

impl Pool {
    /// `[c, h, w] -> [c, h', w']`, for max and average pooling alike.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let (channels, _, _) = image(input)?;
        let window = Window2d::new(self.kernel_size, self.stride, self.padding, Size2::one())?;
        let (height, width) = (&window.height, &window.width);
        if height.padding > height.kernel / 2 || width.padding > width.kernel / 2 {
            return Err(format!(
                "padding {} is more than half the kernel {}",
                self.padding, self.kernel_size
            ));
        }
        let what = match self.padding.hw() {
            (0, 0) => format!("kernel {}", self.kernel_size),
            _ => format!("kernel {} with padding {}", self.kernel_size, self.padding),
        };
        let (oh, ow) = window.output(input, &what)?;
        Ok(Step::reshaped(vec![channels, oh, ow]))
    }

    /// The options of the host's pooling ops.
    fn options(&self) -> Pool2dOptions {
        Pool2dOptions {
            stride: self.stride.hw(),
            padding: self.padding.hw(),
            ..Pool2dOptions::new(self.kernel_size.hw())
        }
    }
}

/// `torch.nn.MaxPool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MaxPool2d(Pool);

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "max_pool2d"
    }

    fn step(&self, input: &[usize]) -> Result<Step, String> {
        self.0.step(input)
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        let options = self.0.options();
        Ok(Box::new(move |x: &Tensor| x.max_pool2d(options)))
    }
}

/// `torch.nn.AvgPool2d` (padded cells count toward the mean).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AvgPool2d(Pool);

impl Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "avg_pool2d"
    }

    fn step(&self, input: &[usize]) -> Result<Step, String> {
        self.0.step(input)
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        let options = self.0.options();
        Ok(Box::new(move |x: &Tensor| x.avg_pool2d(options)))
    }
}

/// `torch.nn.AdaptiveAvgPool2d`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveAvgPool2d {
    /// The output's `[height, width]`.
    output_size: Size2,
}

impl Layer for AdaptiveAvgPool2d {
    fn kind(&self) -> &'static str {
        "adaptive_avg_pool2d"
    }

    /// `[c, h, w] -> [c, output_size]`.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let (channels, _, _) = image(input)?;
        let (h, w) = self.output_size.bounded("output_size", 1, MAX_WIDTH)?;
        Ok(Step::reshaped(vec![channels, h as usize, w as usize]))
    }

    fn build(&self, _input: &[usize], _name: &str) -> Result<Module> {
        let (h, w) = self.output_size.hw();
        Ok(Box::new(move |x: &Tensor| x.adaptive_avg_pool2d(h, w)))
    }
}
