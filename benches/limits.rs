//! What the limits cost and how fast they act, on the release binary over stdio:
//! - for each limit, the time from sending a request whose model breaks it to its error (for
//!   the deadlines: how long after the deadline the error came);
//! - for each op family, the longest single host call the default limits allow (the op at
//!   its bound, its inputs' time taken off): how far past a deadline one call can run;
//! - the server's resident memory after normal trainings, and after the hostile corpus has run
//!   through it four times (at once, and once idle worker threads have exited).
//!
//! `cargo bench -p lightning-mcp --bench limits`

#![allow(clippy::expect_used)]

#[path = "../tests/e2e/support.rs"]
mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::StdioServer;

const MISBEHAVING: &str = "lightning_mcp.testing.Misbehaving";

/// (mode, the request's limits, the limit it breaks)
fn corpus() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "infinite_loop",
            json!({"timeout_seconds": 0.5}),
            "deadline (pure wasm loop)",
        ),
        (
            "host_call_loop",
            json!({"timeout_seconds": 0.5}),
            "deadline (loop of host calls)",
        ),
        (
            "op_loop:matmul",
            json!({"timeout_seconds": 0.5}),
            "deadline (loop of the costliest matmul)",
        ),
        (
            "op_loop:max_pool2d",
            json!({"timeout_seconds": 0.5}),
            "deadline (loop of the costliest pooling)",
        ),
        (
            "memory_bomb",
            json!({"guest_memory_mib": 64}),
            "guest memory 64 MiB",
        ),
        ("deep_recursion", json!({}), "wasm stack (deep recursion)"),
        (
            "host_memory_bomb",
            json!({"tensor_memory_mib": 64}),
            "host tensor memory 64 MiB",
        ),
        (
            "graph_bomb",
            json!({"tensor_memory_mib": 64}),
            "host tensor memory 64 MiB (autodiff graph)",
        ),
        (
            "giant_from_data",
            json!({"tensor_memory_mib": 16}),
            "host tensor memory 16 MiB (one from-f32)",
        ),
        ("giant_tensor", json!({}), "elements per tensor (one zeros)"),
        ("nan_loss", json!({}), "finite loss"),
        ("forged_handle", json!({}), "forged handle"),
    ]
}

/// The op families whose costliest call the misbehaving guest makes (`op:FAMILY`).
const OP_FAMILIES: [&str; 16] = [
    "matmul",
    "batched_matmul",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "exp",
    "broadcast_add",
    "softmax",
    "sum",
    "transpose",
    "index_select",
    "cat",
    "layer_norm",
    "cross_entropy",
    "randn",
    "causal_mask",
];

/// One training step of `mode` and nothing else.
fn one_step(mode: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "tools/call", "params": {
        "name": "lightning.train", "arguments": {
            "model": {"_target_": MISBEHAVING, "mode": mode},
            "trainer": {"max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 0,
                        "num_sanity_val_steps": 0, "accelerator": "cpu"}}}})
}

fn train(id: u64, mode: &str, limits: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "lightning.train", "arguments": {
            "model": {"_target_": MISBEHAVING, "mode": mode},
            "trainer": {"max_epochs": 1}, "limits": limits}}})
}

fn rss_mib(server: &StdioServer) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("misbehaving.wasm"),
        lightning_mcp_guests::testing::MISBEHAVING,
    )
    .expect("write");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let mut server = StdioServer::start(&["--models-dir", &dir_arg, "--log", "error"]);
    let mut id = 0;
    let mut request = |server: &mut StdioServer, message: Value| {
        id += 1;
        let mut message = message;
        if let Some(object) = message.as_object_mut() {
            object.insert("id".into(), json!(id));
        }
        let started = Instant::now();
        let reply = server.request(&message);
        (reply, started.elapsed())
    };
    let warm_up = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {
        "name": "lightning.train", "arguments": {
            "model": {"_target_": "lightning_mcp.models.mlp.MLP"}, "trainer": {"max_epochs": 5}}}});
    // Normal service first, with both models, so that their code and the worker threads are
    // part of the baseline.
    for message in [warm_up.clone(), train(0, "ok", &json!({}))] {
        let (reply, _) = request(&mut server, message);
        assert_eq!(
            reply.pointer("/result/isError"),
            Some(&json!(false)),
            "{reply}"
        );
    }
    let before = rss_mib(&server);

    println!("limit                                        time to error (median of 5)");
    for (mode, limits, limit) in corpus() {
        let mut times = Vec::new();
        for _ in 0..5 {
            let (reply, took) = request(&mut server, train(0, mode, &limits));
            assert_eq!(
                reply.pointer("/result/isError"),
                Some(&json!(true)),
                "{reply}"
            );
            times.push(took);
        }
        times.sort();
        let median = times.get(2).copied().unwrap_or_default();
        match limits.get("timeout_seconds").and_then(Value::as_f64) {
            Some(budget) => println!(
                "{limit:<44} {:>8.1} ms after the {:.0} ms deadline",
                median
                    .saturating_sub(Duration::from_secs_f64(budget))
                    .as_secs_f64()
                    * 1e3,
                budget * 1e3
            ),
            None => println!("{limit:<44} {:>8.1} ms", median.as_secs_f64() * 1e3),
        }
    }
    println!("op family           longest call at the bound (max of 3; its inputs' time off)");
    for family in OP_FAMILIES {
        let mut op = Duration::ZERO;
        let mut inputs = Duration::MAX;
        for _ in 0..3 {
            let (_, took) = request(&mut server, one_step(&format!("inputs:{family}")));
            inputs = inputs.min(took);
            let (reply, took) = request(&mut server, one_step(&format!("op:{family}")));
            let error = reply
                .pointer("/result/structuredContent/error")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(error.contains("done"), "{family}: {reply}");
            op = op.max(took);
        }
        println!(
            "{family:<20} {:>8.1} ms",
            op.saturating_sub(inputs).as_secs_f64() * 1e3
        );
    }
    for _ in 0..3 {
        for (mode, limits, _) in corpus() {
            request(&mut server, train(0, mode, &limits));
        }
    }
    let (reply, _) = request(&mut server, warm_up);
    assert_eq!(
        reply.pointer("/result/isError"),
        Some(&json!(false)),
        "{reply}"
    );
    let after = rss_mib(&server);
    // Idle worker threads exit after 10 s, and their stacks (touched deeply by the recursion
    // bomb) go with them.
    std::thread::sleep(Duration::from_secs(12));
    let idle = rss_mib(&server);
    let change = |mib: f64| (mib / before - 1.0) * 100.0;
    println!(
        "server RSS: {before:.1} MiB after normal trainings; after the corpus ran 4 times: \
         {after:.1} MiB ({:+.1} %), 12 s later {idle:.1} MiB ({:+.1} %)",
        change(after),
        change(idle)
    );
}
