//! End-to-end tests of durable runs: background runs and `lightning.runs` over stdio and HTTP,
//! MCP Tasks (version 1 and the 2026-07-28 extension) by raw JSON-RPC, and a training that
//! survives its server being killed.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]
// JSON is read by index (a missing field reads as null, failing the assertion that follows).
#![allow(clippy::indexing_slicing)]

mod http_support;
mod support;

use http_support::{HttpServer, initialize, post};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{StdioServer, structured, tool_error};

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";
const MLP: &str = "lightning_mcp.models.mlp.MLP";
const TASKS: &str = "io.modelcontextprotocol/tasks";
const STATELESS: &str = "2026-07-28";

/// A quick training of the simple classifier with `seed`.
fn quick(seed: u64) -> Value {
    json!({"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
           "trainer": {"max_epochs": 3, "seed": seed}})
}

/// A training that would run for days.
fn endless() -> Value {
    json!({"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
           "trainer": {"max_epochs": 1_000_000}})
}

/// A seeded MLP training on digits: some seconds in a debug build, a checkpoint per epoch.
fn digits(max_epochs: u32) -> Value {
    json!({"model": {"_target_": MLP},
           "data": {"dataset": "digits", "input_shape": [64], "shuffle": true},
           "trainer": {"max_epochs": max_epochs, "seed": 3}})
}

fn with(mut arguments: Value, key: &str, value: Value) -> Value {
    if let Some(fields) = arguments.as_object_mut() {
        fields.insert(key.into(), value);
    }
    arguments
}

/// Calls `lightning.runs` over stdio; the structured result (or error).
fn runs(server: &mut StdioServer, id: u64, arguments: Value) -> Value {
    structured(&server.call_tool(id, "lightning.runs", arguments)).clone()
}

/// Polls run `run_id` until it has ended; returns it.
#[track_caller]
fn wait_for_end(server: &mut StdioServer, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let run = runs(server, 7000, json!({"action": "get", "run_id": run_id}));
        let status = run["status"].as_str().unwrap_or_default().to_string();
        if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {run_id} never ended: {run}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls a tool (name, arguments) on some transport; returns the `CallToolResult`.
type Call<'a> = &'a mut dyn FnMut(&str, Value) -> Value;

/// `lightning.runs` with `arguments` through `call`: the structured result.
fn runs_via(call: Call<'_>, arguments: Value) -> Value {
    structured(&call("lightning.runs", arguments)).clone()
}

/// Three background trainings (two quick, one endless): listed newest first, the endless one
/// cancelled, the others awaited, their results fetched and compared, one deleted.
fn three_background_trainings(call: Call<'_>) {
    let mut ids = Vec::new();
    for arguments in [quick(1), quick(2), endless()] {
        let started = call(
            "lightning.train",
            with(arguments, "background", json!(true)),
        );
        let started = structured(&started);
        assert_eq!(started["status"], "queued", "{started}");
        ids.push(started["run_id"].as_str().unwrap_or_default().to_string());
    }
    let listed = runs_via(call, json!({"action": "list"}));
    assert_eq!(listed["total"], 3, "{listed}");
    let listed_ids: Vec<&str> = listed["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    // Newest first.
    assert_eq!(listed_ids, [&ids[2], &ids[1], &ids[0]]);

    let endless_id = ids[2].clone();
    let cancelled = runs_via(call, json!({"action": "cancel", "run_id": endless_id}));
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let again = call(
        "lightning.runs",
        json!({"action": "cancel", "run_id": endless_id}),
    );
    assert!(
        tool_error(&again).contains("has ended (cancelled)"),
        "{again}"
    );

    let mut metrics = Vec::new();
    for id in &ids[..2] {
        let deadline = Instant::now() + Duration::from_secs(120);
        let run = loop {
            let run = runs_via(call, json!({"action": "get", "run_id": id}));
            if run["status"] != "queued" && run["status"] != "working" {
                break run;
            }
            assert!(Instant::now() < deadline, "run {id} never ended: {run}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["history_points"], 3, "{run}");
        assert_eq!(run["origin"], "background");
        let result = runs_via(call, json!({"action": "result", "run_id": id}));
        assert_eq!(result["status"], "completed");
        assert_eq!(result["run_id"], json!(id));
        assert_eq!(
            result["metrics"], run["metrics"],
            "the run's latest metrics are its result's"
        );
        metrics.push(result["metrics"].clone());
    }
    let filtered = runs_via(call, json!({"action": "list", "status": "cancelled"}));
    assert_eq!(filtered["total"], 1, "{filtered}");

    let compared = call(
        "lightning.runs",
        json!({"action": "compare", "run_ids": [ids[0], ids[1]], "plot": "val_loss"}),
    );
    let table = structured(&compared);
    for (i, id) in ids[..2].iter().enumerate() {
        assert_eq!(
            table["metrics"]["val_loss"][id], metrics[i]["val_loss"],
            "{table}"
        );
        assert_eq!(
            table["curves"][id]["val_loss"].as_array().map(Vec::len),
            Some(3)
        );
    }
    assert_eq!(table["hyperparameters"]["trainer.seed"][&ids[0]], 1);
    let differing = table["differing"]["hyperparameters"].to_string();
    assert!(differing.contains("trainer.seed"), "{table}");
    let images = compared["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "image")
        .count();
    assert_eq!(images, 1, "the compared curves as one PNG");

    // Deleting: an ended run goes; the listing no longer has it.
    let deleted = runs_via(call, json!({"action": "delete", "run_id": ids[0]}));
    assert_eq!(deleted["deleted"], true);
    let gone = call("lightning.runs", json!({"action": "get", "run_id": ids[0]}));
    assert!(tool_error(&gone).contains("no run"), "{gone}");
}

#[test]
fn background_trainings_over_stdio() {
    let mut server = StdioServer::start(&["--max-concurrent-runs", "2"]);
    let mut id = 0;
    three_background_trainings(&mut |name, arguments| {
        id += 1;
        server.call_tool(id, name, arguments)
    });
    assert!(server.finish());
}

#[test]
fn background_trainings_over_http() {
    let server = HttpServer::start(&["--max-concurrent-runs", "2"]);
    let port = server.port;
    let (_, session) = initialize(port, "2025-06-18");
    let mut id = 1;
    three_background_trainings(&mut |name, arguments| {
        id += 1;
        let reply = post(
            port,
            &[
                ("Mcp-Session-Id", &session),
                ("MCP-Protocol-Version", "2025-06-18"),
            ],
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": name, "arguments": arguments}}),
        )
        .json();
        reply["result"].clone()
    });
}

#[test]
fn a_synchronous_call_is_a_run_too_and_bad_run_requests_say_what_to_fix() {
    let mut server = StdioServer::start(&[]);
    let trained = server.call_tool(1, "lightning.train", quick(4));
    let run_id = structured(&trained)["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run = runs(&mut server, 2, json!({"action": "get", "run_id": run_id}));
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["origin"], "call");
    assert_eq!(run["arguments"], quick(4));
    assert!(
        run["checkpoint"]
            .as_str()
            .is_some_and(|c| c.ends_with(".safetensors")),
        "{run}"
    );
    let fetched = server.call_tool(
        3,
        "lightning.runs",
        json!({"action": "result", "run_id": run_id}),
    );
    assert_eq!(fetched["structuredContent"], trained["structuredContent"]);

    let refused = [
        (json!({"action": "explode"}), "unknown variant"),
        (json!({"action": "get"}), "needs run_id"),
        (
            json!({"action": "get", "run_id": "nope"}),
            "no run \"nope\"",
        ),
        (
            json!({"action": "list", "limit": 0}),
            "limit must be 1 to 100",
        ),
        (json!({"action": "list", "cursor": "zzz"}), "invalid cursor"),
        (
            json!({"action": "compare", "run_ids": [run_id]}),
            "2 to 10 runs",
        ),
        (json!({"action": "list", "extra": 1}), "unknown field"),
        (
            json!({"action": "get", "run_id": "x".repeat(100_000)}),
            "longer than the limit",
        ),
    ];
    for (i, (arguments, expected)) in refused.into_iter().enumerate() {
        let reply = server.call_tool(10 + i as u64, "lightning.runs", arguments);
        let error = tool_error(&reply);
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
        assert!(
            error.len() < 5_000,
            "the error echoes the whole argument: {}",
            error.len()
        );
    }
    let still = runs(&mut server, 30, json!({}));
    assert_eq!(still["total"], 1);
    let environment = server.call_tool(33, "lightning.inspect", json!({"what": "environment"}));
    let store = &structured(&environment)["run_store"];
    assert_eq!(store["runs"], 1, "{store}");
    assert!(
        store["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("runs.sqlite3")),
        "{store}"
    );
    assert_eq!(store["max_runs"], 10_000);

    // An unknown model is refused at once, not as a failed background run.
    let unknown = server.call_tool(
        31,
        "lightning.train",
        json!({"model": {"_target_": "no.such.Model"}, "background": true}),
    );
    assert!(
        tool_error(&unknown).contains("not a registered model"),
        "{unknown}"
    );
    assert_eq!(runs(&mut server, 32, json!({}))["total"], 1);
    assert!(server.finish());
}

#[test]
fn a_killed_server_resumes_its_training_to_the_uninterrupted_metrics() {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let reference = {
        let mut server = StdioServer::start(&[]);
        let trained = server.call_tool(1, "lightning.train", digits(30));
        structured(&trained)["metrics"].clone()
    };
    let mut server = StdioServer::start_at(&[], dirs.path());
    let started = server.call_tool(
        1,
        "lightning.train",
        with(digits(30), "background", json!(true)),
    );
    let run_id = structured(&started)["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let run = runs(&mut server, 2, json!({"action": "get", "run_id": run_id}));
        let done = run
            .pointer("/progress/epochs_done")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if run["checkpoint"].is_string() && done >= 3 {
            assert_ne!(
                run["status"], "completed",
                "the run ended before the kill: {run}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {run}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();

    let mut server = StdioServer::start_at(&[], dirs.path());
    let run = wait_for_end(&mut server, &run_id);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["resumes"], 1, "{run}");
    let result = runs(
        &mut server,
        3,
        json!({"action": "result", "run_id": run_id}),
    );
    assert_eq!(
        result["metrics"], reference,
        "the resumed run ends where an uninterrupted one does"
    );
    assert!(result["resumed_from"]["ckpt_path"].is_string(), "{result}");
    assert!(
        run["history_points"].as_u64().is_some_and(|n| n >= 30),
        "{run}"
    );

    // A run that cannot resume (it writes no checkpoint) fails, "server restarted".
    let mut unresumable = endless();
    unresumable["trainer"]["enable_checkpointing"] = json!(false);
    let started = server.call_tool(
        4,
        "lightning.train",
        with(unresumable, "background", json!(true)),
    );
    let endless_id = structured(&started)["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    server.kill();
    let mut server = StdioServer::start_at(&[], dirs.path());
    // Recovery runs in the background: the run fails once it has been looked at.
    let run = wait_for_end(&mut server, &endless_id);
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("server restarted")),
        "{run}"
    );
    assert!(server.finish());
}

#[test]
fn two_servers_cannot_share_one_run_store() {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let mut first = StdioServer::start_at(&[], dirs.path());
    assert_eq!(runs(&mut first, 1, json!({}))["total"], 0);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_lightning-mcp"))
        .arg("--checkpoint-dir")
        .arg(dirs.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the second server runs");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another lightning-mcp server"),
        "{stderr}"
    );
    assert!(first.finish());
}

/// Sends a JSON-RPC request over stdio; the whole reply.
fn rpc(server: &mut StdioServer, id: u64, method: &str, params: Value) -> Value {
    server.request(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

#[test]
fn tasks_version_1_over_stdio() {
    let mut server = StdioServer::start(&[]);
    let init = rpc(
        &mut server,
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
    );
    assert_eq!(
        init.pointer("/result/capabilities/tasks/requests/tools/call"),
        Some(&json!({})),
        "{init}"
    );
    let list = rpc(&mut server, 2, "tools/list", json!({}));
    let supported: Vec<&str> = list
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.pointer("/execution/taskSupport") == Some(&json!("optional")))
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        supported,
        [
            "lightning.train",
            "lightning.validate",
            "lightning.test",
            "lightning.predict"
        ]
    );

    let created = rpc(
        &mut server,
        3,
        "tools/call",
        json!({"name": "lightning.train",
        "arguments": digits(30), "task": {"ttl": 60_000}}),
    );
    let task = &created["result"]["task"];
    assert_eq!(task["status"], "working", "{created}");
    assert_eq!(task["ttl"], 60_000);
    assert!(
        task["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{task}"
    );
    let task_id = task["taskId"].as_str().unwrap_or_default().to_string();

    // tasks/result waits for the end, announced by the optional status notification.
    server.send_raw(
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tasks/result", "params": {"taskId": task_id}})
            .to_string(),
    );
    let mut notified = Vec::new();
    let result = loop {
        let message = server.next_message();
        if message["id"] == 4 {
            break message;
        }
        notified.push(message);
    };
    assert!(
        notified
            .iter()
            .any(|n| n["method"] == "notifications/tasks/status"
                && n["params"]["status"] == "completed"
                && n["params"]["taskId"] == json!(task_id)),
        "{notified:?}"
    );
    let result = &result["result"];
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["status"], "completed");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"],
        json!(task_id)
    );
    let got = rpc(&mut server, 5, "tasks/get", json!({"taskId": task_id}));
    assert_eq!(got["result"]["status"], "completed", "{got}");
    let listed = rpc(&mut server, 6, "tasks/list", json!({}));
    assert_eq!(
        listed.pointer("/result/tasks/0/taskId"),
        Some(&json!(task_id)),
        "{listed}"
    );
    // The task is a run: lightning.runs shows it.
    let run = runs(&mut server, 7, json!({"action": "get", "run_id": task_id}));
    assert_eq!(run["origin"], "task");

    let long = rpc(
        &mut server,
        8,
        "tools/call",
        json!({"name": "lightning.train",
        "arguments": endless(), "task": {}}),
    );
    let long_id = long["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cancelled = rpc(&mut server, 9, "tasks/cancel", json!({"taskId": long_id}));
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    let code = |reply: &Value| reply.pointer("/error/code").cloned();
    let again = rpc(&mut server, 10, "tasks/cancel", json!({"taskId": long_id}));
    assert_eq!(code(&again), Some(json!(-32602)), "{again}");
    let unknown = rpc(&mut server, 11, "tasks/get", json!({"taskId": "nope"}));
    assert_eq!(code(&unknown), Some(json!(-32602)), "{unknown}");
    let forbidden = rpc(
        &mut server,
        12,
        "tools/call",
        json!({"name": "lightning.inspect",
        "arguments": {"what": "environment"}, "task": {}}),
    );
    assert_eq!(code(&forbidden), Some(json!(-32601)), "{forbidden}");
    let bad_args = rpc(
        &mut server,
        13,
        "tools/call",
        json!({"name": "lightning.train",
        "arguments": {"model": 3}, "task": {}}),
    );
    assert_eq!(code(&bad_args), Some(json!(-32602)), "{bad_args}");
    let bad_ttl = rpc(
        &mut server,
        14,
        "tools/call",
        json!({"name": "lightning.train",
        "arguments": quick(1), "task": {"ttl": "soon"}}),
    );
    assert_eq!(code(&bad_ttl), Some(json!(-32602)), "{bad_ttl}");
    // Sessions of earlier versions know no tasks: their task param is ignored.
    assert!(server.finish());
    let mut old = StdioServer::start(&[]);
    rpc(
        &mut old,
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
    );
    let plain = rpc(
        &mut old,
        2,
        "tools/call",
        json!({"name": "lightning.train",
        "arguments": quick(1), "task": {}}),
    );
    assert_eq!(
        plain["result"]["structuredContent"]["status"], "completed",
        "{plain}"
    );
    let none = rpc(&mut old, 3, "tasks/get", json!({"taskId": "x"}));
    assert_eq!(code(&none), Some(json!(-32601)), "{none}");
    assert!(old.finish());
}

/// A stateless request's body and headers; `declared`: the client declares the Tasks
/// extension; `name`: the `Mcp-Name` header.
fn stateless(
    id: u64,
    method: &str,
    mut params: Value,
    declared: bool,
    name: Option<&str>,
) -> (Value, Vec<(String, String)>) {
    let capabilities = if declared {
        json!({"extensions": {TASKS: {}}})
    } else {
        json!({})
    };
    if let Some(fields) = params.as_object_mut() {
        fields.insert(
            "_meta".into(),
            json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS,
                "io.modelcontextprotocol/clientCapabilities": capabilities,
            }),
        );
    }
    let mut headers = vec![
        ("MCP-Protocol-Version".to_string(), STATELESS.to_string()),
        ("Mcp-Method".to_string(), method.to_string()),
    ];
    if let Some(name) = name {
        headers.push(("Mcp-Name".to_string(), name.to_string()));
    }
    (
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        headers,
    )
}

fn post_stateless(
    port: u16,
    method: &str,
    params: Value,
    declared: bool,
    name: Option<&str>,
) -> Value {
    let (body, headers) = stateless(1, method, params, declared, name);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(port, &headers, &body).json()
}

#[test]
fn the_tasks_extension_over_http() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let discover = post_stateless(port, "server/discover", json!({}), true, None);
    assert_eq!(
        discover.pointer(&format!(
            "/result/capabilities/extensions/{}",
            TASKS.replace('/', "~1")
        )),
        Some(&json!({})),
        "{discover}"
    );
    let call = |arguments: Value, declared: bool| {
        post_stateless(
            port,
            "tools/call",
            json!({"name": "lightning.train", "arguments": arguments}),
            declared,
            Some("lightning.train"),
        )
    };
    // Not declared: the call runs synchronously.
    let plain = call(quick(1), false);
    assert_eq!(plain["result"]["resultType"], "complete", "{plain}");
    assert_eq!(plain["result"]["structuredContent"]["status"], "completed");

    let created = call(quick(1), true);
    let task = &created["result"];
    assert_eq!(task["resultType"], "task", "{created}");
    assert!(task["ttlMs"].as_i64().is_some_and(|t| t > 0), "{task}");
    assert!(
        task.get("ttl").is_none() && task.get("pollInterval").is_none(),
        "{task}"
    );
    let task_id = task["taskId"].as_str().unwrap_or_default().to_string();
    let get = |id: &str| post_stateless(port, "tasks/get", json!({"taskId": id}), true, Some(id));
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let got = get(&task_id);
        assert_eq!(got["result"]["resultType"], "complete", "{got}");
        if got["result"]["status"] != "working" {
            break got;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = &done["result"];
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["structuredContent"]["metrics"],
        plain["result"]["structuredContent"]["metrics"]
    );
    assert!(
        done["result"]
            .get("_meta")
            .is_none_or(|m| m.get("io.modelcontextprotocol/related-task").is_none())
    );

    // A run that fails is `completed` with isError, its result inline.
    let failing = call(
        with(quick(1), "ckpt_path", json!("missing.safetensors")),
        true,
    );
    let failing_id = failing["result"]["taskId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let failed = loop {
        let got = get(&failing_id);
        if got["result"]["status"] != "working" {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(failed["result"]["status"], "completed", "{failed}");
    assert_eq!(failed["result"]["result"]["isError"], true);

    // Cancel acknowledges, on an ended task too.
    let long = call(endless(), true);
    let long_id = long["result"]["taskId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ack = post_stateless(
        port,
        "tasks/cancel",
        json!({"taskId": long_id}),
        true,
        Some(&long_id),
    );
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    assert!(ack["result"].get("status").is_none());
    assert_eq!(get(&long_id)["result"]["status"], "cancelled");
    let ack = post_stateless(
        port,
        "tasks/cancel",
        json!({"taskId": long_id}),
        true,
        Some(&long_id),
    );
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let update = post_stateless(
        port,
        "tasks/update",
        json!({"taskId": task_id, "inputResponses": {}}),
        true,
        Some(&task_id),
    );
    assert_eq!(update["result"]["resultType"], "complete", "{update}");

    let code = |reply: &Value| reply.pointer("/error/code").cloned();
    assert_eq!(code(&get("nope")), Some(json!(-32602)));
    let undeclared = post_stateless(
        port,
        "tasks/get",
        json!({"taskId": task_id}),
        false,
        Some(&task_id),
    );
    assert_eq!(code(&undeclared), Some(json!(-32021)), "{undeclared}");
    assert_eq!(
        undeclared.pointer(&format!(
            "/error/data/requiredCapabilities/extensions/{}",
            TASKS.replace('/', "~1")
        )),
        Some(&json!({}))
    );
    let wrong_name = post_stateless(
        port,
        "tasks/get",
        json!({"taskId": task_id}),
        true,
        Some("other"),
    );
    assert_eq!(code(&wrong_name), Some(json!(-32020)), "{wrong_name}");
    for removed in ["tasks/result", "tasks/list"] {
        let reply = post_stateless(port, removed, json!({"taskId": task_id}), true, None);
        assert_eq!(code(&reply), Some(json!(-32601)), "{removed}: {reply}");
    }
}

#[test]
fn a_run_started_on_one_http_session_is_read_from_another_after_it_closed() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let open = |_: u64| initialize(port, "2025-06-18").1;
    let call = |session: &str, id: u64, name: &str, arguments: Value| {
        post(
            port,
            &[
                ("Mcp-Session-Id", session),
                ("MCP-Protocol-Version", "2025-06-18"),
            ],
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": name, "arguments": arguments}}),
        )
        .json()["result"]["structuredContent"]
            .clone()
    };
    let first = open(1);
    let started = call(
        &first,
        2,
        "lightning.train",
        with(digits(4), "background", json!(true)),
    );
    let run_id = started["run_id"].as_str().unwrap_or_default().to_string();
    let closed = http_support::send(
        port,
        "DELETE",
        "/mcp",
        &[
            ("Mcp-Session-Id", &first),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        "",
    );
    assert!(closed.status < 300, "{}", closed.status);
    let second = open(3);
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let run = call(
            &second,
            4,
            "lightning.runs",
            json!({"action": "get", "run_id": run_id}),
        );
        if run["status"] == "completed" || run["status"] == "failed" || run["status"] == "cancelled"
        {
            break run;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        run["status"], "completed",
        "closing its session did not cancel it: {run}"
    );
    let result = call(
        &second,
        5,
        "lightning.runs",
        json!({"action": "result", "run_id": run_id}),
    );
    assert_eq!(result["trainer"]["current_epoch"], 4, "{result}");
}

#[test]
fn uploaded_models_and_their_runs_survive_a_restart() {
    use base64::Engine as _;
    const MISBEHAVING: &str = "lightning_mcp.testing.Misbehaving";
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let mut server = StdioServer::start_at(&["--allow-register"], dirs.path());
    let component = base64::engine::general_purpose::STANDARD
        .encode(lightning_mcp_guests::testing::MISBEHAVING);
    let registered = server.call_tool(1, "lightning.register", json!({"component": component}));
    assert_eq!(
        structured(&registered)["target"],
        MISBEHAVING,
        "{registered}"
    );
    // A long training of the uploaded model, killed once it has a checkpoint.
    let training = json!({"model": {"_target_": MISBEHAVING, "mode": "ok"},
                          "trainer": {"max_epochs": 1_000_000}, "background": true});
    let started = server.call_tool(2, "lightning.train", training);
    let run_id = structured(&started)["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !runs(&mut server, 3, json!({"action": "get", "run_id": run_id}))["checkpoint"]
        .is_string()
    {
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();

    let mut server = StdioServer::start_at(&["--allow-register"], dirs.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed = loop {
        let run = runs(&mut server, 4, json!({"action": "get", "run_id": run_id}));
        if run["resumes"] == 1 && run["status"] == "working" {
            break run;
        }
        assert_ne!(
            run["status"], "failed",
            "the uploaded model's run did not resume: {run}"
        );
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(resumed["target"], MISBEHAVING);
    let trained = server.call_tool(
        5,
        "lightning.train",
        json!({"model": {"_target_": MISBEHAVING, "mode": "ok"}, "trainer": {"max_epochs": 1}}),
    );
    assert_eq!(structured(&trained)["status"], "completed", "{trained}");
    let cancelled = runs(
        &mut server,
        6,
        json!({"action": "cancel", "run_id": run_id}),
    );
    assert_eq!(cancelled["status"], "cancelled");
    assert!(server.finish());
}
