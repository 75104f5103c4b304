//! Where a run goes: `trainer.accelerator` and `trainer.devices`.

use crate::tools::accelerator::DeviceRequest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where tensors live: PyTorch Lightning's `accelerator` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    /// The CPU (Burn's flex backend).
    Cpu,
    /// A real GPU when there is one (never a software rasteriser), else the CPU.
    #[default]
    Auto,
    /// A GPU through wgpu, software ones (lavapipe) included.
    Gpu,
    /// A GPU through wgpu (explicitly).
    Wgpu,
    /// An NVIDIA GPU (through wgpu).
    Cuda,
    /// An Apple GPU (through wgpu).
    Mps,
}

impl Accelerator {
    /// The value as requests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
            Self::Mps => "mps",
        }
    }

    /// Every value.
    pub const ALL: [Self; 6] = [
        Self::Cpu,
        Self::Auto,
        Self::Gpu,
        Self::Wgpu,
        Self::Cuda,
        Self::Mps,
    ];
}

/// Which devices: a count (only 1 is supported), `"auto"`, or a list of adapter indices
/// (`[k]`: adapter k of `lightning.inspect` environment's `gpu_adapters`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Devices {
    /// A number of devices.
    Count(u32),
    /// Adapter indices.
    Indices(Vec<u32>),
    /// `"auto"`: one device.
    Named(String),
}

impl Devices {
    /// The device the request names: one, or GPU adapter k.
    pub(super) fn resolve(&self) -> Result<DeviceRequest, String> {
        match self {
            Self::Count(1) => Ok(DeviceRequest::One),
            Self::Named(name) if name == "auto" => Ok(DeviceRequest::One),
            Self::Indices(indices) => match indices.as_slice() {
                [k] => Ok(DeviceRequest::Adapter(*k as usize)),
                [] => Err("trainer.devices: the list of adapter indices is empty".into()),
                more => Err(format!(
                    "trainer.devices: training on {} devices is not supported yet; give one \
                     adapter index",
                    more.len()
                )),
            },
            Self::Count(0) => Err("trainer.devices must be at least 1".into()),
            Self::Count(n) => Err(format!(
                "trainer.devices: training on {n} devices is not supported yet; use 1"
            )),
            Self::Named(other) => Err(format!(
                "trainer.devices must be 1, \"auto\" or [adapter index], got {other:?}"
            )),
        }
    }
}
