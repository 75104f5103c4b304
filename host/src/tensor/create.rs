//! Tensors made from guest data, constants and seeded noise, cast between dtypes, and read
//! back as numbers.

use super::ops::{OpResult, check_shape, err, float_tensor, int_tensor};
use super::{DType, Device, Rng, Tensor, TensorError, guarded, with_rank};
use burn::tensor::{Int, Shape, Tensor as BurnTensor, TensorData};

/// An f32 tensor from row-major data.
pub fn from_f32(device: &Device, data: Vec<f32>, shape: &[usize]) -> OpResult {
    const OP: &str = "from-f32";
    let data = shaped(OP, data, shape)?;
    with_rank!(OP, shape.len(), D => guarded(OP, || {
        BurnTensor::<D>::from_data(data, device).into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// An i64 tensor from row-major data.
pub fn from_i64(device: &Device, data: Vec<i64>, shape: &[usize]) -> OpResult {
    const OP: &str = "from-i64";
    let data = shaped(OP, data, shape)?;
    with_rank!(OP, shape.len(), D => guarded(OP, || {
        BurnTensor::<D, Int>::from_data(data, device).into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// Row-major `data` in `shape`, once the shape is checked and the data fills it exactly.
fn shaped<E: burn::tensor::Element>(
    op: &'static str,
    data: Vec<E>,
    shape: &[usize],
) -> Result<TensorData, TensorError> {
    let count = check_shape(op, shape)?;
    if data.len() != count {
        return Err(err(
            op,
            format!(
                "{} values do not fill shape {shape:?} ({count} elements)",
                data.len()
            ),
        ));
    }
    Ok(TensorData::new(data, Shape::from(shape.to_vec())))
}

fn filled(op: &'static str, device: &Device, shape: &[usize], value: f32) -> OpResult {
    let count = check_shape(op, shape)?;
    from_f32(device, vec![value; count], shape).map_err(|e| err(op, e.message))
}

/// Zeros of `shape`.
pub fn zeros(device: &Device, shape: &[usize]) -> OpResult {
    filled("zeros", device, shape, 0.0)
}

/// Ones of `shape`.
pub fn ones(device: &Device, shape: &[usize]) -> OpResult {
    filled("ones", device, shape, 1.0)
}

/// Standard normal samples from `seed`.
pub fn randn(device: &Device, shape: &[usize], seed: u64) -> OpResult {
    let count = check_shape("randn", shape)?;
    from_f32(device, Rng::seeded(seed).normal(count, 1.0), shape)
}

/// Uniform samples in `[low, high)` from `seed`.
pub fn uniform(device: &Device, shape: &[usize], low: f32, high: f32, seed: u64) -> OpResult {
    const OP: &str = "uniform";
    let count = check_shape(OP, shape)?;
    if !(low.is_finite() && high.is_finite() && low < high) {
        return Err(err(
            OP,
            format!("bounds must be finite with low < high, got [{low}, {high})"),
        ));
    }
    from_f32(device, Rng::seeded(seed).uniform(count, low, high), shape)
}

/// Row-major values as f32.
pub fn to_f32(t: &Tensor) -> Result<Vec<f32>, TensorError> {
    into_f32(t.clone())
}

/// Row-major values as f32, consuming `t`: when nothing else holds its buffer, the values are
/// taken out of it rather than copied.
pub fn into_f32(t: Tensor) -> Result<Vec<f32>, TensorError> {
    const OP: &str = "to-f32";
    let rank = t.rank();
    let data = match t.dtype() {
        DType::F32 => with_rank!(OP, rank, D => guarded(OP, || {
            BurnTensor::<D>::from_bridge(t.bridge).into_data()
        })?)?,
        DType::I64 => with_rank!(OP, rank, D => guarded(OP, || {
            BurnTensor::<D, Int>::from_bridge(t.bridge).into_data()
        })?)?,
    };
    data.try_into_vec_as::<f32>()
        .map_err(|e| err(OP, format!("{e:?}")))
}

/// Row-major values as i64 (f32 truncated toward zero).
pub fn to_i64(t: &Tensor) -> Result<Vec<i64>, TensorError> {
    const OP: &str = "to-i64";
    match t.dtype() {
        DType::F32 => Ok(to_f32(t)?.into_iter().map(|v| v as i64).collect()),
        DType::I64 => {
            with_rank!(OP, t.rank(), D => guarded(OP, || int_tensor::<D>(t).into_data())?)?
                .try_into_vec_as::<i64>()
                .map_err(|e| err(OP, format!("{e:?}")))
        }
    }
}

/// The largest f32 below 2³¹ (2³¹ - 128): where a cast to i64 saturates, the same on every
/// backend (a GPU clamps there, the CPU at 2³¹ - 1).
const LARGEST_F32_IN_I32: f32 = 2_147_483_520.0;

/// `t` as `dtype`, on its device: f32 to i64 truncates toward zero (NaN becomes 0, values
/// beyond ±2³¹ saturate, at -2³¹ and 2³¹ - 128: the backends hold integers in 32 bits), i64 to f32 rounds to the
/// nearest f32; to its own dtype, `t` itself. A cast to i64 leaves the autodiff graph; one to
/// f32 starts untracked.
pub fn cast(t: &Tensor, dtype: DType) -> OpResult {
    const OP: &str = "cast";
    match (t.dtype(), dtype) {
        (DType::F32, DType::I64) => with_rank!(OP, t.rank(), D => guarded(OP, || {
            let x = float_tensor::<D>(t);
            let nan = x.clone().is_nan();
            x.mask_fill(nan, 0.0)
                .clamp(i32::MIN as f32, LARGEST_F32_IN_I32)
                .int()
                .into_bridge()
        })?)
        .map(Tensor::from_bridge),
        (DType::I64, DType::F32) => with_rank!(OP, t.rank(), D => guarded(OP, || {
            int_tensor::<D>(t).float().into_bridge()
        })?)
        .map(Tensor::from_bridge),
        (DType::F32, DType::F32) | (DType::I64, DType::I64) => Ok(t.clone()),
    }
}

/// The single value of a one-element f32 tensor.
pub fn to_scalar(op: &'static str, t: &Tensor) -> Result<f32, TensorError> {
    if t.num_elements() != 1 {
        return Err(err(
            op,
            format!("expected a one-element tensor, got shape {:?}", t.shape()),
        ));
    }
    to_f32(t)?
        .first()
        .copied()
        .ok_or_else(|| err(op, "empty tensor"))
}
