//! [`Tensor`]: a handle to a tensor on the host, with `Result`-returning ops and operators.

use crate::naming;
use crate::wit::lightning::model::{log as raw_log, params as raw_params, tensors as raw};
use crate::{Error, Result};
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::rc::Rc;

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (labels, indices).
    I64,
}

/// Options of [`Tensor::conv2d`], each `(height, width)`; the default is PyTorch's: stride 1,
/// no padding, dilation 1, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step of the kernel.
    pub stride: (u32, u32),
    /// Zeros added on each side.
    pub padding: (u32, u32),
    /// Spacing of the kernel's cells.
    pub dilation: (u32, u32),
    /// Channel groups.
    pub groups: u32,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Options of [`Tensor::max_pool2d`] and [`Tensor::avg_pool2d`], each `(height, width)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window size.
    pub kernel: (u32, u32),
    /// Step of the window.
    pub stride: (u32, u32),
    /// Cells added on each side, at most half the kernel.
    pub padding: (u32, u32),
    /// Spacing of the window's cells (`avg_pool2d` takes 1 only).
    pub dilation: (u32, u32),
}

impl Pool2dOptions {
    /// A `kernel` window with PyTorch's defaults: stride the kernel size, no padding,
    /// dilation 1.
    pub fn new(kernel: (u32, u32)) -> Self {
        Self {
            kernel,
            stride: kernel,
            padding: (0, 0),
            dilation: (1, 1),
        }
    }
}

impl From<Pool2dOptions> for raw::Pool2dOptions {
    fn from(o: Pool2dOptions) -> Self {
        Self {
            kernel: o.kernel,
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
        }
    }
}

/// A tensor that lives on the host. Every op runs there, in Burn, with autodiff.
///
/// Cloning it is cheap: the clones share one host handle (no host call, no copy), and dropping
/// the last one frees the host memory. Dims may be negative (counted from the end).
///
/// ```no_run
/// use lightning_mcp_guest_sdk::{Result, Tensor};
///
/// fn example() -> Result<Tensor> {
///     let x = Tensor::from_f32(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
///     let y = (&x * 2.0)?.relu()?; // operators return Result too
///     let skip = x.clone(); // a second handle to the same host tensor
///     (y + skip)?.mean() // shape [1]
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Tensor(Rc<raw::Tensor>);

fn dims(shape: &[usize]) -> Result<Vec<u32>> {
    shape
        .iter()
        .map(|d| u32::try_from(*d).map_err(|_| Error::new(format!("dim {d} is too large"))))
        .collect()
}

impl Tensor {
    pub(crate) fn from_raw(raw: raw::Tensor) -> Self {
        Self(Rc::new(raw))
    }

    /// The handle to give the host: this tensor's own, or a new handle to the same values
    /// while clones of it live on.
    pub(crate) fn into_raw(self) -> Result<raw::Tensor> {
        match Rc::try_unwrap(self.0) {
            Ok(raw) => Ok(raw),
            Err(shared) => shared.cast(shared.dtype()).map_err(Error::from),
        }
    }

    fn wrap(r: Result<raw::Tensor, raw::TensorError>) -> Result<Self> {
        r.map(Self::from_raw).map_err(Error::from)
    }

    /// An f32 tensor from row-major `data`.
    pub fn from_f32(data: &[f32], shape: &[usize]) -> Result<Self> {
        Self::wrap(raw::Tensor::from_f32(data, &dims(shape)?))
    }

    /// An i64 tensor (e.g. class labels) from row-major `data`.
    pub fn from_i64(data: &[i64], shape: &[usize]) -> Result<Self> {
        Self::wrap(raw::Tensor::from_i64(data, &dims(shape)?))
    }

    /// Zeros.
    pub fn zeros(shape: &[usize]) -> Result<Self> {
        Self::wrap(raw::Tensor::zeros(&dims(shape)?))
    }

    /// Ones.
    pub fn ones(shape: &[usize]) -> Result<Self> {
        Self::wrap(raw::Tensor::ones(&dims(shape)?))
    }

    /// Standard normal samples; the same seed gives the same values.
    pub fn randn(shape: &[usize], seed: u64) -> Result<Self> {
        Self::wrap(raw::Tensor::randn(&dims(shape)?, seed))
    }

    /// Uniform samples in `[low, high)`; the same seed gives the same values.
    pub fn uniform(shape: &[usize], low: f32, high: f32, seed: u64) -> Result<Self> {
        Self::wrap(raw::Tensor::uniform(&dims(shape)?, low, high, seed))
    }

    /// Dimension sizes.
    pub fn shape(&self) -> Vec<usize> {
        self.0.shape().into_iter().map(|d| d as usize).collect()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self.0.dtype() {
            raw::Dtype::F32 => DType::F32,
            raw::Dtype::I64 => DType::I64,
        }
    }

    /// Row-major values as f32.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        self.0.to_f32().map_err(Error::from)
    }

    /// Row-major values as i64.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        self.0.to_i64().map_err(Error::from)
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        match self.to_f32_vec()?.as_slice() {
            [v] => Ok(*v),
            other => Err(Error::new(format!(
                "item: expected one element, got {}",
                other.len()
            ))),
        }
    }

    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.add(&other.0))
    }
    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.sub(&other.0))
    }
    /// `self * other`, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.mul(&other.0))
    }
    /// `self / other`, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.div(&other.0))
    }
    /// `self ^ exponent`, broadcasting.
    pub fn pow(&self, exponent: &Tensor) -> Result<Self> {
        Self::wrap(self.0.pow(&exponent.0))
    }
    /// `self + value`.
    pub fn add_scalar(&self, value: f32) -> Result<Self> {
        Self::wrap(self.0.add_scalar(value))
    }
    /// `self - value`.
    pub fn sub_scalar(&self, value: f32) -> Result<Self> {
        Self::wrap(self.0.sub_scalar(value))
    }
    /// `self * value`.
    pub fn mul_scalar(&self, value: f32) -> Result<Self> {
        Self::wrap(self.0.mul_scalar(value))
    }
    /// `self / value`.
    pub fn div_scalar(&self, value: f32) -> Result<Self> {
        Self::wrap(self.0.div_scalar(value))
    }
    /// `self ^ exponent`.
    pub fn pow_scalar(&self, exponent: f32) -> Result<Self> {
        Self::wrap(self.0.pow_scalar(exponent))
    }
    /// `-self`.
    pub fn neg(&self) -> Result<Self> {
        Self::wrap(self.0.neg())
    }
    /// `e ^ self`.
    pub fn exp(&self) -> Result<Self> {
        Self::wrap(self.0.exp())
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Self> {
        Self::wrap(self.0.log())
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Self> {
        Self::wrap(self.0.sqrt())
    }

    /// Matrix product over the last two dims (batch dims broadcast):
    /// `[.., n, k] x [.., k, m] -> [.., n, m]`.
    pub fn matmul(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.matmul(&other.0))
    }
    /// PyTorch's `nn.functional.linear`: `self [.., in] @ weight [out, in]`ᵀ `+ bias [out]`,
    /// in one host call.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        Self::wrap(self.0.linear(&weight.0, bias.map(|b| &*b.0)))
    }
    /// Swaps two dims.
    pub fn transpose(&self, dim0: i32, dim1: i32) -> Result<Self> {
        Self::wrap(self.0.transpose(dim0, dim1))
    }
    /// New shape, same data; one entry may be -1.
    pub fn reshape(&self, shape: &[i64]) -> Result<Self> {
        Self::wrap(self.0.reshape(shape))
    }
    /// Merges dims `start..=end`.
    pub fn flatten(&self, start: i32, end: i32) -> Result<Self> {
        Self::wrap(self.0.flatten(start, end))
    }

    /// `max(self, 0)`.
    pub fn relu(&self) -> Result<Self> {
        Self::wrap(self.0.relu())
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Self> {
        Self::wrap(self.0.sigmoid())
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Self> {
        Self::wrap(self.0.tanh())
    }
    /// GELU (erf form).
    pub fn gelu(&self) -> Result<Self> {
        Self::wrap(self.0.gelu())
    }
    /// Softmax over `dim`.
    pub fn softmax(&self, dim: i32) -> Result<Self> {
        Self::wrap(self.0.softmax(dim))
    }
    /// Log-softmax over `dim`.
    pub fn log_softmax(&self, dim: i32) -> Result<Self> {
        Self::wrap(self.0.log_softmax(dim))
    }

    /// Sum of all elements, shape `[1]`.
    pub fn sum(&self) -> Result<Self> {
        Self::wrap(self.0.sum())
    }
    /// Sum over `dim`.
    pub fn sum_dim(&self, dim: i32, keepdim: bool) -> Result<Self> {
        Self::wrap(self.0.sum_dim(dim, keepdim))
    }
    /// Mean of all elements, shape `[1]`.
    pub fn mean(&self) -> Result<Self> {
        Self::wrap(self.0.mean())
    }
    /// Mean over `dim`.
    pub fn mean_dim(&self, dim: i32, keepdim: bool) -> Result<Self> {
        Self::wrap(self.0.mean_dim(dim, keepdim))
    }
    /// Maximum over `dim`.
    pub fn max_dim(&self, dim: i32, keepdim: bool) -> Result<Self> {
        Self::wrap(self.0.max_dim(dim, keepdim))
    }
    /// Index of the maximum over `dim` (i64).
    pub fn argmax(&self, dim: i32, keepdim: bool) -> Result<Self> {
        Self::wrap(self.0.argmax(dim, keepdim))
    }
    /// Elementwise `self == other` as f32 1.0 / 0.0, broadcasting.
    pub fn equal(&self, other: &Tensor) -> Result<Self> {
        Self::wrap(self.0.equal(&other.0))
    }

    /// Mean cross-entropy of logits `[n, classes]` against i64 labels `[n]`.
    pub fn cross_entropy(&self, targets: &Tensor) -> Result<Self> {
        Self::wrap(self.0.cross_entropy(&targets.0))
    }
    /// 2-D convolution of `[n, c_in, h, w]` with `weight` `[c_out, c_in / groups, kh, kw]` and
    /// an optional `bias` `[c_out]`, as PyTorch's `conv2d`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        options: Conv2dOptions,
    ) -> Result<Self> {
        let options = raw::Conv2dOptions {
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups: options.groups,
        };
        Self::wrap(self.0.conv2d(&weight.0, bias.map(|b| &*b.0), options))
    }
    /// 2-D max pooling of `[n, c, h, w]`, as PyTorch's `max_pool2d`.
    pub fn max_pool2d(&self, options: Pool2dOptions) -> Result<Self> {
        Self::wrap(self.0.max_pool2d(options.into()))
    }
    /// 2-D average pooling of `[n, c, h, w]`, as PyTorch's `avg_pool2d` (padded cells count).
    pub fn avg_pool2d(&self, options: Pool2dOptions) -> Result<Self> {
        Self::wrap(self.0.avg_pool2d(options.into()))
    }
    /// Average pooling of `[n, c, h, w]` to `[n, c, height, width]`.
    pub fn adaptive_avg_pool2d(&self, height: u32, width: u32) -> Result<Self> {
        Self::wrap(self.0.adaptive_avg_pool2d(height, width))
    }
    /// Elements `start..end` of `dim`, as PyTorch's `x[..., start:end]` (negative bounds
    /// count from the end).
    pub fn slice(&self, dim: i32, start: i64, end: i64) -> Result<Self> {
        Self::wrap(self.0.slice(dim, start, end))
    }
    /// `tensors` joined along `dim` (PyTorch's `cat`).
    pub fn cat(tensors: &[&Tensor], dim: i32) -> Result<Self> {
        let raw: Vec<&raw::Tensor> = tensors.iter().map(|t| &*t.0).collect();
        Self::wrap(raw::Tensor::cat(&raw, dim))
    }
    /// The entries of `dim` at i64 `indices` `[k]` (PyTorch's `index_select`).
    pub fn index_select(&self, dim: i32, indices: &Tensor) -> Result<Self> {
        Self::wrap(self.0.index_select(dim, &indices.0))
    }
    /// PyTorch's `gather` along `dim` with i64 `indices`.
    pub fn gather(&self, dim: i32, indices: &Tensor) -> Result<Self> {
        Self::wrap(self.0.gather(dim, &indices.0))
    }
    /// `value` where the f32 `mask` (broadcast to this shape) is non-zero (PyTorch's
    /// `masked_fill`).
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Self> {
        Self::wrap(self.0.masked_fill(&mask.0, value))
    }
    /// For i64 indices: the rows of `weight` `[num, size]` at them, shape `indices ++ [size]`
    /// (PyTorch's `F.embedding`).
    pub fn embedding(&self, weight: &Tensor) -> Result<Self> {
        Self::wrap(self.0.embedding(&weight.0))
    }
    /// Layer normalisation over the last dim `d`, as PyTorch's `F.layer_norm(x, [d], weight,
    /// bias, eps)`; `weight` and `bias` are `[d]` (absent: 1 and 0).
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Self> {
        Self::wrap(
            self.0
                .layer_norm(weight.map(|w| &*w.0), bias.map(|b| &*b.0), eps),
        )
    }
    /// Batch normalisation over dim 1 of `[n, c, ...]`, as PyTorch's `F.batch_norm`: in a
    /// training step with the batch's statistics, updating the [`buffer`]s `running_mean` and
    /// `running_var` `[c]` on the host (`momentum` weighs the batch); otherwise with them.
    pub fn batch_norm(
        &self,
        running_mean: &Tensor,
        running_var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        momentum: f32,
        eps: f32,
    ) -> Result<Self> {
        Self::wrap(self.0.batch_norm(
            &running_mean.0,
            &running_var.0,
            weight.map(|w| &*w.0),
            bias.map(|b| &*b.0),
            momentum,
            eps,
        ))
    }
    /// An f32 `[size, size]` mask, 1.0 above the diagonal: the positions a causal model must
    /// not attend to (`masked_fill` them with `f32::NEG_INFINITY`).
    pub fn causal_mask(size: u32) -> Result<Self> {
        Self::wrap(raw::Tensor::causal_mask(size))
    }
    /// Mean squared error against a target of the same shape.
    pub fn mse(&self, target: &Tensor) -> Result<Self> {
        Self::wrap(self.0.mse(&target.0))
    }
    /// Dropout with probability `p` during training steps; the identity otherwise.
    pub fn dropout(&self, p: f32) -> Result<Self> {
        Self::wrap(self.0.dropout(p))
    }
    /// The same values without gradient tracking.
    pub fn detach(&self) -> Self {
        Self::from_raw(self.0.detach())
    }

    /// The same values as `dtype`, on the host: f32 to i64 truncates toward zero (NaN becomes
    /// 0, values beyond ±2³¹ saturate at -2³¹ and 2³¹ - 128), i64 to f32 rounds to the nearest
    /// f32. Casting to i64 leaves the autodiff graph.
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        let dtype = match dtype {
            DType::F32 => raw::Dtype::F32,
            DType::I64 => raw::Dtype::I64,
        };
        Self::wrap(self.0.cast(dtype))
    }

    /// Fraction of rows whose argmax over the last dim equals the i64 `labels`, shape `[1]`.
    pub fn accuracy(&self, labels: &Tensor) -> Result<Self> {
        Self::wrap(self.0.accuracy(&labels.0))
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                Tensor::$method(self, rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                Tensor::$method(&self, &rhs)
            }
        }
        impl $trait<f32> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                Tensor::$scalar(self, rhs)
            }
        }
        impl $trait<f32> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: f32) -> Result<Tensor> {
                Tensor::$scalar(&self, rhs)
            }
        }
    };
}

binary_operator!(Add, add, add_scalar);
binary_operator!(Sub, sub, sub_scalar);
binary_operator!(Mul, mul, mul_scalar);
binary_operator!(Div, div, div_scalar);

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

/// How a parameter's initial values are drawn (from the run's seed, PyTorch's fans).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
    /// Uniform in `[low, high)`.
    Uniform(f32, f32),
    /// He/Kaiming uniform: bound `sqrt(6 / fan_in)`.
    KaimingUniform,
    /// Glorot/Xavier uniform: bound `sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
}

/// Declares a trainable parameter named `name` (unique, like `layer1.weight`; inside a
/// [`scope`](crate::nn::scope), after the scope's path).
///
/// Only valid while [`LightningModule::new`](crate::LightningModule::new) runs.
pub fn parameter(name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
    let name = naming::qualified(name);
    Tensor::wrap(raw_params::parameter(&name, &dims(shape)?, raw_init(init)))
}

/// Declares a buffer named `name`: state that checkpoints save with the parameters but that
/// is not trained (like PyTorch's `register_buffer`): batch-norm's running statistics. A
/// buffer changes only through [`Tensor::batch_norm`] in a training step and when a
/// checkpoint is loaded; a guest cannot write to it otherwise.
///
/// Only valid while [`LightningModule::new`](crate::LightningModule::new) runs.
pub fn buffer(name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
    let name = naming::qualified(name);
    Tensor::wrap(raw_params::buffer(&name, &dims(shape)?, raw_init(init)))
}

fn raw_init(init: Init) -> raw_params::Init {
    match init {
        Init::Zeros => raw_params::Init::Zeros,
        Init::Ones => raw_params::Init::Ones,
        Init::Normal(std) => raw_params::Init::Normal(std),
        Init::Uniform(low, high) => raw_params::Init::Uniform((low, high)),
        Init::KaimingUniform => raw_params::Init::KaimingUniform,
        Init::XavierUniform => raw_params::Init::XavierUniform,
    }
}

/// Logs a scalar for this step; the host reports the epoch mean.
///
/// `name` is 1 to 128 characters of `[A-Za-z0-9_.]` and not `epoch` or `step` (columns of
/// `metrics.csv`); another name, more than 256 values in a step or more than 256 names in a
/// run fail the hook that logged it, with the reason.
pub fn log(name: &str, value: f32) {
    raw_log::log(name, value);
}

/// Logs a one-element tensor (such as a loss) for this step.
pub fn log_tensor(name: &str, value: &Tensor) -> Result<()> {
    raw_log::log_tensor(name, &value.0).map_err(Error::from)
}
