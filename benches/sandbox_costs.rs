//! What the sandbox itself costs, apart from the math:
//! - a host call's round trip: a step of the test model making 10,000 `shape` queries (a
//!   call that only crosses the boundary) or 10,000 `relu`s of a 16×4 tensor (an op: a new
//!   tracked tensor, then its drop), less the same step without them, per call;
//! - instantiating a compiled component (a fresh store with its limits, the guest's start);
//! - loading a component: compiling it with Cranelift, and deserialising it from the on-disk
//!   compile cache, each followed by linking and the guest's `describe`, as the server does
//!   on a model's first use.
//!
//! `cargo bench -p lightning-mcp --bench sandbox_costs`

#![allow(clippy::expect_used)]

// Shared with the other benches; this one uses part of it.
#[allow(dead_code)]
#[path = "guest_model.rs"]
mod guest_model;
#[path = "timing.rs"]
mod timing;

use guest_model::GuestModel;
use lightning_mcp::cancel::CancelToken;
use lightning_mcp::sandbox::{ComponentCache, Limits, ModelRegistry, ModelSource, Sandbox};
use lightning_mcp::tensor::{self, Rng};
use std::hint::black_box;
use std::time::Duration;

/// Host calls per step in the test model's `shape_calls` and `op_calls` modes.
const HOST_CALLS: f64 = 10_000.0;

/// The test model in `mode` on a batch of 16 samples of 4 features, 3 classes.
fn misbehaving(mode: &str) -> GuestModel {
    let device = tensor::cpu_device();
    let x = tensor::from_f32(&device, Rng::seeded(1).normal(16 * 4, 1.0), &[16, 4]).expect("x");
    let y = tensor::from_i64(&device, (0..16).map(|i| i % 3).collect(), &[16]).expect("y");
    GuestModel::new(
        device,
        lightning_mcp_guests::testing::MISBEHAVING,
        &format!(r#"{{"mode":"{mode}"}}"#),
        x,
        y,
    )
}

fn round_trips() {
    let (mut plain, mut shapes, mut ops) = (
        misbehaving("ok"),
        misbehaving("shape_calls"),
        misbehaving("op_calls"),
    );
    let results = timing::measure_interleaved(
        3,
        10,
        5,
        &mut [&mut || plain.step(), &mut || shapes.step(), &mut || {
            ops.step()
        }],
    );
    if let [plain, shapes, ops] = results.as_slice() {
        let per_call =
            |s: &timing::Summary| (s.median.as_secs_f64() - plain.median.as_secs_f64()) * 1e9;
        println!("Host-call round trip (median step with 10,000 calls, less the plain step's)");
        println!("  plain step:              {plain}");
        println!(
            "  `shape` query:       {:>7.0} ns/call   ({shapes})",
            per_call(shapes) / HOST_CALLS
        );
        println!(
            "  `relu` op + drop:    {:>7.0} ns/call   ({ops})",
            per_call(ops) / HOST_CALLS
        );
    }
}

/// Instantiating, and loading with and without the compile cache, of each built-in model.
fn components() {
    let sandbox = Sandbox::new().expect("sandbox");
    let limits = Limits::default();
    let cache_dir =
        std::env::temp_dir().join(format!("lightning-mcp-bench-{}", std::process::id()));
    let cache = ComponentCache::at(&cache_dir);
    println!(
        "Components (each built-in model): instantiate; load = compile or deserialise + link + describe"
    );
    for built_in in lightning_mcp_guests::BUILT_IN {
        let load = |cache: &ComponentCache| {
            ModelRegistry::compile(
                &sandbox,
                cache,
                &limits,
                built_in.wasm,
                ModelSource::BuiltIn,
            )
            .expect("a model component")
        };
        let model = load(&cache); // fills the cache
        let mut instantiate = || {
            black_box(
                model
                    .instantiate(
                        tensor::cpu_device(),
                        &limits,
                        0,
                        Duration::from_secs(60),
                        CancelToken::new(),
                    )
                    .expect("instance"),
            );
        };
        let instantiated = timing::measure_interleaved(10, 10, 20, &mut [&mut instantiate]);
        let mut cached = || drop(black_box(load(&cache)));
        let mut compiled = || drop(black_box(load(&ComponentCache::disabled())));
        let loaded = timing::measure_interleaved(1, 3, 2, &mut [&mut cached, &mut compiled]);
        if let ([instantiated], [cached, compiled]) = (instantiated.as_slice(), loaded.as_slice()) {
            println!("  {} ({} KiB)", built_in.target, built_in.wasm.len() / 1024);
            println!("    instantiate:             {instantiated}");
            println!("    load from the cache:     {cached}");
            println!("    load, compiling:         {compiled}");
        }
    }
    let _ = std::fs::remove_dir_all(&cache_dir);
}

fn main() {
    round_trips();
    components();
}
