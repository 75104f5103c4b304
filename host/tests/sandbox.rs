//! Hostile guests: each misbehaviour is a clean error naming what happened, and the same
//! sandbox and registry then serve a normal model.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

use lightning_mcp::cancel::CancelToken;
use lightning_mcp::sandbox::{
    BuiltInModels, ComponentCache, Limits, ModelInstance, ModelRegistry, ModelSource,
    RegisteredModel, Sandbox, SandboxError, Split,
};
use lightning_mcp::tensor::{self, Optimizer};
use lightning_mcp::trainer::{self, TrainError};
use std::sync::Arc;
use std::time::Duration;

const MISBEHAVING: &str = "lightning_mcp.testing.Misbehaving";

struct Fixture {
    built_in: BuiltInModels,
    registry: ModelRegistry,
    sandbox: Sandbox,
}

impl Fixture {
    /// The model registered under `target`, built-in or the misbehaving one.
    fn model(&self, target: &str) -> Arc<RegisteredModel> {
        let cache = ComponentCache::disabled();
        match self
            .built_in
            .get(target, &self.sandbox, &cache, &Limits::default())
        {
            Some(model) => model.unwrap_or_else(|e| panic!("{target}: {e}")),
            None => self
                .registry
                .get(target)
                .map(Arc::clone)
                .unwrap_or_else(|| panic!("{target} is not registered")),
        }
    }
}

fn fixture() -> Fixture {
    let sandbox = Sandbox::new().expect("a sandbox");
    let cache = ComponentCache::disabled();
    let mut registry = ModelRegistry::default();
    registry
        .register(
            &sandbox,
            &cache,
            &Limits::default(),
            lightning_mcp_guests::testing::MISBEHAVING,
            ModelSource::BuiltIn,
        )
        .expect("the misbehaving model registers");
    Fixture {
        built_in: BuiltInModels::default(),
        registry,
        sandbox,
    }
}

fn instance(f: &Fixture, target: &str, limits: &Limits, budget: Duration) -> ModelInstance {
    f.model(target)
        .instantiate(tensor::cpu_device(), limits, 7, budget, CancelToken::new())
        .expect("the model instantiates")
}

/// Builds the misbehaving model in `mode` and runs one training step (guest step, backward,
/// optimizer) on its own data; returns what the step logged.
fn step(
    f: &Fixture,
    mode: &str,
    limits: &Limits,
    budget: Duration,
) -> Result<Vec<(String, f32)>, TrainError> {
    let mut model = instance(f, MISBEHAVING, limits, budget);
    model.init(&format!(r#"{{"mode":"{mode}"}}"#))?;
    let data = model.dataset(Split::Train, 0)?.expect("a training set");
    let targets = data.targets.expect("training targets");
    let config = model.configure_optimizers()?;
    let mut optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
    trainer::training_step(&mut model, &mut optimizer, data.inputs, targets, 0)?;
    Ok(model.take_logged())
}

/// The error of one step in `mode`.
fn misbehave(f: &Fixture, mode: &str, limits: &Limits, budget: Duration) -> TrainError {
    match step(f, mode, limits, budget) {
        Ok(_) => panic!("mode {mode} trained without error"),
        Err(e) => e,
    }
}

/// A normal training step on the same registry: the host is unharmed.
fn still_serves(f: &Fixture) {
    let logged = step(f, "ok", &Limits::default(), Duration::from_secs(30))
        .expect("a normal step after misbehaviour");
    let loss = logged
        .iter()
        .find(|(name, _)| name == "train_loss")
        .map(|(_, v)| *v);
    assert!(loss.is_some_and(f32::is_finite), "{logged:?}");
}

/// Runs `mode` under `limits`: the step fails naming the limit, and the host goes on.
fn hits_limit(mode: &str, limits: &Limits, message: &str) {
    let f = fixture();
    let e = misbehave(&f, mode, limits, Duration::from_secs(30));
    assert_mentions(&e, &[message]);
    still_serves(&f);
}

fn tensor_limit_128_mib() -> Limits {
    Limits {
        max_tensor_bytes: 128 << 20,
        ..Limits::default()
    }
}

#[track_caller]
fn assert_mentions(e: &impl std::fmt::Display, needles: &[&str]) {
    let message = e.to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
}

#[test]
fn shape_mismatch_is_the_guests_error() {
    let f = fixture();
    let e = misbehave(
        &f,
        "shape_mismatch",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert!(
        matches!(e, TrainError::Sandbox(SandboxError::Model(_))),
        "{e:?}"
    );
    assert_mentions(&e, &["matmul", "[16, 4]", "[3, 2]"]);
    still_serves(&f);
}

/// The loss of the second training step in `mode` (so that it depends on the first step's
/// gradients).
fn second_loss(f: &Fixture, mode: &str) -> f32 {
    let mut model = instance(f, MISBEHAVING, &Limits::default(), Duration::from_secs(30));
    model
        .init(&format!(r#"{{"mode":"{mode}"}}"#))
        .expect("the model initialises");
    let (inputs, targets) = own_training_data(&mut model);
    let config = model
        .configure_optimizers()
        .expect("an optimizer configuration");
    let mut optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
    let mut loss = None;
    for _ in 0..2 {
        trainer::training_step(
            &mut model,
            &mut optimizer,
            inputs.clone(),
            targets.clone(),
            0,
        )
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
        loss = model
            .take_logged()
            .into_iter()
            .find(|(name, _)| name == "train_loss")
            .map(|(_, v)| v);
    }
    loss.unwrap_or_else(|| panic!("{mode} logged no train_loss"))
}

/// Asserts that `mode` trains to the plain linear layer's loss (mode `ok`); returns that loss.
fn assert_loss_of_the_linear_layer(f: &Fixture, mode: &str) -> f32 {
    let (linear, other) = (second_loss(f, "ok"), second_loss(f, mode));
    assert!(
        (linear - other).abs() <= 1e-5 * linear.abs().max(1.0),
        "ok {linear} vs {mode} {other}"
    );
    linear
}

#[test]
fn image_ops_reach_the_host_through_the_contract() {
    let f = fixture();
    // conv2d (with its optional bias) and the three pools, gradients included, compute what
    // the linear layer does.
    assert_loss_of_the_linear_layer(&f, "image_ops");
    let e = misbehave(&f, "bad_conv", &Limits::default(), Duration::from_secs(30));
    assert_mentions(&e, &["conv2d", "2 channels per group", "1 in 1 group"]);
    still_serves(&f);
}

#[test]
fn window_options_cross_the_contract_as_sent() {
    let f = fixture();
    let mut model = instance(&f, MISBEHAVING, &Limits::default(), Duration::from_secs(30));
    model
        .init(r#"{"mode":"window_options"}"#)
        .expect("the model initialises");
    let (inputs, targets) = own_training_data(&mut model);
    let weight = model
        .parameters()
        .iter()
        .find(|p| p.name.ends_with("weight"))
        .map(|p| p.value.clone())
        .expect("a weight parameter");
    let config = model
        .configure_optimizers()
        .expect("an optimizer configuration");
    let mut optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
    trainer::training_step(&mut model, &mut optimizer, inputs.clone(), targets, 0)
        .expect("a training step");
    let logged = model.take_logged();
    // The same ops, called directly on the same data.
    let ok = |r: Result<tensor::Tensor, tensor::TensorError>| r.expect("the op succeeds");
    let images = ok(tensor::reshape(&inputs, &[-1, 1, 2, 2]));
    let kernel = ok(tensor::reshape(&weight, &[3, 1, 2, 2]));
    let pool = |kernel, stride, padding| tensor::Pool2dOptions {
        kernel,
        stride,
        padding,
        dilation: [1, 1],
    };
    let expected = [
        (
            "conv",
            ok(tensor::conv2d(
                &images,
                &kernel,
                None,
                &tensor::Conv2dOptions {
                    stride: [2, 1],
                    padding: [1, 0],
                    dilation: [1, 1],
                    groups: 1,
                },
            )),
        ),
        (
            "max",
            ok(tensor::max_pool2d(&images, &pool([2, 1], [1, 2], [1, 0]))),
        ),
        (
            "avg",
            ok(tensor::avg_pool2d(&images, &pool([1, 2], [1, 1], [0, 1]))),
        ),
        ("adaptive", ok(tensor::adaptive_avg_pool2d(&images, [1, 2]))),
    ];
    for (name, direct) in expected {
        let sum = ok(tensor::sum(&direct));
        let want = tensor::to_f32(&sum).ok().and_then(|v| v.first().copied());
        let got = logged.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        match (got, want) {
            (Some(got), Some(want)) => assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{name}: through the contract {got}, direct {want}"
            ),
            other => panic!("{name}: {other:?} in {logged:?}"),
        }
    }
}

#[test]
fn indexing_ops_reach_the_host_through_the_contract() {
    let f = fixture();
    // slice, cat (a list of handles), index-select, embedding, gather, masked-fill and
    // causal-mask, gradients included, rebuild what the linear layer computes.
    let linear = assert_loss_of_the_linear_layer(&f, "index_ops");
    let e = misbehave(&f, "bad_index", &Limits::default(), Duration::from_secs(30));
    assert_mentions(&e, &["index-select", "index 4 is out of range 0..4"]);
    // Layer-normalised logits: zero mean and unit variance per row bound the loss away from
    // the plain layer's.
    let normalised = second_loss(&f, "layer_norm");
    assert!(
        normalised.is_finite() && (normalised - linear).abs() > 1e-3,
        "layer_norm {normalised} vs ok {linear}"
    );
    let e = misbehave(
        &f,
        "bad_layer_norm",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert_mentions(&e, &["layer-norm", "weight must be [4]", "[3]"]);
    // Batch norm updates its running statistics in place: they must be buffers, which only
    // `init` declares.
    let e = misbehave(
        &f,
        "bad_batch_norm",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert_mentions(&e, &["batch-norm", "running mean must be a buffer"]);
    let e = misbehave(
        &f,
        "shared_buffer",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert_mentions(&e, &["batch-norm", "two different buffers"]);
    let e = misbehave(
        &f,
        "late_buffer",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert_mentions(&e, &["buffers can only be declared during init"]);
    still_serves(&f);
}

#[test]
fn a_stale_handle_traps_cleanly() {
    let f = fixture();
    let e = misbehave(
        &f,
        "stale_handle",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert!(
        matches!(e, TrainError::Sandbox(SandboxError::Trap(_))),
        "{e:?}"
    );
    assert_mentions(&e, &["the model trapped"]);
    still_serves(&f);
}

#[test]
fn a_panic_reports_the_guests_message() {
    let f = fixture();
    let e = misbehave(&f, "panic", &Limits::default(), Duration::from_secs(30));
    assert_mentions(
        &e,
        &[
            "the model panicked",
            "misbehaving model panicked on purpose",
        ],
    );
    let e = misbehave(
        &f,
        "panic_in:init",
        &Limits::default(),
        Duration::from_secs(30),
    );
    assert_mentions(&e, &["the model panicked", "panicked in init"]);
    still_serves(&f);
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let f = fixture();
    let e = misbehave(
        &f,
        "infinite_loop",
        &Limits::default(),
        Duration::from_millis(300),
    );
    assert!(
        matches!(e, TrainError::Sandbox(SandboxError::Limit(_))),
        "{e:?}"
    );
    assert_mentions(&e, &["time limit"]);
    still_serves(&f);
}

/// The inputs and targets of a model's own training data.
fn own_training_data(model: &mut ModelInstance) -> (tensor::Tensor, tensor::Tensor) {
    let data = model
        .dataset(Split::Train, 0)
        .ok()
        .flatten()
        .expect("a training set");
    let targets = data.targets.expect("training targets");
    (data.inputs, targets)
}

#[test]
fn cancelling_stops_a_guest_that_never_returns() {
    let f = fixture();
    let model = f.model(MISBEHAVING);
    let cancel = CancelToken::new();
    let mut model = model
        .instantiate(
            tensor::cpu_device(),
            &Limits::default(),
            7,
            Duration::from_secs(600),
            cancel.clone(),
        )
        .expect("the model instantiates");
    model
        .init(r#"{"mode":"infinite_loop"}"#)
        .expect("the model initialises");
    let (inputs, targets) = own_training_data(&mut model);
    let config = model
        .configure_optimizers()
        .expect("an optimizer configuration");
    let mut optimizer = Optimizer::new(&config.optimizer, model.parameters().len());
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.cancel();
    });
    let e = trainer::training_step(&mut model, &mut optimizer, inputs, targets, 0)
        .expect_err("the endless step fails");
    let _ = canceller.join();
    assert!(
        matches!(e, TrainError::Sandbox(SandboxError::Cancelled(_))),
        "{e:?}"
    );
    still_serves(&f);
}

#[test]
fn a_guest_memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        max_guest_memory: 64 << 20,
        ..Limits::default()
    };
    hits_limit("memory_bomb", &limits, "guest memory limit of 64 MiB");
}

#[test]
fn a_host_memory_bomb_hits_the_tensor_limit() {
    hits_limit(
        "host_memory_bomb",
        &tensor_limit_128_mib(),
        "host tensor memory limit of 128 MiB",
    );
}

#[test]
fn an_autodiff_graph_bomb_hits_the_tensor_limit() {
    hits_limit(
        "graph_bomb",
        &tensor_limit_128_mib(),
        "host tensor memory limit of 128 MiB",
    );
}

#[test]
fn a_guest_that_sleeps_an_hour_links_and_is_done_at_once() {
    let sandbox = Sandbox::new().expect("a sandbox");
    let mut registry = ModelRegistry::default();
    let sleeper = registry
        .register(
            &sandbox,
            &ComponentCache::disabled(),
            &Limits::default(),
            lightning_mcp_guests::testing::SLEEPER,
            ModelSource::BuiltIn,
        )
        .expect("a guest importing clocks links: they are virtual");
    let budget = Duration::from_secs(10);
    let mut model = sleeper
        .instantiate(
            tensor::cpu_device(),
            &Limits::default(),
            7,
            budget,
            CancelToken::new(),
        )
        .expect("the sleeper instantiates");
    model.init("{}").expect("the sleeper initialises");
    let inputs = tensor::from_f32(&tensor::cpu_device(), vec![0.5; 8], &[2, 4]).expect("a batch");
    let started = std::time::Instant::now();
    let output = model
        .forward(inputs)
        .expect("the hour's sleep is over at once");
    assert_eq!(output.shape(), vec![2, 3]);
    assert!(started.elapsed() < budget, "{:?}", started.elapsed());
}

#[test]
fn a_broken_instance_refuses_further_calls() {
    let f = fixture();
    let mut model = instance(&f, MISBEHAVING, &Limits::default(), Duration::from_secs(30));
    model
        .init(r#"{"mode":"panic"}"#)
        .expect("the model initialises");
    let (inputs, targets) = own_training_data(&mut model);
    assert!(model.training_step(inputs, targets, 0).is_err());
    let again = model
        .dataset(Split::Train, 0)
        .expect_err("a broken instance refuses to answer");
    assert_mentions(&again, &["unusable after an earlier failure"]);
}

#[test]
fn registry_refuses_a_duplicate_target_and_non_components() {
    let sandbox = Sandbox::new().expect("a sandbox");
    let cache = ComponentCache::disabled();
    let limits = Limits::default();
    let mut registry = ModelRegistry::default();
    let misbehaving = lightning_mcp_guests::testing::MISBEHAVING;
    let file = || ModelSource::File("model.wasm".into());
    registry
        .register(&sandbox, &cache, &limits, misbehaving, file())
        .expect("the misbehaving model registers");
    let dup = registry
        .register(&sandbox, &cache, &limits, misbehaving, file())
        .expect_err("a duplicate target is refused");
    assert!(dup.to_string().contains("already registered"), "{dup}");
    let built_in = registry
        .register(&sandbox, &cache, &limits, lightning_mcp_guests::MLP, file())
        .expect_err("a built-in model's target is refused");
    assert_mentions(
        &built_in,
        &["lightning_mcp.models.mlp.MLP is already registered (built-in)"],
    );
    let junk = registry
        .register(
            &sandbox,
            &cache,
            &limits,
            b"\0asm not really",
            ModelSource::BuiltIn,
        )
        .expect_err("junk is refused");
    assert!(junk.to_string().contains("not a valid component"), "{junk}");
}

#[test]
fn the_compile_cache_round_trips() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sandbox = Sandbox::new().expect("a sandbox");
    let cache = ComponentCache::at(dir.path());
    let load = || {
        BuiltInModels::default()
            .all(&sandbox, &cache, &Limits::default())
            .expect("the built-in models load")
    };
    let targets = |models: Vec<Arc<RegisteredModel>>| {
        models
            .iter()
            .map(|m| (m.description.target.clone(), m.sha256.clone()))
            .collect::<Vec<_>>()
    };
    let first = targets(load());
    let files = std::fs::read_dir(dir.path())
        .map(Iterator::count)
        .unwrap_or(0);
    assert_eq!(files, lightning_mcp_guests::BUILT_IN.len());
    assert_eq!(first, targets(load()));
    let declared: Vec<&str> = lightning_mcp_guests::BUILT_IN
        .iter()
        .map(|b| b.target)
        .collect();
    let described: Vec<&str> = first.iter().map(|(target, _)| target.as_str()).collect();
    assert_eq!(described, declared);
}
