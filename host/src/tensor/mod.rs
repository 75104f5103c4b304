//! The host side of the WIT tensor interface: dynamically-ranked tensors on a Burn device.
//!
//! Burn 0.22 tensors are typed by rank (`Tensor<D>`) over a runtime [`Device`]. Guests work
//! with runtime ranks, so a [`Tensor`] here holds Burn's rank-less `BridgeTensor` and every op
//! re-types it with [`with_rank!`] for the duration of one Burn call. Burn panics on misuse, so
//! every op validates shapes, dims and dtypes first and returns a [`TensorError`] naming the op
//! and the shapes; [`guarded`] catches anything that still panics.
//!
//! Burn types stay inside this module: the rest of the host sees [`Tensor`], [`DType`] and
//! plain `Vec`s.

mod autodiff;
mod conv;
mod create;
mod fused_adam;
mod indexing;
mod loss;
mod norm;
mod ops;
mod optim;
mod pool;
mod random;
mod reduce;
mod schedule;

pub use autodiff::*;
pub use burn::tensor::Device;
pub use conv::*;
pub use create::*;
pub use indexing::*;
pub use loss::*;
pub use norm::*;
pub use ops::*;
pub use optim::*;
pub use random::{Init, Rng};
pub use reduce::*;
pub use schedule::*;

use burn::tensor::Tensor as BurnTensor;
use burn::tensor::kind::BridgeTensor;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Highest tensor rank a guest may use.
pub const MAX_RANK: usize = 6;

/// Largest element count of one tensor (256 MiB of f32).
pub const MAX_ELEMENTS: usize = 1 << 26;

/// Most multiply-adds (or compares) one host op may take: a matrix product, a convolution, a
/// pooling. A host op runs to its end once started — the run's deadline interrupts guest code
/// between host calls — so an op whose work grows faster than its output is bounded up front,
/// to well under a second on the CPU (`benches/README.md`, "The longest host calls"); every
/// other op does work in proportion to its input or output, which [`MAX_ELEMENTS`] bounds.
pub const MAX_WORK: usize = 1 << 34;

/// The CPU device used for training, with autodiff: Burn's flex backend (im2col + GEMM
/// convolutions, a SIMD GEMM, strided views; see `benches/README.md`).
pub fn cpu_device() -> Device {
    Device::flex().autodiff()
}

/// Whether `device` is the CPU backend, with or without autodiff.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// The wgpu adapter Burn knows as `adapter`, with autodiff. Lazy: nothing is initialised until
/// the first tensor is made on it.
#[cfg(feature = "wgpu")]
pub fn wgpu_device(adapter: crate::gpu::BurnDevice) -> Device {
    use crate::gpu::BurnDevice;
    use burn::tensor::DeviceKind;
    let kind = match adapter {
        BurnDevice::DiscreteGpu(n) => DeviceKind::DiscreteGpu(n),
        BurnDevice::IntegratedGpu(n) => DeviceKind::IntegratedGpu(n),
        BurnDevice::VirtualGpu(n) => DeviceKind::VirtualGpu(n),
        BurnDevice::Cpu => DeviceKind::Cpu,
    };
    Device::wgpu(kind).autodiff()
}

/// A named f32 array: a parameter's values, or a leaf of an optimizer's state.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedValues {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer.
    I64,
}

/// Why an op was refused: the op and a message naming the shapes or values involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct TensorError {
    /// The op's WIT name, e.g. `matmul`.
    pub op: &'static str,
    /// What was wrong.
    pub message: String,
}

impl TensorError {
    /// A new error for `op`.
    pub fn new(op: &'static str, message: impl Into<String>) -> Self {
        Self {
            op,
            message: message.into(),
        }
    }
}

/// A dynamically-ranked tensor on a Burn device (f32 or i64, rank 1 to [`MAX_RANK`]).
#[derive(Clone, Debug)]
pub struct Tensor {
    bridge: BridgeTensor,
}

impl Tensor {
    fn from_bridge(bridge: BridgeTensor) -> Self {
        Self { bridge }
    }

    /// Dimension sizes.
    pub fn shape(&self) -> Vec<usize> {
        self.bridge.shape().to_vec()
    }

    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.bridge.rank()
    }

    /// Number of elements.
    pub fn num_elements(&self) -> usize {
        self.bridge.shape().num_elements()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        if self.bridge.is_int() {
            DType::I64
        } else {
            DType::F32
        }
    }

    /// Bytes this tensor's elements occupy.
    pub fn size_in_bytes(&self) -> usize {
        let width = match self.dtype() {
            DType::F32 => 4,
            DType::I64 => 8,
        };
        self.num_elements().saturating_mul(width)
    }

    /// The device it lives on.
    pub fn device(&self) -> Result<Device, TensorError> {
        with_rank!("device", self.rank(), D => BurnTensor::<D>::from_bridge(self.bridge.clone()).device())
    }

    fn require_float(&self, op: &'static str) -> Result<BridgeTensor, TensorError> {
        match self.dtype() {
            DType::F32 => Ok(self.bridge.clone()),
            DType::I64 => Err(TensorError::new(
                op,
                format!("needs an f32 tensor, got i64 {:?}", self.shape()),
            )),
        }
    }
}

/// Runs `$body` with `$d` bound to the runtime rank `$rank` as a `const usize`, yielding
/// `Result<_, TensorError>` (an unsupported rank is an error, not a panic).
macro_rules! with_rank {
    ($op:expr, $rank:expr, $d:ident => $body:expr) => {
        match $rank {
            1 => {
                const $d: usize = 1;
                Ok($body)
            }
            2 => {
                const $d: usize = 2;
                Ok($body)
            }
            3 => {
                const $d: usize = 3;
                Ok($body)
            }
            4 => {
                const $d: usize = 4;
                Ok($body)
            }
            5 => {
                const $d: usize = 5;
                Ok($body)
            }
            6 => {
                const $d: usize = 6;
                Ok($body)
            }
            other => Err($crate::tensor::TensorError::new(
                $op,
                format!(
                    "rank {other} is not supported (1 to {})",
                    $crate::tensor::MAX_RANK
                ),
            )),
        }
    };
}
pub(crate) use with_rank;

/// Runs a Burn call, turning a panic that escaped validation into an error for `op`.
pub fn guarded<T>(op: &'static str, f: impl FnOnce() -> T) -> Result<T, TensorError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "the backend panicked".to_string());
        TensorError::new(op, format!("backend error: {message}"))
    })
}
