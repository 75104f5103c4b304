//! The 2-D image ops of the WIT contract — convolution and pooling over `[n, c, h, w]` —
//! validated before Burn sees them, with PyTorch's semantics.

use super::ops::{OpResult, err, float_tensor};
use super::pool::WindowMaxPool;
use super::{MAX_WORK, Tensor, TensorError, check_shape, guarded};
use burn::backend::Dispatch;
use burn::tensor::Tensor as BurnTensor;
use burn::tensor::module;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use lightning_mcp_shapes::Window;

/// A `(height, width)` pair.
pub type Pair = [usize; 2];

/// Options of [`conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step of the kernel.
    pub stride: Pair,
    /// Zeros added on each side.
    pub padding: Pair,
    /// Spacing of the kernel's cells.
    pub dilation: Pair,
    /// Channel groups.
    pub groups: usize,
}

/// Options of [`max_pool2d`] and [`avg_pool2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window size.
    pub kernel: Pair,
    /// Step of the window.
    pub stride: Pair,
    /// Cells added on each side.
    pub padding: Pair,
    /// Spacing of the window's cells.
    pub dilation: Pair,
}

/// `[n, c, h, w]` of an f32 image batch.
fn image(op: &'static str, what: &str, t: &Tensor) -> Result<[usize; 4], TensorError> {
    t.require_float(op)?;
    match t.shape().as_slice() {
        [n, c, h, w] => Ok([*n, *c, *h, *w]),
        other => Err(err(
            op,
            format!("{what} must be [n, c, h, w], got {other:?}"),
        )),
    }
}

/// Positive `(height, width)` values of `field`.
fn positive(op: &'static str, field: &str, pair: Pair) -> Result<(), TensorError> {
    if pair.contains(&0) {
        return Err(err(op, format!("{field} must be at least 1, got {pair:?}")));
    }
    Ok(())
}

/// `padding` on both sides of each axis, as Burn takes it.
fn symmetric([h, w]: Pair) -> [(usize, usize); 2] {
    [(h, h), (w, w)]
}

/// The output extent of a window of `kernel` cells, `dilation` apart, sliding by `stride` over
/// `input` cells with `padding` on each side (the arithmetic the guests share).
fn extent(
    op: &'static str,
    axis: &str,
    input: usize,
    kernel: usize,
    (stride, padding, dilation): (usize, usize, usize),
) -> Result<usize, TensorError> {
    let window = Window {
        kernel,
        stride,
        padding,
        dilation,
    };
    window.output(input).ok_or_else(|| {
        err(
            op,
            format!(
                "the {axis} window ({kernel} cells, dilation {dilation}) is larger than the \
                 padded input ({input} + 2 × {padding})"
            ),
        )
    })
}

/// Largest stride or dilation (a larger one wraps around in the GPU kernels' index maths).
pub const MAX_STEP: usize = 1 << 16;

/// Most kernel cells one pooling may visit (outputs × window cells): pooling compares or adds
/// one cell at a time where a convolution's GEMM multiplies many, so its bound is 128 times
/// lower than [`MAX_WORK`] to keep it as short (`benches/README.md`, "The longest host
/// calls"). A 2 × 2 pooling of stride 2 over a whole tensor of 2²⁶ elements is within it.
pub const MAX_POOL_WORK: usize = MAX_WORK >> 7;

/// A window op's geometry, checked: the padded input (which the backend materialises) and the
/// output within the tensor limits, `cells` kernel cells per output element within
/// `max_work`. Returns the output shape `[n, out_channels, oh, ow]`.
fn plan(
    op: &'static str,
    [n, c, h, w]: [usize; 4],
    out_channels: usize,
    (kernel, cells, max_work): (Pair, usize, usize),
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> Result<[usize; 4], TensorError> {
    positive(op, "stride", stride)?;
    positive(op, "dilation", dilation)?;
    for (field, pair) in [("stride", stride), ("dilation", dilation)] {
        if pair.iter().any(|v| *v > MAX_STEP) {
            return Err(err(op, format!("{field} {pair:?} is above {MAX_STEP}")));
        }
    }
    let ([kh, kw], [sh, sw], [ph, pw], [dh, dw]) = (kernel, stride, padding, dilation);
    let padded = |size: usize, pad: usize| pad.checked_mul(2).and_then(|p| p.checked_add(size));
    match (padded(h, ph), padded(w, pw)) {
        (Some(hp), Some(wp)) => {
            check_shape(op, &[n, c, hp, wp]).map_err(|_| {
                err(
                    op,
                    format!(
                        "the input [{n}, {c}, {h}, {w}] padded by {padding:?} exceeds the limit \
                         of {} elements per tensor",
                        super::MAX_ELEMENTS
                    ),
                )
            })?;
        }
        _ => return Err(err(op, format!("padding {padding:?} is too large"))),
    }
    let out = [
        n,
        out_channels,
        extent(op, "height", h, kh, (sh, ph, dh))?,
        extent(op, "width", w, kw, (sw, pw, dw))?,
    ];
    check_shape(op, &out)?;
    let work = out
        .iter()
        .try_fold(cells, |acc, d| acc.checked_mul(*d))
        .filter(|work| *work <= max_work);
    if work.is_none() {
        return Err(err(
            op,
            format!(
                "an output of {out:?} with {cells} kernel cells per element is more than \
                 {max_work} operations per op: use a smaller input, kernel or more stride"
            ),
        ));
    }
    Ok(out)
}

/// 2-D convolution of `x` `[n, c_in, h, w]` with `weight` `[c_out, c_in / groups, kh, kw]`
/// and an optional `bias` `[c_out]`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions) -> OpResult {
    const OP: &str = "conv2d";
    let [n, c_in, h, w] = image(OP, "the input", x)?;
    let [c_out, c_per_group, kh, kw] = image(OP, "the weight", weight)?;
    if o.groups == 0 || c_in % o.groups != 0 || c_out % o.groups != 0 {
        return Err(err(
            OP,
            format!(
                "groups {} must divide the input's {c_in} and the weight's {c_out} channels",
                o.groups
            ),
        ));
    }
    if c_per_group != c_in / o.groups {
        return Err(err(
            OP,
            format!(
                "the weight {:?} takes {c_per_group} channels per group, the input {:?} has \
                 {c_in} in {} group(s)",
                weight.shape(),
                x.shape(),
                o.groups
            ),
        ));
    }
    if let Some(bias) = bias {
        bias.require_float(OP)?;
        if bias.shape() != [c_out] {
            return Err(err(
                OP,
                format!("the bias must be [{c_out}], got {:?}", bias.shape()),
            ));
        }
    }
    let cells = c_per_group.saturating_mul(kh).saturating_mul(kw);
    plan(
        OP,
        [n, c_in, h, w],
        c_out,
        ([kh, kw], cells, MAX_WORK),
        o.stride,
        o.padding,
        o.dilation,
    )?;
    let options = ConvOptions {
        stride: o.stride,
        padding: symmetric(o.padding),
        dilation: o.dilation,
        groups: o.groups,
    };
    guarded(OP, || {
        let bias = bias.map(float_tensor::<1>);
        module::conv2d(
            float_tensor::<4>(x),
            float_tensor::<4>(weight),
            bias,
            options,
        )
        .into_bridge()
    })
    .map(Tensor::from_bridge)
}

/// Checks pooling options against `x`; returns the output shape.
fn pool_shape(op: &'static str, x: &Tensor, o: &Pool2dOptions) -> Result<[usize; 4], TensorError> {
    let [n, c, h, w] = image(op, "the input", x)?;
    positive(op, "kernel", o.kernel)?;
    let ([ph, pw], [kh, kw]) = (o.padding, o.kernel);
    if ph > kh / 2 || pw > kw / 2 {
        return Err(err(
            op,
            format!(
                "padding {:?} must be at most half the kernel {:?}",
                o.padding, o.kernel
            ),
        ));
    }
    let cells = kh.saturating_mul(kw);
    plan(
        op,
        [n, c, h, w],
        c,
        (o.kernel, cells, MAX_POOL_WORK),
        o.stride,
        o.padding,
        o.dilation,
    )
}

/// 2-D max pooling of `x` `[n, c, h, w]` (on the CPU without padding or dilation, the
/// host's own pooling of [`super::pool`]).
pub fn max_pool2d(x: &Tensor, o: &Pool2dOptions) -> OpResult {
    const OP: &str = "max-pool2d";
    pool_shape(OP, x, o)?;
    if o.padding == [0, 0] && o.dilation == [1, 1] && x.device().is_ok_and(|d| super::is_cpu(&d)) {
        return guarded(OP, || {
            let x = float_tensor::<4>(x).into_dispatch();
            let pooled = <Dispatch as WindowMaxPool>::max_pool2d_inside(x, o.kernel, o.stride);
            BurnTensor::<4>::from_dispatch(pooled).into_bridge()
        })
        .map(Tensor::from_bridge);
    }
    let options = MaxPoolOptions {
        kernel_size: o.kernel,
        stride: o.stride,
        padding: symmetric(o.padding),
        dilation: o.dilation,
        ceil_mode: false,
    };
    guarded(OP, || {
        module::max_pool2d(float_tensor::<4>(x), options).into_bridge()
    })
    .map(Tensor::from_bridge)
}

/// 2-D average pooling of `x` `[n, c, h, w]`, padded cells counted (PyTorch's default).
pub fn avg_pool2d(x: &Tensor, o: &Pool2dOptions) -> OpResult {
    const OP: &str = "avg-pool2d";
    if o.dilation != [1, 1] {
        return Err(err(
            OP,
            format!("dilation must be (1, 1), got {:?}", o.dilation),
        ));
    }
    pool_shape(OP, x, o)?;
    let options = AvgPoolOptions {
        kernel_size: o.kernel,
        stride: o.stride,
        padding: symmetric(o.padding),
        count_include_pad: true,
        ceil_mode: false,
    };
    guarded(OP, || {
        module::avg_pool2d(float_tensor::<4>(x), options).into_bridge()
    })
    .map(Tensor::from_bridge)
}

/// Average pooling of `x` `[n, c, h, w]` to `[n, c, size[0], size[1]]`.
pub fn adaptive_avg_pool2d(x: &Tensor, size: Pair) -> OpResult {
    const OP: &str = "adaptive-avg-pool2d";
    let [n, c, _, _] = image(OP, "the input", x)?;
    positive(OP, "the output size", size)?;
    let [oh, ow] = size;
    check_shape(OP, &[n, c, oh, ow])?;
    guarded(OP, || {
        module::adaptive_avg_pool2d(float_tensor::<4>(x), size).into_bridge()
    })
    .map(Tensor::from_bridge)
}
