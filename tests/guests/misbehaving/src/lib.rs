//! A hostile model for the sandbox tests. `mode` picks how it misbehaves (mostly in
//! `training_step`); `ok` trains like a linear classifier. `panic_in:HOOK` and
//! `unreachable_in:HOOK` fail in that hook: `init`, `dataset`, `configure_optimizers`,
//! `training_step` or `validation_step`.

use lightning_mcp_guest_sdk::prelude::*;
use lightning_mcp_guest_sdk::wit::lightning::model::tensors::Tensor as RawTensor;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// ok | chatty | flood | shape_mismatch | stale_handle | forged_handle | panic |
    /// infinite_loop | host_call_loop | deep_recursion | memory_bomb | host_memory_bomb |
    /// graph_bomb | giant_tensor | giant_from_data | nan_loss | non_scalar_loss | read_env |
    /// long_error | long_error_in_init (8 MiB messages) | reserved_param (a parameter named
    /// as safetensors' header) | bad_metric:NAME (logs NAME) | metric_flood (300 values in a
    /// step) | op:FAMILY / inputs:FAMILY (the costliest call of an op family the default
    /// limits allow, or only its inputs; then an error) | op_loop:FAMILY (that call forever) |
    /// deep_graph (a loss whose backward pass costs seconds) |
    /// bad_scheduler | bad_conv | bad_index | bad_layer_norm | bad_batch_norm (a plain
    /// tensor as running statistics) | shared_buffer (one buffer as both running statistics) |
    /// late_buffer (a buffer declared in a step) | panic_in:HOOK | unreachable_in:HOOK; and,
    /// behaving but scripted: image_ops (the linear layer as a convolution, through every
    /// pooling op) | index_ops (its weight through slice, cat, index-select, embedding, gather,
    /// masked-fill and causal-mask) | layer_norm (layer-normalised logits) | window_options
    /// (conv and pools with asymmetric options, their sums logged) | sgd (plain SGD with
    /// lr 1, for checking gradients through the weights) | plateau (val_loss 5, 4, 3, 3, 3, …
    /// over validation passes) | shape_calls / op_calls (the step first makes
    /// [`HOST_CALLS`] `shape` queries / `relu`s of its input, for the round-trip benchmark)
    mode: String,
}

/// How many host calls modes `shape_calls` and `op_calls` make in a step.
const HOST_CALLS: usize = 10_000;

struct Misbehaving {
    mode: String,
    layer: Linear,
    validations: usize,
    /// A buffer of 4, declared in mode `shared_buffer` only.
    buffer: Option<Tensor>,
}

/// Panics or executes `unreachable` if `mode` asks for it in `hook`.
fn fail_in(mode: &str, hook: &str) {
    match mode.split_once(':') {
        Some(("panic_in", h)) if h == hook => panic!("misbehaving model panicked in {hook}"),
        Some(("unreachable_in", h)) if h == hook => core::arch::wasm32::unreachable(),
        _ => {}
    }
}

/// The cross-entropy of `logits`, logged as `train_loss`.
fn logged_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let loss = logits.cross_entropy(targets)?;
    lightning_mcp_guest_sdk::log::log_tensor("train_loss", &loss)?;
    Ok(loss)
}

/// The costliest call of op `family` that the default limits allow (2^26 elements per
/// tensor, 2^34 multiply-adds per op, 2^27 pooled cells): its inputs are made, and with `run` the op runs on them.
fn worst_op(family: &str, run: bool) -> Result<()> {
    const ELEMENTS: usize = 1 << 26;
    let ones = Tensor::ones;
    let result = match family {
        "matmul" => {
            let (a, b) = (ones(&[2048, 4096])?, ones(&[4096, 2048])?);
            run.then(|| a.matmul(&b))
        }
        "batched_matmul" => {
            let (a, b) = (ones(&[64, 256, 1024])?, ones(&[64, 1024, 1024])?);
            run.then(|| a.matmul(&b))
        }
        "conv2d" => {
            let (x, w) = (ones(&[28, 64, 64, 64])?, ones(&[256, 64, 3, 3])?);
            run.then(|| x.conv2d(&w, None, Conv2dOptions::default()))
        }
        "max_pool2d" | "avg_pool2d" => {
            let x = ones(&[1, 1, 5792, 5792])?;
            let options = Pool2dOptions {
                stride: (1, 1),
                ..Pool2dOptions::new((2, 2))
            };
            run.then(|| match family {
                "max_pool2d" => x.max_pool2d(options),
                _ => x.avg_pool2d(options),
            })
        }
        "exp" => {
            let x = ones(&[ELEMENTS])?;
            run.then(|| x.exp())
        }
        "broadcast_add" => {
            let (a, b) = (ones(&[8192, 1])?, ones(&[1, 8192])?);
            run.then(|| &a + &b)
        }
        "softmax" => {
            let x = ones(&[8192, 8192])?;
            run.then(|| x.softmax(1))
        }
        "sum" => {
            let x = ones(&[ELEMENTS])?;
            run.then(|| x.sum())
        }
        "transpose" => {
            let x = ones(&[8192, 8192])?;
            run.then(|| x.transpose(0, 1)?.add_scalar(1.0))
        }
        "index_select" => {
            let x = ones(&[65536, 1024])?;
            let rows: Vec<i64> = (0..65536).rev().collect();
            let rows = Tensor::from_i64(&rows, &[65536])?;
            run.then(|| x.index_select(0, &rows))
        }
        "cat" => {
            let parts = (0..1024)
                .map(|_| ones(&[65536]))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = parts.iter().collect();
            run.then(|| Tensor::cat(&refs, 0))
        }
        "layer_norm" => {
            let x = ones(&[65536, 1024])?;
            run.then(|| x.layer_norm(None, None, 1e-5))
        }
        "cross_entropy" => {
            let logits = ones(&[65536, 1024])?;
            let targets = Tensor::from_i64(&vec![0; 65536], &[65536])?;
            run.then(|| logits.cross_entropy(&targets))
        }
        "randn" => run.then(|| Tensor::randn(&[ELEMENTS], 1)),
        "causal_mask" => run.then(|| Tensor::causal_mask(8192)),
        other => return Err(Error::new(format!("no op family {other}"))),
    };
    result.transpose().map(drop)
}

/// An error message of 8 MiB that starts with a terminal escape.
fn long_text() -> String {
    format!("\u{1b}[31m{}", "E".repeat(8 << 20))
}

/// Recurses until the call stack runs out.
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))).wrapping_add(1)
}

impl LightningModule for Misbehaving {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.testing.Misbehaving";
    const SUMMARY: &'static str = "Test model that misbehaves on request.";

    fn new(h: &Hyperparameters) -> Result<Self> {
        fail_in(&h.mode, "init");
        match h.mode.as_str() {
            "long_error_in_init" => return Err(Error::new(long_text())),
            "reserved_param" => {
                lightning_mcp_guest_sdk::param::parameter("__metadata__", &[1], Init::Zeros)?;
            }
            _ => {}
        }
        Ok(Self {
            mode: h.mode.clone(),
            layer: LinearConfig::new(4, 3).init("layer")?,
            validations: 0,
            buffer: match h.mode.as_str() {
                "shared_buffer" => Some(lightning_mcp_guest_sdk::param::buffer(
                    "running",
                    &[4],
                    Init::Zeros,
                )?),
                _ => None,
            },
        })
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.layer.forward(x)
    }

    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<Tensor> {
        fail_in(&self.mode, "training_step");
        match self.mode.as_str() {
            "chatty" => {
                println!("step {batch_index}: hello from the guest");
                eprintln!("step {batch_index}: a warning from the guest");
                self.loss(&inputs, &targets)
            }
            "flood" => {
                let line = "x".repeat(1 << 20);
                for _ in 0..8 {
                    print!("{line}");
                }
                // One line of 60 kB in one write (which the host takes whole), with a
                // terminal escape: forwarded cut and escaped.
                let long_line = format!("\u{1b}[2J{}\n", "y".repeat(60_000));
                let _ = std::io::Write::write_all(&mut std::io::stdout(), long_line.as_bytes());
                for i in 0..20_000 {
                    println!("flood line {i}");
                    eprintln!("flood line {i}");
                }
                self.loss(&inputs, &targets)
            }
            "shape_mismatch" => {
                let wrong = Tensor::ones(&[3, 2])?;
                inputs.matmul(&wrong)
            }
            "stale_handle" => {
                let raw = lightning_mcp_guest_sdk::__private::into_raw(Tensor::zeros(&[2, 2])?)?;
                let handle = raw.handle();
                drop(raw);
                // SAFETY: deliberately not: this forges a handle the host already freed.
                let stale = unsafe { RawTensor::from_handle(handle) };
                let _ = stale.relu();
                Err(Error::new("a stale handle was accepted"))
            }
            "forged_handle" => {
                // SAFETY: deliberately not: a handle this instance was never given (another
                // run's handles live in another store, so any number is one of these).
                let forged = unsafe { RawTensor::from_handle(0x7fff_0000) };
                let _ = forged.relu();
                Err(Error::new("a forged handle was accepted"))
            }
            "panic" => panic!("misbehaving model panicked on purpose"),
            "infinite_loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "shape_calls" => {
                for _ in 0..HOST_CALLS {
                    std::hint::black_box(inputs.shape());
                }
                self.loss(&inputs, &targets)
            }
            "op_calls" => {
                for _ in 0..HOST_CALLS {
                    std::hint::black_box(inputs.relu()?);
                }
                self.loss(&inputs, &targets)
            }
            "host_call_loop" => loop {
                let t = Tensor::ones(&[2])?;
                std::hint::black_box(t.relu()?);
            },
            "deep_recursion" => Err(Error::new(format!("recursed {} deep", recurse(0)))),
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "graph_bomb" => {
                // Every result stays in the autodiff graph after its handle is dropped.
                let wide = Tensor::ones(&[4, 1 << 20])?;
                let mut x = self.layer.weight.matmul(&wide)?;
                loop {
                    x = x.exp()?;
                }
            }
            "host_memory_bomb" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(Tensor::zeros(&[4096, 4096])?);
                }
            }
            "giant_tensor" => Tensor::zeros(&[1 << 16, 1 << 16]),
            "giant_from_data" => {
                let values = vec![0.5f32; 12 << 20];
                Tensor::from_f32(&values, &[values.len()])
            }
            "image_ops" => {
                // The linear layer as a 2×2 convolution over the inputs seen as 2×2 images,
                // then pools that keep [n, 3, 1, 1]: the loss of `ok`, through the image ops.
                let images = inputs.reshape(&[-1, 1, 2, 2])?;
                let kernel = self.layer.weight.reshape(&[3, 1, 2, 2])?;
                let logits = images
                    .conv2d(&kernel, self.layer.bias.as_ref(), Conv2dOptions::default())?
                    .max_pool2d(Pool2dOptions::new((1, 1)))?
                    .avg_pool2d(Pool2dOptions::new((1, 1)))?
                    .adaptive_avg_pool2d(1, 1)?
                    .reshape(&[-1, 3])?;
                logged_loss(&logits, &targets)
            }
            "index_ops" => {
                // The linear layer's weight taken apart and put back together by the slicing,
                // joining and indexing ops, then masks that mask nothing: the loss of `ok`.
                let w = &self.layer.weight;
                let halves = Tensor::cat(&[&w.slice(1, 0, 2)?, &w.slice(1, -2, 4)?], 1)?;
                let rows = Tensor::from_i64(&[0, 1, 2], &[3])?;
                let w = Tensor::from_i64(&[2, 1, 0], &[3])?
                    .embedding(&halves.index_select(0, &rows)?)?
                    .index_select(0, &Tensor::from_i64(&[2, 1, 0], &[3])?)?;
                let n = inputs.shape().first().copied().unwrap_or(0);
                let order: Vec<i64> = (0..n).flat_map(|_| [0, 1, 2]).collect();
                let nothing = Tensor::causal_mask(3)?.slice(0, 0, 1)?.mul_scalar(0.0)?;
                let logits = inputs
                    .matmul(&w.transpose(0, 1)?)?
                    .gather(1, &Tensor::from_i64(&order, &[n, 3])?)?
                    .masked_fill(&nothing, f32::NEG_INFINITY)?;
                let logits = match &self.layer.bias {
                    Some(b) => (&logits + b)?,
                    None => logits,
                };
                logged_loss(&logits, &targets)
            }
            "layer_norm" => {
                let logits = self.forward(&inputs)?.layer_norm(
                    Some(&Tensor::ones(&[3])?),
                    Some(&Tensor::zeros(&[3])?),
                    1e-5,
                )?;
                logged_loss(&logits, &targets)
            }
            "bad_layer_norm" => inputs.layer_norm(Some(&Tensor::ones(&[3])?), None, 1e-5),
            "bad_batch_norm" => {
                let (mean, var) = (Tensor::zeros(&[4])?, Tensor::ones(&[4])?);
                inputs.batch_norm(&mean, &var, None, None, 0.1, 1e-5)
            }
            "shared_buffer" => match &self.buffer {
                Some(b) => inputs.batch_norm(b, b, None, None, 0.1, 1e-5),
                None => Err(Error::new("no buffer")),
            },
            "late_buffer" => lightning_mcp_guest_sdk::param::buffer("late", &[4], Init::Zeros),
            "window_options" => {
                // Asymmetric options, each op's result logged as a sum, for the host to compare
                // with the same ops called directly: (height, width) must arrive as sent.
                let images = inputs.reshape(&[-1, 1, 2, 2])?;
                let kernel = self.layer.weight.reshape(&[3, 1, 2, 2])?;
                let conv = images.conv2d(
                    &kernel,
                    None,
                    Conv2dOptions {
                        stride: (2, 1),
                        padding: (1, 0),
                        dilation: (1, 1),
                        groups: 1,
                    },
                )?;
                let max = images.max_pool2d(Pool2dOptions {
                    kernel: (2, 1),
                    stride: (1, 2),
                    padding: (1, 0),
                    dilation: (1, 1),
                })?;
                let avg = images.avg_pool2d(Pool2dOptions {
                    kernel: (1, 2),
                    stride: (1, 1),
                    padding: (0, 1),
                    dilation: (1, 1),
                })?;
                let adaptive = images.adaptive_avg_pool2d(1, 2)?;
                for (name, t) in [
                    ("conv", &conv),
                    ("max", &max),
                    ("avg", &avg),
                    ("adaptive", &adaptive),
                ] {
                    lightning_mcp_guest_sdk::log::log_tensor(name, &t.sum()?)?;
                }
                self.loss(&inputs, &targets)
            }
            "bad_index" => inputs.index_select(1, &Tensor::from_i64(&[4], &[1])?),
            "bad_conv" => inputs.reshape(&[-1, 1, 2, 2])?.conv2d(
                &Tensor::ones(&[3, 2, 2, 2])?,
                None,
                Conv2dOptions::default(),
            ),
            "long_error" => Err(Error::new(long_text())),
            "deep_graph" => {
                // Two of the costliest matrix products the limits allow, both in the
                // autodiff graph: the backward pass costs about as much again.
                let scale = self.layer.weight.sum()?;
                let mut loss = self.loss(&inputs, &targets)?;
                for _ in 0..2 {
                    let tracked = Tensor::ones(&[2048, 4096])?.mul(&scale)?;
                    let product = tracked.matmul(&Tensor::ones(&[4096, 2048])?)?;
                    loss = loss.add(&product.mean()?)?;
                }
                Ok(loss)
            }
            mode if mode.starts_with("op:") || mode.starts_with("inputs:") => {
                let (kind, family) = mode.split_once(':').unwrap_or_default();
                worst_op(family, kind == "op")?;
                Err(Error::new(format!("{mode} done")))
            }
            mode if mode.starts_with("op_loop:") => loop {
                worst_op(mode.trim_start_matches("op_loop:"), true)?;
            },
            "metric_flood" => {
                for _ in 0..300 {
                    lightning_mcp_guest_sdk::log::log("flooded", 1.0);
                }
                self.loss(&inputs, &targets)
            }
            mode if mode.starts_with("bad_metric:") => {
                let name = mode.trim_start_matches("bad_metric:");
                lightning_mcp_guest_sdk::log::log(name, 1.0);
                self.loss(&inputs, &targets)
            }
            "nan_loss" => self.loss(&inputs, &targets)?.mul_scalar(f32::NAN),
            "non_scalar_loss" => self.forward(&inputs),
            // What a model can learn of time and chance: the wall clock since 2000 (virtual),
            // how long an hour's sleep took (virtually), and a random number (seeded).
            "time_and_chance" => {
                use std::hash::{BuildHasher, Hasher};
                let since_2000 = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(-1.0, |d| d.as_secs_f64() - 946_684_800.0);
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(3600));
                let slept = started.elapsed().as_secs_f64();
                let chance = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish() as f64
                    / u64::MAX as f64;
                lightning_mcp_guest_sdk::log::log("since_2000_s", since_2000 as f32);
                lightning_mcp_guest_sdk::log::log("slept_s", slept as f32);
                lightning_mcp_guest_sdk::log::log("chance", chance as f32);
                self.loss(&inputs, &targets)
            }
            "read_env" => {
                let visible = std::env::vars().count();
                match std::env::var("HOME") {
                    Ok(home) => Err(Error::new(format!("read HOME={home}"))),
                    Err(e) => Err(Error::new(format!(
                        "the environment is unavailable: HOME: {e}; {visible} variables visible"
                    ))),
                }
            }
            _ => self.loss(&inputs, &targets),
        }
    }

    fn validation_step(&mut self, inputs: Tensor, targets: Tensor, batch_index: u32) -> Result<()> {
        fail_in(&self.mode, "validation_step");
        if self.mode == "plateau" {
            if batch_index == 0 {
                self.validations += 1;
            }
            let script = [5.0, 4.0, 3.0];
            let value = script
                .get(self.validations.saturating_sub(1))
                .copied()
                .unwrap_or(3.0);
            lightning_mcp_guest_sdk::log::log("val_loss", value);
            return Ok(());
        }
        let logits = self.forward(&inputs)?;
        lightning_mcp_guest_sdk::log::log_tensor("val_loss", &logits.cross_entropy(&targets)?)?;
        lightning_mcp_guest_sdk::log::log_tensor("val_acc", &logits.accuracy(&targets)?)
    }

    fn configure_optimizers(&self) -> Optimization {
        fail_in(&self.mode, "configure_optimizers");
        match self.mode.as_str() {
            "sgd" => Optimizer::sgd(1.0).into(),
            // A scheduler the host must refuse: a zero step size and a NaN factor.
            "bad_scheduler" => {
                Optimizer::adam(1e-3).with_scheduler(LrScheduler::new(Schedule::Step {
                    step_size: 0,
                    gamma: f32::NAN,
                }))
            }
            _ => Optimizer::adam(1e-3).into(),
        }
    }

    fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<Dataset>> {
        fail_in(&self.mode, "dataset");
        let labels: Vec<i64> = (0..16).map(|i| i % 3).collect();
        Ok(Some(Dataset {
            inputs: Tensor::randn(&[16, 4], seed)?,
            targets: match split {
                Split::Predict => None,
                _ => Some(Tensor::from_i64(&labels, &[16])?),
            },
            batch_size: 8,
        }))
    }
}

impl Misbehaving {
    /// The well-behaved step: cross-entropy of the forward pass, logged as `train_loss`.
    fn loss(&mut self, inputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        logged_loss(&self.forward(inputs)?, targets)
    }
}

export_model!(Misbehaving);
