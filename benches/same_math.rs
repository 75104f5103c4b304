//! The MLP guest's exact computation without the sandbox: PyTorch-layout weights `[out, in]`,
//! `x @ Wᵀ + b`, cross-entropy, Adam, the loss and the accuracy read back as scalars as the
//! guest's logging does. The training step calls the host's own tensor ops, backward and
//! optimizer (`lightning_mcp::tensor`), the very code the guest's host calls reach, so that its
//! ratio to the guest's step is the sandbox's overhead, on any device; the forward pass is
//! written directly against Burn.

use crate::guest_model::{CLASSES, HIDDEN, INPUT, labels};
use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor};
use lightning_mcp::tensor as host;
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

/// One training step of the guest's math on `device`, for a batch of `batch`, through the
/// host's tensor ops and optimizer.
pub fn same_math(device: Device, batch: usize) -> impl FnMut() {
    let param = |shape: &[usize], seed| {
        host::uniform(&device, shape, -0.03, 0.03, seed)
            .and_then(host::trainable)
            .expect("a parameter")
    };
    let mut params = [
        param(&[HIDDEN, INPUT], 1),
        param(&[HIDDEN], 2),
        param(&[CLASSES, HIDDEN], 3),
        param(&[CLASSES], 4),
    ];
    let mut optimizer = adam(1e-3, params.len());
    let x = host::randn(&device, &[batch, INPUT], 5).expect("x");
    let y = host::from_i64(&device, labels(batch), &[batch]).expect("y");
    move || {
        let [w1, b1, w2, b2] = &params;
        let logits = linear(&x, w1, b1)
            .and_then(|h| host::relu(&h))
            .and_then(|h| linear(&h, w2, b2))
            .expect("forward");
        classification_step(&logits, &y, &mut params, &mut optimizer);
    }
}

/// Adam with PyTorch's defaults and learning rate `lr`, for `params` parameters.
pub fn adam(lr: f32, params: usize) -> host::Optimizer {
    let config = host::OptimizerConfig::Adam {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    host::Optimizer::new(&config, params)
}

/// `x @ wᵀ + b`, as the guest SDK's `Linear` computes it.
pub fn linear(
    x: &host::Tensor,
    w: &host::Tensor,
    b: &host::Tensor,
) -> Result<host::Tensor, host::TensorError> {
    host::add(&host::matmul(x, &host::transpose(w, 0, 1)?)?, b)
}

/// The rest of a classifier's training step from its `logits`, as the host runs a guest's:
/// cross-entropy against `labels`, the loss and the accuracy read back, backward, and an
/// `optimizer` step of every parameter.
pub fn classification_step(
    logits: &host::Tensor,
    labels: &host::Tensor,
    params: &mut [host::Tensor],
    optimizer: &mut host::Optimizer,
) {
    let loss = host::cross_entropy(logits, labels).expect("loss");
    let correct = host::argmax(logits, 1, false).and_then(|p| host::equal(&p, labels));
    let accuracy = correct.and_then(|c| host::mean(&c)).expect("accuracy");
    black_box((
        host::to_scalar("loss", &loss).expect("loss"),
        host::to_scalar("accuracy", &accuracy).expect("accuracy"),
    ));
    let mut grads = host::backward(&loss).expect("backward");
    for (i, p) in params.iter_mut().enumerate() {
        let grad = host::take_grad(p, &mut grads)
            .expect("grad")
            .expect("a gradient");
        let taken = std::mem::replace(p, grad.clone());
        *p = optimizer.step(i, taken, grad).expect("step");
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
        println!("  same math, no sandbox:      {same}");
        println!(
            "  sandbox / same math: {:.3}",
            crate::timing::ms(sandbox.median) / crate::timing::ms(same.median)
        );
    }
}
