//! GPU adapters: which wgpu adapters (Vulkan, Metal, DX12, GL) this machine has.
//!
//! They are found lazily — a server that is never asked never initialises wgpu — and in a
//! child process, `lightning-mcp --probe-adapters`, so that a driver that crashes while it is
//! enumerated takes down the probe, not the server. The answer is kept for the server's life.

use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The command-line flag that makes the binary print its adapters as JSON and exit.
pub const PROBE_FLAG: &str = "--probe-adapters";

/// How long the probe may take (a first Vulkan initialisation can take seconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One wgpu adapter, as wgpu describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adapter {
    /// Its position in the probe's list.
    pub index: usize,
    /// E.g. `NVIDIA GeForce RTX 4090` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The graphics API: `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software rasteriser) or `Other`.
    pub device_type: String,
    /// The driver's name, e.g. `llvmpipe`.
    pub driver: String,
    /// The driver's version string.
    pub driver_info: String,
    /// The PCI vendor id: 0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x106b Apple.
    pub vendor: u32,
    /// How Burn's wgpu backend addresses this adapter; `None` when Burn cannot use it (it
    /// runs on one graphics API per machine, and numbers only the first software adapter).
    pub burn_device: Option<BurnDevice>,
}

/// The NVIDIA PCI vendor id (`accelerator: "cuda"`).
pub const NVIDIA: u32 = 0x10de;

impl Adapter {
    /// Whether this is a real GPU, not a software rasteriser such as lavapipe.
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.device_type.as_str(),
            "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"
        )
    }
}

/// An adapter as Burn's wgpu backend selects it: the n-th adapter of its type on the graphics
/// API Burn settles on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BurnDevice {
    /// The n-th discrete GPU.
    DiscreteGpu(usize),
    /// The n-th integrated GPU.
    IntegratedGpu(usize),
    /// The n-th virtual GPU.
    VirtualGpu(usize),
    /// The (first) software adapter.
    Cpu,
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adapters {
    /// The adapters (perhaps none).
    Found(Vec<Adapter>),
    /// Why there is no answer: a build without the GPU backend, or a probe that failed.
    Unavailable(String),
}

/// This machine's adapters, probed with `exe` (this binary) the first time, then remembered.
pub fn adapters(exe: Option<&Path>) -> &'static Adapters {
    static PROBED: OnceLock<Adapters> = OnceLock::new();
    PROBED.get_or_init(|| {
        if !cfg!(feature = "wgpu") {
            return Adapters::Unavailable(
                "this build has no GPU backend (built without the `wgpu` feature)".into(),
            );
        }
        match exe {
            Some(exe) => probe(exe),
            None => Adapters::Unavailable("no executable to probe adapters with".into()),
        }
    })
}

/// Runs `exe --probe-adapters` and reads its answer.
fn probe(exe: &Path) -> Adapters {
    let started = Instant::now();
    let child = Command::new(exe)
        .arg(PROBE_FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Adapters::Unavailable(format!("cannot start the adapter probe: {e}")),
    };
    // Read while it runs: a probe that fills the pipe would otherwise wait for us forever.
    let reader = child.stdout.take().map(|mut stdout| {
        std::thread::spawn(move || {
            let mut out = String::new();
            stdout.read_to_string(&mut out).map(|_| out)
        })
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Adapters::Unavailable(format!(
                    "the adapter probe did not answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Adapters::Unavailable(format!("the adapter probe: {e}")),
        }
    };
    if !status.success() {
        // A signal (a driver crash) or an error exit: the driver is not usable.
        return Adapters::Unavailable(format!(
            "the adapter probe failed ({status}): the GPU driver is not usable"
        ));
    }
    let out = match reader.map(std::thread::JoinHandle::join) {
        Some(Ok(Ok(out))) => out,
        Some(Ok(Err(e))) => {
            return Adapters::Unavailable(format!("the adapter probe's answer: {e}"));
        }
        Some(Err(_)) | None => {
            return Adapters::Unavailable("the adapter probe's answer could not be read".into());
        }
    };
    match serde_json::from_str(&out) {
        Ok(found) => Adapters::Found(found),
        Err(e) => Adapters::Unavailable(format!("the adapter probe's answer: {e}")),
    }
}

/// In the probe process: every adapter wgpu finds, as JSON on stdout.
pub fn print_adapters() -> std::io::Result<()> {
    let json = serde_json::to_string(&enumerate()).map_err(std::io::Error::other)?;
    println!("{json}");
    Ok(())
}

#[cfg(feature = "wgpu")]
fn enumerate() -> Vec<Adapter> {
    // As cubecl-wgpu makes its instances (not from the environment's WGPU_* variables), so
    // that the adapters listed are those Burn opens.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let found: Vec<wgpu::AdapterInfo> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect();
    let settled = burn_backend(&found);
    let mut numbered = [0usize; 3];
    let mut software = false;
    found
        .into_iter()
        .enumerate()
        .map(|(index, info)| {
            let burn_device = (Some(info.backend) == settled)
                .then(|| {
                    let mut next = |i: usize| {
                        numbered.get_mut(i).map(|n| {
                            *n += 1;
                            *n - 1
                        })
                    };
                    match info.device_type {
                        wgpu::DeviceType::DiscreteGpu => next(0).map(BurnDevice::DiscreteGpu),
                        wgpu::DeviceType::IntegratedGpu => next(1).map(BurnDevice::IntegratedGpu),
                        wgpu::DeviceType::VirtualGpu => next(2).map(BurnDevice::VirtualGpu),
                        wgpu::DeviceType::Cpu if !software => {
                            software = true;
                            Some(BurnDevice::Cpu)
                        }
                        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => None,
                    }
                })
                .flatten();
            Adapter {
                index,
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: info.driver,
                driver_info: info.driver_info,
                vendor: info.vendor,
                burn_device,
            }
        })
        .collect()
}

/// The graphics API Burn's wgpu backend runs on here, as cubecl-wgpu 0.11 settles it: the
/// first of its platform's list with a GPU, else the first with any adapter.
#[cfg(feature = "wgpu")]
fn burn_backend(found: &[wgpu::AdapterInfo]) -> Option<wgpu::Backend> {
    let chain: &[wgpu::Backend] = if cfg!(target_os = "macos") {
        &[wgpu::Backend::Metal]
    } else {
        &[
            wgpu::Backend::Vulkan,
            wgpu::Backend::Dx12,
            wgpu::Backend::Gl,
        ]
    };
    let on = |api: wgpu::Backend| found.iter().filter(move |a| a.backend == api);
    chain
        .iter()
        .find(|api| on(**api).any(|a| a.device_type != wgpu::DeviceType::Cpu))
        .or_else(|| chain.iter().find(|api| on(**api).next().is_some()))
        .copied()
}

#[cfg(not(feature = "wgpu"))]
fn enumerate() -> Vec<Adapter> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable shell script with `body`, in `dir`.
    fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("the script is written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("the script is made executable");
        path
    }

    #[test]
    fn a_probe_that_crashes_or_lies_leaves_the_server_an_answer() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let crashing = script(&dir, "crash", "kill -SEGV $$");
        match probe(&crashing) {
            Adapters::Unavailable(why) => {
                assert!(
                    why.contains("signal: 11") && why.contains("not usable"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        let garbled = script(&dir, "garbled", "echo not-json");
        assert!(matches!(probe(&garbled), Adapters::Unavailable(why) if why.contains("answer")));
        let lavapipe = script(
            &dir,
            "lavapipe",
            r#"echo '[{"index":0,"name":"llvmpipe","backend":"Vulkan","device_type":"Cpu","driver":"llvmpipe","driver_info":"Mesa","vendor":65541,"burn_device":"Cpu"}]'"#,
        );
        match probe(&lavapipe) {
            Adapters::Found(found) => {
                assert_eq!(found.len(), 1);
                assert_eq!(found.first().map(|a| a.device_type.as_str()), Some("Cpu"));
            }
            other => panic!("{other:?}"),
        }
        // An answer larger than a pipe holds is read, not waited on until the timeout.
        let long = script(
            &dir,
            "long",
            "head -c 200000 /dev/zero | tr '\\0' ' '; echo '[]'",
        );
        assert_eq!(probe(&long), Adapters::Found(Vec::new()));
        let missing = dir.path().join("missing");
        assert!(
            matches!(probe(&missing), Adapters::Unavailable(why) if why.contains("cannot start"))
        );
    }
}
