//! The shape arithmetic the lightning-mcp host and its guests share, so that a guest that
//! plans its layers' shapes (before any tensor exists) agrees with the host that runs them.

#![no_std]
#![deny(missing_docs)]

/// A sliding window along one axis (convolution or pooling), as PyTorch takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Cells the window covers, before dilation.
    pub kernel: usize,
    /// Cells it moves by.
    pub stride: usize,
    /// Cells added on each side of the input.
    pub padding: usize,
    /// Spacing of its cells (1: adjacent).
    pub dilation: usize,
}

impl Window {
    /// The output extent over `input` cells, PyTorch's
    /// `floor((input + 2 padding - dilation (kernel - 1) - 1) / stride) + 1`; `None` when the
    /// dilated window is larger than the padded input, the stride is 0, or the arithmetic
    /// overflows.
    pub fn output(&self, input: usize) -> Option<usize> {
        let span = self
            .dilation
            .checked_mul(self.kernel.checked_sub(1)?)?
            .checked_add(1)?;
        let padded = self.padding.checked_mul(2)?.checked_add(input)?;
        let room = padded.checked_sub(span)?;
        room.checked_div(self.stride)?.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    fn window(kernel: usize, stride: usize, padding: usize, dilation: usize) -> Window {
        Window {
            kernel,
            stride,
            padding,
            dilation,
        }
    }

    #[test]
    fn outputs_follow_pytorch() {
        // torch.nn.Conv2d(1, 1, 3)(zeros(1, 1, 8, 8)).shape[-1] == 6, and so on.
        assert_eq!(window(3, 1, 0, 1).output(8), Some(6));
        assert_eq!(window(3, 2, 1, 1).output(8), Some(4));
        assert_eq!(window(3, 1, 0, 2).output(8), Some(4));
        assert_eq!(window(2, 2, 0, 1).output(7), Some(3));
        assert_eq!(window(5, 1, 2, 1).output(1), Some(1));
    }

    #[test]
    fn a_window_that_does_not_fit_has_no_output() {
        assert_eq!(window(9, 1, 0, 1).output(8), None);
        assert_eq!(window(3, 1, 0, 4).output(8), None);
        assert_eq!(window(3, 0, 0, 1).output(8), None);
        assert_eq!(window(0, 1, 0, 1).output(8), None);
        assert_eq!(window(2, 1, usize::MAX, 1).output(8), None);
    }
}
