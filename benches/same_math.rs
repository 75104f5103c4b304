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

/// One training step of the guest's math on `device`, for a batch of `batch`.
pub fn same_math(device: Device, batch: usize) -> impl FnMut() {
    let uniform = Distribution::Uniform(-0.03, 0.03);
    let mut model = SameMathMlp {
        w1: Param::from_tensor(Tensor::random([HIDDEN, INPUT], uniform, &device)),
        b1: Param::from_tensor(Tensor::random([HIDDEN], uniform, &device)),
        w2: Param::from_tensor(Tensor::random([CLASSES, HIDDEN], uniform, &device)),
        b2: Param::from_tensor(Tensor::random([CLASSES], uniform, &device)),
    };
    let mut optimizer = AdamConfig::new().init();
    let x = Tensor::<2>::random([batch, INPUT], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_data(labels(batch).as_slice(), &device);
    move || {
        let h = relu(x.clone().matmul(model.w1.val().transpose()) + model.b1.val().unsqueeze());
        let logits = h.matmul(model.w2.val().transpose()) + model.b2.val().unsqueeze();
        let loss = log_softmax(logits.clone(), 1)
            .gather(1, y.clone().reshape([batch, 1]))
            .mean()
            .neg();
        read_back_metrics(logits, y.clone(), loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(ModuleLearningRate::from(1e-3_f64), model.clone(), grads);
    }
}
