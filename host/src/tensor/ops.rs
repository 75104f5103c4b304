//! Every tensor op of the WIT contract, validated before Burn sees it.
//!
//! Each op checks dtypes, dims and shapes and returns a [`TensorError`] naming the op and the
//! shapes involved; only then is Burn called, inside [`guarded`] as a second line of defence.

use super::create::from_f32;
use super::{
    DType, Device, MAX_ELEMENTS, MAX_RANK, Rng, Tensor, TensorError, guarded, is_cpu, with_rank,
};
use burn::tensor::{Int, Shape, Tensor as BurnTensor, TensorData, activation};
use std::f32::consts::SQRT_2;

pub(super) type OpResult = Result<Tensor, TensorError>;

pub(super) fn err(op: &'static str, message: impl Into<String>) -> TensorError {
    TensorError::new(op, message)
}

/// Checks a shape a guest asks for: rank 1 to [`MAX_RANK`], no zero dims, at most
/// [`MAX_ELEMENTS`] elements. Returns the element count.
pub fn check_shape(op: &'static str, shape: &[usize]) -> Result<usize, TensorError> {
    if shape.is_empty() || shape.len() > MAX_RANK {
        return Err(err(
            op,
            format!(
                "shape {shape:?} has rank {}, allowed 1 to {MAX_RANK}",
                shape.len()
            ),
        ));
    }
    if shape.contains(&0) {
        return Err(err(op, format!("shape {shape:?} has a zero-sized dim")));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .filter(|n| *n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            err(
                op,
                format!("shape {shape:?} exceeds the limit of {MAX_ELEMENTS} elements per tensor"),
            )
        })?;
    Ok(count)
}

/// Resolves a possibly negative dim against `rank`.
pub(super) fn dim_index(op: &'static str, dim: i32, shape: &[usize]) -> Result<usize, TensorError> {
    let rank = shape.len() as i64;
    let resolved = if dim < 0 {
        rank + i64::from(dim)
    } else {
        i64::from(dim)
    };
    if (0..rank).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(err(
            op,
            format!("dim {dim} is out of range for shape {shape:?} (rank {rank})"),
        ))
    }
}

pub(super) fn float_tensor<const D: usize>(t: &Tensor) -> BurnTensor<D> {
    BurnTensor::<D>::from_bridge(t.bridge.clone())
}

pub(super) fn int_tensor<const D: usize>(t: &Tensor) -> BurnTensor<D, Int> {
    BurnTensor::<D, Int>::from_bridge(t.bridge.clone())
}

// ---------------------------------------------------------------------------------------------
// Shape plumbing

/// Reshapes to `to` (same element count, validated by the caller).
pub(super) fn reshape_to(op: &'static str, t: &Tensor, to: &[usize]) -> OpResult {
    let shape = Shape::from(to.to_vec());
    let bridge = match t.dtype() {
        DType::F32 => with_rank!(op, t.rank(), S => with_rank!(op, to.len(), T => guarded(op, || {
            float_tensor::<S>(t).reshape::<T, _>(shape.clone()).into_bridge()
        })?)?)?,
        DType::I64 => with_rank!(op, t.rank(), S => with_rank!(op, to.len(), T => guarded(op, || {
            int_tensor::<S>(t).reshape::<T, _>(shape.clone()).into_bridge()
        })?)?)?,
    };
    Ok(Tensor::from_bridge(bridge))
}

/// Prepends size-1 dims so `t` has `rank` dims.
pub(super) fn with_leading_ones(op: &'static str, t: &Tensor, rank: usize) -> OpResult {
    if t.rank() == rank {
        return Ok(t.clone());
    }
    let mut shape = vec![1; rank - t.rank()];
    shape.extend(t.shape());
    reshape_to(op, t, &shape)
}

/// NumPy broadcasting of two shapes (the caller checks the result against the limits).
pub(super) fn broadcast_shapes(
    op: &'static str,
    a: &[usize],
    b: &[usize],
) -> Result<Vec<usize>, TensorError> {
    let rank = a.len().max(b.len());
    let padded = |s: &[usize]| {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (pa, pb) = (padded(a), padded(b));
    let shape = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| match (x, y) {
            (x, y) if x == y => Ok(*x),
            (1, y) => Ok(*y),
            (x, 1) => Ok(*x),
            _ => Err(err(op, format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(shape)
}

/// Both operands as f32 at a common rank, after checking they broadcast.
fn float_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor), TensorError> {
    a.require_float(op)?;
    b.require_float(op)?;
    let shape = broadcast_shapes(op, &a.shape(), &b.shape())?;
    let rank = check_shape(op, &shape).map(|_| shape.len())?;
    Ok((
        with_leading_ones(op, a, rank)?,
        with_leading_ones(op, b, rank)?,
    ))
}

macro_rules! binary_float_op {
    ($(#[$doc:meta])* $name:ident, $op:literal, |$x:ident, $y:ident| $body:expr) => {
        $(#[$doc])*
        pub fn $name(a: &Tensor, b: &Tensor) -> OpResult {
            let (a, b) = float_pair($op, a, b)?;
            with_rank!($op, a.rank(), D => guarded($op, || {
                let ($x, $y) = (float_tensor::<D>(&a), float_tensor::<D>(&b));
                ($body).into_bridge()
            })?)
            .map(Tensor::from_bridge)
        }
    };
}

binary_float_op!(
    /// `a + b` with broadcasting.
    add, "add", |x, y| x.add(y)
);
binary_float_op!(
    /// `a - b` with broadcasting.
    sub, "sub", |x, y| x.sub(y)
);
binary_float_op!(
    /// `a * b` with broadcasting.
    mul, "mul", |x, y| x.mul(y)
);
binary_float_op!(
    /// `a / b` with broadcasting.
    div, "div", |x, y| x.div(y)
);
binary_float_op!(
    /// `a ^ b` with broadcasting.
    pow, "pow", |x, y| x.powf(y)
);

macro_rules! unary_float_op {
    ($(#[$doc:meta])* $name:ident, $op:literal, |$x:ident $(, $arg:ident: $ty:ty)*| $body:expr) => {
        $(#[$doc])*
        pub fn $name(t: &Tensor $(, $arg: $ty)*) -> OpResult {
            t.require_float($op)?;
            with_rank!($op, t.rank(), D => guarded($op, || {
                let $x = float_tensor::<D>(t);
                ($body).into_bridge()
            })?)
            .map(Tensor::from_bridge)
        }
    };
}

unary_float_op!(
    /// `t + value`.
    add_scalar, "add-scalar", |x, value: f32| x.add_scalar(value)
);
unary_float_op!(
    /// `t - value`.
    sub_scalar, "sub-scalar", |x, value: f32| x.sub_scalar(value)
);
unary_float_op!(
    /// `t * value`.
    mul_scalar, "mul-scalar", |x, value: f32| x.mul_scalar(value)
);
unary_float_op!(
    /// `t / value`.
    div_scalar, "div-scalar", |x, value: f32| x.div_scalar(value)
);
unary_float_op!(
    /// `t ^ exponent`.
    pow_scalar, "pow-scalar", |x, exponent: f32| x.powf_scalar(exponent)
);
unary_float_op!(
    /// `t` clamped to `[min, max]` (gradient clipping by value).
    clamp, "clamp", |x, min: f32, max: f32| x.clamp(min, max)
);
unary_float_op!(
    /// `-t`.
    neg, "neg", |x| x.neg()
);
unary_float_op!(
    /// `e ^ t`.
    exp, "exp", |x| x.exp()
);
unary_float_op!(
    /// Natural logarithm.
    log, "log", |x| x.log()
);
unary_float_op!(
    /// Square root.
    sqrt, "sqrt", |x| x.sqrt()
);
unary_float_op!(
    /// `max(t, 0)`.
    relu, "relu", |x| activation::relu(x)
);
unary_float_op!(
    /// Logistic sigmoid.
    sigmoid, "sigmoid", |x| activation::sigmoid(x)
);
unary_float_op!(
    /// Hyperbolic tangent.
    tanh, "tanh", |x| activation::tanh(x)
);
unary_float_op!(
    /// Exact (erf) GELU, `x/2 · (1 + erf(x/√2))`. Burn's own `gelu_backward` is the tanh
    /// approximation's derivative on every backend but the CPU's (flex), so elsewhere GELU is
    /// built from `erf`, whose gradient is exact.
    gelu, "gelu", |x| {
        if is_cpu(&x.device()) {
            activation::gelu(x)
        } else {
            x.clone().mul(x.div_scalar(SQRT_2).erf().add_scalar(1.0)).mul_scalar(0.5)
        }
    }
);

/// Softmax over `dim`.
pub fn softmax(t: &Tensor, dim: i32) -> OpResult {
    const OP: &str = "softmax";
    t.require_float(OP)?;
    let dim = dim_index(OP, dim, &t.shape())?;
    with_rank!(OP, t.rank(), D => guarded(OP, || activation::softmax(float_tensor::<D>(t), dim).into_bridge())?)
        .map(Tensor::from_bridge)
}

/// Log-softmax over `dim`.
pub fn log_softmax(t: &Tensor, dim: i32) -> OpResult {
    const OP: &str = "log-softmax";
    t.require_float(OP)?;
    let dim = dim_index(OP, dim, &t.shape())?;
    with_rank!(OP, t.rank(), D => guarded(OP, || activation::log_softmax(float_tensor::<D>(t), dim).into_bridge())?)
        .map(Tensor::from_bridge)
}

/// Batched matrix product over the last two dims; batch dims broadcast.
pub fn matmul(a: &Tensor, b: &Tensor) -> OpResult {
    const OP: &str = "matmul";
    a.require_float(OP)?;
    b.require_float(OP)?;
    let (sa, sb) = (a.shape(), b.shape());
    let (Some((batch_a, n, k)), Some((batch_b, k2, m))) = (split_matrix(&sa), split_matrix(&sb))
    else {
        return Err(err(
            OP,
            format!("needs rank >= 2 on both sides, got {sa:?} x {sb:?}"),
        ));
    };
    if k != k2 {
        return Err(err(
            OP,
            format!("inner dimensions differ: {sa:?} x {sb:?} ({k} vs {k2})"),
        ));
    }
    let mut out = broadcast_shapes(OP, batch_a, batch_b)?;
    out.extend([n, m]);
    let outputs = check_shape(OP, &out)?;
    let work = outputs.checked_mul(k).filter(|w| *w <= super::MAX_WORK);
    if work.is_none() {
        return Err(err(
            OP,
            format!(
                "{sa:?} x {sb:?} is {outputs} outputs of {k} multiply-adds each, more than {} \
                 per op: split it into smaller products",
                super::MAX_WORK
            ),
        ));
    }
    let rank = out.len();
    let (a, b) = (
        with_leading_ones(OP, a, rank)?,
        with_leading_ones(OP, b, rank)?,
    );
    with_rank!(OP, rank, D => guarded(OP, || float_tensor::<D>(&a).matmul(float_tensor::<D>(&b)).into_bridge())?)
        .map(Tensor::from_bridge)
}

/// PyTorch's `nn.functional.linear`: `x [.., in] @ weight[out, in]ᵀ + bias [out]`, in one
/// call; the same ops (and numbers) as the transpose, product and sum one by one.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> OpResult {
    const OP: &str = "linear";
    let (sx, sw) = (x.shape(), weight.shape());
    let out = match (sx.last(), &sw[..]) {
        (Some(k), [out, k2]) if k == k2 && sx.len() >= 2 => *out,
        _ => {
            return Err(err(
                OP,
                format!("takes an input [.., in] and a weight [out, in], got {sx:?} and {sw:?}"),
            ));
        }
    };
    if let Some(b) = bias
        && b.shape() != [out]
    {
        return Err(err(
            OP,
            format!(
                "the bias must be [{out}] for a weight {sw:?}, got {:?}",
                b.shape()
            ),
        ));
    }
    let renamed = |e: TensorError| TensorError { op: OP, ..e };
    let y = matmul(x, &transpose(weight, 0, 1)?).map_err(renamed)?;
    match bias {
        Some(b) => add(&y, b).map_err(renamed),
        None => Ok(y),
    }
}

/// `(batch dims, rows, cols)` of a rank >= 2 shape.
fn split_matrix(shape: &[usize]) -> Option<(&[usize], usize, usize)> {
    match shape {
        [batch @ .., rows, cols] => Some((batch, *rows, *cols)),
        _ => None,
    }
}

/// Swaps two dims.
pub fn transpose(t: &Tensor, dim0: i32, dim1: i32) -> OpResult {
    const OP: &str = "transpose";
    let shape = t.shape();
    let (d0, d1) = (dim_index(OP, dim0, &shape)?, dim_index(OP, dim1, &shape)?);
    let bridge = match t.dtype() {
        DType::F32 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).swap_dims(d0, d1).into_bridge())?)?
        }
        DType::I64 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || int_tensor::<D>(t).swap_dims(d0, d1).into_bridge())?)?
        }
    };
    Ok(Tensor::from_bridge(bridge))
}

/// Same data in a new shape; one entry may be -1.
pub fn reshape(t: &Tensor, shape: &[i64]) -> OpResult {
    const OP: &str = "reshape";
    if shape.len() > MAX_RANK {
        return Err(err(
            OP,
            format!(
                "the new shape has rank {}, allowed 1 to {MAX_RANK}",
                shape.len()
            ),
        ));
    }
    let from = t.shape();
    let total = t.num_elements();
    let inferred: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == -1)
        .map(|(i, _)| i)
        .collect();
    if inferred.len() > 1 || shape.iter().any(|d| *d == 0 || *d < -1) {
        return Err(err(
            OP,
            format!("shape {shape:?} is invalid: dims must be >= 1, with at most one -1"),
        ));
    }
    let known: usize = shape
        .iter()
        .filter(|d| **d > 0)
        .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(*d).ok()?))
        .ok_or_else(|| err(OP, format!("shape {shape:?} is too large")))?;
    let to: Vec<usize> = shape
        .iter()
        .map(|d| {
            if *d == -1 {
                total / known.max(1)
            } else {
                *d as usize
            }
        })
        .collect();
    if known == 0 || to.iter().product::<usize>() != total {
        return Err(err(
            OP,
            format!("cannot reshape {from:?} ({total} elements) into {shape:?}"),
        ));
    }
    check_shape(OP, &to)?;
    reshape_to(OP, t, &to)
}

/// Merges dims `start..=end` into one.
pub fn flatten(t: &Tensor, start: i32, end: i32) -> OpResult {
    const OP: &str = "flatten";
    let shape = t.shape();
    let (s, e) = (dim_index(OP, start, &shape)?, dim_index(OP, end, &shape)?);
    if s > e {
        return Err(err(
            OP,
            format!("start dim {start} comes after end dim {end} for shape {shape:?}"),
        ));
    }
    let merged: usize = shape.iter().skip(s).take(e - s + 1).product();
    let to: Vec<usize> = shape
        .iter()
        .take(s)
        .copied()
        .chain([merged])
        .chain(shape.iter().skip(e + 1).copied())
        .collect();
    reshape_to(OP, t, &to)
}

// ---------------------------------------------------------------------------------------------
// Dropout and autodiff plumbing

/// Dropout with probability `p` in `[0, 1)`: with a random stream (a training step) each
/// element is zeroed with probability `p` and the rest scaled by `1 / (1 - p)`; without one it
/// is the identity.
pub fn dropout(device: &Device, t: &Tensor, p: f32, training: Option<&mut Rng>) -> OpResult {
    const OP: &str = "dropout";
    t.require_float(OP)?;
    if !(0.0..1.0).contains(&p) {
        return Err(err(OP, format!("p must be in [0, 1), got {p}")));
    }
    match training {
        Some(rng) if p > 0.0 => {
            let mask = from_f32(device, rng.dropout_mask(t.num_elements(), p), &t.shape())?;
            mul(t, &mask)
        }
        _ => Ok(t.clone()),
    }
}

/// The same values, cut from the autodiff graph: no gradient flows through the result, not
/// even to a parameter (Burn's `detach` alone keeps a leaf's `require_grad`).
pub fn detach(t: &Tensor) -> Tensor {
    match t.dtype() {
        DType::F32 => with_rank!("detach", t.rank(), D => float_tensor::<D>(t).detach().set_require_grad(false).into_bridge())
            .map(Tensor::from_bridge)
            .unwrap_or_else(|_| t.clone()),
        DType::I64 => t.clone(),
    }
}

/// Rows `start..end` of `t` (along dim 0), for batching.
pub fn rows(t: &Tensor, start: usize, end: usize) -> OpResult {
    const OP: &str = "rows";
    let shape = t.shape();
    let count = shape.first().copied().unwrap_or(0);
    if start >= end || end > count {
        return Err(err(
            OP,
            format!("rows {start}..{end} are out of range for shape {shape:?}"),
        ));
    }
    let bridge = match t.dtype() {
        DType::F32 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).narrow(0, start, end - start).into_bridge())?)?
        }
        DType::I64 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || int_tensor::<D>(t).narrow(0, start, end - start).into_bridge())?)?
        }
    };
    Ok(Tensor::from_bridge(bridge))
}

/// The rows of `t` (along dim 0) at `indices`, in that order: a shuffled batch.
pub fn select_rows(t: &Tensor, indices: &[usize]) -> OpResult {
    const OP: &str = "select-rows";
    let shape = t.shape();
    let count = shape.first().copied().unwrap_or(0);
    if indices.is_empty() || indices.iter().any(|i| *i >= count) {
        return Err(err(
            OP,
            format!("row indices must be 1 or more of 0..{count} for shape {shape:?}"),
        ));
    }
    let picked: Vec<i64> = indices.iter().map(|i| *i as i64).collect();
    let picked = TensorData::new(picked, Shape::from(vec![indices.len()]));
    let bridge = match t.dtype() {
        DType::F32 => with_rank!(OP, t.rank(), D => guarded(OP, || {
            let x = float_tensor::<D>(t);
            let index = BurnTensor::<1, Int>::from_data(picked, &x.device());
            x.select(0, index).into_bridge()
        })?)?,
        DType::I64 => with_rank!(OP, t.rank(), D => guarded(OP, || {
            let x = int_tensor::<D>(t);
            let index = BurnTensor::<1, Int>::from_data(picked, &x.device());
            x.select(0, index).into_bridge()
        })?)?,
    };
    Ok(Tensor::from_bridge(bridge))
}
