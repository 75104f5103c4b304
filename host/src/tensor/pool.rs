//! Max pooling on the CPU for windows that lie inside the image (no padding, no dilation), as
//! a Burn backend extension with its own backward pass.
//!
//! flex's max pooling branches on every compare of every window cell, which a ReLU's output
//! makes the processor mispredict about half the time: 29 % of a small CNN's training step in
//! the profile of `benches/README.md`.
//! Without padding or dilation every window lies inside its image, so here the forward pass is
//! a plain, branch-free scan of each window that keeps where each maximum was (the first, or
//! the last NaN, as PyTorch picks), and the backward pass adds each output's gradient to that
//! one input cell. Image planes are spread over rayon's threads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension};
use burn::tensor::{DType, TensorData};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::hint::select_unpredictable;
use std::sync::Arc;

/// Fewest output cells one rayon task handles, so small planes are not one task each.
const CELLS_PER_TASK: usize = 4096;

/// Max pooling over windows inside the image.
#[backend_extension(Flex, Autodiff)]
pub trait WindowMaxPool: Backend {
    /// 2-D max pooling of `x` `[n, c, h, w]` with `kernel` and `stride`, no padding, no
    /// dilation, floor mode (checked by the caller against the image's size).
    fn max_pool2d_inside(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;
}

impl WindowMaxPool for Flex {
    fn max_pool2d_inside(x: FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> FlexTensor {
        match pool(&x, kernel, stride) {
            Some((pooled, _)) => pooled,
            None => Flex::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false),
        }
    }
}

impl<C: CheckpointStrategy> WindowMaxPool for Autodiff<Flex, C> {
    fn max_pool2d_inside(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        let Some((pooled, positions)) = pool(x.primitive(), kernel, stride) else {
            return Self::max_pool2d(x, kernel, stride, [0, 0], [1, 1], false);
        };
        match MaxPoolInside
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(positions, pooled),
            OpsKind::UnTracked(prep) => prep.finish(pooled),
        }
    }
}

/// Where each maximum of one pooling was: the input's shape, the output cells per image plane
/// and, per output cell, the cell of its image plane it came from.
#[derive(Clone, Debug)]
struct Positions {
    input_shape: [usize; 4],
    output_plane: usize,
    cells: Arc<Vec<u32>>,
}

/// The backward step of [`WindowMaxPool::max_pool2d_inside`].
#[derive(Debug)]
struct MaxPoolInside;

impl Backward<Flex, 1> for MaxPoolInside {
    type State = Positions;

    fn backward(self, ops: Ops<Positions, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(parent) = parent {
            grads.register::<Flex>(parent.id, scatter(&grad, &ops.state));
        }
    }
}

/// The pooled f32 tensor and where each maximum was; `None` (for flex's own pooling) when
/// `x` is not an f32 image batch or the windows do not fit it.
fn pool(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> Option<(FlexTensor, Positions)> {
    let [n, c, h, w] = match *x.shape() {
        [n, c, h, w] if x.dtype() == DType::F32 && u32::try_from(h * w).is_ok() => [n, c, h, w],
        _ => return None,
    };
    let geometry = Geometry::new([h, w], kernel, stride)?;
    let x = x.to_contiguous();
    let input = x.as_slice::<f32>()?;
    // Both at least 1: the kernel is at least 1 and fits the image.
    let (input_plane, output_plane) = (h * w, geometry.out[0] * geometry.out[1]);
    let mut maxima = vec![0.0f32; n * c * output_plane];
    let mut cells = vec![0u32; maxima.len()];
    maxima
        .par_chunks_mut(output_plane)
        .zip(cells.par_chunks_mut(output_plane))
        .zip(input.par_chunks(input_plane))
        .with_min_len(CELLS_PER_TASK.div_ceil(output_plane))
        .for_each(|((maxima, cells), plane)| geometry.pool_plane(plane, maxima, cells));
    let pooled = FlexTensor::from_data(TensorData::new(
        maxima,
        [n, c, geometry.out[0], geometry.out[1]],
    ));
    let positions = Positions {
        input_shape: [n, c, h, w],
        output_plane,
        cells: Arc::new(cells),
    };
    Some((pooled, positions))
}

/// The input gradient: each output cell's gradient added to the input cell its maximum came
/// from.
fn scatter(grad: &FlexTensor, positions: &Positions) -> FlexTensor {
    let [n, c, h, w] = positions.input_shape;
    let grad = grad.to_contiguous();
    let grad = grad.as_slice::<f32>().unwrap_or_default();
    let output_plane = positions.output_plane;
    let mut input_grad = vec![0.0f32; n * c * h * w];
    input_grad
        .par_chunks_mut(h * w)
        .zip(grad.par_chunks(output_plane))
        .zip(positions.cells.par_chunks(output_plane))
        .with_min_len(CELLS_PER_TASK.div_ceil(output_plane))
        .for_each(|((plane, grad), cells)| {
            for (&g, &cell) in grad.iter().zip(cells) {
                if let Some(sum) = plane.get_mut(cell as usize) {
                    *sum += g;
                }
            }
        });
    FlexTensor::from_data(TensorData::new(input_grad, [n, c, h, w]))
}

/// Window placement over one `[h, w]` image plane.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    width: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// Output rows and columns.
    out: [usize; 2],
}

impl Geometry {
    /// `None` when a size is zero or the kernel is larger than the image.
    fn new([h, w]: [usize; 2], kernel: [usize; 2], stride: [usize; 2]) -> Option<Self> {
        if kernel.contains(&0) || stride.contains(&0) || kernel[0] > h || kernel[1] > w {
            return None;
        }
        let out = [
            (h - kernel[0]) / stride[0] + 1,
            (w - kernel[1]) / stride[1] + 1,
        ];
        Some(Self {
            width: w,
            kernel,
            stride,
            out,
        })
    }

    /// Pools one image plane into `maxima`, recording each maximum's cell in `cells`: the
    /// first maximum of each window, or its last NaN (PyTorch's choice). The running maximum
    /// and its cell are chosen without a branch: on a ReLU's output a compare-and-branch per
    /// cell mispredicts about half the time, which made a 2×2 pooling 6× slower (1.9 ms
    /// against 0.3 ms for 512 planes of 26×26 on one core).
    fn pool_plane(&self, plane: &[f32], maxima: &mut [f32], cells: &mut [u32]) {
        let [kernel_h, kernel_w] = self.kernel;
        let mut outputs = maxima.iter_mut().zip(cells.iter_mut());
        for oh in 0..self.out[0] {
            for ow in 0..self.out[1] {
                let corner = oh * self.stride[0] * self.width + ow * self.stride[1];
                let mut best = (cell_value(plane, corner).to_bits(), corner);
                if self.kernel == [2, 2] {
                    for at in [corner + 1, corner + self.width, corner + self.width + 1] {
                        best = larger(best, cell_value(plane, at), at);
                    }
                } else {
                    for kh in 0..kernel_h {
                        let row = corner + kh * self.width;
                        for at in row..row + kernel_w {
                            best = larger(best, cell_value(plane, at), at);
                        }
                    }
                }
                if let Some((maximum, cell)) = outputs.next() {
                    *maximum = f32::from_bits(best.0);
                    *cell = best.1 as u32;
                }
            }
        }
    }
}

/// The value of cell `at` of `plane` (NaN past its end, which the geometry rules out).
fn cell_value(plane: &[f32], at: usize) -> f32 {
    plane.get(at).copied().unwrap_or(f32::NAN)
}

/// The running maximum `best` (its bits, and its cell) after seeing `value` at cell `at`:
/// `value` is taken when larger or NaN. Kept as bits so that the compiler selects with
/// integer moves: a selected `f32` compiles to a branch on the data.
#[inline(always)]
fn larger(best: (u32, usize), value: f32, at: usize) -> (u32, usize) {
    let take = value > f32::from_bits(best.0) || value.is_nan();
    (
        select_unpredictable(take, value.to_bits(), best.0),
        select_unpredictable(take, at, best.1),
    )
}
