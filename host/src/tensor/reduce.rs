//! Reductions: sums, means, maxima and arg-maxima, whole or along a dim.

use super::ops::{
    OpResult, broadcast_shapes, check_shape, dim_index, err, float_tensor, int_tensor, reshape_to,
    with_leading_ones,
};
use super::{DType, Tensor, guarded, with_rank};
use burn::tensor::Shape;

/// Sum of all elements, shape `[1]`.
pub fn sum(t: &Tensor) -> OpResult {
    const OP: &str = "sum";
    t.require_float(OP)?;
    with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).sum().into_bridge())?)
        .map(Tensor::from_bridge)
}

/// Mean of all elements, shape `[1]`.
pub fn mean(t: &Tensor) -> OpResult {
    const OP: &str = "mean";
    t.require_float(OP)?;
    with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).mean().into_bridge())?)
        .map(Tensor::from_bridge)
}

/// Removes the (size-1) reduced dim unless `keepdim`; a rank-1 result stays `[1]`.
fn finish_reduction(op: &'static str, reduced: Tensor, dim: usize, keepdim: bool) -> OpResult {
    let shape = reduced.shape();
    if keepdim || shape.len() == 1 {
        return Ok(reduced);
    }
    let to: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dim)
        .map(|(_, d)| *d)
        .collect();
    reshape_to(op, &reduced, &to)
}

macro_rules! dim_reduction {
    ($(#[$doc:meta])* $name:ident, $op:literal, |$x:ident, $dim:ident| $body:expr) => {
        $(#[$doc])*
        pub fn $name(t: &Tensor, dim: i32, keepdim: bool) -> OpResult {
            t.require_float($op)?;
            let $dim = dim_index($op, dim, &t.shape())?;
            let reduced = with_rank!($op, t.rank(), D => guarded($op, || {
                let $x = float_tensor::<D>(t);
                ($body).into_bridge()
            })?)
            .map(Tensor::from_bridge)?;
            finish_reduction($op, reduced, $dim, keepdim)
        }
    };
}

dim_reduction!(
    /// Sum over `dim`.
    sum_dim, "sum-dim", |x, dim| x.sum_dim(dim)
);
dim_reduction!(
    /// Mean over `dim`.
    mean_dim, "mean-dim", |x, dim| x.mean_dim(dim)
);
dim_reduction!(
    /// Maximum over `dim`.
    max_dim, "max-dim", |x, dim| x.max_dim(dim)
);
dim_reduction!(
    /// Index of the maximum over `dim` (i64).
    argmax, "argmax", |x, dim| x.argmax(dim)
);

/// Elementwise equality as f32 1.0 / 0.0; both operands the same dtype, broadcast.
pub fn equal(a: &Tensor, b: &Tensor) -> OpResult {
    const OP: &str = "equal";
    if a.dtype() != b.dtype() {
        return Err(err(
            OP,
            format!(
                "dtypes differ: {:?} {:?} vs {:?} {:?}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ),
        ));
    }
    let out = broadcast_shapes(OP, &a.shape(), &b.shape())?;
    check_shape(OP, &out)?;
    let rank = out.len();
    let (a, b) = (
        with_leading_ones(OP, a, rank)?,
        with_leading_ones(OP, b, rank)?,
    );
    let shape = Shape::from(out);
    let bridge = match a.dtype() {
        DType::F32 => with_rank!(OP, rank, D => guarded(OP, || {
            let (x, y) = (float_tensor::<D>(&a).expand::<D, _>(shape.clone()), float_tensor::<D>(&b).expand::<D, _>(shape.clone()));
            x.equal(y).float().into_bridge()
        })?)?,
        DType::I64 => with_rank!(OP, rank, D => guarded(OP, || {
            let (x, y) = (int_tensor::<D>(&a).expand::<D, _>(shape.clone()), int_tensor::<D>(&b).expand::<D, _>(shape.clone()));
            x.equal(y).float().into_bridge()
        })?)?,
    };
    Ok(Tensor::from_bridge(bridge))
}
