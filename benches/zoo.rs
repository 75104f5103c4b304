//! The model zoo on the CPU: one training step of each built-in model on a batch of its
//! typical data, as samples/s — beside the same network in PyTorch eager, in alternating rounds,
//! when `LIGHTNING_MCP_TORCH_PYTHON` names a Python with PyTorch (`benches/torch_models.py`
//! holds the twins). And the ConvNet's sandbox overhead: its training step against the guest's
//! exact computation (3×3 convolutions with padding 1, batch norm with running statistics,
//! ReLU, 2×2 max-pooling, a hidden linear layer, cross-entropy, Adam, loss and accuracy read
//! back) through the host's tensor ops without the sandbox; its forward pass against the same
//! written directly against Burn.
//!
//! `cargo bench -p lightning-mcp --bench zoo` (`-- same` runs the ConvNet's same math, `-- mlp`,
//! `-- cnn`, `-- convnet`, `-- transformer`, ... one model, untimed, for a profiler)

#![allow(clippy::expect_used)]

#[path = "guest_model.rs"]
mod guest_model;
// Only its side-by-side printout: the MLP it also holds is training_step's.
#[allow(dead_code)]
#[path = "same_math.rs"]
mod same_math;
#[path = "timing.rs"]
mod timing;
#[path = "torch.rs"]
mod torch;

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
use guest_model::GuestModel;
use lightning_mcp::tensor::{self as host, Rng};
use std::hint::black_box;

/// Digits: a batch of 32 images `[1, 8, 8]`, 10 classes (the ConvNet's defaults).
const IMAGES: usize = 32;
const SIDE: usize = 8;
const CLASSES: usize = 10;

fn burn_device() -> Device {
    lightning_mcp::tensor::cpu_device()
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

/// The Sequential model with `layers` (JSON) and Adam 1e-3 on a batch of 64 normal samples of
/// `input_shape`, labels `i % 10`.
fn sequential(input_shape: &[usize], layers: &str) -> GuestModel {
    let mut shape = vec![guest_model::BATCH];
    shape.extend(input_shape);
    let count = shape.iter().product();
    let hparams = format!(
        r#"{{"input_shape": {input_shape:?}, "layers": [{layers}], "optimizer": "adam", "lr": 0.001}}"#
    );
    guest(
        "lightning_mcp.models.sequential.Sequential",
        &hparams,
        (&shape, Rng::seeded(1).normal(count, 1.0)),
        (&[guest_model::BATCH], labels(guest_model::BATCH, CLASSES)),
    )
}

/// MLP 784-256-10 as a Sequential config.
fn sequential_mlp() -> GuestModel {
    sequential(
        &[784],
        r#"{"type": "linear", "out": 256}, {"type": "relu"}, {"type": "linear", "out": 10}"#,
    )
}

/// The CNN of issue 17 as a Sequential config: conv 1->8 3x3, ReLU, max-pool 2, conv 8->16
/// 3x3, ReLU, max-pool 2, linear 400->10 on 1x28x28.
fn sequential_cnn_28() -> GuestModel {
    sequential(
        &[1, 28, 28],
        r#"{"type": "conv2d", "out_channels": 8, "kernel_size": 3}, {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 3}, {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2},
        {"type": "flatten"}, {"type": "linear", "out": 10}"#,
    )
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

    /// The logits of `x` in evaluation: batch norm with the `running` statistics.
    fn logits(&self, x: Tensor<4>, running: &[(Tensor<1>, Tensor<1>); 2]) -> Tensor<2> {
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
        let norm = batch_norm_eval;
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

/// One training step of the ConvNet's exact math through the host's tensor ops, backward and
/// optimizer (the code the guest's host calls reach), without the sandbox.
fn same_math_convnet(device: Device) -> impl FnMut() {
    use host::{Conv2dOptions, Pool2dOptions, RunningStats};
    let uniform = |shape: &[usize], bound: f32, seed| {
        host::uniform(&device, shape, -bound, bound, seed)
            .and_then(host::trainable)
            .expect("a parameter")
    };
    let filled = |size: usize, value: f32| {
        host::from_f32(&device, vec![value; size], &[size]).expect("a tensor")
    };
    // conv1, bias1, gamma1, beta1, conv2, bias2, gamma2, beta2, hidden, its bias, classifier,
    // its bias: PyTorch's initialisation.
    let mut params = [
        uniform(&[16, 1, 3, 3], 1.0 / 3.0, 1),
        uniform(&[16], 1.0 / 3.0, 2),
        host::trainable(filled(16, 1.0)).expect("gamma"),
        host::trainable(filled(16, 0.0)).expect("beta"),
        uniform(&[32, 16, 3, 3], 1.0 / 12.0, 3),
        uniform(&[32], 1.0 / 12.0, 4),
        host::trainable(filled(32, 1.0)).expect("gamma"),
        host::trainable(filled(32, 0.0)).expect("beta"),
        uniform(&[64, 128], 1.0 / 128f32.sqrt(), 5),
        uniform(&[64], 1.0 / 128f32.sqrt(), 6),
        uniform(&[CLASSES, 64], 0.125, 7),
        uniform(&[CLASSES], 0.125, 8),
    ];
    let mut running = [16, 32].map(|c| (filled(c, 0.0), filled(c, 1.0)));
    let mut optimizer = same_math::adam(1e-2, params.len());
    let (shape, pixels) = digit_images();
    let x = host::from_f32(&device, pixels, shape).expect("x");
    let y = host::from_i64(&device, labels(IMAGES, CLASSES), &[IMAGES]).expect("y");
    let conv = Conv2dOptions {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let pool = Pool2dOptions {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
    };
    move || {
        let mut h = x.clone();
        for (block, stats) in params.chunks_exact(4).zip(running.iter_mut()) {
            let [w, b, gamma, beta] = block else { continue };
            let convolved = host::conv2d(&h, w, Some(b), &conv).expect("conv2d");
            let stats_now = RunningStats {
                mean: &stats.0,
                var: &stats.1,
            };
            let norm = host::batch_norm(
                &convolved,
                stats_now,
                Some(gamma),
                Some(beta),
                0.1,
                1e-5,
                true,
            )
            .expect("batch norm");
            if let Some(updated) = norm.running {
                *stats = updated;
            }
            h = host::relu(&norm.output)
                .and_then(|r| host::max_pool2d(&r, &pool))
                .expect("pool");
        }
        let [.., w1, b1, w2, b2] = &params;
        let logits = host::flatten(&h, 1, 3)
            .and_then(|f| same_math::linear(&f, w1, b1))
            .and_then(|f| host::relu(&f))
            .and_then(|f| same_math::linear(&f, w2, b2))
            .expect("forward");
        same_math::classification_step(&logits, &y, &mut params, &mut optimizer);
    }
}

/// The ConvNet's exact math, forward only (untracked, batch norm with running statistics),
/// the logits read back.
fn same_math_convnet_forward(device: Device) -> impl FnMut() {
    let model = SameMathConvNet::new(&device).no_grad();
    let running = running_statistics(&device);
    let x = digit_batch(&device);
    move || {
        black_box(model.logits(x.clone(), &running).into_data());
    }
}

/// A model's name, batch size, how to build it, its twin in `benches/torch_models.py`, and the
/// argument that profiles it.
type ModelBench = (
    &'static str,
    usize,
    fn() -> GuestModel,
    &'static str,
    &'static str,
);

const MODELS: [ModelBench; 6] = [
    (
        "MLP 784-256-10 (built-in MLP)",
        guest_model::BATCH,
        mlp,
        "mlp",
        "mlp",
    ),
    (
        "MLP 784-256-10 (Sequential)",
        guest_model::BATCH,
        sequential_mlp,
        "mlp",
        "sequential-mlp",
    ),
    (
        "CNN 1x28x28 (Sequential)",
        guest_model::BATCH,
        sequential_cnn_28,
        "cnn",
        "cnn",
    ),
    (
        "ConvNet, digits 1x8x8",
        IMAGES,
        convnet,
        "convnet",
        "convnet",
    ),
    (
        "Sequential CNN, digits 1x8x8",
        IMAGES,
        sequential_cnn,
        "convnet",
        "sequential-cnn",
    ),
    (
        "CharTransformer, 32 x 32 chars",
        32,
        char_transformer,
        "transformer",
        "transformer",
    ),
];

fn stepping(mut guest: GuestModel) -> impl FnMut() {
    move || {
        guest.step();
        black_box(&guest.model);
    }
}

/// `-- same` runs the ConvNet's same math, `-- KEY` a model of [`MODELS`] (`mlp`, `cnn`,
/// `convnet`, `transformer`, ...), 300 steps untimed, for a profiler.
fn main() {
    if let Some(only) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        let mut step: Box<dyn FnMut()> = match MODELS.iter().find(|m| m.4 == only) {
            Some(model) => Box::new(stepping((model.2)())),
            None => Box::new(same_math_convnet(burn_device())),
        };
        (0..300).for_each(|_| step());
        return;
    }
    same_math::print_overhead(
        "ConvNet (16-32 channels, batch norm, hidden 64) on 32 images 1x8x8, Adam, one training step, CPU",
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

    let Some(mut torch) = torch::Torch::start() else {
        println!("Training throughput per model (one step on one batch, through the sandbox, CPU)");
        for (name, batch, build, _, _) in MODELS {
            let mut step = stepping(build());
            let results = timing::measure_interleaved(10, 10, 10, &mut [&mut step]);
            if let [summary] = results.as_slice() {
                println!(
                    "  {name:<32} batch {batch:>3}: {}",
                    throughput(batch, summary)
                );
            }
        }
        println!(
            "(set {} to a Python with PyTorch to run PyTorch eager beside each)",
            torch::PYTHON
        );
        return;
    };
    println!(
        "Training throughput per model against PyTorch eager (one step on one batch; ours through \
         the sandbox on the CPU; alternating rounds)"
    );
    for (name, batch, build, network, _) in MODELS {
        let version = torch.load(network);
        let (ours, theirs) = torch.side_by_side(&mut stepping(build()), (10, 10, 10));
        println!("  {name:<32} batch {batch:>3}");
        println!("    ours:    {}", throughput(batch, &ours));
        println!("    PyTorch: {}   ({version})", throughput(batch, &theirs));
        println!(
            "    ours / PyTorch: {:.2}",
            theirs.median.as_secs_f64() / ours.median.as_secs_f64()
        );
    }
}

/// `batch / median` as samples/s, with the summary.
fn throughput(batch: usize, summary: &timing::Summary) -> String {
    format!(
        "{:>8.0} samples/s   ({summary})",
        batch as f64 / summary.median.as_secs_f64()
    )
}
