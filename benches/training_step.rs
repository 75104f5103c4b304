//! One training step of an MLP 784-256-10 (ReLU, cross-entropy, Adam, batch 64): through the
//! sandbox (the built-in MLP guest, every op a host call) versus the same math written
//! directly against Burn with `burn::nn` and Burn's Adam. Both log the loss and the accuracy
//! as scalars, as the guest does.
//!
//! `cargo bench -p lightning-mcp --bench training_step`

#![allow(clippy::expect_used)]

#[path = "timing.rs"]
mod timing;

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};
use lightning_mcp::sandbox::{ComponentCache, Limits, ModelRegistry, Sandbox};
use lightning_mcp::tensor::{self, Optimizer, Rng};
use lightning_mcp::trainer;
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 64;
const INPUT: usize = 784;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;
const WARMUP: usize = 20;
const SAMPLES: usize = 300;

fn labels() -> Vec<i64> {
    (0..BATCH).map(|i| (i % CLASSES) as i64).collect()
}

fn sandboxed() -> timing::Summary {
    let sandbox = Sandbox::new().expect("sandbox");
    let registry = ModelRegistry::built_in(&sandbox, &ComponentCache::disabled()).expect("models");
    let mlp = registry.get("lightning_mcp.models.mlp.MLP").expect("MLP");
    let device = tensor::cpu_device();
    let mut model = mlp
        .instantiate(
            device.clone(),
            &Limits::default(),
            0,
            Duration::from_secs(3600),
        )
        .expect("instance");
    model
        .init(r#"{"input_dim":784,"hidden_dims":[256],"num_classes":10,"lr":0.001}"#)
        .expect("init");
    let config = model.configure_optimizers().expect("optimizer");
    let mut optimizer = Optimizer::new(&config, model.parameters().len());
    let x = tensor::from_f32(
        &device,
        Rng::seeded(1).normal(BATCH * INPUT, 1.0),
        &[BATCH, INPUT],
    )
    .expect("x");
    let y = tensor::from_i64(&device, labels(), &[BATCH]).expect("y");
    timing::measure(WARMUP, SAMPLES, || {
        let loss = trainer::training_step(&mut model, &mut optimizer, x.clone(), y.clone(), 0)
            .expect("step");
        black_box((loss, model.take_logged()));
    })
}

#[derive(Module, Debug)]
struct NativeMlp {
    hidden: Linear,
    output: Linear,
}

fn native() -> timing::Summary {
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    let mut model = NativeMlp {
        hidden: LinearConfig::new(INPUT, HIDDEN).init(&device),
        output: LinearConfig::new(HIDDEN, CLASSES).init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<2>::random([BATCH, INPUT], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_data(labels().as_slice(), &device);
    timing::measure(WARMUP, SAMPLES, || {
        let logits = model.output.forward(burn::tensor::activation::relu(
            model.hidden.forward(x.clone()),
        ));
        let loss = loss_fn.forward(logits.clone(), y.clone());
        let accuracy = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(y.clone())
            .float()
            .mean();
        black_box((
            loss.clone().into_scalar::<f32>(),
            accuracy.into_scalar::<f32>(),
        ));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(ModuleLearningRate::from(1e-3_f64), model.clone(), grads);
    })
}

fn main() {
    let sandbox = sandboxed();
    let direct = native();
    println!("MLP 784-256-10, batch {BATCH}, Adam, one training step (ndarray CPU backend)");
    println!("  through the sandbox: {sandbox}");
    println!("  Burn directly:       {direct}");
    println!(
        "  ratio (median): {:.3}   throughput through the sandbox: {:.0} samples/s",
        timing::ms(sandbox.median) / timing::ms(direct.median),
        BATCH as f64 / sandbox.median.as_secs_f64()
    );
}
