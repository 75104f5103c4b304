//! One training step of the MLP 784-256-10 (ReLU, cross-entropy, Adam) at batch 64 and 1024,
//! on each backend: through the sandbox on ndarray (CPU) and on wgpu (the adapter
//! `accelerator: "gpu"` picks — lavapipe, software Vulkan, on a machine without a GPU), and the
//! guest's exact math written directly against Burn on wgpu, whose ratio to the sandboxed step
//! is the sandbox's overhead there. Every step reads the loss and the accuracy back, which
//! waits for the device.
//!
//! `cargo bench -p lightning-mcp --bench devices`

#![allow(clippy::expect_used)]

// Shared with the other benches; this one uses part of it.
#[allow(dead_code)]
#[path = "guest_model.rs"]
mod guest_model;
#[allow(dead_code)]
#[path = "same_math.rs"]
mod same_math;
#[path = "timing.rs"]
mod timing;

use guest_model::GuestModel;
use lightning_mcp::gpu;
use lightning_mcp::tensor;
use lightning_mcp::tools::Accelerator;
use lightning_mcp::tools::accelerator::{DeviceRequest, Placement, place};
use std::path::Path;

fn main() {
    let exe = Path::new(env!("CARGO_BIN_EXE_lightning-mcp"));
    let gpu = place(Accelerator::Gpu, DeviceRequest::One, || {
        gpu::adapters(Some(exe))
    });
    let (adapter, device) = match &gpu {
        Ok(placement @ Placement::Gpu(adapter)) => (
            adapter.clone(),
            placement.device().expect("the adapter's device"),
        ),
        Ok(Placement::Cpu) | Err(_) => {
            println!("no GPU adapter ({gpu:?}): only the CPU could be measured, so nothing is");
            return;
        }
    };
    println!(
        "MLP 784-256-10, Adam, one training step; wgpu adapter: {} ({}, {})",
        adapter.name, adapter.backend, adapter.device_type
    );
    for batch in [64, 1024] {
        let mut cpu = GuestModel::mlp(tensor::cpu_device(), batch);
        let mut wgpu = GuestModel::mlp(device.clone(), batch);
        let mut same = same_math::same_math(device.clone(), batch);
        let results = timing::measure_interleaved(
            5,
            8,
            4,
            &mut [&mut || cpu.step(), &mut || wgpu.step(), &mut same],
        );
        let [cpu, wgpu, same] = results.as_slice() else {
            return;
        };
        let per_second = |s: &timing::Summary| batch as f64 / s.median.as_secs_f64();
        println!("batch {batch}");
        println!(
            "  sandbox on ndarray (CPU):  {cpu}   {:.0} samples/s",
            per_second(cpu)
        );
        println!(
            "  sandbox on wgpu:           {wgpu}   {:.0} samples/s",
            per_second(wgpu)
        );
        println!("  same math on wgpu, direct: {same}");
        println!(
            "  wgpu / ndarray: {:.2}   sandbox / same math on wgpu: {:.3}",
            timing::ms(wgpu.median) / timing::ms(cpu.median),
            timing::ms(wgpu.median) / timing::ms(same.median)
        );
    }
}
