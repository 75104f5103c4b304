//! Which device a run gets: PyTorch Lightning's `accelerator` and `devices`, resolved against
//! the GPU adapters this machine has (probed on first need, see [`crate::gpu`]).

use super::args::Accelerator;
use crate::gpu::{Adapter, Adapters, NVIDIA};
use crate::tensor::{self, Device};
use schemars::JsonSchema;
use serde::Serialize;

/// The `devices` a run asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// One device, the accelerator's best (`1` or `"auto"`).
    #[default]
    One,
    /// The adapter with this index in `lightning.inspect` environment's `gpu_adapters`
    /// (`[index]`).
    Adapter(usize),
}

/// Where a run executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the server, on Burn's CPU backend (flex).
    Cpu,
    /// On this adapter, through Burn's wgpu backend (in a worker process, see
    /// [`super::worker`]).
    Gpu(Adapter),
}

/// The device a run used, as its result reports it.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct DeviceReport {
    /// `cpu` or `gpu`.
    pub accelerator: &'static str,
    /// Burn's backend: `flex` or `wgpu`.
    pub backend: &'static str,
    /// `cpu`, or the adapter's name (e.g. `NVIDIA GeForce RTX 4090`, `llvmpipe (LLVM 15.0.6,
    /// 256 bits)`).
    pub name: String,
    /// The adapter's index in `lightning.inspect` environment's `gpu_adapters`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter_index: Option<usize>,
    /// The graphics API: `Vulkan`, `Metal`, `Dx12` or `Gl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphics_api: Option<String>,
    /// The adapter's type: `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, or `Cpu` for a
    /// software rasteriser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

impl Placement {
    /// The Burn device tensors live on, with autodiff.
    pub fn device(&self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(tensor::cpu_device()),
            Self::Gpu(adapter) => gpu_device(adapter),
        }
    }

    /// What the run's result says about its device.
    pub fn report(&self) -> DeviceReport {
        match self {
            Self::Cpu => DeviceReport {
                accelerator: "cpu",
                backend: "flex",
                name: "cpu".into(),
                adapter_index: None,
                graphics_api: None,
                device_type: None,
            },
            Self::Gpu(adapter) => DeviceReport {
                accelerator: "gpu",
                backend: "wgpu",
                name: adapter.name.clone(),
                adapter_index: Some(adapter.index),
                graphics_api: Some(adapter.backend.clone()),
                device_type: Some(adapter.device_type.clone()),
            },
        }
    }
}

#[cfg(feature = "wgpu")]
fn gpu_device(adapter: &Adapter) -> Result<Device, String> {
    adapter
        .burn_device
        .map(tensor::wgpu_device)
        .ok_or_else(|| format!("{}: Burn's wgpu backend cannot use it", describe(adapter)))
}

#[cfg(not(feature = "wgpu"))]
fn gpu_device(_: &Adapter) -> Result<Device, String> {
    Err("this build has no GPU backend (built without the `wgpu` feature)".into())
}

/// Resolves `accelerator` and `devices`; `adapters` is asked only when a GPU may be used.
pub fn place(
    accelerator: Accelerator,
    devices: DeviceRequest,
    adapters: impl FnOnce() -> &'static Adapters,
) -> Result<Placement, String> {
    let name = accelerator.name();
    if accelerator == Accelerator::Cpu {
        return match devices {
            DeviceRequest::One => Ok(Placement::Cpu),
            DeviceRequest::Adapter(_) => Err(
                "trainer.devices: an adapter index ([k]) selects a GPU adapter; with \
                 accelerator \"cpu\" use devices: 1"
                    .into(),
            ),
        };
    }
    let found = match adapters() {
        Adapters::Found(found) => found,
        Adapters::Unavailable(_) if accelerator == Accelerator::Auto => {
            return match devices {
                DeviceRequest::One => Ok(Placement::Cpu),
                DeviceRequest::Adapter(k) => Err(format!(
                    "trainer.devices [{k}]: this server can use no GPU adapter"
                )),
            };
        }
        Adapters::Unavailable(why) => {
            return Err(format!(
                "trainer.accelerator \"{name}\" is not available: {why}; use \"cpu\""
            ));
        }
    };
    match devices {
        DeviceRequest::Adapter(k) => adapter_k(accelerator, found, k),
        DeviceRequest::One => best_adapter(accelerator, found),
    }
}

/// Whether `adapter` is what `accelerator` asks for.
fn fits(accelerator: Accelerator, adapter: &Adapter) -> bool {
    match accelerator {
        Accelerator::Cuda => adapter.vendor == NVIDIA,
        Accelerator::Mps => adapter.backend == "Metal",
        Accelerator::Cpu | Accelerator::Auto | Accelerator::Gpu | Accelerator::Wgpu => true,
    }
}

/// Adapter `k` of `found`, which must be usable and what `accelerator` asks for.
fn adapter_k(accelerator: Accelerator, found: &[Adapter], k: usize) -> Result<Placement, String> {
    let adapter = found.iter().find(|a| a.index == k).ok_or_else(|| {
        format!(
            "trainer.devices [{k}]: there is no adapter {k}; lightning.inspect environment \
             lists {}",
            listing(found)
        )
    })?;
    if adapter.burn_device.is_none() {
        return Err(format!(
            "trainer.devices [{k}]: {} cannot be used by Burn's wgpu backend, which runs on \
             one graphics API per machine; usable: {}",
            describe(adapter),
            listing(&usable(found).cloned().collect::<Vec<_>>())
        ));
    }
    if !fits(accelerator, adapter) {
        return Err(format!(
            "trainer.devices [{k}]: {} is not {}",
            describe(adapter),
            wanted(accelerator)
        ));
    }
    Ok(Placement::Gpu(adapter.clone()))
}

/// The best usable adapter `accelerator` takes: a discrete GPU first, a software rasteriser
/// last; `auto` takes real GPUs only (lavapipe is slower than the CPU backend), and falls back
/// to the CPU.
fn best_adapter(accelerator: Accelerator, found: &[Adapter]) -> Result<Placement, String> {
    let best = usable(found)
        .filter(|a| fits(accelerator, a))
        .filter(|a| accelerator != Accelerator::Auto || a.is_hardware())
        .min_by_key(|a| {
            let rank = ["DiscreteGpu", "IntegratedGpu", "VirtualGpu"]
                .iter()
                .position(|t| *t == a.device_type)
                .unwrap_or(3);
            (rank, a.index)
        });
    match (best, accelerator) {
        (Some(adapter), _) => Ok(Placement::Gpu(adapter.clone())),
        (None, Accelerator::Auto) => Ok(Placement::Cpu),
        (None, _) => Err(format!(
            "trainer.accelerator \"{}\" needs {}, and none is usable here (adapters: {}); \
             use \"cpu\"",
            accelerator.name(),
            wanted(accelerator),
            listing(found)
        )),
    }
}

/// The adapters Burn can run on.
fn usable(found: &[Adapter]) -> impl Iterator<Item = &Adapter> {
    found.iter().filter(|a| a.burn_device.is_some())
}

/// What an accelerator value needs.
fn wanted(accelerator: Accelerator) -> &'static str {
    match accelerator {
        Accelerator::Cuda => "an NVIDIA adapter (run through wgpu)",
        Accelerator::Mps => "an adapter on Metal (run through wgpu)",
        _ => "a GPU adapter",
    }
}

/// `0: llvmpipe (Vulkan, Cpu)`.
fn describe(adapter: &Adapter) -> String {
    format!(
        "adapter {}: {} ({}, {})",
        adapter.index, adapter.name, adapter.backend, adapter.device_type
    )
}

/// Every adapter described, or `none`.
fn listing(adapters: &[Adapter]) -> String {
    if adapters.is_empty() {
        return "none".into();
    }
    adapters.iter().map(describe).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::BurnDevice;

    fn adapter(index: usize, name: &str, backend: &str, kind: &str, vendor: u32) -> Adapter {
        Adapter {
            index,
            name: name.into(),
            backend: backend.into(),
            device_type: kind.into(),
            driver: String::new(),
            driver_info: String::new(),
            vendor,
            burn_device: None,
        }
    }

    fn leak(adapters: Adapters) -> &'static Adapters {
        Box::leak(Box::new(adapters))
    }

    /// lavapipe on Vulkan (usable) and on GL (not: Burn settled on Vulkan).
    fn lavapipe_only() -> &'static Adapters {
        let mut vulkan = adapter(0, "llvmpipe", "Vulkan", "Cpu", 0x10005);
        vulkan.burn_device = Some(BurnDevice::Cpu);
        leak(Adapters::Found(vec![
            vulkan,
            adapter(1, "llvmpipe", "Gl", "Cpu", 0x10005),
        ]))
    }

    /// An NVIDIA GPU beside an Intel one and lavapipe.
    fn workstation() -> &'static Adapters {
        let mut intel = adapter(0, "Intel UHD", "Vulkan", "IntegratedGpu", 0x8086);
        intel.burn_device = Some(BurnDevice::IntegratedGpu(0));
        let mut nvidia = adapter(1, "RTX 4090", "Vulkan", "DiscreteGpu", NVIDIA);
        nvidia.burn_device = Some(BurnDevice::DiscreteGpu(0));
        let mut lavapipe = adapter(2, "llvmpipe", "Vulkan", "Cpu", 0x10005);
        lavapipe.burn_device = Some(BurnDevice::Cpu);
        leak(Adapters::Found(vec![intel, nvidia, lavapipe]))
    }

    fn gpu_name(placement: Result<Placement, String>) -> String {
        match placement {
            Ok(Placement::Gpu(a)) => a.name,
            other => panic!("{other:?}"),
        }
    }

    fn error(placement: Result<Placement, String>) -> String {
        placement.expect_err("the placement is refused")
    }

    #[test]
    fn auto_takes_a_real_gpu_and_never_a_software_one() {
        let one = DeviceRequest::One;
        assert_eq!(
            place(Accelerator::Auto, one, lavapipe_only),
            Ok(Placement::Cpu)
        );
        assert_eq!(
            gpu_name(place(Accelerator::Auto, one, workstation)),
            "RTX 4090"
        );
        let unavailable = || leak(Adapters::Unavailable("no wgpu".into()));
        assert_eq!(
            place(Accelerator::Auto, one, unavailable),
            Ok(Placement::Cpu)
        );
    }

    #[test]
    fn cpu_never_probes() {
        let probe = || -> &'static Adapters { panic!("probed") };
        assert_eq!(
            place(Accelerator::Cpu, DeviceRequest::One, probe),
            Ok(Placement::Cpu)
        );
        let e = error(place(Accelerator::Cpu, DeviceRequest::Adapter(0), probe));
        assert!(e.contains("devices: 1"), "{e}");
    }

    #[test]
    fn gpu_takes_any_usable_adapter_best_first() {
        for accelerator in [Accelerator::Gpu, Accelerator::Wgpu] {
            let one = DeviceRequest::One;
            assert_eq!(gpu_name(place(accelerator, one, lavapipe_only)), "llvmpipe");
            assert_eq!(gpu_name(place(accelerator, one, workstation)), "RTX 4090");
        }
        let e = error(place(Accelerator::Gpu, DeviceRequest::One, || {
            leak(Adapters::Unavailable(
                "this build has no GPU backend".into(),
            ))
        }));
        assert!(e.contains("no GPU backend") && e.contains("\"cpu\""), "{e}");
        let e = error(place(Accelerator::Gpu, DeviceRequest::One, || {
            leak(Adapters::Found(Vec::new()))
        }));
        assert!(
            e.contains("needs a GPU adapter") && e.contains("none"),
            "{e}"
        );
    }

    #[test]
    fn cuda_and_mps_need_their_vendor_or_api() {
        let one = DeviceRequest::One;
        assert_eq!(
            gpu_name(place(Accelerator::Cuda, one, workstation)),
            "RTX 4090"
        );
        let e = error(place(Accelerator::Cuda, one, lavapipe_only));
        assert!(
            e.contains("NVIDIA") && e.contains("llvmpipe (Vulkan, Cpu)"),
            "{e}"
        );
        let e = error(place(Accelerator::Mps, one, workstation));
        assert!(e.contains("an adapter on Metal"), "{e}");
    }

    #[test]
    fn an_adapter_index_picks_that_adapter_or_says_why_not() {
        let pick = |accelerator, k| place(accelerator, DeviceRequest::Adapter(k), workstation);
        assert_eq!(gpu_name(pick(Accelerator::Gpu, 2)), "llvmpipe");
        assert_eq!(gpu_name(pick(Accelerator::Auto, 0)), "Intel UHD");
        let e = error(pick(Accelerator::Gpu, 7));
        assert!(
            e.contains("no adapter 7") && e.contains("adapter 1: RTX 4090"),
            "{e}"
        );
        let e = error(pick(Accelerator::Cuda, 0));
        assert!(e.contains("Intel UHD") && e.contains("NVIDIA"), "{e}");
        let e = error(place(
            Accelerator::Gpu,
            DeviceRequest::Adapter(1),
            lavapipe_only,
        ));
        assert!(
            e.contains("(Gl, Cpu) cannot be used") && e.contains("adapter 0"),
            "{e}"
        );
    }

    #[test]
    fn reports_name_the_device() {
        assert_eq!(Placement::Cpu.report().backend, "flex");
        let Ok(Placement::Gpu(a)) = place(Accelerator::Gpu, DeviceRequest::One, workstation) else {
            panic!("not placed")
        };
        let report = Placement::Gpu(a).report();
        assert_eq!(
            (report.accelerator, report.backend, report.adapter_index),
            ("gpu", "wgpu", Some(1))
        );
    }
}
