//! The GPU path end to end: `trainer.accelerator` and `devices`, trainings and evaluations on a
//! wgpu adapter (in a worker process) that agree with the CPU, one worker serving every call on
//! its adapter (one after another and at once), and a worker that crashes, or a call that is
//! cancelled, without taking the server along.
//!
//! Each test needs a usable adapter (lavapipe — Debian's `mesa-vulkan-drivers` — will do). Without
//! one a test is skipped with a loud message, unless `CI` is set: there it fails.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use serde_json::{Value, json};
use std::io::Write as _;
use std::time::{Duration, Instant};
use support::{StdioServer, number, start_long_training, structured, tool_error};

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";
const MLP: &str = "lightning_mcp.models.mlp.MLP";
const MISBEHAVING: &str = "lightning_mcp.testing.Misbehaving";

/// A server started with `args`, and its environment, when it can train on a GPU; `None`,
/// said loudly, when not — and a failure when `CI` is set, where the adapter must be there.
fn gpu_server(args: &[&str], test: &str) -> Option<(StdioServer, Value)> {
    let mut server = StdioServer::start(args);
    let env =
        structured(&server.call_tool(9000, "lightning.inspect", json!({"what": "environment"})))
            .clone();
    let gpu = env
        .pointer("/accelerators/gpu")
        .cloned()
        .unwrap_or_default();
    if gpu.get("usable") == Some(&json!(true)) {
        return Some((server, env));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set, so {test} must run on a GPU adapter, but: {gpu}"
    );
    // Straight to stderr: the test harness would swallow eprintln! output.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: no usable GPU adapter ({gpu}); install Debian's \
         mesa-vulkan-drivers for lavapipe\n"
    );
    None
}

fn train(model: &Value, accelerator: &str, epochs: u32) -> Value {
    json!({
        "model": model,
        "trainer": {"max_epochs": epochs, "seed": 7, "accelerator": accelerator},
    })
}

/// `args` with `trainer.devices` set.
fn with_devices(mut args: Value, devices: Value) -> Value {
    if let Some(trainer) = args.get_mut("trainer").and_then(Value::as_object_mut) {
        trainer.insert("devices".into(), devices);
    }
    args
}

/// Asserts two numbers agree to `tolerance`, relative to the larger.
#[track_caller]
fn assert_close(cpu: f64, gpu: f64, tolerance: f64, what: &str) {
    assert!(
        (cpu - gpu).abs() <= tolerance * cpu.abs().max(gpu.abs()).max(1.0),
        "{what}: cpu {cpu} vs gpu {gpu}"
    );
}

/// Every number of two `history` lists agrees.
fn assert_same_history(cpu: &Value, gpu: &Value, model: &str) {
    let (Some(cpu), Some(gpu)) = (
        cpu.get("history").and_then(Value::as_array),
        gpu.get("history").and_then(Value::as_array),
    ) else {
        panic!("no history: {cpu} {gpu}")
    };
    assert_eq!(cpu.len(), gpu.len());
    for (c, g) in cpu.iter().zip(gpu) {
        for key in ["train_loss", "val_loss", "val_acc"] {
            let pointer = format!("/metrics/{key}");
            let (Some(c), Some(g)) = (
                c.pointer(&pointer).and_then(Value::as_f64),
                g.pointer(&pointer).and_then(Value::as_f64),
            ) else {
                panic!("{model}: {key} missing in {c} or {g}")
            };
            // Accuracies count whole samples: a near-tie may flip one between backends.
            let tolerance = if key.ends_with("acc") { 0.05 } else { 1e-4 };
            assert_close(c, g, tolerance, &format!("{model} {key}"));
        }
    }
}

#[test]
fn models_train_and_evaluate_on_the_gpu_as_on_the_cpu() {
    let Some((mut server, _)) =
        gpu_server(&[], "models_train_and_evaluate_on_the_gpu_as_on_the_cpu")
    else {
        return;
    };
    let models = [
        json!({"_target_": SIMPLE}),
        json!({"_target_": MLP, "input_dim": 8, "hidden_dims": [32], "num_classes": 4}),
    ];
    let mut id = 1;
    for model in &models {
        let name = model
            .get("_target_")
            .and_then(Value::as_str)
            .unwrap_or_default();
        id += 1;
        let cpu =
            structured(&server.call_tool(id, "lightning.train", train(model, "cpu", 3))).clone();
        // With a progress token: the worker's notifications reach the client.
        id += 1;
        server.send_raw(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "lightning.train", "_meta": {"progressToken": "gpu"},
                               "arguments": train(model, "gpu", 3)}})
            .to_string(),
        );
        let mut progress = Vec::new();
        let reply = loop {
            let message = server.next_message();
            if message.get("id") == Some(&json!(id)) {
                break message;
            }
            if let Some(p) = message.pointer("/params/progress").and_then(Value::as_f64) {
                assert_eq!(
                    message.pointer("/params/progressToken"),
                    Some(&json!("gpu"))
                );
                progress.push(p);
            }
        };
        let gpu = reply
            .pointer("/result/structuredContent")
            .cloned()
            .unwrap_or_else(|| panic!("{reply}"));
        assert_eq!(gpu.get("status"), Some(&json!("completed")), "{gpu}");
        assert_eq!(gpu.pointer("/trainer/accelerator"), Some(&json!("gpu")));
        assert_eq!(gpu.pointer("/trainer/device/backend"), Some(&json!("wgpu")));
        assert_eq!(cpu.pointer("/trainer/device/backend"), Some(&json!("flex")));
        assert!(
            progress.len() >= 3 && progress.is_sorted_by(|a, b| a < b),
            "{progress:?}"
        );
        assert_same_history(&cpu, &gpu, name);

        // The GPU's checkpoint validates to the same loss on both backends.
        let ckpt = gpu
            .get("checkpoint_path")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no checkpoint: {gpu}"));
        let val_loss = number(&gpu, "/metrics/val_loss");
        for accelerator in ["cpu", "gpu"] {
            id += 1;
            // The training's seed: the models make their own data from it.
            let validated = server.call_tool(
                id,
                "lightning.validate",
                json!({"model": model, "ckpt_path": ckpt,
                       "trainer": {"accelerator": accelerator, "seed": 7}}),
            );
            let validated = structured(&validated);
            assert_close(
                val_loss,
                number(validated, "/metrics/val_loss"),
                1e-4,
                &format!("{name} validated on {accelerator}"),
            );
            assert_eq!(
                validated.pointer("/device/accelerator"),
                Some(&json!(accelerator))
            );
        }
        // Predictions agree too.
        let predict = |server: &mut StdioServer, id, accelerator| {
            let args = json!({"model": model, "ckpt_path": ckpt,
                              "trainer": {"accelerator": accelerator, "seed": 7,
                                          "limit_predict_batches": 1}});
            structured(&server.call_tool(id, "lightning.predict", args))
                .pointer("/predictions/0")
                .cloned()
                .unwrap_or_default()
        };
        let (on_cpu, on_gpu) = (
            predict(&mut server, id + 1, "cpu"),
            predict(&mut server, id + 2, "gpu"),
        );
        id += 2;
        let flat = |v: &Value| -> Vec<f64> {
            v.as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                .filter_map(|x| x.as_f64())
                .collect()
        };
        assert!(!flat(&on_cpu).is_empty(), "{on_cpu}");
        assert_eq!(flat(&on_cpu).len(), flat(&on_gpu).len());
        for (c, g) in flat(&on_cpu).into_iter().zip(flat(&on_gpu)) {
            assert_close(c, g, 1e-4, &format!("{name} prediction"));
        }
    }
    assert!(server.finish());
}

#[test]
fn accelerator_values_pick_a_device_or_say_why_not() {
    let Some((mut server, env)) =
        gpu_server(&[], "accelerator_values_pick_a_device_or_say_why_not")
    else {
        return;
    };
    for value in ["cpu", "auto", "gpu", "wgpu", "cuda", "mps"] {
        let entry = env.pointer(&format!("/accelerators/{value}"));
        assert!(
            entry.and_then(|e| e.get("usable")).is_some(),
            "{value}: {env}"
        );
    }
    let adapters = env
        .pointer("/gpu_adapters/adapters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if std::env::var_os("CI").is_some() {
        // CI installs lavapipe, software Vulkan.
        assert!(
            adapters.iter().any(|a| {
                a.get("driver") == Some(&json!("llvmpipe"))
                    && a.get("backend") == Some(&json!("Vulkan"))
            }),
            "{adapters:?}"
        );
    }
    // `auto` takes the device the environment says it would: a real GPU or the CPU, never a
    // software rasteriser.
    let auto_device = env
        .pointer("/accelerators/auto/device")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let auto = structured(&server.call_tool(
        1,
        "lightning.train",
        train(&json!({"_target_": SIMPLE}), "auto", 1),
    ))
    .clone();
    let backend = auto.pointer("/trainer/device/backend");
    if auto_device == "cpu" {
        assert_eq!(backend, Some(&json!("flex")), "{auto}");
    } else {
        assert_eq!(backend, Some(&json!("wgpu")), "{auto}");
        assert_ne!(
            auto.pointer("/trainer/device/device_type"),
            Some(&json!("Cpu"))
        );
    }
    // An adapter by index.
    let lavapipe = adapters
        .iter()
        .find(|a| a.get("burn_device").is_some_and(|d| !d.is_null()))
        .and_then(|a| a.get("index").and_then(Value::as_u64))
        .unwrap_or_else(|| panic!("no usable adapter in {adapters:?}"));
    let by_index = with_devices(
        train(&json!({"_target_": SIMPLE}), "gpu", 1),
        json!([lavapipe]),
    );
    let placed = structured(&server.call_tool(2, "lightning.train", by_index)).clone();
    assert_eq!(
        placed.pointer("/trainer/device/adapter_index"),
        Some(&json!(lavapipe)),
        "{placed}"
    );

    let simple = json!({"_target_": SIMPLE});
    let refused =
        |accelerator: &str, devices: Value| with_devices(train(&simple, accelerator, 1), devices);
    let mut cases = vec![
        (refused("gpu", json!(2)), "not supported yet"),
        (refused("gpu", json!([0, 1])), "not supported yet"),
        (refused("gpu", json!([99])), "there is no adapter 99"),
        (refused("gpu", json!([])), "empty"),
        (
            refused("cpu", json!([0])),
            "with accelerator \"cpu\" use devices: 1",
        ),
        (refused("tpu", json!(1)), "accelerator"),
    ];
    if env.get("cuda_available") == Some(&json!(false)) {
        cases.push((refused("cuda", json!(1)), "needs an NVIDIA adapter"));
    }
    if env.get("mps_available") == Some(&json!(false)) {
        cases.push((refused("mps", json!(1)), "needs an adapter on Metal"));
    }
    for (i, (args, expected)) in cases.into_iter().enumerate() {
        let result = server.call_tool(10 + i as u64, "lightning.train", args);
        let error = tool_error(&result);
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
    }
    let after = server.call_tool(99, "lightning.train", train(&simple, "cpu", 1));
    assert_eq!(structured(&after).get("status"), Some(&json!("completed")));
    assert!(server.finish());
}

/// The pids of the server's GPU workers.
fn workers_of(server: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the comm may hold spaces, the part after ')' does not.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(server) && String::from_utf8_lossy(&cmdline).contains("--gpu-worker")
        })
        .collect()
}

/// Starts a GPU training that would run for days (request id `long`) and returns its worker's
/// pid once the first progress notification arrived.
fn start_long_gpu_training(server: &mut StdioServer) -> u32 {
    start_long_training(
        server,
        train(&json!({"_target_": SIMPLE}), "gpu", 1_000_000),
    );
    only_worker(server)
}

/// The pid of the server's one GPU worker.
#[track_caller]
fn only_worker(server: &StdioServer) -> u32 {
    match workers_of(server.pid()).as_slice() {
        [worker] => *worker,
        other => panic!("expected one GPU worker, found {other:?}"),
    }
}

/// Waits until the server has no run in progress and `workers` GPU workers.
fn wait_until_idle(server: &mut StdioServer, first_id: u64, workers: usize) {
    let started = Instant::now();
    for id in first_id.. {
        let env = server.call_tool(id, "lightning.inspect", json!({"what": "environment"}));
        let runs = structured(&env).get("runs_in_progress").cloned();
        if runs == Some(json!(0)) && workers_of(server.pid()).len() == workers {
            return;
        }
        // Under the 10 s after which the server kills a worker that ignores cancellation.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "still busy: {runs:?} runs, workers {:?}",
            workers_of(server.pid())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn completed(result: &Value) -> bool {
    structured(result).get("status") == Some(&json!("completed"))
}

#[test]
fn a_crashing_gpu_worker_is_a_tool_error_and_the_server_goes_on() {
    let Some((mut server, _)) = gpu_server(
        &[],
        "a_crashing_gpu_worker_is_a_tool_error_and_the_server_goes_on",
    ) else {
        return;
    };
    let worker = start_long_gpu_training(&mut server);
    // What a driver's failed assertion does to the process it runs in. (A sent SIGSEGV would
    // not do: wasmtime's handler returns from one that no instruction raised.)
    let killed = std::process::Command::new("kill")
        .args(["-ABRT", &worker.to_string()])
        .status()
        .map(|s| s.success());
    assert_eq!(killed.ok(), Some(true));
    let reply = loop {
        let message = server.next_message();
        if message.get("id") == Some(&json!("long")) {
            break message;
        }
    };
    let result = reply.get("result").cloned().unwrap_or_default();
    let error = tool_error(&result);
    assert!(
        error.contains("crashed (signal 6, SIGABRT)") && error.contains("server is unaffected"),
        "{error}"
    );
    wait_until_idle(&mut server, 100, 0);
    for accelerator in ["cpu", "gpu"] {
        let after = server.call_tool(
            200,
            "lightning.train",
            train(&json!({"_target_": SIMPLE}), accelerator, 1),
        );
        assert!(completed(&after), "{after}");
    }
    // The GPU call after the crash started a new worker.
    assert_ne!(only_worker(&server), worker);
    assert!(server.finish());
}

#[test]
fn cancelling_a_gpu_training_stops_the_call_and_keeps_its_worker() {
    let Some((mut server, _)) = gpu_server(
        &[],
        "cancelling_a_gpu_training_stops_the_call_and_keeps_its_worker",
    ) else {
        return;
    };
    let worker = start_long_gpu_training(&mut server);
    server.send_raw(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "long", "reason": "enough"}})
        .to_string(),
    );
    wait_until_idle(&mut server, 100, 1);
    let pong = server.request(&json!({"jsonrpc": "2.0", "id": "after", "method": "ping"}));
    assert_eq!(pong.get("result"), Some(&json!({})));
    let next = server.call_tool(
        200,
        "lightning.train",
        train(&json!({"_target_": SIMPLE}), "gpu", 1),
    );
    assert!(completed(&next), "{next}");
    assert_eq!(
        only_worker(&server),
        worker,
        "the next call runs in the same worker"
    );
    assert!(server.finish());
}

#[test]
fn one_worker_serves_every_gpu_call_one_after_another_and_at_once() {
    let Some((mut server, _)) = gpu_server(
        &[],
        "one_worker_serves_every_gpu_call_one_after_another_and_at_once",
    ) else {
        return;
    };
    assert!(
        workers_of(server.pid()).is_empty(),
        "no worker before the first GPU call"
    );
    let first = server.call_tool(
        1,
        "lightning.train",
        train(&json!({"_target_": SIMPLE}), "gpu", 1),
    );
    assert!(completed(&first), "{first}");
    let worker = only_worker(&server);
    let mlp = json!({"_target_": MLP});
    let args = json!({"model": mlp, "trainer": {"accelerator": "gpu", "seed": 7}});
    let second = server.call_tool(2, "lightning.validate", args);
    assert!(
        structured(&second).pointer("/metrics/val_loss").is_some(),
        "{second}"
    );
    assert_eq!(only_worker(&server), worker);
    // Two trainings at once, different models and seeds: both answered by the one worker,
    // each with the numbers it has alone.
    let alone = server.call_tool(3, "lightning.train", train(&mlp, "gpu", 2));
    for (id, model) in [("a", &mlp), ("b", &json!({"_target_": SIMPLE}))] {
        server.send_raw(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "lightning.train", "arguments": train(model, "gpu", 2)}})
            .to_string(),
        );
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < 2 {
        let message = server.next_message();
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            answers.insert(
                id.to_string(),
                message.get("result").cloned().unwrap_or_default(),
            );
        }
    }
    for answer in answers.values() {
        assert!(completed(answer), "{answer}");
    }
    assert_close(
        number(structured(&alone), "/metrics/train_loss"),
        number(
            structured(&answers.get("a").cloned().unwrap_or_default()),
            "/metrics/train_loss",
        ),
        1e-5,
        "a call's numbers do not depend on what else its worker runs",
    );
    assert_eq!(only_worker(&server), worker);
    assert!(server.finish());
}

#[test]
fn uploaded_and_hostile_models_run_on_the_gpu_as_on_the_cpu() {
    let Some((mut server, _)) = gpu_server(
        &["--allow-register"],
        "uploaded_and_hostile_models_run_on_the_gpu_as_on_the_cpu",
    ) else {
        return;
    };
    use base64::Engine as _;
    let component = base64::engine::general_purpose::STANDARD
        .encode(lightning_mcp_guests::testing::MISBEHAVING);
    let registered = server.call_tool(1, "lightning.register", json!({"component": component}));
    assert_eq!(
        structured(&registered).get("target"),
        Some(&json!(MISBEHAVING)),
        "{registered}"
    );
    let set_level = server.request(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel",
                                           "params": {"level": "info"}}),
    );
    assert!(set_level.get("result").is_some(), "{set_level}");
    // The uploaded model trains in the worker, and what it prints reaches the client as logs.
    server.send_raw(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "lightning.train",
                           "arguments": train(&json!({"_target_": MISBEHAVING, "mode": "chatty"}), "gpu", 1)}})
        .to_string(),
    );
    let mut guest_lines = 0;
    let reply = loop {
        let message = server.next_message();
        if message.get("id") == Some(&json!(3)) {
            break message;
        }
        if message.get("method") == Some(&json!("notifications/message"))
            && message.to_string().contains("hello from the guest")
        {
            guest_lines += 1;
        }
    };
    assert_eq!(
        reply.pointer("/result/structuredContent/status"),
        Some(&json!("completed")),
        "{reply}"
    );
    assert!(guest_lines > 0, "the guest's lines were not forwarded");
    // A hostile model fails on the GPU with the error it gets on the CPU.
    let errors: Vec<String> = ["cpu", "gpu"]
        .iter()
        .enumerate()
        .map(|(i, accelerator)| {
            let args = train(
                &json!({"_target_": MISBEHAVING, "mode": "shape_mismatch"}),
                accelerator,
                1,
            );
            tool_error(&server.call_tool(10 + i as u64, "lightning.train", args))
        })
        .collect();
    assert!(errors.iter().all(|e| e.contains("matmul")), "{errors:?}");
    assert_eq!(errors.first(), errors.get(1));
    assert!(server.finish());
}

#[test]
fn a_model_file_changed_since_loading_is_not_run_on_the_gpu() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("misbehaving.wasm");
    std::fs::write(&file, lightning_mcp_guests::testing::MISBEHAVING)
        .expect("the model file is written");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let Some((mut server, _)) = gpu_server(
        &["--models-dir", &dir_arg],
        "a_model_file_changed_since_loading_is_not_run_on_the_gpu",
    ) else {
        return;
    };
    // Once the server has loaded it (listing the models waits for that), the same component
    // with an extra custom section: valid, same target, other bytes.
    server.call_tool(0, "lightning.inspect", json!({"what": "models"}));
    let mut changed = lightning_mcp_guests::testing::MISBEHAVING.to_vec();
    changed.extend_from_slice(b"\x00\x05\x04edit");
    std::fs::write(&file, changed).expect("the changed model file is written");
    let model = json!({"_target_": MISBEHAVING, "mode": "chatty"});
    let error = tool_error(&server.call_tool(1, "lightning.train", train(&model, "gpu", 1)));
    assert!(error.contains("changed on disk"), "{error}");
    // The server goes on with the component it loaded.
    let on_cpu = server.call_tool(2, "lightning.train", train(&model, "cpu", 1));
    assert_eq!(structured(&on_cpu).get("status"), Some(&json!("completed")));
    assert!(server.finish());
}
