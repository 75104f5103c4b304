//! End-to-end tests of Streamable HTTP: the built binary with `--http`, driven over loopback.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

mod http_support;

use http_support::{HttpServer, MCP_HEADERS, initialize, post, send};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";
const STATELESS: &str = "2026-07-28";

/// A stateless (2026-07-28) request: `_meta` with version and capabilities, and the headers
/// the era requires.
fn stateless(id: u64, method: &str, mut params: Value) -> (Value, Vec<(String, String)>) {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    if let (Some(token), Some(meta)) =
        (params.pointer("/_meta/progressToken"), meta.as_object_mut())
    {
        meta.insert("progressToken".into(), token.clone());
    }
    if let Some(object) = params.as_object_mut() {
        object.insert("_meta".into(), meta);
    }
    let mut headers = vec![
        ("MCP-Protocol-Version".to_string(), STATELESS.to_string()),
        ("Mcp-Method".to_string(), method.to_string()),
    ];
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        headers.push(("Mcp-Name".to_string(), name.to_string()));
    }
    (
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        headers,
    )
}

fn post_stateless(port: u16, id: u64, method: &str, params: Value) -> http_support::Response {
    let (body, headers) = stateless(id, method, params);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(port, &headers, &body)
}

fn long_training() -> Value {
    json!({"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
           "trainer": {"max_epochs": 1_000_000}})
}

/// `inspect environment` until no model runs and no instance is alive (memory released).
#[track_caller]
fn wait_until_idle(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let env = post_stateless(
            port,
            900,
            "tools/call",
            json!({"name": "lightning.inspect", "arguments": {"what": "environment"}}),
        )
        .json();
        let runs = env
            .pointer("/result/structuredContent/runs_in_progress")
            .cloned();
        let alive = env
            .pointer("/result/structuredContent/model_instances_alive")
            .cloned();
        if runs == Some(json!(0)) && alive == Some(json!(0)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled run still holds resources: {runs:?} runs, {alive:?} instances"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_python_projects_curl_examples_work_unchanged() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let host = format!("localhost:{port}");
    // curl -X POST http://localhost:3333/mcp -H "Content-Type: application/json" -d '...'
    let curl = [
        ("Host", host.as_str()),
        ("User-Agent", "curl/8.5.0"),
        ("Accept", "*/*"),
        ("Content-Type", "application/json"),
    ];
    let train = r#"{
        "id": "train-http-1",
        "method": "lightning/train",
        "params": {
          "model": {"_target_": "lightning_mcp.models.simple.SimpleClassifier", "input_dim": 4, "num_classes": 3},
          "trainer": {"max_epochs": 1, "accelerator": "cpu"}
        }
      }"#;
    let reply = send(port, "POST", "/mcp", &curl, train);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let reply = reply.json();
    assert_eq!(reply.get("id"), Some(&json!("train-http-1")));
    assert_eq!(
        reply.pointer("/result/structuredContent/status"),
        Some(&json!("completed")),
        "{reply}"
    );
    let list = send(
        port,
        "POST",
        "/mcp",
        &curl,
        r#"{"id":"1","method":"tools/list","params":{}}"#,
    )
    .json();
    assert_eq!(
        list.pointer("/result/tools/0/name"),
        Some(&json!("lightning.train"))
    );
    // No Accept header at all still gets JSON.
    let inspect = send(
        port,
        "POST",
        "/mcp",
        &[("Content-Type", "application/json")],
        r#"{"id":"inspect-1","method":"lightning/inspect","params":{"what":"environment"}}"#,
    );
    assert_eq!(inspect.status, 200);
    let inspect = inspect.json();
    assert_eq!(
        inspect.pointer("/result/structuredContent/cuda_available"),
        Some(&json!(false))
    );
}

#[test]
fn sessions_are_issued_enforced_and_closed() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let (init, session) = initialize(port, "2025-11-25");
    assert_eq!(init.status, 200);
    assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert_eq!(
        init.json().pointer("/result/protocolVersion"),
        Some(&json!("2025-11-25"))
    );
    let in_session = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    let initialized = post(
        port,
        &in_session,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(initialized.status, 202);
    assert_eq!(initialized.text(), "");
    let list = post(
        port,
        &in_session,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    assert_eq!(list.status, 200);
    assert!(list.json().pointer("/result/tools/1").is_some());

    let get = send(port, "GET", "/mcp", &[("Accept", "text/event-stream")], "");
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST, DELETE"));
    assert_eq!(
        send(port, "GET", "/healthz", &[], "").json(),
        json!({"status": "ok"})
    );

    let closed = send(port, "DELETE", "/mcp", &in_session, "");
    assert_eq!(closed.status, 204);
    let after = post(
        port,
        &in_session,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    );
    assert_eq!(after.status, 404, "a closed session must be gone");
    assert_eq!(after.json().get("id"), Some(&json!(3)));
    let unknown = post(
        port,
        &[("Mcp-Session-Id", "no-such-session")],
        &json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
    );
    assert_eq!(unknown.status, 404);
    assert!(
        server.terminate(),
        "the server should exit cleanly on SIGTERM"
    );
}

#[test]
fn origin_host_token_size_and_version_are_checked() {
    let server = HttpServer::start(&["--auth-token", "s3cret", "--max-body-bytes", "4096"]);
    let port = server.port;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let auth = ("Authorization", "Bearer s3cret");
    assert_eq!(post(port, &[], &ping).status, 401);
    let wrong = post(port, &[("Authorization", "Bearer guess")], &ping);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert_eq!(post(port, &[auth], &ping).status, 200);

    let foreign = post(port, &[auth, ("Origin", "http://evil.example.com")], &ping);
    assert_eq!(foreign.status, 403);
    assert!(foreign.text().contains("evil.example.com"));
    let rebound = post(port, &[auth, ("Host", "evil.example.com")], &ping);
    assert_eq!(rebound.status, 403);
    let local_origin = format!("http://localhost:{port}");
    assert_eq!(
        post(port, &[auth, ("Origin", local_origin.as_str())], &ping).status,
        200
    );

    let big =
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"pad": "x".repeat(5000)}});
    let too_large = post(port, &[auth], &big);
    assert_eq!(too_large.status, 413);
    assert!(too_large.text().contains("4096"));

    let old = post(port, &[auth, ("MCP-Protocol-Version", "1999-01-01")], &ping);
    assert_eq!(old.status, 400);
    let old = old.json();
    assert_eq!(old.pointer("/error/code"), Some(&json!(-32022)));
    assert_eq!(
        old.pointer("/error/data/requested"),
        Some(&json!("1999-01-01"))
    );

    let html = send(
        port,
        "POST",
        "/mcp",
        &[
            auth,
            ("Accept", "text/html"),
            ("Content-Type", "application/json"),
        ],
        &ping.to_string(),
    );
    assert_eq!(html.status, 406);
    let garbage = send(
        port,
        "POST",
        "/mcp",
        &[auth, ("Content-Type", "application/json")],
        "{not json",
    );
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json().pointer("/error/code"), Some(&json!(-32700)));
    // After all that, the server still answers.
    assert_eq!(
        post(port, &[auth], &ping).json().get("result"),
        Some(&json!({}))
    );
}

#[test]
fn stateless_calls_stream_progress_and_closing_the_stream_cancels() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let discover = post_stateless(port, 1, "server/discover", json!({}));
    assert_eq!(discover.status, 200);
    let discover = discover.json();
    assert_eq!(
        discover.pointer("/result/resultType"),
        Some(&json!("complete"))
    );
    assert!(
        discover
            .pointer("/result/supportedVersions")
            .and_then(Value::as_array)
            .is_some_and(|v| v.contains(&json!(STATELESS)) && v.contains(&json!("2024-11-05")))
    );
    let ping = post_stateless(port, 2, "ping", json!({}));
    assert_eq!(ping.status, 404, "ping is gone in {STATELESS}");
    let bare = post(
        port,
        &[
            ("MCP-Protocol-Version", STATELESS),
            ("Mcp-Method", "tools/list"),
        ],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}),
    );
    assert_eq!(bare.status, 400);
    assert_eq!(bare.json().pointer("/error/code"), Some(&json!(-32602)));

    // A short training with a progress token streams progress, then the result.
    let events = post_stateless(
        port,
        4,
        "tools/call",
        json!({"name": "lightning.train", "_meta": {"progressToken": "t"},
               "arguments": {"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
                             "trainer": {"max_epochs": 3}}}),
    );
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    let events = events.events();
    let (result, progress) = events.split_last().expect("a result event");
    assert_eq!(
        result.get("id"),
        Some(&json!(4)),
        "the result comes last: {events:?}"
    );
    assert_eq!(
        result.pointer("/result/resultType"),
        Some(&json!("complete"))
    );
    let steps = result
        .pointer("/result/structuredContent/trainer/global_step")
        .cloned();
    let values: Vec<f64> = progress
        .iter()
        .filter_map(|e| e.pointer("/params/progress").and_then(Value::as_f64))
        .collect();
    assert!(
        values.len() >= 3,
        "at least one progress per epoch: {progress:?}"
    );
    assert!(
        values.windows(2).all(|w| w.first() < w.get(1)),
        "{values:?}"
    );
    assert_eq!(values.last().map(|v| json!(*v as u64)), steps);

    // A long training: read its first progress event, then hang up.
    let mut stream = post_stateless(
        port,
        5,
        "tools/call",
        json!({"name": "lightning.train", "_meta": {"progressToken": 5}, "arguments": long_training()}),
    );
    let mut pending = String::new();
    let first = stream.next_event(&mut pending);
    assert_eq!(
        first.and_then(|e| e.get("method").cloned()),
        Some(json!("notifications/progress"))
    );
    drop(stream);
    wait_until_idle(port);
}

#[test]
fn a_session_cancels_by_notification_and_answers_pings_meanwhile() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let init = post(
        port,
        &[],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "e2e", "version": "1"}}}),
    );
    let session = init
        .header("mcp-session-id")
        .unwrap_or_default()
        .to_string();
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let training = {
        let session = session.clone();
        std::thread::spawn(move || {
            post(
                port,
                &[("Mcp-Session-Id", session.as_str())],
                &json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                        "params": {"name": "lightning.train", "arguments": long_training()}}),
            )
            .json()
        })
    };
    // Wait until the training runs, answering pings meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started = Instant::now();
        let pong = post(
            port,
            &headers,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        );
        assert_eq!(pong.json().get("result"), Some(&json!({})));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ping waited for the training"
        );
        let env = post(
            port,
            &headers,
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "lightning.inspect", "arguments": {"what": "environment"}}}),
        )
        .json();
        if env.pointer("/result/structuredContent/runs_in_progress") == Some(&json!(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the training never started: {env}"
        );
    }
    let cancel = post(
        port,
        &headers,
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "long", "reason": "test"}}),
    );
    assert_eq!(cancel.status, 202);
    let reply = training.join().expect("the client thread does not panic");
    assert_eq!(reply.get("id"), Some(&json!("long")));
    assert_eq!(
        reply.pointer("/error/code"),
        Some(&json!(-32800)),
        "{reply}"
    );
    wait_until_idle(port);
}

#[test]
fn sigterm_stops_running_requests_and_exits() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let training = std::thread::spawn(move || {
        post(
            port,
            &[],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "lightning.train", "arguments": long_training()}}),
        )
        .json()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.terminate(),
        "the server should exit cleanly on SIGTERM"
    );
    let reply = training.join().expect("the client thread does not panic");
    assert!(
        reply
            .pointer("/error/message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("shutting down")),
        "{reply}"
    );
}

#[test]
fn a_header_that_disagrees_with_the_body_is_refused() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    let (body, _) = stateless(1, "tools/list", json!({}));
    let headers: Vec<(&str, &str)> = MCP_HEADERS
        .iter()
        .copied()
        .chain([
            ("MCP-Protocol-Version", STATELESS),
            ("Mcp-Method", "prompts/list"),
        ])
        .collect();
    let reply = send(port, "POST", "/mcp", &headers, &body.to_string());
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json().pointer("/error/code"), Some(&json!(-32020)));
}

#[test]
fn many_simultaneous_trainings_all_complete_in_turn() {
    let server = HttpServer::start(&["--max-concurrent-runs", "2"]);
    let port = server.port;
    const CLIENTS: u64 = 16;
    let replies: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                scope.spawn(move || {
                    post_stateless(
                        port,
                        i,
                        "tools/call",
                        json!({"name": "lightning.train", "arguments": {
                            "model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
                            "trainer": {"max_epochs": 200, "seed": 5}}}),
                    )
                    .json()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no client panics"))
            .collect()
    });
    let mut completed = Vec::new();
    let mut busy = 0;
    for (i, reply) in (0..).zip(&replies) {
        assert_eq!(reply.get("id"), Some(&json!(i)), "{reply}");
        let result = reply
            .get("result")
            .unwrap_or_else(|| panic!("no result: {reply}"));
        if result.get("isError") == Some(&json!(true)) {
            let error = result
                .pointer("/structuredContent/error")
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(error.contains("the server is busy"), "{error}");
            busy += 1;
        } else {
            completed.push(result.pointer("/structuredContent/metrics").cloned());
        }
    }
    // Past --max-concurrent-runs they wait in the queue (64 long): none is refused.
    assert_eq!(busy, 0, "a run was refused as busy");
    assert_eq!(
        completed.len() + busy,
        CLIENTS as usize,
        "a request was lost"
    );
    assert!(!completed.is_empty(), "nothing completed");
    // Same seed, same numbers, however many ran beside each other.
    assert!(
        completed.windows(2).all(|w| w.first() == w.get(1)),
        "{completed:?}"
    );
    wait_until_idle(port);
}

#[test]
fn idle_connections_cannot_starve_a_well_behaved_client() {
    let server = HttpServer::start(&[]);
    let port = server.port;
    // 1,100 connections from one address that send the start of a request's headers and
    // never finish them: more than the server's cap of 1,024, and than one peer's 256.
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| {
            let mut stream =
                TcpStream::connect(("127.0.0.1", port)).expect("a connection to the server");
            let _ = stream.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            stream
        })
        .collect();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    for _ in 0..5 {
        let started = Instant::now();
        let reply = post(port, &[], &ping);
        let took = started.elapsed();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json().get("result"), Some(&json!({})));
        assert!(took < Duration::from_secs(1), "a ping took {took:?}");
    }
    drop(idle);
}

#[test]
fn the_connection_caps_and_the_header_deadline_are_flags() {
    use std::io::Read;
    let server = HttpServer::start(&[
        "--max-connections-per-address",
        "4",
        "--header-timeout",
        "1",
    ]);
    let port = server.port;
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream =
                TcpStream::connect(("127.0.0.1", port)).expect("a connection to the server");
            let _ = stream.write_all(b"POST /mcp HTTP/1.1\r\n");
            stream
        })
        .collect();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(post(port, &[], &ping).status, 200);
    // The newest half-open connection is not evicted, and its header deadline closes it.
    let last = idle.last_mut().expect("an idle connection");
    last.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout is set");
    let started = Instant::now();
    let mut reply = Vec::new();
    let _ = last.read_to_end(&mut reply);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}
