//! End-to-end: the hostile-guest corpus through the built server over stdio. Each hostile
//! request runs while a normal training runs beside it; the hostile one fails with a message
//! naming what it did, the neighbour gets exactly the numbers it gets alone, and the server
//! answers `ping` afterwards. Also: components the models directory must refuse, uploads
//! with `lightning.register`, and limits a request may lower but never raise.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

#[path = "support.rs"]
mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use support::{StdioServer, start_long_training, structured, tool_error};

const MISBEHAVING: &str = "lightning_mcp.testing.Misbehaving";
const MLP: &str = "lightning_mcp.models.mlp.MLP";

/// A models directory with every test guest, good and bad, and a copy of a built-in.
fn models_dir() -> tempfile::TempDir {
    use lightning_mcp_guests::testing;
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, wasm) in [
        ("misbehaving.wasm", testing::MISBEHAVING),
        ("sleeper.wasm", testing::SLEEPER),
        ("file-reader.wasm", testing::FILE_READER),
        ("socket-opener.wasm", testing::SOCKET_OPENER),
        ("broken-describe.wasm", testing::BROKEN_DESCRIBE),
        ("endless-describe.wasm", testing::ENDLESS_DESCRIBE),
        ("old-world.wasm", testing::OLD_WORLD),
        ("mlp-copy.wasm", lightning_mcp_guests::MLP),
    ] {
        std::fs::write(dir.path().join(name), wasm).expect("the guest is written");
    }
    dir
}

/// The server on `dir`, with a 64 MiB guest memory limit.
fn start(dir: &tempfile::TempDir, extra: &[&str]) -> StdioServer {
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let mut args = vec![
        "--models-dir",
        &dir_arg,
        "--max-guest-memory-mib",
        "64",
        "--max-concurrent-runs",
        "4",
    ];
    args.extend_from_slice(extra);
    StdioServer::start(&args)
}

/// The neighbour: a normal MLP training with a fixed seed.
fn neighbour() -> Value {
    json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 3, "seed": 11}})
}

/// The neighbour's metrics when it trains alone (request id 1).
fn neighbour_alone(server: &mut StdioServer) -> Value {
    let alone = concurrently(server, &[call(1, "lightning.train", &neighbour())]);
    alone
        .first()
        .and_then(|(r, _)| structured(r).get("metrics").cloned())
        .expect("the reference run's metrics")
}

fn call(id: u64, name: &str, arguments: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

/// Sends every request at once and collects their results by id (in the order given), with
/// the time each took.
fn concurrently(server: &mut StdioServer, requests: &[Value]) -> Vec<(Value, Duration)> {
    let started = Instant::now();
    for request in requests {
        server.send_raw(&request.to_string());
    }
    let mut results: Vec<Option<(Value, Duration)>> = vec![None; requests.len()];
    while results.iter().any(Option::is_none) {
        let message = server.next_message();
        let Some(index) = requests
            .iter()
            .position(|r| r.get("id") == message.get("id"))
        else {
            continue;
        };
        let result = message
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("not a tool result: {message}"));
        if let Some(slot) = results.get_mut(index) {
            *slot = Some((result, started.elapsed()));
        }
    }
    results.into_iter().flatten().collect()
}

fn ping(server: &mut StdioServer, id: u64) {
    let pong = server.request(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
    assert_eq!(pong.get("result"), Some(&json!({})), "{pong}");
}

/// Resident and peak memory of the server, in MiB, from /proc.
fn memory_mib(server: &StdioServer) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("the server's /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb >> 10)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn no_hostile_guest_harms_its_neighbour_or_the_server() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let reference = neighbour_alone(&mut server);

    // (mode, the request's own limits, what the error must say)
    let mut corpus: Vec<(String, Value, Vec<&str>)> = vec![
        (
            "infinite_loop".into(),
            json!({"timeout_seconds": 1}),
            vec!["time limit of 1 s", "timeout_seconds"],
        ),
        (
            "host_call_loop".into(),
            json!({"timeout_seconds": 1}),
            vec!["time limit of 1 s"],
        ),
        // The costliest matrix product the limits allow, over and over: each host call is
        // bounded, so the deadline still holds to within one of them.
        (
            "op_loop:matmul".into(),
            json!({"timeout_seconds": 1}),
            vec!["time limit of 1 s"],
        ),
        (
            "op_loop:conv2d".into(),
            json!({"timeout_seconds": 1}),
            vec!["time limit of 1 s"],
        ),
        (
            "memory_bomb".into(),
            json!({}),
            vec!["guest memory limit of 64 MiB", "guest_memory_mib"],
        ),
        (
            "deep_recursion".into(),
            json!({}),
            vec!["overflowed its call stack"],
        ),
        (
            "host_memory_bomb".into(),
            json!({"tensor_memory_mib": 64}),
            vec!["host tensor memory limit of 64 MiB"],
        ),
        (
            "graph_bomb".into(),
            json!({"tensor_memory_mib": 64}),
            vec!["host tensor memory limit of 64 MiB"],
        ),
        (
            "giant_from_data".into(),
            json!({"tensor_memory_mib": 16}),
            vec!["host tensor memory limit of 16 MiB", "tensor_memory_mib"],
        ),
        (
            "giant_tensor".into(),
            json!({}),
            vec!["zeros", "[65536, 65536]", "tensor_elements"],
        ),
        ("stale_handle".into(), json!({}), vec!["the model trapped"]),
        ("forged_handle".into(), json!({}), vec!["the model trapped"]),
        (
            "shape_mismatch".into(),
            json!({}),
            vec!["matmul", "[8, 4]", "[3, 2]"],
        ),
        (
            "panic".into(),
            json!({}),
            vec!["the model panicked", "panicked on purpose"],
        ),
        (
            "read_env".into(),
            json!({}),
            vec!["environment is unavailable", "0 variables visible"],
        ),
        ("nan_loss".into(), json!({}), vec!["loss of NaN"]),
        (
            "bad_scheduler".into(),
            json!({}),
            vec!["lr_scheduler step_size must be >= 1, got 0"],
        ),
        (
            "non_scalar_loss".into(),
            json!({}),
            vec!["scalar loss", "[8, 3]"],
        ),
        // Strings a model controls are cut at 4 KiB, with their control characters escaped.
        (
            "long_error".into(),
            json!({}),
            vec!["\\u{1b}[31mEEE", "… (cut: ", "bytes in all"],
        ),
        (
            "long_error_in_init".into(),
            json!({}),
            vec!["invalid model configuration", "… (cut: ", "bytes in all"],
        ),
        // Names that would not fit the files they land in are refused, naming them.
        (
            "reserved_param".into(),
            json!({}),
            vec!["__metadata__ is reserved by the checkpoint format"],
        ),
        (
            "bad_metric:epoch".into(),
            json!({}),
            vec!["metric name epoch is a column the server writes to metrics.csv"],
        ),
        (
            "bad_metric:".into(),
            json!({}),
            vec!["metric name \"\" must be 1 to 128 characters of [A-Za-z0-9_.]"],
        ),
        (
            "bad_metric:val loss\u{1b}".into(),
            json!({}),
            vec!["metric name \"val loss\\\\u{1b}\" must be"],
        ),
        (
            "metric_flood".into(),
            json!({}),
            vec!["more than 256 values logged in one step"],
        ),
    ];
    for hook in [
        "init",
        "dataset",
        "configure_optimizers",
        "training_step",
        "validation_step",
    ] {
        corpus.push((
            format!("panic_in:{hook}"),
            json!({}),
            vec!["the model panicked", "panicked in"],
        ));
        corpus.push((
            format!("unreachable_in:{hook}"),
            json!({}),
            vec!["the model trapped: it executed `unreachable`"],
        ));
    }

    let (baseline_rss, _) = memory_mib(&server);
    let mut id = 10;
    for (mode, limits, expected) in &corpus {
        let hostile = json!({"model": {"_target_": MISBEHAVING, "mode": mode},
                             "trainer": {"max_epochs": 1}, "limits": limits});
        let results = concurrently(
            &mut server,
            &[
                call(id, "lightning.train", &neighbour()),
                call(id + 1, "lightning.train", &hostile),
            ],
        );
        let [(beside, _), (failed, took)] = results.as_slice() else {
            panic!("two results expected");
        };
        let message = tool_error(failed);
        assert!(
            message.len() < 8 << 10,
            "{mode}: a {} byte error",
            message.len()
        );
        assert!(
            !message.contains('\u{1b}'),
            "{mode}: a raw escape in {message:?}"
        );
        for needle in expected {
            assert!(
                message.contains(needle),
                "{mode}: {message:?} lacks {needle:?}"
            );
        }
        if limits.get("timeout_seconds").is_some() {
            assert!(
                *took >= Duration::from_secs(1) && *took < Duration::from_secs(5),
                "{mode}: the deadline of 1 s fired after {took:?}"
            );
        }
        assert_eq!(
            structured(beside).get("metrics"),
            Some(&reference),
            "{mode}: the neighbour's numbers changed"
        );
        ping(&mut server, id + 2);
        id += 3;
    }

    // Everything the corpus held was freed: no instance is left, memory is bounded.
    let env = server.call_tool(id, "lightning.inspect", json!({"what": "environment"}));
    let env = structured(&env);
    assert_eq!(env.get("model_instances_alive"), Some(&json!(0)), "{env}");
    assert_eq!(env.get("runs_in_progress"), Some(&json!(0)), "{env}");
    let (rss, peak) = memory_mib(&server);
    assert!(
        rss < baseline_rss + 256 && peak < 2048,
        "server memory: {baseline_rss} MiB before, {rss} MiB after, {peak} MiB at peak"
    );
}

#[test]
fn a_flood_of_output_is_truncated_and_the_server_stays_responsive() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let level = server.request(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel",
                                       "params": {"level": "info"}}),
    );
    assert_eq!(level.get("result"), Some(&json!({})));
    let flood = json!({"model": {"_target_": MISBEHAVING, "mode": "flood"},
                       "trainer": {"max_epochs": 1, "limit_val_batches": 0}});
    server.send_raw(&call(2, "lightning.train", &flood).to_string());
    let mut printed = 0;
    let mut longest = 0;
    let result = loop {
        let message = server.next_message();
        if message.get("id") == Some(&json!(2)) {
            break message;
        }
        if message.pointer("/params/logger") == Some(&json!("model")) {
            printed += 1;
            let text = message
                .pointer("/params/data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(!text.contains('\u{1b}'), "a raw escape was forwarded");
            longest = longest.max(text.len());
        }
    };
    assert_eq!(
        result.pointer("/result/isError"),
        Some(&json!(false)),
        "{result}"
    );
    // A line of 60 kB came cut to 4 KiB, its terminal escape escaped.
    assert!(
        longest <= 4200 && longest > 4000,
        "the longest forwarded line is {longest} bytes"
    );
    // 2 steps × 40,000 lines were printed; at most 200 per stream reach the log.
    assert!(
        (200..=400).contains(&printed),
        "{printed} model lines were forwarded"
    );
    ping(&mut server, 3);
}

/// The `rejected` entry of `inspect models` for `file`.
fn rejection(models: &Value, file: &str) -> String {
    models
        .get("rejected")
        .and_then(Value::as_array)
        .and_then(|r| {
            r.iter().find(|r| {
                r.get("path")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.ends_with(file))
            })
        })
        .and_then(|r| r.get("error"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{file} was not rejected: {models}"))
        .to_string()
}

#[test]
fn the_models_dir_registers_models_and_refuses_what_is_not_one() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    // A describe that never returns is refused within its 2 s budget, not the 60 s call
    // budget: loading the whole directory answers well within that.
    let started = Instant::now();
    let result = server.call_tool(1, "lightning.inspect", json!({"what": "models"}));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let models = structured(&result);

    let misbehaving = models
        .get("models")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .find(|m| m.get("target") == Some(&json!(MISBEHAVING)))
        })
        .unwrap_or_else(|| panic!("{MISBEHAVING} is not registered: {models}"));
    let path = dir.path().join("misbehaving.wasm");
    assert_eq!(
        misbehaving.get("source"),
        Some(&json!(path.display().to_string()))
    );
    let sha = Sha256::digest(lightning_mcp_guests::testing::MISBEHAVING);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(misbehaving.get("sha256"), Some(&json!(hex)));

    for (file, needles) in [
        (
            "old-world.wasm",
            &["lightning:model/model@0.5.0", "lightning-module@0.5.0"][..],
        ),
        ("broken-describe.wasm", &["describe failed", "unreachable"]),
        (
            "endless-describe.wasm",
            &["describe did not return within 2 s"],
        ),
        ("mlp-copy.wasm", &["already registered (built-in)"]),
    ] {
        let error = rejection(models, file);
        for needle in needles {
            assert!(error.contains(needle), "{file}: {error:?} lacks {needle:?}");
        }
    }
    // Guests that import files, sockets and clocks link (they get none of them: see
    // `files_sockets_and_clocks_give_a_guest_nothing`).
    for target in ["Sleeper", "FileReader", "SocketOpener"] {
        let target = format!("lightning_mcp.testing.{target}");
        let listed = models.get("models").and_then(Value::as_array);
        assert!(
            listed.is_some_and(|m| m.iter().any(|m| m.get("target") == Some(&json!(target)))),
            "{target} is not registered: {models}"
        );
    }
    // Asking for a refused model says where to look.
    let refused = json!({"model": {"_target_": "lightning_mcp.testing.OldWorld"}});
    let message = tool_error(&server.call_tool(3, "lightning.train", refused));
    assert!(
        message.contains("is not a registered model") && message.contains("4 file(s)"),
        "{message}"
    );
    // The refused files harmed nothing: a model from the directory trains.
    let ok =
        json!({"model": {"_target_": MISBEHAVING, "mode": "ok"}, "trainer": {"max_epochs": 2}});
    let trained = server.call_tool(2, "lightning.train", ok);
    assert_eq!(
        structured(&trained).get("status"),
        Some(&json!("completed"))
    );
}

#[test]
fn files_sockets_and_clocks_give_a_guest_nothing() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let reference = neighbour_alone(&mut server);
    let train = |target: &str| {
        json!({"model": {"_target_": format!("lightning_mcp.testing.{target}")},
               "data": {"dataset": "iris"}, "trainer": {"max_epochs": 1, "seed": 3}})
    };
    // Each beside the neighbour: the file and the socket are refused inside the guest, the
    // hour-long sleep of every step is over at once (virtual time).
    for (id, target, refusal) in [
        (10, "FileReader", Some("cannot read /etc/passwd")),
        (20, "SocketOpener", Some("cannot connect")),
        (30, "Sleeper", None),
    ] {
        let results = concurrently(
            &mut server,
            &[
                call(id, "lightning.train", &train(target)),
                call(id + 1, "lightning.train", &neighbour()),
            ],
        );
        let [(result, took), (beside, _)] = results.as_slice() else {
            panic!("two results: {results:?}");
        };
        match refusal {
            Some(needle) => {
                let message = tool_error(result);
                assert!(message.contains(needle), "{target}: {message}");
            }
            None => assert_eq!(
                structured(result).get("status"),
                Some(&json!("completed")),
                "{target}: {result}"
            ),
        }
        assert!(*took < Duration::from_secs(60), "{target} took {took:?}");
        assert_eq!(
            structured(beside).get("metrics"),
            Some(&reference),
            "{target}: the neighbour's numbers changed"
        );
        ping(&mut server, id + 2);
    }
}

#[test]
fn time_and_chance_are_virtual_and_fixed_by_the_seed() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let run = |id: u64, seed: u64, server: &mut StdioServer| {
        let arguments = json!({"model": {"_target_": MISBEHAVING, "mode": "time_and_chance"},
                               "trainer": {"max_epochs": 1, "seed": seed}});
        let result = server.call_tool(id, "lightning.train", arguments);
        let metric = |name: &str| {
            structured(&result)
                .pointer(&format!("/metrics/{name}"))
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("no {name} in {result}"))
        };
        (metric("since_2000_s"), metric("slept_s"), metric("chance"))
    };
    let first = run(1, 7, &mut server);
    let (since_2000, slept, chance) = first;
    // The wall clock starts in 2000 and moves only as the guest reads and waits on it (the
    // metric is the epoch's mean over steps an hour's sleep apart); an hour's sleep is over
    // at once, and takes an hour of the guest's time.
    assert!(
        (0.0..86_400.0).contains(&since_2000),
        "{since_2000} s after 2000"
    );
    assert!((3600.0..3601.0).contains(&slept), "slept {slept} s");
    assert!((0.0..1.0).contains(&chance), "{chance}");
    assert_eq!(
        run(2, 7, &mut server),
        first,
        "the same seed, the same time and chance"
    );
    let (_, _, other) = run(3, 8, &mut server);
    assert_ne!(other, chance, "another seed, another chance");
}

#[test]
fn a_failed_training_leaves_no_empty_run_directory() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let run = |mode: &str| json!({"model": {"_target_": MISBEHAVING, "mode": mode}, "trainer": {"max_epochs": 1}});
    let trained = server.call_tool(1, "lightning.train", run("ok"));
    assert_eq!(
        structured(&trained).get("log_dir"),
        Some(&json!("lightning_logs/version_0")),
        "{trained}"
    );
    let message =
        tool_error(&server.call_tool(2, "lightning.train", run("panic_in:training_step")));
    assert!(message.contains("panicked"), "{message}");
    // The failed run claimed version_1 and wrote nothing into it: it is gone; version_0 stays.
    let logs = server.checkpoint_dir().join("lightning_logs");
    let mut versions: Vec<String> = std::fs::read_dir(&logs)
        .expect("the lightning_logs directory is listed")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    assert_eq!(versions, ["version_0"]);
    // The next run takes the number the failed one gave back.
    let next = server.call_tool(3, "lightning.train", run("ok"));
    assert_eq!(
        structured(&next).get("log_dir"),
        Some(&json!("lightning_logs/version_1")),
        "{next}"
    );
}

#[test]
fn a_backward_pass_that_cannot_finish_before_the_deadline_is_not_started() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    // The step's two costliest products take about half the run, their backward the other
    // half, and no deadline interrupts a backward pass once started.
    let deep = |budget: f64| {
        json!({"model": {"_target_": MISBEHAVING, "mode": "deep_graph"},
               "trainer": {"max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 0,
                           "num_sanity_val_steps": 0, "enable_checkpointing": false},
               "limits": {"timeout_seconds": budget}})
    };
    // (The models directory loads first, outside the timings.)
    server.call_tool(0, "lightning.inspect", json!({"what": "models"}));
    let started = Instant::now();
    let whole = server.call_tool(1, "lightning.train", deep(600.0));
    let whole_took = started.elapsed();
    assert_eq!(
        structured(&whole).get("status"),
        Some(&json!("completed")),
        "{whole}"
    );
    // With three quarters of that, the step ends in time but its backward would not: it is
    // refused when the step ends, before the time a whole run takes.
    let budget = whole_took.mul_f64(0.75).as_secs_f64();
    let started = Instant::now();
    let error = tool_error(&server.call_tool(2, "lightning.train", deep(budget)));
    let took = started.elapsed();
    assert!(error.contains("ran past the time limit"), "{error}");
    assert!(
        took < whole_took,
        "answered after {took:?}; a whole run takes {whole_took:?}"
    );
    ping(&mut server, 3);
}

#[test]
fn runs_reserve_their_tensor_memory_against_the_servers_total() {
    let dir = models_dir();
    let mut server = start(&dir, &["--max-total-tensor-memory-mib", "100"]);
    let ok = |limits: Value, epochs: u64| {
        json!({"model": {"_target_": MISBEHAVING, "mode": "ok"},
               "trainer": {"max_epochs": epochs}, "limits": limits})
    };
    // One run reserves 60 MiB of the 100 while it trains.
    start_long_training(&mut server, ok(json!({"tensor_memory_mib": 60}), 100_000));
    let env = server.call_tool(1, "lightning.inspect", json!({"what": "environment"}));
    assert_eq!(
        structured(&env).get("tensor_memory_mib"),
        Some(&json!({"total": 100, "reserved": 60})),
        "{env}"
    );
    // A run that may use the rest of the server's limit (lowered to the total) does not fit.
    let refused = tool_error(&server.call_tool(2, "lightning.train", ok(json!({}), 1)));
    assert!(
        refused.contains("1 run(s) in progress reserve 60 MiB of its 100 MiB")
            && refused.contains("--max-total-tensor-memory-mib")
            && refused.contains("give limits.tensor_memory_mib 40 or less"),
        "{refused}"
    );
    // One that asks for what is free runs beside it.
    let fits = server.call_tool(
        3,
        "lightning.train",
        ok(json!({"tensor_memory_mib": 40}), 1),
    );
    assert_eq!(
        structured(&fits).get("status"),
        Some(&json!("completed")),
        "{fits}"
    );
    server.send_raw(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long"}}"#,
    );
    let long = server.request(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
    assert_eq!(long.get("result"), Some(&json!({})));
    // Once it ends, its reservation is released.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let env = server.call_tool(5, "lightning.inspect", json!({"what": "environment"}));
        if structured(&env).pointer("/tensor_memory_mib/reserved") == Some(&json!(0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reservation was never released: {env}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_request_may_lower_limits_but_never_raise_them() {
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let mlp = |limits: Value| json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 2}, "limits": limits});
    let cases = [
        (
            json!({"guest_memory_mib": 65}),
            "limits.guest_memory_mib must be between 1 and the server's limit of 64, got 65",
        ),
        (
            json!({"timeout_seconds": 0}),
            "limits.timeout_seconds must be above 0",
        ),
        (
            json!({"tensor_rank": 7}),
            "limits.tensor_rank must be between 1 and the server's limit of 6",
        ),
        (json!({"guest_memory": 1}), "unknown field `guest_memory`"),
        (
            json!({"total_steps": 10}),
            "the run plans 32 optimizer steps",
        ),
        (
            json!({"batch_size": 16}),
            "a batch size of 32 is above the limit of 16 (batch_size)",
        ),
        (
            json!({"dataset_samples": 100}),
            "a dataset of 512 samples is above the limit of 100",
        ),
        (
            json!({"tensor_elements": 100}),
            "above the limit of 100 elements per tensor (tensor_elements)",
        ),
        (
            json!({"instances": 1}),
            "more than the limit of 1 core instances (instances)",
        ),
        (
            json!({"table_elements": 1}),
            "the limit of 1 table elements (table_elements)",
        ),
        (
            json!({"tensor_handles": 3}),
            "the limit of 3 live tensor handles (tensor_handles)",
        ),
    ];
    for (id, (limits, expected)) in (1..).zip(cases) {
        let message = tool_error(&server.call_tool(id, "lightning.train", mlp(limits)));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let lowered = server.call_tool(
        20,
        "lightning.train",
        mlp(json!({"total_steps": 32, "batch_size": 32, "timeout_seconds": 60})),
    );
    assert_eq!(
        structured(&lowered).get("status"),
        Some(&json!("completed"))
    );

    // Out-of-range and oversized arguments name the field.
    let cases = [
        (
            json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 1e15}}),
            "trainer.max_epochs",
        ),
        (
            json!({"model": {"_target_": MLP, "hidden_dims": vec![1; 2_000_000]}}),
            "model.hidden_dims: an array of 2000000 elements",
        ),
        (
            json!({"model": {"_target_": "x".repeat(100_000)}}),
            "model._target_: a string of 100000 bytes",
        ),
        (
            json!({"model": {"_target_": MLP}, "trainer": {"max_epochs": 2, "gpus": 1}}),
            "unknown field `gpus`",
        ),
    ];
    for (id, (arguments, expected)) in (30..).zip(cases) {
        let message = tool_error(&server.call_tool(id, "lightning.train", arguments));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let message = tool_error(&server.call_tool(
        40,
        "lightning.train",
        json!({"model": {"_target_": MLP, "x": deep}}),
    ));
    assert!(
        message.contains("nested deeper than 32 levels"),
        "{message}"
    );
    ping(&mut server, 41);
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn models_are_uploaded_with_register_only_when_allowed() {
    let mut plain = StdioServer::start(&[]);
    let refused = plain.request(&call(
        1,
        "lightning.register",
        &json!({"component": "AA=="}),
    ));
    assert_eq!(
        refused.pointer("/error/code"),
        Some(&json!(-32602)),
        "{refused}"
    );
    // The refusal names the flag that turns the tool on.
    let message = refused
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        message.contains("lightning.register is off") && message.contains("--allow-register"),
        "{refused}"
    );

    let mut server = StdioServer::start(&[
        "--allow-register",
        "--max-register-bytes",
        "400000",
        "--max-uploaded-models",
        "1",
    ]);
    let list = server.request(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let register = list
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .and_then(|t| {
            t.iter()
                .find(|t| t.get("name") == Some(&json!("lightning.register")))
        })
        .unwrap_or_else(|| panic!("no lightning.register in {list}"));
    assert_eq!(
        register.pointer("/inputSchema/properties/component/maxLength"),
        Some(&json!(533_336))
    );

    let upload = |server: &mut StdioServer, id: u64, wasm: &[u8], replace: bool| {
        server.call_tool(
            id,
            "lightning.register",
            json!({"component": base64(wasm), "replace": replace}),
        )
    };
    let misbehaving = lightning_mcp_guests::testing::MISBEHAVING;
    let first = upload(&mut server, 2, misbehaving, false);
    let first = structured(&first);
    assert_eq!(first.get("status"), Some(&json!("registered")), "{first}");
    assert_eq!(first.get("target"), Some(&json!(MISBEHAVING)));
    assert_eq!(first.get("source"), Some(&json!("upload")));
    assert_eq!(first.get("size_bytes"), Some(&json!(misbehaving.len())));
    let again = upload(&mut server, 3, misbehaving, false);
    assert_eq!(structured(&again).get("status"), Some(&json!("unchanged")));
    // A new build of the same model (here: one more custom section) replaces it only when
    // asked to.
    let mut rebuilt = misbehaving.to_vec();
    rebuilt.extend_from_slice(&[0x00, 0x03, 0x01, b'v', b'2']);
    let message = tool_error(&upload(&mut server, 6, &rebuilt, false));
    assert!(
        message.contains("1 uploaded models are registered, the most this server keeps")
            && message.contains("pass replace: true"),
        "{message}"
    );
    let replaced = upload(&mut server, 7, &rebuilt, true);
    assert_eq!(
        structured(&replaced).get("status"),
        Some(&json!("replaced"))
    );

    let ok =
        json!({"model": {"_target_": MISBEHAVING, "mode": "ok"}, "trainer": {"max_epochs": 2}});
    let trained = server.call_tool(4, "lightning.train", ok);
    assert_eq!(
        structured(&trained).get("status"),
        Some(&json!("completed"))
    );
    let models = server.call_tool(5, "lightning.inspect", json!({"what": "models"}));
    let sources: Vec<(Value, Value)> = structured(&models)
        .get("models")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m.get("target").cloned().unwrap_or_default(),
                        m.get("source").cloned().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        sources.contains(&(json!(MISBEHAVING), json!("upload"))),
        "{sources:?}"
    );
    assert!(
        sources.contains(&(json!(MLP), json!("built-in"))),
        "{sources:?}"
    );

    let cases: [(&[u8], &str); 4] = [
        (
            lightning_mcp_guests::MLP,
            "target lightning_mcp.models.mlp.MLP is already registered (built-in)",
        ),
        (b"\0asm not really", "not a valid component"),
        (
            lightning_mcp_guests::testing::OLD_WORLD,
            "lightning-module@0.5.0",
        ),
        (
            lightning_mcp_guests::testing::ENDLESS_DESCRIBE,
            "describe did not return within 2 s",
        ),
    ];
    // (With `replace`, so that the full server compiles and checks them.)
    for (id, (wasm, expected)) in (10..).zip(cases) {
        let started = Instant::now();
        let message = tool_error(&upload(&mut server, id, wasm, true));
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    let message = tool_error(&server.call_tool(
        20,
        "lightning.register",
        json!({"component": "not base64!"}),
    ));
    assert!(message.contains("component: not base64"), "{message}");
    let too_big = "A".repeat(600_000);
    let message =
        tool_error(&server.call_tool(21, "lightning.register", json!({"component": too_big})));
    assert!(message.contains("--max-register-bytes"), "{message}");
    ping(&mut server, 22);
}

#[test]
fn a_guest_looping_over_host_calls_alone_does_not_grow_the_server() {
    // Burn records every op in a process-wide graph that only a backward pass sweeps; with no
    // training beside it, only the host's own sweeps keep this loop from growing the server.
    let dir = models_dir();
    let mut server = start(&dir, &[]);
    let ok =
        json!({"model": {"_target_": MISBEHAVING, "mode": "ok"}, "trainer": {"max_epochs": 1}});
    let warm = server.call_tool(1, "lightning.train", ok);
    assert_eq!(structured(&warm).get("status"), Some(&json!("completed")));
    let (before, _) = memory_mib(&server);
    let looping = json!({"model": {"_target_": MISBEHAVING, "mode": "host_call_loop"},
                         "trainer": {"max_epochs": 1}, "limits": {"timeout_seconds": 2}});
    let message = tool_error(&server.call_tool(2, "lightning.train", looping));
    assert!(message.contains("time limit of 2 s"), "{message}");
    let (after, peak) = memory_mib(&server);
    assert!(
        peak < before + 64,
        "the server grew from {before} MiB to a peak of {peak} MiB ({after} MiB after)"
    );
}
