//! How long a GPU call of a running server takes to reach its training, the first time (its
//! worker starts and opens the adapter) and the second (the worker is reused): a one-step
//! training of SimpleClassifier over stdio, from request to answer.
//!
//! One training step of the MLP 784-256-10 (ReLU, cross-entropy, Adam) at batch 64 and 1024,
//! on each backend: through the sandbox on the CPU and on wgpu (the adapter
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
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A legacy-form one-step GPU training (no validation), request id `id`.
fn one_gpu_step(id: u32) -> String {
    format!(
        r#"{{"id":"{id}","method":"lightning.train","params":{{"model":{{"_target_":"lightning_mcp.models.simple.SimpleClassifier"}},"trainer":{{"max_epochs":1,"limit_train_batches":1,"limit_val_batches":0,"accelerator":"gpu"}}}}}}"#
    )
}

/// From request to answer of the first and the second one-step GPU training of one server.
fn first_and_second_gpu_call(exe: &Path) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut server = Command::new(exe)
        .args(["--log", "warn", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--checkpoint-dir")
        .arg(dir.path().join("checkpoints"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut input = server.stdin.take().expect("its stdin");
    let mut output = BufReader::new(server.stdout.take().expect("its stdout"));
    let mut call = |id| {
        let started = Instant::now();
        writeln!(input, "{}", one_gpu_step(id)).expect("write");
        let mut reply = String::new();
        output.read_line(&mut reply).expect("read");
        let took = started.elapsed();
        let compact: String = reply.split_whitespace().collect();
        assert!(
            compact.contains("\"status\":\"completed\""),
            "unexpected reply: {reply}"
        );
        took
    };
    let (first, second) = (call(1), call(2));
    drop(input);
    server.wait().expect("the server exits");
    (first, second)
}

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
    let calls: Vec<(Duration, Duration)> = (0..5).map(|_| first_and_second_gpu_call(exe)).collect();
    let (firsts, seconds): (Vec<Duration>, Vec<Duration>) = calls.into_iter().unzip();
    println!(
        "A one-step GPU training over stdio, request to answer, in 5 fresh servers:\n  first \
         call (starts the worker):  {}\n  second call (reuses it):     {}",
        timing::summarize(firsts),
        timing::summarize(seconds)
    );
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
            "  sandbox on the CPU:        {cpu}   {:.0} samples/s",
            per_second(cpu)
        );
        println!(
            "  sandbox on wgpu:           {wgpu}   {:.0} samples/s",
            per_second(wgpu)
        );
        println!("  same math on wgpu, direct: {same}");
        println!(
            "  wgpu / CPU: {:.2}   sandbox / same math on wgpu: {:.3}",
            timing::ms(wgpu.median) / timing::ms(cpu.median),
            timing::ms(wgpu.median) / timing::ms(same.median)
        );
    }
}
