//! End-to-end: the built binary over stdio — lifecycle, tools, legacy requests, errors, guest
//! failures, learning and determinism.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use support::{
    StdioServer, TOOLS, listed_checkpoints, number, start_long_training, structured, tool_error,
    with_test_model,
};

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";
const MLP: &str = "lightning_mcp.models.mlp.MLP";
const CONVNET: &str = "lightning_mcp.models.cnn.ConvNet";
const SEQUENTIAL: &str = "lightning_mcp.models.sequential.Sequential";
const TRANSFORMER: &str = "lightning_mcp.models.transformer.CharTransformer";

fn simple(trainer: Value) -> Value {
    json!({"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3}, "trainer": trainer})
}

#[test]
fn initialize_negotiates_and_lists_tools() {
    let mut server = StdioServer::start(&[]);
    let init = |server: &mut StdioServer, id: u64, version: Option<&str>| {
        let mut params = json!({"capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}});
        if let (Some(v), Some(object)) = (version, params.as_object_mut()) {
            object.insert("protocolVersion".into(), json!(v));
        }
        let reply = server.request(
            &json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": params}),
        );
        reply
            .pointer("/result/protocolVersion")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(init(&mut server, 1, None), json!("2024-11-05"));
    assert_eq!(
        init(&mut server, 2, Some("2025-06-18")),
        json!("2025-06-18")
    );
    assert_eq!(
        init(&mut server, 3, Some("2024-11-05")),
        json!("2024-11-05")
    );
    assert_eq!(
        init(&mut server, 4, Some("1999-01-01")),
        json!("2025-11-25")
    );
    let reply =
        server.request(&json!({"jsonrpc": "2.0", "id": 5, "method": "initialize", "params": {}}));
    assert_eq!(
        reply.pointer("/result/serverInfo/name"),
        Some(&json!("lightning-mcp"))
    );
    assert!(
        reply.pointer("/result/capabilities/tools").is_some(),
        "{reply}"
    );

    // A notification gets no reply: the next line answers the ping.
    server.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let pong = server.request(&json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}));
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": "p", "result": {}}));

    let list = server.request(&json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}));
    let tools = list
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.get("name")?.as_str())
        .collect();
    assert_eq!(names, TOOLS);
    for tool in &tools {
        assert_eq!(
            tool.pointer("/inputSchema/type"),
            Some(&json!("object")),
            "{tool}"
        );
        assert!(
            tool.get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty())
        );
    }
    let train_props = tools
        .first()
        .and_then(|t| t.pointer("/inputSchema/properties"))
        .cloned();
    assert!(train_props.is_some_and(|p| p.get("model").is_some() && p.get("trainer").is_some()));
    assert!(
        server.finish(),
        "the server should exit cleanly at end of input"
    );
}

#[test]
fn inspect_model_summary_environment_models() {
    let mut server = StdioServer::start(&[]);
    let model = json!({"_target_": SIMPLE, "input_dim": 4, "num_classes": 3});

    let result = server.call_tool(
        1,
        "lightning.inspect",
        json!({"what": "model", "model": model}),
    );
    let info = structured(&result);
    assert_eq!(info.get("class"), Some(&json!("SimpleClassifier")));
    assert_eq!(info.get("num_parameters"), Some(&json!(15)));
    assert_eq!(info.get("trainable_parameters"), Some(&json!(15)));
    assert_eq!(
        info.get("hyperparameters"),
        Some(&json!({"input_dim": 4, "num_classes": 3, "lr": 0.001}))
    );

    let result = server.call_tool(
        2,
        "lightning.inspect",
        json!({"what": "summary", "model": model}),
    );
    let summary = structured(&result);
    let table = summary
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for needle in [
        "layer.weight",
        "[3, 4]",
        "layer.bias",
        "15 ",
        "Total params",
    ] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    assert_eq!(summary.pointer("/parameters/0/count"), Some(&json!(12)));

    let result = server.call_tool(3, "lightning.inspect", json!({"what": "environment"}));
    let env = structured(&result);
    for key in [
        "lightning_mcp",
        "wasmtime",
        "burn",
        "os",
        "arch",
        "cpus",
        "backends",
    ] {
        assert!(env.get(key).is_some(), "environment lacks {key}: {env}");
    }
    assert_eq!(env.get("wasmtime"), Some(&json!("48.0.8")));
    // cuda/mps availability is whether those accelerator values are usable here.
    for (flag, value) in [("cuda_available", "cuda"), ("mps_available", "mps")] {
        assert_eq!(
            env.get(flag),
            env.pointer(&format!("/accelerators/{value}/usable")),
            "{env}"
        );
    }
    // GPU adapters, probed in a child process: listed when the build has the GPU backend
    // (perhaps none), else unavailable with the reason.
    let gpu = env.get("gpu_adapters").cloned().unwrap_or_default();
    if cfg!(feature = "wgpu") {
        assert_eq!(gpu.get("available"), Some(&json!(true)), "{gpu}");
        assert!(gpu.get("adapters").is_some_and(Value::is_array), "{gpu}");
    } else {
        assert_eq!(
            gpu,
            json!({"available": false,
                "reason": "this build has no GPU backend (built without the `wgpu` feature)"})
        );
    }

    let result = server.call_tool(4, "lightning.inspect", json!({"what": "models"}));
    let models = structured(&result);
    let targets: Vec<&str> = models
        .get("models")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|m| m.get("target")?.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(targets, [CONVNET, MLP, SEQUENTIAL, SIMPLE, TRANSFORMER]);
    assert_eq!(models.pointer("/models/0/source"), Some(&json!("built-in")));
}

/// How many compiled components the server's cache holds.
fn components_loaded(server: &StdioServer) -> usize {
    std::fs::read_dir(server.cache_dir())
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn a_built_in_model_loads_only_when_a_request_names_it() {
    let mut server = StdioServer::start(&[]);
    let init = server.request(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}}));
    assert!(init.get("result").is_some(), "{init}");
    let list = server.request(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert!(list.pointer("/result/tools/5").is_some(), "{list}");
    assert_eq!(
        components_loaded(&server),
        0,
        "start-up and tools/list load no model"
    );
    let trained = server.call_tool(
        3,
        "lightning.train",
        simple(json!({"max_epochs": 1, "accelerator": "cpu"})),
    );
    assert_eq!(
        structured(&trained).get("status"),
        Some(&json!("completed"))
    );
    assert_eq!(components_loaded(&server), 1, "only the SimpleClassifier");
    let models = server.call_tool(4, "lightning.inspect", json!({"what": "models"}));
    assert_eq!(structured(&models).get("count"), Some(&json!(5)));
    assert_eq!(
        components_loaded(&server),
        5,
        "inspect models loads every built-in"
    );
}

#[test]
fn train_simple_classifier() {
    let mut server = StdioServer::start(&[]);
    let result = server.call_tool(
        1,
        "lightning.train",
        simple(json!({"max_epochs": 1, "accelerator": "cpu"})),
    );
    let out = structured(&result);
    assert_eq!(out.get("status"), Some(&json!("completed")));
    assert_eq!(
        out.pointer("/model/class"),
        Some(&json!("SimpleClassifier"))
    );
    assert_eq!(out.pointer("/model/num_parameters"), Some(&json!(15)));
    assert_eq!(
        out.pointer("/model/hyperparameters/lr"),
        Some(&json!(0.001))
    );
    assert_eq!(out.pointer("/trainer/max_epochs"), Some(&json!(1)));
    assert_eq!(out.pointer("/trainer/accelerator"), Some(&json!("cpu")));
    assert_eq!(out.pointer("/trainer/devices"), Some(&json!(1)));
    assert_eq!(
        out.pointer("/trainer/global_step"),
        Some(&json!(8)),
        "64 samples / batch 8"
    );
    for metric in ["train_loss", "val_loss"] {
        let v = number(out, &format!("/metrics/{metric}"));
        assert!(v.is_finite() && v > 0.0, "{metric} = {v}");
    }
    let acc = number(out, "/metrics/val_acc");
    assert!((0.0..=1.0).contains(&acc), "val_acc = {acc}");

    // max_steps and limit_train_batches cut the run short.
    let result = server.call_tool(
        2,
        "lightning.train",
        simple(json!({"max_epochs": 5, "max_steps": 3, "limit_val_batches": 0})),
    );
    let out = structured(&result);
    assert_eq!(out.pointer("/trainer/global_step"), Some(&json!(3)));
    assert_eq!(
        out.pointer("/metrics/val_loss"),
        None,
        "validation was disabled"
    );
    let result = server.call_tool(
        3,
        "lightning.train",
        simple(json!({"max_epochs": 2, "limit_train_batches": 0.5})),
    );
    assert_eq!(
        structured(&result).pointer("/trainer/global_step"),
        Some(&json!(8))
    );
}

#[test]
fn the_legacy_form_works_without_initialize() {
    let mut server = StdioServer::start(&[]);
    server.send_raw(
        r#"{"id":"1","method":"lightning.train","params":{"model":{"_target_":"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},"trainer":{"max_epochs":1,"accelerator":"cpu"}}}"#,
    );
    let reply = server.next_message();
    assert_eq!(reply.get("id"), Some(&json!("1")));
    let result = reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{reply}"));
    support::assert_text_mirrors_structured(&result);
    assert_eq!(structured(&result).get("status"), Some(&json!("completed")));

    let reply = server.request(
        &json!({"id": "2", "method": "lightning.inspect", "params": {"what": "environment"}}),
    );
    assert!(
        reply.pointer("/result/structuredContent/burn").is_some(),
        "{reply}"
    );
    let reply = server.request(&json!({"id": "3", "method": "lightning.nope", "params": {}}));
    assert_eq!(reply.pointer("/error/code"), Some(&json!(-32601)));
    assert!(server.finish());
}

#[test]
fn bad_requests_are_clear_errors_and_the_server_goes_on() {
    let mut server = StdioServer::start(&[]);

    for target in ["math.sqrt", "os.system", "/etc/passwd", "../../guest.wasm"] {
        let args = json!({"model": {"_target_": target}, "trainer": {"max_epochs": 1}});
        let message = tool_error(&server.call_tool(1, "lightning.train", args));
        assert!(
            message.contains(target) && message.contains(SIMPLE) && message.contains(MLP),
            "{message}"
        );
    }
    let cases = [
        (json!({"trainer": {"max_epochs": 1}}), vec!["model"]),
        (json!({"model": {"input_dim": 4}}), vec!["_target_"]),
        (
            json!({"model": {"_target_": SIMPLE, "input_dim": "four"}}),
            vec!["input_dim", "string"],
        ),
        (
            json!({"model": {"_target_": SIMPLE, "input_dim": -1}}),
            vec!["input_dim"],
        ),
        (
            json!({"model": {"_target_": SIMPLE, "num_classes": 0}}),
            vec!["num_classes", "0"],
        ),
        (
            json!({"model": {"_target_": SIMPLE, "input_dim": 1_000_000_000u64}}),
            vec!["input_dim"],
        ),
        (
            json!({"model": {"_target_": SIMPLE, "lr": -1.0}}),
            vec!["lr"],
        ),
        (
            json!({"model": {"_target_": SIMPLE, "hidden": 3}}),
            vec!["hidden"],
        ),
        (
            json!({"model": {"_target_": MLP, "hidden_dims": [8, 0]}}),
            vec!["hidden_dims[1]"],
        ),
        (
            json!({"model": {"_target_": MLP, "activation": "swish"}}),
            vec!["activation", "relu"],
        ),
        (simple(json!({"max_epochs": 0})), vec!["max_epochs"]),
        (simple(json!({"max_epochs": 1e15})), vec!["max_epochs"]),
        (simple(json!({"max_steps": -5})), vec!["max_steps"]),
        (
            simple(json!({"limit_train_batches": 1.5})),
            vec!["limit_train_batches"],
        ),
        (
            simple(json!({"accelerator": "tpu"})),
            vec!["accelerator", "tpu"],
        ),
        (simple(json!({"devices": 4})), vec!["devices"]),
        (
            simple(json!({"gradient_clip_vall": 1.0})),
            vec!["gradient_clip_vall"],
        ),
        (
            json!({"model": {"_target_": SIMPLE}, "extra": true}),
            vec!["extra"],
        ),
    ];
    for (i, (args, needles)) in cases.into_iter().enumerate() {
        let message = tool_error(&server.call_tool(10 + i as u64, "lightning.train", args.clone()));
        for needle in needles {
            assert!(
                message.contains(needle),
                "{args}: {message:?} should mention {needle:?}"
            );
        }
    }
    let message = tool_error(&server.call_tool(40, "lightning.inspect", json!({"what": "model"})));
    assert!(message.contains("model"), "{message}");
    let message =
        tool_error(&server.call_tool(41, "lightning.inspect", json!({"what": "weights"})));
    assert!(
        message.contains("what") && message.contains("environment"),
        "{message}"
    );

    // Protocol errors.
    server.send_raw("{this is not json");
    let reply = server.next_message();
    assert_eq!(
        reply.pointer("/error/code"),
        Some(&json!(-32700)),
        "{reply}"
    );
    let reply = server.request(&json!({"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": {"name": "lightning.nope"}}));
    assert_eq!(reply.pointer("/error/code"), Some(&json!(-32602)));
    let reply = server.request(&json!({"jsonrpc": "2.0", "id": 51, "method": "resources/list"}));
    assert_eq!(reply.pointer("/error/code"), Some(&json!(-32601)));
    let reply = server.request(&json!({"jsonrpc": "2.0", "id": 52, "method": "tools/call", "params": {"name": "lightning.train", "arguments": [1]}}));
    assert_eq!(reply.pointer("/error/code"), Some(&json!(-32602)));
    let reply =
        server.request(&json!({"jsonrpc": "2.0", "id": 54, "method": "ping", "params": [1, 2]}));
    assert_eq!(
        reply.pointer("/error/code"),
        Some(&json!(-32602)),
        "{reply}"
    );
    // A notification gets no reply, whatever its params; an id that is not a string or a
    // number is answered with a null id.
    server.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":[1]}"#);
    server.send_raw(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#);
    let reply = server.next_message();
    assert_eq!(reply.get("id"), Some(&Value::Null), "{reply}");
    assert_eq!(
        reply.pointer("/error/code"),
        Some(&json!(-32600)),
        "{reply}"
    );
    server.send_raw(r#"[{"jsonrpc":"2.0","id":53,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
    assert_eq!(
        server.next_message(),
        json!([{"jsonrpc": "2.0", "id": 53, "result": {}}])
    );

    // And the server still trains.
    let result = server.call_tool(60, "lightning.train", simple(json!({"max_epochs": 1})));
    assert_eq!(structured(&result).get("status"), Some(&json!("completed")));
}

#[test]
fn mlp_learns_its_separable_data() {
    let mut server = StdioServer::start(&[]);
    let train = |server: &mut StdioServer, id: u64, epochs: u32| {
        let args = json!({
            "model": {"_target_": MLP, "input_dim": 8, "hidden_dims": [32], "num_classes": 4},
            "trainer": {"max_epochs": epochs, "seed": 3},
        });
        structured(&server.call_tool(id, "lightning.train", args)).clone()
    };
    let one = train(&mut server, 1, 1);
    let ten = train(&mut server, 2, 10);
    let (loss_1, loss_10) = (
        number(&one, "/metrics/train_loss"),
        number(&ten, "/metrics/train_loss"),
    );
    assert!(
        loss_10 < loss_1 * 0.5,
        "loss should fall: {loss_1} after 1 epoch, {loss_10} after 10"
    );
    let acc = number(&ten, "/metrics/train_acc");
    assert!(acc >= 0.95, "training accuracy {acc}");
    assert!(number(&ten, "/metrics/val_acc") >= 0.95, "{ten}");
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let mut server = StdioServer::start(&[]);
    let run = |server: &mut StdioServer, id: u64, seed: u64| {
        let args = json!({
            "model": {"_target_": MLP, "dropout": 0.2},
            "trainer": {"max_epochs": 2, "seed": seed},
        });
        structured(&server.call_tool(id, "lightning.train", args))
            .get("metrics")
            .cloned()
    };
    let first = run(&mut server, 1, 11);
    assert!(first.is_some());
    assert_eq!(first, run(&mut server, 2, 11));
    assert_ne!(first, run(&mut server, 3, 12));
}

#[test]
fn a_long_training_does_not_block_other_requests() {
    let mut server = StdioServer::start(&[]);
    server.send_raw(
        &json!({
            "jsonrpc": "2.0", "id": "long", "method": "tools/call",
            "params": {"name": "lightning.train", "arguments": {
                "model": {"_target_": MLP, "hidden_dims": [256, 256]},
                "trainer": {"max_epochs": 100},
            }},
        })
        .to_string(),
    );
    server.send_raw(r#"{"jsonrpc":"2.0","id":"ping","method":"ping"}"#);
    server.send_raw(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
    let order: Vec<Value> = (0..3)
        .map(|_| server.next_message().get("id").cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        order.last(),
        Some(&json!("long")),
        "replies arrived as {order:?}"
    );
}

/// The environment's count of model runs and live instances.
fn resources_in_use(server: &mut StdioServer, id: u64) -> (Value, Value) {
    let env = server.call_tool(id, "lightning.inspect", json!({"what": "environment"}));
    let env = structured(&env);
    (
        env.get("runs_in_progress").cloned().unwrap_or_default(),
        env.get("model_instances_alive")
            .cloned()
            .unwrap_or_default(),
    )
}

#[test]
fn progress_and_log_messages_come_before_the_result() {
    let mut server = StdioServer::start(&[]);
    server.request(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                           "params": {"protocolVersion": "2025-11-25"}}));
    let level = server.request(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                                       "params": {"level": "info"}}),
    );
    assert_eq!(level.get("result"), Some(&json!({})));
    let bad_level = server.request(&json!({"jsonrpc": "2.0", "id": 3,
        "method": "logging/setLevel", "params": {"level": "loud"}}));
    assert_eq!(bad_level.pointer("/error/code"), Some(&json!(-32602)));
    server.send_raw(
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                "params": {"name": "lightning.train", "_meta": {"progressToken": "tok"},
                           "arguments": simple(json!({"max_epochs": 4}))}})
        .to_string(),
    );
    let mut progress = Vec::new();
    let mut logs = Vec::new();
    let result = loop {
        let message = server.next_message();
        match message.get("method").and_then(Value::as_str) {
            Some("notifications/progress") => progress.push(message),
            Some("notifications/message") => logs.push(message),
            _ => break message,
        }
    };
    assert_eq!(result.get("id"), Some(&json!(4)));
    let steps = number(&result, "/result/structuredContent/trainer/global_step");
    assert!(
        progress.len() >= 4,
        "one progress per epoch at least: {progress:?}"
    );
    let values: Vec<f64> = progress
        .iter()
        .map(|p| number(p, "/params/progress"))
        .collect();
    assert!(
        values.windows(2).all(|w| w.first() < w.get(1)),
        "{values:?}"
    );
    assert_eq!(values.last(), Some(&steps));
    for p in &progress {
        assert_eq!(p.pointer("/params/progressToken"), Some(&json!("tok")));
        assert_eq!(number(p, "/params/total"), steps);
        let message = p
            .pointer("/params/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            message.contains("epoch") && message.contains("train_loss"),
            "{message}"
        );
    }
    assert!(
        logs.len() >= 5,
        "a start message and one per epoch: {logs:?}"
    );
    assert!(
        logs.iter()
            .all(|l| l.pointer("/params/level") == Some(&json!("info")))
    );
    // Without a progress token or a log level, a call sends nothing but its result.
    let mut quiet = StdioServer::start(&[]);
    quiet.send_raw(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "lightning.train", "arguments": simple(json!({"max_epochs": 2}))}})
        .to_string(),
    );
    assert_eq!(quiet.next_message().get("id"), Some(&json!(1)));
}

#[test]
fn cancelling_stops_a_training_and_frees_it() {
    let mut server = StdioServer::start(&[]);
    start_long_training(&mut server, simple(json!({"max_epochs": 1_000_000})));
    let (runs, alive) = resources_in_use(&mut server, 10);
    assert_eq!((runs, alive), (json!(1), json!(1)));
    server.send_raw(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "long", "reason": "enough"}})
        .to_string(),
    );
    let mut id = 11;
    loop {
        let (runs, alive) = resources_in_use(&mut server, id);
        if (runs.clone(), alive.clone()) == (json!(0), json!(0)) {
            break;
        }
        assert!(
            id < 500,
            "the cancelled training still runs: {runs} runs, {alive} instances"
        );
        id += 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The cancelled request is never answered; the server goes on.
    let pong = server.request(&json!({"jsonrpc": "2.0", "id": "after", "method": "ping"}));
    assert_eq!(pong.get("result"), Some(&json!({})));
    assert!(server.finish());
}

#[test]
fn runs_past_the_cap_wait_their_turn_and_a_full_queue_says_busy() {
    // Five trainings piped in at once on a server that runs one at a time: all complete, in
    // turn, with the numbers each gets alone.
    let mut server = StdioServer::start(&["--max-concurrent-runs", "1"]);
    let run = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "lightning.train", "arguments": simple(json!({"max_epochs": 3, "seed": 4}))}})
    };
    for id in 1..=5 {
        server.send_raw(&run(id).to_string());
    }
    let mut metrics = Vec::new();
    while metrics.len() < 5 {
        let message = server.next_message();
        if let Some(result) = message.get("result") {
            assert_eq!(result.get("isError"), Some(&json!(false)), "{message}");
            metrics.push(result.pointer("/structuredContent/metrics").cloned());
        }
    }
    assert!(
        metrics.windows(2).all(|w| w.first() == w.get(1)),
        "{metrics:?}"
    );

    // With a queue of one: one runs, one waits, the next is told the server is busy.
    let mut server = StdioServer::start(&["--max-concurrent-runs", "1", "--max-queued-runs", "1"]);
    start_long_training(&mut server, simple(json!({"max_epochs": 1_000_000})));
    server.send_raw(&run(2).to_string());
    // (The waiting run takes its place in the queue before the next arrives.)
    std::thread::sleep(std::time::Duration::from_millis(300));
    let busy = server.call_tool(3, "lightning.train", simple(json!({"max_epochs": 1})));
    let message = tool_error(&busy);
    assert!(
        message.contains("the server is busy")
            && message.contains("--max-concurrent-runs")
            && message.contains("--max-queued-runs 1"),
        "{message}"
    );
    // Once the long one is cancelled, the waiting one runs.
    server.send_raw(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long"}}"#,
    );
    let waited = server.request(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
    assert_eq!(waited.get("result"), Some(&json!({})));
    loop {
        let message = server.next_message();
        if message.get("id") == Some(&json!(2)) {
            assert_eq!(
                message.pointer("/result/isError"),
                Some(&json!(false)),
                "{message}"
            );
            break;
        }
    }
}

#[test]
fn the_stateless_era_works_over_stdio() {
    let mut server = StdioServer::start(&[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let discover = server.request(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
                                          "params": {"_meta": meta}}),
    );
    assert_eq!(
        discover.pointer("/result/resultType"),
        Some(&json!("complete"))
    );
    assert!(discover.pointer("/result/ttlMs").is_some());
    assert_eq!(
        discover.pointer("/result/_meta/io.modelcontextprotocol~1serverInfo/name"),
        Some(&json!("lightning-mcp"))
    );
    let call = server.request(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"_meta": meta, "name": "lightning.inspect", "arguments": {"what": "models"}}}));
    assert_eq!(call.pointer("/result/resultType"), Some(&json!("complete")));
    assert_eq!(call.pointer("/result/isError"), Some(&json!(false)));
    let ping = server.request(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping",
                                      "params": {"_meta": meta}}));
    assert_eq!(ping.pointer("/error/code"), Some(&json!(-32601)));
    let no_caps = server.request(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}));
    assert_eq!(no_caps.pointer("/error/code"), Some(&json!(-32602)));
    let future = server.request(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01",
                             "io.modelcontextprotocol/clientCapabilities": {}}}}));
    assert_eq!(future.pointer("/error/code"), Some(&json!(-32022)));
    assert_eq!(
        future.pointer("/error/data/requested"),
        Some(&json!("2099-01-01"))
    );
    // A stateful version in `_meta` is served as the stateful era, not refused.
    let stateful = server.request(&json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-06-18"}}}));
    assert!(stateful.pointer("/result/tools/0").is_some(), "{stateful}");
    assert!(stateful.pointer("/result/resultType").is_none());
    // Ids that cannot be echoed exactly, and oversized batches, are invalid requests.
    server.send_raw(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#);
    let float_id = server.next_message();
    assert_eq!(
        float_id.pointer("/error/code"),
        Some(&json!(-32600)),
        "{float_id}"
    );
    assert_eq!(float_id.get("id"), Some(&Value::Null));
    let pings: Vec<Value> = (0..129)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    server.send_raw(&Value::Array(pings).to_string());
    let too_many = server.next_message();
    assert_eq!(
        too_many.pointer("/error/code"),
        Some(&json!(-32600)),
        "{too_many}"
    );
    // The Python project's stdio example, slash spelling and all.
    let legacy = server.request(
        &json!({"id": "1", "method": "lightning/inspect", "params": {"what": "environment"}}),
    );
    assert_eq!(
        legacy.pointer("/result/structuredContent/lightning_mcp"),
        Some(&json!(env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn what_a_model_prints_reaches_the_client_as_log_messages() {
    let (mut server, _dir) = with_test_model();
    let level = server.request(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel",
                                       "params": {"level": "info"}}),
    );
    assert_eq!(level.get("result"), Some(&json!({})));
    server.send_raw(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "lightning.train", "arguments": {
                    "model": {"_target_": "lightning_mcp.testing.Misbehaving", "mode": "chatty"},
                    "trainer": {"max_epochs": 1, "limit_val_batches": 0}}}})
        .to_string(),
    );
    let mut printed = Vec::new();
    let result = loop {
        let message = server.next_message();
        if message.get("method") != Some(&json!("notifications/message")) {
            break message;
        }
        if message.pointer("/params/logger") == Some(&json!("model")) {
            printed.push((
                message
                    .pointer("/params/level")
                    .cloned()
                    .unwrap_or_default(),
                message.pointer("/params/data").cloned().unwrap_or_default(),
            ));
        }
    };
    assert_eq!(
        result.pointer("/result/isError"),
        Some(&json!(false)),
        "{result}"
    );
    assert!(
        printed.contains(&(json!("info"), json!("step 0: hello from the guest"))),
        "{printed:?}"
    );
    assert!(
        printed.contains(&(json!("warning"), json!("step 0: a warning from the guest"))),
        "{printed:?}"
    );
}

#[test]
fn validate_test_and_predict_run_lightnings_loops() {
    let mut server = StdioServer::start(&[]);
    let model = json!({"_target_": SIMPLE, "input_dim": 4, "num_classes": 3});

    let validated = server.call_tool(
        1,
        "lightning.validate",
        json!({"model": model, "trainer": {"seed": 3}}),
    );
    let validated = structured(&validated);
    assert_eq!(validated.get("status"), Some(&json!("completed")));
    assert_eq!(
        validated.pointer("/model/class"),
        Some(&json!("SimpleClassifier"))
    );
    assert_eq!(validated.pointer("/model/num_parameters"), Some(&json!(15)));
    // 32 validation samples in batches of 8.
    assert_eq!(validated.get("num_batches"), Some(&json!(4)));
    let val_acc = number(validated, "/metrics/val_acc");
    assert!((0.0..=1.0).contains(&val_acc), "{validated}");
    assert!(number(validated, "/metrics/val_loss") > 0.0, "{validated}");
    // The same seed gives the same numbers.
    let again = server.call_tool(
        2,
        "lightning.validate",
        json!({"model": model, "trainer": {"seed": 3}}),
    );
    assert_eq!(structured(&again).get("metrics"), validated.get("metrics"));

    let tested = server.call_tool(
        3,
        "lightning.test",
        json!({"model": model, "trainer": {"limit_test_batches": 2}}),
    );
    let tested = structured(&tested);
    assert_eq!(tested.get("num_batches"), Some(&json!(2)));
    let keys: Vec<&String> = tested
        .get("metrics")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["test_acc", "test_loss"], "{tested}");

    let predicted = server.call_tool(4, "lightning.predict", json!({"model": model}));
    let predicted = structured(&predicted);
    // 16 prediction samples in batches of 8, each a row of 3 logits.
    assert_eq!(predicted.get("num_batches"), Some(&json!(2)));
    let batches = predicted
        .get("predictions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(batches.len(), 2, "{predicted}");
    for batch in &batches {
        let rows = batch.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 8, "{batch}");
        for row in rows {
            let logits = row.as_array().cloned().unwrap_or_default();
            assert_eq!(logits.len(), 3, "{row}");
            assert!(
                logits
                    .iter()
                    .all(|v| v.as_f64().is_some_and(f64::is_finite))
            );
        }
    }
    let limited = server.call_tool(
        5,
        "lightning.predict",
        json!({"model": model, "trainer": {"limit_predict_batches": 0.5}}),
    );
    assert_eq!(structured(&limited).get("num_batches"), Some(&json!(1)));

    // Errors name what is wrong.
    let message = tool_error(&server.call_tool(
        6,
        "lightning.test",
        json!({"model": model, "trainer": {"limit_test_batches": 2.5}}),
    ));
    assert!(message.contains("trainer.limit_test_batches"), "{message}");
    let message = tool_error(&server.call_tool(
        7,
        "lightning.validate",
        json!({"model": {"_target_": "nope"}}),
    ));
    assert!(message.contains("not a registered model"), "{message}");
}

#[test]
fn training_writes_a_checkpoint_that_evaluation_and_the_checkpoint_tool_use() {
    let mut server = StdioServer::start(&[]);
    let model = json!({"_target_": MLP});
    let trained = server.call_tool(
        1,
        "lightning.train",
        json!({"model": model, "trainer": {"max_epochs": 3, "seed": 4}}),
    );
    let trained = structured(&trained).clone();
    let path = trained
        .get("checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no checkpoint_path in {trained}"))
        .to_string();
    // Lightning's layout: 512 samples in batches of 32 → 16 steps an epoch.
    assert_eq!(
        path,
        "lightning_logs/version_0/checkpoints/epoch=2-step=48.safetensors"
    );
    assert!(server.checkpoint_dir().join(&path).is_file());
    // The learning curve: one record per epoch, the last one the final metrics.
    let history = trained
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let epochs: Vec<Value> = history
        .iter()
        .filter_map(|h| h.get("epoch").cloned())
        .collect();
    assert_eq!(epochs, [json!(0), json!(1), json!(2)], "{trained}");
    assert_eq!(
        history.last().and_then(|h| h.get("global_step")),
        Some(&json!(48))
    );
    assert_eq!(
        history.last().and_then(|h| h.pointer("/metrics/val_acc")),
        trained.pointer("/metrics/val_acc")
    );
    assert!(number(&trained, "/samples_per_second") > 0.0, "{trained}");
    // The CSV logger's metrics.csv in the run directory: a row per epoch.
    assert_eq!(
        trained.get("log_dir"),
        Some(&json!("lightning_logs/version_0"))
    );
    let logged = std::fs::read_to_string(
        server
            .checkpoint_dir()
            .join("lightning_logs/version_0/metrics.csv"),
    )
    .expect("metrics.csv is read");
    let lines: Vec<&str> = logged.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"epoch,step,train_acc,train_loss,val_acc,val_loss"),
        "{logged}"
    );
    assert_eq!(lines.len(), 4, "{logged}");
    assert!(
        lines.get(3).is_some_and(|l| l.starts_with("2,48,")),
        "{logged}"
    );

    // Validating the checkpoint on the same seed's data reproduces the training's last
    // validation exactly.
    let validated = server.call_tool(
        2,
        "lightning.validate",
        json!({"model": model, "trainer": {"seed": 4}, "ckpt_path": path}),
    );
    let validated = structured(&validated);
    assert_eq!(validated.get("ckpt_path"), Some(&json!(path)));
    for key in ["val_loss", "val_acc"] {
        assert_eq!(
            validated.pointer(&format!("/metrics/{key}")),
            trained.pointer(&format!("/metrics/{key}")),
            "{validated} vs {trained}"
        );
    }
    let fresh = server.call_tool(
        3,
        "lightning.validate",
        json!({"model": model, "trainer": {"seed": 4}}),
    );
    assert!(
        number(structured(&fresh), "/metrics/val_acc") < number(validated, "/metrics/val_acc"),
        "the trained weights should validate better than fresh ones"
    );

    // The checkpoint tool: list, load, save, and refusals that say what is wrong.
    let listed = server.call_tool(4, "lightning.checkpoint", json!({"action": "list"}));
    let listed = structured(&listed);
    assert_eq!(listed.get("count"), Some(&json!(1)), "{listed}");
    assert_eq!(listed.pointer("/checkpoints/0/path"), Some(&json!(path)));
    assert_eq!(
        listed.pointer("/checkpoints/0/name"),
        Some(&json!("epoch=2-step=48.safetensors"))
    );
    let loaded = server.call_tool(
        5,
        "lightning.checkpoint",
        json!({"action": "load", "path": path, "model": model}),
    );
    let loaded = structured(&loaded);
    // Lightning's convention: the index of the last epoch trained.
    assert_eq!(loaded.get("epoch"), Some(&json!(2)));
    assert_eq!(loaded.get("global_step"), Some(&json!(48)));
    assert_eq!(loaded.get("metrics"), trained.get("metrics"));
    let saved = server.call_tool(
        6,
        "lightning.checkpoint",
        json!({"action": "save", "path": "mine/initial", "model": {"_target_": MLP, "hidden_dims": [16]}}),
    );
    let saved = structured(&saved);
    assert_eq!(saved.get("path"), Some(&json!("mine/initial.safetensors")));
    assert_eq!(saved.get("model_class"), Some(&json!("MLP")));

    // Hyperparameters a load leaves out come from the checkpoint, as Lightning's
    // load_from_checkpoint does.
    let reloaded = server.call_tool(
        7,
        "lightning.checkpoint",
        json!({"action": "load", "path": "mine/initial.safetensors", "model": model}),
    );
    assert_eq!(
        structured(&reloaded).pointer("/hyperparameters/hidden_dims"),
        Some(&json!([16])),
        "{reloaded}"
    );

    let refusals = [
        (
            json!({"action": "load", "path": "mine/initial.safetensors",
                   "model": {"_target_": MLP, "hidden_dims": [64, 32]}}),
            "the checkpoint does not fit the model: layers.0.weight is [16, 8] in the checkpoint, [64, 8] in the model",
        ),
        (
            json!({"action": "load", "path": path, "model": {"_target_": SIMPLE}}),
            "does not fit the model: layer.weight [3, 4] is missing",
        ),
        (
            json!({"action": "load", "path": path, "model": {"_target_": SIMPLE}}),
            "(it is a checkpoint of lightning_mcp.models.mlp.MLP)",
        ),
        (
            json!({"action": "load", "path": "../escape.safetensors", "model": model}),
            "`..` climbs out of --checkpoint-dir",
        ),
        (
            json!({"action": "save", "path": "/etc/evil", "model": model}),
            "an absolute path outside --checkpoint-dir",
        ),
        (
            json!({"action": "load", "path": "missing.safetensors", "model": model}),
            "missing.safetensors",
        ),
        (json!({"action": "rename"}), "unknown variant `rename`"),
    ];
    for (id, (arguments, expected)) in (10..).zip(refusals) {
        let message = tool_error(&server.call_tool(id, "lightning.checkpoint", arguments));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // Without checkpointing nothing is written.
    let quiet = server.call_tool(
        20,
        "lightning.train",
        json!({"model": model, "trainer": {"max_epochs": 1, "enable_checkpointing": false}}),
    );
    assert_eq!(
        structured(&quiet).get("checkpoint_path"),
        Some(&Value::Null)
    );
    let silent = server.call_tool(
        22,
        "lightning.train",
        json!({"model": model, "trainer": {"max_epochs": 1, "enable_checkpointing": false, "logger": false}}),
    );
    assert_eq!(structured(&silent).get("log_dir"), Some(&Value::Null));
    let listed = server.call_tool(21, "lightning.checkpoint", json!({"action": "list"}));
    assert_eq!(structured(&listed).get("count"), Some(&json!(2)));
}

/// Two separable clusters in 2-D: `n` samples, labels alternating 0 and 1.
fn clusters(n: usize, offset: f64) -> (Value, Value) {
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for i in 0..n {
        let label = i % 2;
        let sign = if label == 0 { -1.0 } else { 1.0 };
        let jitter = |k: usize| ((i * 7 + k * 3) % 10) as f64 / 20.0 + offset;
        inputs.push(json!([sign * (0.5 + jitter(1)), sign * (0.5 + jitter(2))]));
        targets.push(json!(label));
    }
    (Value::Array(inputs), Value::Array(targets))
}

#[test]
fn models_train_validate_and_predict_on_data_given_in_the_request() {
    let mut server = StdioServer::start(&[]);
    let model = json!({"_target_": MLP, "input_dim": 2, "num_classes": 2, "hidden_dims": [16]});
    let (x, y) = clusters(64, 0.0);
    let (vx, vy) = clusters(32, 0.05);
    let train = |seed: u64, shuffle: bool| {
        json!({"model": model, "trainer": {"max_epochs": 15, "seed": seed},
               "data": {"train": {"inputs": x, "targets": y}, "val": {"inputs": vx, "targets": vy},
                        "batch_size": 16, "shuffle": shuffle}})
    };
    let trained = server.call_tool(1, "lightning.train", train(1, true));
    let trained = structured(&trained).clone();
    assert!(number(&trained, "/metrics/val_acc") >= 0.95, "{trained}");
    // 64 samples in batches of 16, 15 epochs.
    assert_eq!(trained.pointer("/trainer/global_step"), Some(&json!(60)));
    // Shuffling is seeded: the same seed repeats, another differs from it.
    let again = server.call_tool(2, "lightning.train", train(1, true));
    assert_eq!(structured(&again).get("metrics"), trained.get("metrics"));
    let other = server.call_tool(3, "lightning.train", train(2, true));
    let unshuffled = server.call_tool(4, "lightning.train", train(1, false));
    assert_ne!(
        structured(&unshuffled).get("metrics"),
        trained.get("metrics")
    );
    assert_ne!(structured(&other).get("metrics"), trained.get("metrics"));

    let path = trained
        .get("checkpoint_path")
        .cloned()
        .unwrap_or(Value::Null);
    let validated = server.call_tool(
        5,
        "lightning.validate",
        json!({"model": model, "ckpt_path": path, "data": {"val": {"inputs": vx, "targets": vy}}}),
    );
    assert_eq!(
        structured(&validated).pointer("/metrics/val_acc"),
        trained.pointer("/metrics/val_acc")
    );
    let predicted = server.call_tool(
        6,
        "lightning.predict",
        json!({"model": model, "ckpt_path": path,
               "data": {"predict": {"inputs": [[-1, -1], [1, 1], [-0.8, -0.9], [0.9, 1.2], [2, 2]]},
                        "batch_size": 2}}),
    );
    let predicted = structured(&predicted);
    assert_eq!(predicted.get("num_batches"), Some(&json!(3)));
    let rows: Vec<usize> = predicted
        .get("predictions")
        .and_then(Value::as_array)
        .map(|b| b.iter().map(|b| b.as_array().map_or(0, Vec::len)).collect())
        .unwrap_or_default();
    assert_eq!(rows, [2, 2, 1]);
    let first = |b: &str| number(predicted, b);
    // The trained model separates the clusters: class 0 wins at (-1, -1), class 1 at (1, 1).
    assert!(
        first("/predictions/0/0/0") > first("/predictions/0/0/1"),
        "{predicted}"
    );
    assert!(
        first("/predictions/0/1/1") > first("/predictions/0/1/0"),
        "{predicted}"
    );

    // Data that does not fit is reported before the model is built, naming both sides.
    let wide = json!({"model": {"_target_": MLP, "input_dim": 8},
                      "data": {"train": {"inputs": x, "targets": y}}});
    let message = tool_error(&server.call_tool(10, "lightning.train", wide));
    assert!(
        message.contains("model.input_dim is 8 but data.train.inputs has samples of shape [2]"),
        "{message}"
    );
    let cases = [
        (
            json!({"train": {"inputs": [[1, 2], [3]], "targets": [0, 1]}}),
            "data.train.inputs[1]: 1 elements where the first row has 2",
        ),
        (
            json!({"train": {"inputs": [[1, 2], [3, 4]], "targets": [0]}}),
            "data.train: inputs [2, 2] and targets [1] differ in their number of samples",
        ),
        (
            json!({"train": {"inputs": [[1, 2]], "targets": [0]}, "batch_size": 0}),
            "data.batch_size must be at least 1",
        ),
        (
            json!({"train": {"inputs": [[1, "2"]], "targets": [0]}}),
            "data.train.inputs[0][1]: a string is not a number",
        ),
        (json!({"training": {}}), "unknown field `training`"),
    ];
    for (id, (data, expected)) in (11..).zip(cases) {
        let arguments = json!({"model": model, "trainer": {"max_epochs": 1}, "data": data});
        let message = tool_error(&server.call_tool(id, "lightning.train", arguments));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let limited = json!({"model": model, "data": {"train": {"inputs": x, "targets": y}, "batch_size": 16},
                         "limits": {"batch_size": 8}});
    let message = tool_error(&server.call_tool(20, "lightning.train", limited));
    assert!(
        message.contains("a batch size of 16 is above the limit of 8 (batch_size)"),
        "{message}"
    );
}

/// The parameter values, by name, of the checkpoint a tool result names under `key` (a path
/// relative to the server's checkpoint directory).
fn weights(server: &StdioServer, result: &Value, key: &str) -> Vec<(String, Vec<f32>)> {
    let path = result
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {key} in {result}"));
    let file = server.checkpoint_dir().join(path);
    let bytes = std::fs::read(file).expect("the checkpoint file is read");
    let checkpoint =
        lightning_mcp::checkpoint::decode(&bytes, true).expect("the checkpoint decodes");
    let mut named: Vec<_> = checkpoint
        .params
        .into_iter()
        .map(|p| (p.name, p.values))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn distance(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> (f32, f32) {
    let deltas: Vec<f32> = a
        .iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(x, y)| x - y))
        .collect();
    let norm = deltas.iter().map(|d| d * d).sum::<f32>().sqrt();
    let largest = deltas.iter().fold(0.0f32, |m, d| m.max(d.abs()));
    (norm, largest)
}

#[test]
fn lightnings_trainer_options_and_early_stopping_work() {
    let (mut server, _dir) = with_test_model();
    const TEST_MODEL: &str = "lightning_mcp.testing.Misbehaving";
    let train = |server: &mut StdioServer, id: u64, mode: &str, trainer: Value, data: Value| {
        let result = server.call_tool(
            id,
            "lightning.train",
            json!({"model": {"_target_": TEST_MODEL, "mode": mode}, "trainer": trainer, "data": data}),
        );
        structured(&result).clone()
    };

    // Early stopping on a scripted plateau: val_loss 5, 4, 3, 3, 3 → with patience 2 it stops
    // after the 5th epoch; min_epochs holds it to 7.
    let stopping = json!([{"type": "early_stopping", "monitor": "val_loss", "patience": 2}]);
    let stopped = train(
        &mut server,
        1,
        "plateau",
        json!({"max_epochs": 20, "num_sanity_val_steps": 0, "callbacks": stopping}),
        Value::Null,
    );
    assert_eq!(
        stopped.pointer("/trainer/current_epoch"),
        Some(&json!(5)),
        "{stopped}"
    );
    assert_eq!(
        stopped.pointer("/trainer/stopped_early"),
        Some(&json!(true))
    );
    let held = train(
        &mut server,
        2,
        "plateau",
        json!({"max_epochs": 20, "min_epochs": 7, "num_sanity_val_steps": 0, "callbacks": stopping}),
        Value::Null,
    );
    assert_eq!(
        held.pointer("/trainer/current_epoch"),
        Some(&json!(7)),
        "{held}"
    );
    let message = tool_error(&server.call_tool(3, "lightning.train", json!({
        "model": {"_target_": TEST_MODEL},
        "trainer": {"max_epochs": 2, "callbacks": [{"type": "early_stopping", "monitor": "val_f1"}]}})));
    assert!(message.contains("monitors \"val_f1\", which the model did not log (logged: train_loss, val_acc, val_loss)"), "{message}");

    // Gradient accumulation over 2 batches of 8 is one batch of 16 (plain SGD, one step).
    let rows: Vec<Value> = (0..16)
        .map(|i| {
            json!([
                (i % 4) as f64 - 1.5,
                (i % 3) as f64,
                (i % 5) as f64 * 0.3,
                1.0
            ])
        })
        .collect();
    let labels: Vec<Value> = (0..16).map(|i| json!(i % 3)).collect();
    let data = |batch_size: u32| json!({"train": {"inputs": rows, "targets": labels}, "batch_size": batch_size});
    let accumulated = train(
        &mut server,
        4,
        "sgd",
        json!({"max_steps": 1, "seed": 3, "accumulate_grad_batches": 2, "limit_val_batches": 0}),
        data(8),
    );
    assert_eq!(accumulated.pointer("/trainer/global_step"), Some(&json!(1)));
    let whole = train(
        &mut server,
        5,
        "sgd",
        json!({"max_steps": 1, "seed": 3, "limit_val_batches": 0}),
        data(16),
    );
    let (a, b) = (
        weights(&server, &accumulated, "checkpoint_path"),
        weights(&server, &whole, "checkpoint_path"),
    );
    let (_, largest) = distance(&a, &b);
    assert!(
        largest < 1e-5,
        "accumulated and whole-batch steps differ by {largest}"
    );

    // Clipping bounds the step: SGD with lr 1 moves the weights by exactly the gradient.
    let initial = server.call_tool(
        6,
        "lightning.checkpoint",
        json!({
        "action": "save", "path": "initial", "model": {"_target_": TEST_MODEL, "mode": "sgd"},
        "trainer": {"seed": 3}}),
    );
    let initial = weights(&server, structured(&initial), "path");
    let step = |server: &mut StdioServer, id: u64, clip: Value| {
        let mut trainer = json!({"max_steps": 1, "seed": 3, "limit_val_batches": 0});
        if let (Some(t), Some(c)) = (trainer.as_object_mut(), clip.as_object()) {
            t.extend(c.clone());
        }
        let result = train(server, id, "sgd", trainer, data(16));
        weights(server, &result, "checkpoint_path")
    };
    let (free, _) = distance(&step(&mut server, 7, json!({})), &initial);
    assert!(
        free > 0.05,
        "the unclipped step should be larger than the clip: {free}"
    );
    let (by_norm, _) = distance(
        &step(&mut server, 8, json!({"gradient_clip_val": 0.05})),
        &initial,
    );
    assert!(by_norm <= 0.05 + 1e-4, "norm-clipped step of {by_norm}");
    assert!(
        by_norm > 0.04,
        "norm clipping should scale, not zero, the step: {by_norm}"
    );
    let (_, by_value) = distance(
        &step(
            &mut server,
            9,
            json!({"gradient_clip_val": 0.01, "gradient_clip_algorithm": "value"}),
        ),
        &initial,
    );
    assert!(
        by_value <= 0.01 + 1e-6,
        "value-clipped element moved by {by_value}"
    );

    // fast_dev_run, overfit_batches, check_val_every_n_epoch.
    let smoke = train(
        &mut server,
        10,
        "ok",
        json!({"fast_dev_run": true, "max_epochs": 50}),
        Value::Null,
    );
    assert_eq!(
        smoke.pointer("/trainer/global_step"),
        Some(&json!(1)),
        "{smoke}"
    );
    assert_eq!(smoke.pointer("/trainer/current_epoch"), Some(&json!(1)));
    assert_eq!(smoke.get("checkpoint_path"), Some(&Value::Null));
    let overfit = train(
        &mut server,
        11,
        "ok",
        json!({"overfit_batches": 1, "max_epochs": 3}),
        Value::Null,
    );
    assert_eq!(
        overfit.pointer("/trainer/global_step"),
        Some(&json!(3)),
        "{overfit}"
    );
    assert!(overfit.pointer("/metrics/val_loss").is_some(), "{overfit}");
    let sparse = train(
        &mut server,
        12,
        "ok",
        json!({"max_epochs": 1, "check_val_every_n_epoch": 2}),
        Value::Null,
    );
    assert!(sparse.pointer("/metrics/val_loss").is_none(), "{sparse}");

    // What the backend cannot do is refused, naming the option.
    let refusals = [
        (
            json!({"precision": "16-mixed"}),
            "trainer.precision \"16-mixed\" is not supported",
        ),
        (
            json!({"precision": 64}),
            "trainer.precision 64 is not supported",
        ),
        (
            json!({"accumulate_grad_batches": 0}),
            "trainer.accumulate_grad_batches must be at least 1",
        ),
        (
            json!({"gradient_clip_val": -1.0}),
            "trainer.gradient_clip_val must be a finite number >= 0",
        ),
        (
            json!({"callbacks": [{"type": "model_summary"}]}),
            "unknown variant `model_summary`",
        ),
        (json!({"strategy": "ddp"}), "unknown field `strategy`"),
        (
            json!({"callbacks": [{"type": "early_stopping"}, {"type": "early_stopping"}]}),
            "at most one callback of each type",
        ),
    ];
    for (id, (trainer, expected)) in (20..).zip(refusals) {
        let message = tool_error(&server.call_tool(
            id,
            "lightning.train",
            json!({"model": {"_target_": TEST_MODEL}, "trainer": trainer}),
        ));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let fine = train(
        &mut server,
        30,
        "ok",
        json!({"max_epochs": 1, "precision": "32-true", "deterministic": true}),
        Value::Null,
    );
    assert_eq!(fine.get("status"), Some(&json!("completed")));
}

#[test]
fn models_train_on_a_csv_file_under_the_data_dir() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    // Three flower-like clusters in 4-D, 30 rows each, labelled by name.
    let mut csv = String::from("sepal_length,sepal_width,petal_length,petal_width,species\n");
    for i in 0..90 {
        let (name, centre) = match i % 3 {
            0 => ("setosa", [5.0, 3.4, 1.5, 0.2]),
            1 => ("versicolor", [5.9, 2.8, 4.3, 1.3]),
            _ => ("virginica", [6.6, 3.0, 5.6, 2.0]),
        };
        let jitter = |k: usize| ((i * 13 + k * 7) % 11) as f64 / 25.0 - 0.2;
        csv.push_str(&format!(
            "{:.2},{:.2},{:.2},{:.2},{name}\n",
            centre[0] + jitter(0),
            centre[1] + jitter(1),
            centre[2] + jitter(2),
            centre[3] + jitter(3)
        ));
    }
    std::fs::write(data_dir.path().join("flowers.csv"), &csv).expect("flowers.csv is written");
    std::fs::write(data_dir.path().join("bad.csv"), "a,b,y\n1,2,0\n3,oops,1\n")
        .expect("bad.csv is written");
    let dir_arg = data_dir.path().to_string_lossy().into_owned();
    let mut server = StdioServer::start(&["--data-dir", &dir_arg]);
    let model = json!({"_target_": MLP, "input_dim": 4, "num_classes": 3, "hidden_dims": [16]});
    let trained = server.call_tool(
        1,
        "lightning.train",
        json!({
        "model": model, "trainer": {"max_epochs": 40, "seed": 2},
        "data": {"csv": {"path": "flowers.csv", "target": "species", "val_split": 0.2},
                 "batch_size": 16, "shuffle": true}}),
    );
    let trained = structured(&trained).clone();
    assert_eq!(
        trained.get("data"),
        Some(&json!({"source": "csv", "path": "flowers.csv",
            "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "target": "species", "classes": ["setosa", "versicolor", "virginica"],
            "input_shape": [4],
            "rows": 90, "train_samples": 72, "val_samples": 18}))
    );
    assert!(number(&trained, "/metrics/val_acc") >= 0.9, "{trained}");

    // Test on every row of the file with the trained weights.
    let tested = server.call_tool(
        2,
        "lightning.test",
        json!({
        "model": model, "ckpt_path": trained.get("checkpoint_path").cloned(),
        "data": {"csv": {"path": "flowers.csv", "target": "species"}}}),
    );
    let tested = structured(&tested);
    assert!(number(tested, "/metrics/test_acc") >= 0.9, "{tested}");
    assert_eq!(tested.pointer("/data/rows"), Some(&json!(90)));

    // Predict every row: the logits, and each row's class and its name from the file.
    let predicted = server.call_tool(
        3,
        "lightning.predict",
        json!({
        "model": model, "ckpt_path": trained.get("checkpoint_path").cloned(),
        "data": {"csv": {"path": "flowers.csv", "target": "species"}}}),
    );
    let predicted = structured(&predicted);
    let list = |field: &str| {
        predicted
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| panic!("no {field} in {predicted}"))
    };
    let (classes, labels) = (list("predicted_class"), list("predicted_label"));
    assert_eq!((classes.len(), labels.len()), (90, 90), "{predicted}");
    let names = ["setosa", "versicolor", "virginica"];
    for (class, label) in classes.iter().zip(&labels) {
        let class = class.as_u64().unwrap_or(99) as usize;
        assert_eq!(names.get(class).copied(), label.as_str(), "{predicted}");
    }
    // The rows cycle through the three species; the model learned them.
    let right = (0..90)
        .filter(|&i| labels.get(i).and_then(Value::as_str) == names.get(i % 3).copied())
        .count();
    assert!(right >= 81, "{right} of 90 right: {predicted}");

    let cases = [
        (
            json!({"csv": {"path": "../flowers.csv", "target": "species"}}),
            "`..` climbs out of --data-dir",
        ),
        (
            json!({"csv": {"path": "flowers.csv", "target": "kind"}}),
            "no column \"kind\"; the columns are sepal_length",
        ),
        (
            json!({"csv": {"path": "bad.csv", "target": "y"}}),
            "bad.csv: line 3, column \"b\": \"oops\" is not a number",
        ),
        (
            json!({"csv": {"path": "flowers.csv", "target": "species", "val_split": 1.0}}),
            "data.csv.val_split must be a fraction in [0, 1)",
        ),
        (
            json!({"csv": {"path": "flowers.csv"}, "train": {"inputs": [[1]], "targets": [0]}}),
            "data.csv cannot be combined",
        ),
        (
            json!({"csv": {"path": "missing.csv", "target": "y"}}),
            "missing.csv",
        ),
    ];
    for (id, (data, expected)) in (10..).zip(cases) {
        let message = tool_error(&server.call_tool(
            id,
            "lightning.train",
            json!({"model": model, "trainer": {"max_epochs": 1}, "data": data}),
        ));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
fn a_missing_data_directory_is_named_absolute_with_its_flag() {
    // Relative, as a user types it; the server runs in this test's directory.
    let mut server = StdioServer::start(&["--data-dir", "no-such-data-dir"]);
    let absolute = std::env::current_dir()
        .expect("a current directory")
        .join("no-such-data-dir");
    let message = tool_error(&server.call_tool(
        1,
        "lightning.train",
        json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 1},
               "data": {"csv": {"path": "flowers.csv", "target": "species"}}}),
    ));
    let expected = format!(
        "{} (the directory of --data-dir: create it, or start the server with --data-dir",
        absolute.display()
    );
    assert!(
        message.contains(&expected),
        "{message:?} lacks {expected:?}"
    );
    assert!(server.finish());
}

#[test]
fn the_model_checkpoint_callback_keeps_the_best_epochs() {
    let mut server = StdioServer::start(&[]);
    let model = json!({"_target_": MLP});
    let trained = server.call_tool(
        1,
        "lightning.train",
        json!({
        "model": model,
        "trainer": {"max_epochs": 5, "seed": 6, "callbacks": [{"type": "model_checkpoint",
            "monitor": "val_loss", "mode": "min", "save_top_k": 2, "save_last": true,
            "filename": "best-{epoch}-{val_loss:.4f}"}]}}),
    );
    let trained = structured(&trained).clone();
    let history = trained
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let losses: Vec<f64> = history
        .iter()
        .filter_map(|h| h.pointer("/metrics/val_loss").and_then(Value::as_f64))
        .collect();
    let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        trained.get("best_model_score").and_then(Value::as_f64),
        Some(best)
    );
    let best_epoch = losses.iter().position(|l| *l == best).unwrap_or(usize::MAX);
    let path = trained
        .get("checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        path,
        format!(
            "lightning_logs/version_0/checkpoints/best-epoch={best_epoch}-val_loss={best:.4}.safetensors"
        )
    );
    // Two ranked checkpoints and last.safetensors remain; the rest were deleted.
    let names = listed_checkpoints(&mut server, 2, ".");
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"last.safetensors".to_string()), "{names:?}");
    // The best checkpoint validates to its score.
    let validated = server.call_tool(
        3,
        "lightning.validate",
        json!({"model": model, "trainer": {"seed": 6}, "ckpt_path": path}),
    );
    assert_eq!(number(structured(&validated), "/metrics/val_loss"), best);
    let message = tool_error(&server.call_tool(4, "lightning.train", json!({
        "model": model, "trainer": {"max_epochs": 1, "callbacks": [{"type": "model_checkpoint", "filename": "../x"}]}})));
    assert!(
        message.contains("model_checkpoint.filename must be"),
        "{message}"
    );
    let message = tool_error(&server.call_tool(
        5,
        "lightning.train",
        json!({
        "model": model, "trainer": {"max_epochs": 1, "callbacks": [{"type": "model_checkpoint",
            "filename": "{val_loss:.99999999999f}"}]}}),
    ));
    assert!(
        message.contains("the precision in {val_loss:.99999999999f} must be 0 to 17 digits"),
        "{message}"
    );
}

#[test]
fn help_shows_environment_variables_by_name_and_never_their_values() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lightning-mcp"))
        .arg("--help")
        .env_remove("LIGHTNING_MCP_DATA_DIR")
        .env("LIGHTNING_MCP_TOKEN", "s3cret-token")
        .env("LIGHTNING_MCP_LOG", "debug")
        .output()
        .expect("the help output");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for name in [
        "LIGHTNING_MCP_DATA_DIR",
        "LIGHTNING_MCP_TOKEN",
        "LIGHTNING_MCP_LOG",
    ] {
        assert!(help.contains(&format!("[env: {name}]")), "{name} in {help}");
    }
    // Neither an unset variable's empty value nor a set one's value.
    assert!(!help.contains("LIGHTNING_MCP_DATA_DIR="), "{help}");
    assert!(
        !help.contains("s3cret-token") && !help.contains("=debug]"),
        "{help}"
    );
}

#[test]
fn each_epoch_is_logged_to_stderr_with_its_metrics() {
    use std::io::Write as _;
    let checkpoints = tempfile::tempdir().expect("a temporary directory");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lightning-mcp"))
        .arg("--checkpoint-dir")
        .arg(checkpoints.path())
        .env_remove("LIGHTNING_MCP_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "lightning.train",
            "arguments": {"model": {"_target_": MLP}, "trainer": {"max_epochs": 2}}}}),
    ];
    let mut stdin = child.stdin.take().expect("the server's stdin is piped");
    for request in requests {
        writeln!(stdin, "{request}").expect("a request is written to stdin");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("the server's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\"completed\""), "{stdout}");
    for epoch in [
        "epoch 1/2 done, step 16/32: ",
        "epoch 2/2 done, step 32/32: ",
    ] {
        assert!(stderr.contains(epoch), "{epoch:?} not in {stderr}");
    }
    assert!(stderr.contains("val_loss="), "{stderr}");
}
