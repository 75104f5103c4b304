//! Slicing, joining and indexing ops of the WIT contract — `slice`, `cat`, `index-select`,
//! `gather`, `masked-fill`, `embedding`, `causal-mask` — validated before Burn sees them
//! (indices are read back and range-checked: an index out of range never reaches a kernel).

use super::create::to_i64;
use super::ops::{
    OpResult, broadcast_shapes, check_shape, dim_index, err, float_tensor, int_tensor, reshape_to,
    with_leading_ones,
};
use super::{DType, Device, Tensor, TensorError, from_f32, guarded, with_rank};
use burn::tensor::Tensor as BurnTensor;

/// Resolves a possibly negative position against `size` (PyTorch's slice bounds, clamped).
fn position(index: i64, size: usize) -> usize {
    let size = size as i64;
    let resolved = if index < 0 { size + index } else { index };
    resolved.clamp(0, size) as usize
}

/// Whether two shapes have the same rank and sizes, except perhaps in dim `d`.
fn same_but_in(a: &[usize], b: &[usize], d: usize) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .enumerate()
            .all(|(i, (x, y))| i == d || x == y)
}

/// Elements `start..end` of `dim`, as PyTorch's `x[..., start:end]` (negative bounds count
/// from the end; bounds are clamped; the result must not be empty).
pub fn slice(t: &Tensor, dim: i32, start: i64, end: i64) -> OpResult {
    const OP: &str = "slice";
    let shape = t.shape();
    let d = dim_index(OP, dim, &shape)?;
    let size = shape.get(d).copied().unwrap_or(0);
    let (from, to) = (position(start, size), position(end, size));
    if from >= to {
        return Err(err(
            OP,
            format!("{start}..{end} of dim {dim} (size {size}) of {shape:?} is empty"),
        ));
    }
    let bridge = match t.dtype() {
        DType::F32 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).narrow(d, from, to - from).into_bridge())?)?
        }
        DType::I64 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || int_tensor::<D>(t).narrow(d, from, to - from).into_bridge())?)?
        }
    };
    Ok(Tensor::from_bridge(bridge))
}

/// Most tensors one `cat` joins.
pub const MAX_CAT: usize = 1024;

/// Refuses a `cat` of more than [`MAX_CAT`] tensors (before their handles are looked up).
pub fn check_cat_count(count: usize) -> Result<(), TensorError> {
    if count > MAX_CAT {
        return Err(err(
            "cat",
            format!("joins at most {MAX_CAT} tensors at once, got {count}"),
        ));
    }
    Ok(())
}

/// `tensors` joined along `dim`: the same dtype and rank, the same sizes but in `dim`.
pub fn cat(tensors: &[Tensor], dim: i32) -> OpResult {
    const OP: &str = "cat";
    check_cat_count(tensors.len())?;
    let Some(first) = tensors.first() else {
        return Err(err(OP, "needs at least one tensor"));
    };
    let shape = first.shape();
    let d = dim_index(OP, dim, &shape)?;
    let mut joined = 0usize;
    for t in tensors {
        let other = t.shape();
        if t.dtype() != first.dtype() || !same_but_in(&other, &shape, d) {
            return Err(err(
                OP,
                format!(
                    "{:?} {other:?} does not join {:?} {shape:?} along dim {dim}",
                    t.dtype(),
                    first.dtype()
                ),
            ));
        }
        joined = joined.saturating_add(other.get(d).copied().unwrap_or(0));
    }
    let mut out = shape.clone();
    if let Some(size) = out.get_mut(d) {
        *size = joined;
    }
    check_shape(OP, &out)?;
    let bridge = match first.dtype() {
        DType::F32 => with_rank!(OP, first.rank(), D => guarded(OP, || {
            BurnTensor::cat(tensors.iter().map(float_tensor::<D>).collect(), d).into_bridge()
        })?)?,
        DType::I64 => with_rank!(OP, first.rank(), D => guarded(OP, || {
            BurnTensor::cat(tensors.iter().map(int_tensor::<D>).collect(), d).into_bridge()
        })?)?,
    };
    Ok(Tensor::from_bridge(bridge))
}

/// i64 `indices`' values, each checked to lie in `0..size`.
fn checked_indices(op: &'static str, indices: &Tensor, size: usize) -> Result<(), TensorError> {
    if indices.dtype() != DType::I64 {
        return Err(err(op, "indices must be i64"));
    }
    if let Some(bad) = to_i64(indices)?
        .into_iter()
        .find(|i| !(0..size as i64).contains(i))
    {
        return Err(err(op, format!("index {bad} is out of range 0..{size}")));
    }
    Ok(())
}

/// The entries of `dim` at i64 `indices` `[k]`, in that order (PyTorch's `index_select`).
pub fn index_select(t: &Tensor, dim: i32, indices: &Tensor) -> OpResult {
    const OP: &str = "index-select";
    let shape = t.shape();
    let d = dim_index(OP, dim, &shape)?;
    if indices.rank() != 1 {
        return Err(err(
            OP,
            format!("indices must be [k], got {:?}", indices.shape()),
        ));
    }
    checked_indices(OP, indices, shape.get(d).copied().unwrap_or(0))?;
    let mut out = shape.clone();
    if let Some(size) = out.get_mut(d) {
        *size = indices.num_elements();
    }
    check_shape(OP, &out)?;
    let index = || int_tensor::<1>(indices);
    let bridge = match t.dtype() {
        DType::F32 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || float_tensor::<D>(t).select(d, index()).into_bridge())?)?
        }
        DType::I64 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || int_tensor::<D>(t).select(d, index()).into_bridge())?)?
        }
    };
    Ok(Tensor::from_bridge(bridge))
}

/// PyTorch's `gather`: `out[i][j] = t[indices[i][j]][j]` along `dim`; `indices` (i64) has
/// `t`'s rank and its sizes, except in `dim`, where any size goes.
pub fn gather(t: &Tensor, dim: i32, indices: &Tensor) -> OpResult {
    const OP: &str = "gather";
    t.require_float(OP)?;
    let (shape, index_shape) = (t.shape(), indices.shape());
    let d = dim_index(OP, dim, &shape)?;
    if !same_but_in(&index_shape, &shape, d) {
        return Err(err(
            OP,
            format!("indices {index_shape:?} must match {shape:?} in every dim but {dim}"),
        ));
    }
    checked_indices(OP, indices, shape.get(d).copied().unwrap_or(0))?;
    with_rank!(OP, t.rank(), D => guarded(OP, || {
        float_tensor::<D>(t).gather(d, int_tensor::<D>(indices)).into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// `value` where the f32 `mask`, broadcast to `t`'s shape, is non-zero (PyTorch's
/// `masked_fill`; `value` may be ±infinity, not NaN).
pub fn masked_fill(t: &Tensor, mask: &Tensor, value: f32) -> OpResult {
    const OP: &str = "masked-fill";
    t.require_float(OP)?;
    mask.require_float(OP)?;
    if value.is_nan() {
        return Err(err(OP, "the fill value is NaN"));
    }
    let shape = t.shape();
    if broadcast_shapes(OP, &shape, &mask.shape())? != shape {
        return Err(err(
            OP,
            format!(
                "the mask {:?} must broadcast to the tensor's shape {shape:?}",
                mask.shape()
            ),
        ));
    }
    let mask = with_leading_ones(OP, mask, shape.len())?;
    with_rank!(OP, t.rank(), D => guarded(OP, || {
        let x = float_tensor::<D>(t);
        let fill = float_tensor::<D>(&mask).not_equal_elem(0.0).expand(x.shape());
        x.mask_fill(fill, value).into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// The rows of `weight` `[num, size]` at i64 `indices` of any shape: `indices ++ [size]`
/// (PyTorch's `F.embedding`).
pub fn embedding(indices: &Tensor, weight: &Tensor) -> OpResult {
    const OP: &str = "embedding";
    weight.require_float(OP)?;
    let [num, size] = weight.shape()[..] else {
        return Err(err(
            OP,
            format!("the weight must be [num, size], got {:?}", weight.shape()),
        ));
    };
    let mut out = indices.shape();
    out.push(size);
    check_shape(OP, &out)?;
    checked_indices(OP, indices, num)?;
    let flat = reshape_to(OP, indices, &[indices.num_elements()])?;
    let rows = guarded(OP, || {
        float_tensor::<2>(weight)
            .select(0, int_tensor::<1>(&flat))
            .into_bridge()
    })
    .map(Tensor::from_bridge)?;
    reshape_to(OP, &rows, &out)
}

/// An f32 `[size, size]` mask with 1.0 above the diagonal — the future positions a causal
/// model may not attend to, for `masked-fill` with -infinity — and 0.0 elsewhere.
pub fn causal_mask(device: &Device, size: usize) -> OpResult {
    const OP: &str = "causal-mask";
    check_shape(OP, &[size, size])?;
    let values = (0..size)
        .flat_map(|i| (0..size).map(move |j| if j > i { 1.0 } else { 0.0 }))
        .collect();
    from_f32(device, values, &[size, size])
}
