//! The MLP guest's exact computation written directly against Burn: PyTorch-layout weights
//! `[out, in]`, `x @ Wᵀ + b`, log-softmax + gather cross-entropy, Burn's Adam, the loss and the
//! accuracy read back as scalars as the guest's logging does. The baseline of the sandbox's
//! overhead, on any device.

use crate::guest_model::{CLASSES, HIDDEN, INPUT, labels};
use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Distribution, Int, Tensor};
use std::hint::black_box;

/// Reads the loss and the accuracy back as scalars, as the guest's logging does.
pub fn read_back_metrics(logits: Tensor<2>, labels: Tensor<1, Int>, loss: Tensor<1>) {
    let accuracy = logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .float()
        .mean();
    black_box((loss.into_scalar::<f32>(), accuracy.into_scalar::<f32>()));
}

/// The guest's exact math: PyTorch-layout weights `[out, in]`.
#[derive(Module, Debug)]
struct SameMathMlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
}

impl SameMathMlp {
    fn new(device: &Device) -> Self {
        let uniform = Distribution::Uniform(-0.03, 0.03);
        Self {
            w1: Param::from_tensor(Tensor::random([HIDDEN, INPUT], uniform, device)),
            b1: Param::from_tensor(Tensor::random([HIDDEN], uniform, device)),
            w2: Param::from_tensor(Tensor::random([CLASSES, HIDDEN], uniform, device)),
            b2: Param::from_tensor(Tensor::random([CLASSES], uniform, device)),
        }
    }

    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(x.matmul(self.w1.val().transpose()) + self.b1.val().unsqueeze());
        h.matmul(self.w2.val().transpose()) + self.b2.val().unsqueeze()
    }
}

fn batch_of(device: &Device, batch: usize) -> Tensor<2> {
    Tensor::random([batch, INPUT], Distribution::Normal(0.0, 1.0), device)
}

/// The forward pass of the guest's math on `device` for a batch of `batch`, untracked (as the
/// host runs a guest's `forward`), the logits read back.
pub fn same_math_forward(device: Device, batch: usize) -> impl FnMut() {
    let model = SameMathMlp::new(&device).no_grad();
    let x = batch_of(&device, batch);
    move || {
        black_box(model.logits(x.clone()).into_data());
    }
}

/// One training step of the guest's math on `device`, for a batch of `batch`.
pub fn same_math(device: Device, batch: usize) -> impl FnMut() {
    let mut model = SameMathMlp::new(&device);
    let mut optimizer = AdamConfig::new().init();
    let x = batch_of(&device, batch);
    let y = Tensor::<1, Int>::from_data(labels(batch).as_slice(), &device);
    move || {
        let logits = model.logits(x.clone());
        let loss = log_softmax(logits.clone(), 1)
            .gather(1, y.clone().reshape([batch, 1]))
            .mean()
            .neg();
        read_back_metrics(logits, y.clone(), loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(ModuleLearningRate::from(1e-3_f64), model.clone(), grads);
    }
}

/// Times `sandbox` against `same_math` in alternating rounds and prints both with their ratio
/// of medians under `title`.
pub fn print_overhead(
    title: &str,
    rounds: (usize, usize, usize),
    sandbox: &mut dyn FnMut(),
    same_math: &mut dyn FnMut(),
) {
    let (warmup, rounds, per_round) = rounds;
    let results =
        crate::timing::measure_interleaved(warmup, rounds, per_round, &mut [sandbox, same_math]);
    if let [sandbox, same] = results.as_slice() {
        println!("{title}");
        println!("  through the sandbox:        {sandbox}");
        println!("  same math, Burn directly:   {same}");
        println!(
            "  sandbox / same math: {:.3}",
            crate::timing::ms(sandbox.median) / crate::timing::ms(same.median)
        );
    }
}
