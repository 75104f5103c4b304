//! Windows over images, as convolutions and pooling take them: sides given as one integer or
//! `[height, width]`, and output sizes by the SDK's [`Window`], the host's arithmetic.

use lightning_mcp_guest_sdk::nn::Window;
use serde::{Deserialize, Serialize};

/// Largest kernel side, stride, padding or dilation.
const MAX_WINDOW: u32 = 4096;

/// A side length given as one integer (square) or as `[height, width]`; it serializes as
/// given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "kernel_size, stride, padding, dilation and output_size take an integer \
              >= 0 or [height, width]"
)]
pub enum Size2 {
    /// The same size in both dims.
    Square(u32),
    /// `[height, width]`.
    Pair([u32; 2]),
}

impl Size2 {
    /// `(height, width)`.
    pub fn hw(self) -> (u32, u32) {
        match self {
            Size2::Square(s) => (s, s),
            Size2::Pair([h, w]) => (h, w),
        }
    }

    /// `1`, the default stride and dilation.
    pub fn one() -> Self {
        Size2::Square(1)
    }

    /// `0`, the default padding.
    pub fn zero() -> Self {
        Size2::Square(0)
    }

    /// `(height, width)` when both sides lie in `min..=max`, else an error naming `field`.
    pub fn bounded(self, field: &str, min: u32, max: u32) -> Result<(u32, u32), String> {
        let (h, w) = self.hw();
        match (min..=max).contains(&h) && (min..=max).contains(&w) {
            true => Ok((h, w)),
            false => Err(format!(
                "{field} must be between {min} and {max} in each dim, got {self}"
            )),
        }
    }
}

impl std::fmt::Display for Size2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (h, w) = self.hw();
        write!(f, "{h}x{w}")
    }
}

/// `[channels, height, width]` of an image input.
pub fn image(input: &[usize]) -> Result<(usize, usize, usize), String> {
    match input {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!(
            "expects an input [channels, height, width], got {input:?}"
        )),
    }
}

/// A window over images: one [`Window`] down the height, one along the width.
pub struct Window2d {
    /// Along the height.
    pub height: Window,
    /// Along the width.
    pub width: Window,
}

impl Window2d {
    /// The window of a layer's `kernel_size`, `stride`, `padding` and `dilation`, each
    /// checked in that order.
    pub fn new(
        kernel_size: Size2,
        stride: Size2,
        padding: Size2,
        dilation: Size2,
    ) -> Result<Self, String> {
        let (kh, kw) = kernel_size.bounded("kernel_size", 1, MAX_WINDOW)?;
        let (sh, sw) = stride.bounded("stride", 1, MAX_WINDOW)?;
        let (ph, pw) = padding.bounded("padding", 0, MAX_WINDOW)?;
        let (dh, dw) = dilation.bounded("dilation", 1, MAX_WINDOW)?;
        let window = |kernel: u32, stride: u32, padding: u32, dilation: u32| Window {
            kernel: kernel as usize,
            stride: stride as usize,
            padding: padding as usize,
            dilation: dilation as usize,
        };
        Ok(Self {
            height: window(kh, sh, ph, dh),
            width: window(kw, sw, pw, dw),
        })
    }

    /// Cells of the kernel.
    pub fn area(&self) -> u64 {
        (self.height.kernel as u64).saturating_mul(self.width.kernel as u64)
    }

    /// The output `(height, width)` over the image `input`, or an error that the window
    /// (described by `what`) does not fit.
    pub fn output(&self, input: &[usize], what: &str) -> Result<(usize, usize), String> {
        let (_, h, w) = image(input)?;
        match (self.height.output(h), self.width.output(w)) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => Err(format!("{what} does not fit the input {input:?}")),
        }
    }
}
