//! The model zoo on the CPU (ndarray): one training step of each built-in model on a batch of
//! its typical data, as samples/s; and the ConvNet's sandbox overhead against the same network
//! written directly against Burn — the guest's exact computation (3×3 convolutions with
//! padding 1, batch norm with running statistics, ReLU, 2×2 max-pooling, a hidden linear
//! layer, log-softmax + gather cross-entropy, Burn's Adam, loss and accuracy read back).
//!
//! `cargo bench -p lightning-mcp --bench zoo` (`-- sandbox` or `-- same` runs one ConvNet
//! variant, untimed, for a profiler)

#![allow(clippy::expect_used)]

#[path = "guest_model.rs"]
mod guest_model;
// Only its read-back of the metrics: the MLP it also holds is training_step's.
#[allow(dead_code)]
#[path = "same_math.rs"]
mod same_math;
#[path = "timing.rs"]
mod timing;

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Int, Tensor};
use guest_model::GuestModel;
use lightning_mcp::tensor::{self as host, Rng};
use same_math::read_back_metrics;
use std::hint::black_box;

/// Digits: a batch of 32 images `[1, 8, 8]`, 10 classes (the ConvNet's defaults).
const IMAGES: usize = 32;
const SIDE: usize = 8;
const CLASSES: usize = 10;

#[allow(deprecated)]
fn burn_device() -> Device {
    Device::ndarray().autodiff()
}

fn labels(batch: usize, classes: usize) -> Vec<i64> {
    (0..batch).map(|i| (i % classes) as i64).collect()
}

/// A guest model stepping on `x` `[batch, ...]` (f32) and labels `y` of `y_shape`.
fn guest(
    target: &str,
    hparams: &str,
    x: (&[usize], Vec<f32>),
    y: (&[usize], Vec<i64>),
) -> GuestModel {
    let device = host::cpu_device();
    let x = host::from_f32(&device, x.1, x.0).expect("x");
    let y = host::from_i64(&device, y.1, y.0).expect("y");
    GuestModel::new(device, guest_model::built_in(target), hparams, x, y)
}

fn digit_images() -> (&'static [usize], Vec<f32>) {
    (
        &[IMAGES, 1, SIDE, SIDE],
        Rng::seeded(1).uniform(IMAGES * SIDE * SIDE, 0.0, 1.0),
    )
}

fn mlp() -> GuestModel {
    GuestModel::mlp(host::cpu_device(), guest_model::BATCH)
}

fn convnet() -> GuestModel {
    guest(
        "lightning_mcp.models.cnn.ConvNet",
        "{}",
        digit_images(),
        (&[IMAGES], labels(IMAGES, CLASSES)),
    )
}

/// The Sequential equivalent of the ConvNet (its README example).
fn sequential_cnn() -> GuestModel {
    let hparams = r#"{"input_shape": [1, 8, 8], "layers": [
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "batch_norm"}, {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
        {"type": "batch_norm"}, {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
        {"type": "flatten"}, {"type": "linear", "out": 64}, {"type": "relu"},
        {"type": "linear", "out": 10}], "lr": 0.01}"#;
    guest(
        "lightning_mcp.models.sequential.Sequential",
        hparams,
        digit_images(),
        (&[IMAGES], labels(IMAGES, CLASSES)),
    )
}

/// The CharTransformer at its defaults (context 32, d_model 64, 4 heads, 2 layers) on a batch
/// of 32 windows of a 16-character vocabulary.
fn char_transformer() -> GuestModel {
    const BATCH: usize = 32;
    const CONTEXT: usize = 32;
    let text = "abcdefghijklmnop".repeat(8);
    let hparams = format!(r#"{{"text": "{text}", "context": {CONTEXT}}}"#);
    let device = host::cpu_device();
    let tokens: Vec<i64> = (0..BATCH * CONTEXT).map(|i| (i % 16) as i64).collect();
    let next: Vec<i64> = (0..BATCH * CONTEXT)
        .map(|i| ((i + 1) % 16) as i64)
        .collect();
    let x = host::from_i64(&device, tokens, &[BATCH, CONTEXT]).expect("x");
    let y = host::from_i64(&device, next, &[BATCH, CONTEXT]).expect("y");
    GuestModel::new(
        device,
        guest_model::built_in("lightning_mcp.models.transformer.CharTransformer"),
        &hparams,
        x,
        y,
    )
}

/// The ConvNet's exact math, PyTorch layouts.
#[derive(Module, Debug)]
struct SameMathConvNet {
    conv1: Param<Tensor<4>>,
    bias1: Param<Tensor<1>>,
    gamma1: Param<Tensor<1>>,
    beta1: Param<Tensor<1>>,
    conv2: Param<Tensor<4>>,
    bias2: Param<Tensor<1>>,
    gamma2: Param<Tensor<1>>,
    beta2: Param<Tensor<1>>,
    hidden: Param<Tensor<2>>,
    hidden_bias: Param<Tensor<1>>,
    classifier: Param<Tensor<2>>,
    classifier_bias: Param<Tensor<1>>,
}

/// Batch norm as the host computes it in a training step, running statistics updated.
fn batch_norm(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    running: &mut (Tensor<1>, Tensor<1>),
) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let x3 = x.reshape([n, c, h * w]);
    let mean = x3.clone().mean_dim(2).mean_dim(0);
    let var = (x3.clone() - mean.clone())
        .powi_scalar(2)
        .mean_dim(2)
        .mean_dim(0);
    let count = (n * h * w) as f32;
    let blend = |old: Tensor<1>, batch: Tensor<3>, scale: f32| {
        old.mul_scalar(0.9) + batch.detach().reshape([c]).mul_scalar(0.1 * scale)
    };
    running.0 = blend(running.0.clone(), mean.clone(), 1.0);
    running.1 = blend(running.1.clone(), var.clone(), count / (count - 1.0));
    let y = (x3 - mean) / var.add_scalar(1e-5).sqrt();
    (y * gamma.reshape([1, c, 1]) + beta.reshape([1, c, 1])).reshape([n, c, h, w])
}

/// Eval-mode batch norm with the running statistics.
fn batch_norm_eval(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    running: &(Tensor<1>, Tensor<1>),
) -> Tensor<4> {
    let c = gamma.dims()[0];
    let shape = [1, c, 1, 1];
    let y = (x - running.0.clone().reshape(shape))
        / running.1.clone().add_scalar(1e-5).sqrt().reshape(shape);
    y * gamma.reshape(shape) + beta.reshape(shape)
}

impl SameMathConvNet {
    /// PyTorch's initialisation of the ConvNet's defaults.
    fn new(device: &Device) -> Self {
        let uniform = |bound: f64| Distribution::Uniform(-bound, bound);
        let param4 = |shape: [usize; 4], bound| {
            Param::from_tensor(Tensor::random(shape, uniform(bound), device))
        };
        let param2 = |shape: [usize; 2], bound| {
            Param::from_tensor(Tensor::random(shape, uniform(bound), device))
        };
        let param1 =
            |size: usize, bound| Param::from_tensor(Tensor::random([size], uniform(bound), device));
        let ones = |size: usize| Param::from_tensor(Tensor::ones([size], device));
        let zeros = |size: usize| Param::from_tensor(Tensor::zeros([size], device));
        Self {
            conv1: param4([16, 1, 3, 3], 1.0 / 3.0),
            bias1: param1(16, 1.0 / 3.0),
            gamma1: ones(16),
            beta1: zeros(16),
            conv2: param4([32, 16, 3, 3], 1.0 / 12.0),
            bias2: param1(32, 1.0 / 12.0),
            gamma2: ones(32),
            beta2: zeros(32),
            hidden: param2([64, 128], 1.0 / 128f64.sqrt()),
            hidden_bias: param1(64, 1.0 / 128f64.sqrt()),
            classifier: param2([CLASSES, 64], 0.125),
            classifier_bias: param1(CLASSES, 0.125),
        }
    }

    /// The logits of `x`; batch norm with the batch's statistics (updating `running`) in
    /// training, else with `running`.
    fn logits(
        &self,
        x: Tensor<4>,
        running: &mut [(Tensor<1>, Tensor<1>); 2],
        train: bool,
    ) -> Tensor<2> {
        let conv = ConvOptions {
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        };
        let pool = MaxPoolOptions {
            kernel_size: [2, 2],
            stride: [2, 2],
            padding: [(0, 0), (0, 0)],
            dilation: [1, 1],
            ceil_mode: false,
        };
        let [first, second] = running;
        let norm = |h, gamma, beta, stats: &mut (Tensor<1>, Tensor<1>)| {
            if train {
                batch_norm(h, gamma, beta, stats)
            } else {
                batch_norm_eval(h, gamma, beta, stats)
            }
        };
        let h = conv2d(x, self.conv1.val(), Some(self.bias1.val()), conv.clone());
        let h = norm(h, self.gamma1.val(), self.beta1.val(), first);
        let h = max_pool2d(relu(h), pool.clone());
        let h = conv2d(h, self.conv2.val(), Some(self.bias2.val()), conv);
        let h = norm(h, self.gamma2.val(), self.beta2.val(), second);
        let h = max_pool2d(relu(h), pool).flatten::<2>(1, 3);
        let h = relu(h.matmul(self.hidden.val().transpose()) + self.hidden_bias.val().unsqueeze());
        h.matmul(self.classifier.val().transpose()) + self.classifier_bias.val().unsqueeze()
    }
}

/// Fresh running statistics of the two batch norms.
fn running_statistics(device: &Device) -> [(Tensor<1>, Tensor<1>); 2] {
    [16, 32].map(|c| {
        (
            Tensor::<1>::zeros([c], device),
            Tensor::<1>::ones([c], device),
        )
    })
}

fn digit_batch(device: &Device) -> Tensor<4> {
    let (_, pixels) = digit_images();
    Tensor::<1>::from_floats(pixels.as_slice(), device).reshape([IMAGES, 1, SIDE, SIDE])
}

/// One training step of the ConvNet's exact math.
fn same_math_convnet(device: Device) -> impl FnMut() {
    let mut model = SameMathConvNet::new(&device);
    let mut running = running_statistics(&device);
    let mut optimizer = AdamConfig::new().init();
    let x = digit_batch(&device);
    let y = Tensor::<1, Int>::from_data(labels(IMAGES, CLASSES).as_slice(), &device);
    move || {
        let logits = model.logits(x.clone(), &mut running, true);
        let loss = log_softmax(logits.clone(), 1)
            .gather(1, y.clone().reshape([IMAGES, 1]))
            .mean()
            .neg();
        read_back_metrics(logits, y.clone(), loss.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(ModuleLearningRate::from(1e-2_f64), model.clone(), grads);
        black_box(&running);
    }
}

/// The ConvNet's exact math, forward only (untracked, batch norm with running statistics),
/// the logits read back.
fn same_math_convnet_forward(device: Device) -> impl FnMut() {
    let model = SameMathConvNet::new(&device).no_grad();
    let mut running = running_statistics(&device);
    let x = digit_batch(&device);
    move || {
        black_box(model.logits(x.clone(), &mut running, false).into_data());
    }
}

/// A model's name, batch size and how to build it.
type ModelBench = (&'static str, usize, fn() -> GuestModel);

fn stepping(mut guest: GuestModel) -> impl FnMut() {
    move || {
        guest.step();
        black_box(&guest.model);
    }
}

/// `-- sandbox|same` runs one ConvNet variant 1000 times, untimed, for a profiler.
fn main() {
    if let Some(only) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        let mut step: Box<dyn FnMut()> = match only.as_str() {
            "sandbox" => Box::new(stepping(convnet())),
            _ => Box::new(same_math_convnet(burn_device())),
        };
        (0..1000).for_each(|_| step());
        return;
    }
    same_math::print_overhead(
        "ConvNet (16-32 channels, batch norm, hidden 64) on 32 images 1x8x8, Adam, one training step, ndarray CPU",
        (20, 20, 20),
        &mut stepping(convnet()),
        &mut same_math_convnet(burn_device()),
    );
    let mut guest = convnet();
    same_math::print_overhead(
        "ConvNet forward pass (eval, running statistics) on 32 images 1x8x8, logits read back",
        (20, 20, 50),
        &mut || guest.forward(),
        &mut same_math_convnet_forward(burn_device()),
    );

    let models: [ModelBench; 4] = [
        ("MLP 784-256-10", guest_model::BATCH, mlp),
        ("ConvNet, digits 1x8x8", IMAGES, convnet),
        ("Sequential CNN, digits 1x8x8", IMAGES, sequential_cnn),
        ("CharTransformer, 32 x 32 chars", 32, char_transformer),
    ];
    println!(
        "Training throughput per model (one step on one batch, through the sandbox, ndarray CPU)"
    );
    for (name, batch, build) in models {
        let mut step = stepping(build());
        let results = timing::measure_interleaved(10, 10, 10, &mut [&mut step]);
        if let [summary] = results.as_slice() {
            println!(
                "  {name:<32} batch {batch:>3}: {:>8.0} samples/s   ({summary})",
                batch as f64 / summary.median.as_secs_f64()
            );
        }
    }
}
