//! One training step of an MLP 784-256-10 (ReLU, cross-entropy, Adam, batch 64), three ways
//! (then its forward pass, through the sandbox and directly):
//! - through the sandbox: the built-in MLP guest, every op a host call;
//! - the same math directly in Burn: PyTorch-layout weights `[out, in]`, `x @ Wᵀ + b`,
//!   log-softmax + gather cross-entropy, Burn's Adam — the guest's exact computation;
//! - idiomatic Burn: `burn::nn::Linear` (weights stored `[in, out]`, no transpose) and Burn's
//!   cross-entropy loss.
//!
//! All three read the loss and the accuracy back as scalars, as the guest's logging does. The
//! variants run in alternating rounds so that drifting machine load treats them alike.
//!
//! `cargo bench -p lightning-mcp --bench training_step` (`-- sandbox`, `-- same` or `-- nn`
//! runs one variant, for a profiler)

#![allow(clippy::expect_used)]

#[path = "guest_model.rs"]
mod guest_model;
#[path = "same_math.rs"]
mod same_math;
#[path = "timing.rs"]
mod timing;

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor};
use guest_model::{BATCH, CLASSES, GuestModel, HIDDEN, INPUT, labels};
use same_math::{read_back_metrics, same_math, same_math_forward};
use std::hint::black_box;

fn burn_device() -> Device {
    lightning_mcp::tensor::cpu_device()
}

/// The built-in MLP guest, stepped by the host trainer.
fn sandboxed() -> impl FnMut() {
    let mut guest = GuestModel::mlp(lightning_mcp::tensor::cpu_device(), guest_model::BATCH);
    move || {
        guest.step();
        black_box(&guest.model);
    }
}

#[derive(Module, Debug)]
struct NnMlp {
    hidden: Linear,
    output: Linear,
}

fn idiomatic() -> impl FnMut() {
    let device = burn_device();
    let mut model = NnMlp {
        hidden: LinearConfig::new(INPUT, HIDDEN).init(&device),
        output: LinearConfig::new(HIDDEN, CLASSES).init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<2>::random([BATCH, INPUT], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_data(labels(BATCH).as_slice(), &device);
    move || {
        let logits = model.output.forward(relu(model.hidden.forward(x.clone())));
        let loss = loss_fn.forward(logits.clone(), y.clone());
        read_back_metrics(logits, y.clone(), loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(ModuleLearningRate::from(1e-3_f64), model.clone(), grads);
    }
}

/// `-- sandbox|same|nn` runs one variant 1000 times, untimed, for a profiler or `perf stat`.
fn main() {
    if let Some(only) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        let mut step: Box<dyn FnMut()> = match only.as_str() {
            "sandbox" => Box::new(sandboxed()),
            "same" => Box::new(same_math(burn_device(), BATCH)),
            _ => Box::new(idiomatic()),
        };
        (0..1000).for_each(|_| step());
        return;
    }
    let (mut sandbox, mut same, mut nn) =
        (sandboxed(), same_math(burn_device(), BATCH), idiomatic());
    let results = timing::measure_interleaved(30, 20, 25, &mut [&mut sandbox, &mut same, &mut nn]);
    let [sandbox, same, nn] = results.as_slice() else {
        return;
    };
    println!("MLP 784-256-10, batch {BATCH}, Adam, one training step, CPU backend (flex)");
    println!("  through the sandbox:        {sandbox}");
    println!("  same math, Burn directly:   {same}");
    println!("  idiomatic burn::nn:         {nn}");
    let ratio =
        |a: &timing::Summary, b: &timing::Summary| timing::ms(a.median) / timing::ms(b.median);
    println!(
        "  sandbox / same math: {:.3}   sandbox / burn::nn: {:.3}   sandbox throughput: {:.0} samples/s",
        ratio(sandbox, same),
        ratio(sandbox, nn),
        BATCH as f64 / sandbox.median.as_secs_f64()
    );
    let mut guest = GuestModel::mlp(lightning_mcp::tensor::cpu_device(), BATCH);
    same_math::print_overhead(
        &format!("MLP 784-256-10 forward pass, batch {BATCH}, logits read back"),
        (30, 20, 50),
        &mut || guest.forward(),
        &mut same_math_forward(burn_device(), BATCH),
    );
}
