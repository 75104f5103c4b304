//! The official MCP clients against the built binary: the Python SDK (stdio and HTTP, both
//! negotiation modes), MCP Inspector's CLI (stdio and HTTP), and the MCP conformance suite
//! (every spec version from 2025-03-26 to 2026-07-28, and its Tasks scenarios), and the
//! TypeScript SDK v2 client with its Tasks extension client. `tests/clients/setup.sh` installs
//! them, pinned, under the target directory on first use.

// Test code: `expect` says what the test expected (clippy.toml allows it in #[test] fns; the helpers here need this too).
#![allow(clippy::expect_used)]

mod http_support;
#[path = "support.rs"]
mod support;

use http_support::HttpServer;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::TOOLS;

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";

/// Where the pinned clients are installed.
struct Clients {
    dir: PathBuf,
}

impl Clients {
    fn python(&self) -> PathBuf {
        self.dir.join("venv/bin/python")
    }

    fn componentize_py(&self) -> PathBuf {
        self.dir.join("venv/bin/componentize-py")
    }

    fn node(&self) -> PathBuf {
        self.dir.join("node_modules/.bin/node")
    }

    fn package(&self, path: &str) -> PathBuf {
        self.dir
            .join("node_modules/@modelcontextprotocol")
            .join(path)
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// Installs the clients once per test run.
fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-clients");
        let setup = Command::new("bash")
            .arg(clients_dir().join("setup.sh"))
            .arg(&dir)
            .output()
            .expect("tests/clients/setup.sh runs");
        assert!(
            setup.status.success(),
            "installing the MCP clients failed:\n{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        Clients { dir }
    })
}

/// Runs `command`, failing the test with its output unless it exits with `expected`.
#[track_caller]
fn run(command: &mut Command, expected: i32) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert_eq!(
        output.status.code(),
        Some(expected),
        "{command:?} exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_lightning-mcp")
}

/// Private directories for a server a client starts: its compile cache and checkpoints.
struct ServerState {
    _dir: tempfile::TempDir,
    args: [String; 4],
}

impl ServerState {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let args = [
            "--cache-dir".to_string(),
            path("cache"),
            "--checkpoint-dir".to_string(),
            path("checkpoints"),
        ];
        Self { _dir: dir, args }
    }

    fn args(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(String::as_str)
    }

    fn checkpoints(&self) -> PathBuf {
        self._dir.path().join("checkpoints")
    }
}

fn python_sdk(mode: &str, target: &[&str]) {
    let clients = clients();
    run(
        Command::new(clients.python())
            .arg(clients_dir().join("python_sdk.py"))
            .arg(mode)
            .args(target),
        0,
    );
}

#[test]
fn python_sdk_over_stdio() {
    let state = ServerState::new();
    for mode in ["auto", "legacy"] {
        let mut command = vec![server_binary()];
        command.extend(state.args());
        python_sdk(mode, &command);
    }
}

#[test]
fn python_sdk_over_http() {
    let server = HttpServer::start(&[]);
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    for mode in ["auto", "legacy"] {
        python_sdk(mode, &[&url]);
    }
}

#[test]
fn the_example_agent_trains_tests_and_predicts() {
    // examples/agent.py, as the README tells a newcomer to run it, on the pinned Python SDK.
    let state = ServerState::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent.py");
    let output = run(
        Command::new(clients().python())
            .arg(script)
            .arg(server_binary())
            .args(state.args()),
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let test_acc = summary
        .get("test_acc")
        .and_then(Value::as_f64)
        .unwrap_or_default();
    assert!(test_acc >= 0.9, "{stdout}");
    assert!(stdout.contains("first predicted digits:"), "{stdout}");
}

/// Runs the Inspector CLI against `target` with `args`; returns its JSON output.
fn inspector(target: &[&str], args: &[&str], expected_exit: i32) -> Value {
    let clients = clients();
    let storage = tempfile::tempdir().expect("a temporary directory");
    let output = run(
        Command::new(clients.node())
            .arg(clients.package("inspector/clients/launcher/build/index.js"))
            .arg("--cli")
            .args(target)
            .args(args)
            .args(["--format", "json", "-q"])
            .env("MCP_STORAGE_DIR", storage.path())
            .env(
                "MCP_INSPECTOR_OAUTH_STATE_PATH",
                storage.path().join("oauth.json"),
            )
            .env("MCP_INSPECTOR_SECRET_STORE", "memory")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy"),
        expected_exit,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or(Value::Null)
}

/// Calls `tool` with `arguments` (JSON) through the Inspector CLI.
fn inspector_call(target: &[&str], tool: &str, arguments: &str, expected_exit: i32) -> Value {
    inspector(
        target,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            tool,
            "--tool-args-json",
            arguments,
        ],
        expected_exit,
    )
}

fn inspector_session(target: &[&str]) {
    let list = inspector(target, &["--method", "tools/list"], 0);
    let names: Vec<&str> = list
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.get("name")?.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, TOOLS, "{list}");
    let env = inspector(
        target,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "lightning.inspect",
            "--tool-arg",
            "what=environment",
        ],
        0,
    );
    assert_eq!(
        env.pointer("/result/structuredContent/cuda_available"),
        Some(&json!(false)),
        "{env}"
    );
    let arguments = json!({"model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
                           "trainer": {"max_epochs": 1}})
    .to_string();
    let train = inspector_call(target, "lightning.train", &arguments, 0);
    assert_eq!(
        train.pointer("/result/structuredContent/status"),
        Some(&json!("completed")),
        "{train}"
    );
    // Every other tool: the loops with the training's checkpoint, a listing, help.
    let ckpt = train
        .pointer("/result/structuredContent/checkpoint_path")
        .cloned()
        .unwrap_or_default();
    let with_checkpoint = json!({"model": {"_target_": SIMPLE}, "ckpt_path": ckpt}).to_string();
    let calls = [
        ("lightning.validate", with_checkpoint.as_str(), "/status"),
        ("lightning.test", with_checkpoint.as_str(), "/status"),
        ("lightning.predict", with_checkpoint.as_str(), "/status"),
        ("lightning.checkpoint", r#"{"action": "list"}"#, "/count"),
        (
            "lightning.inspect",
            r#"{"what": "help", "topic": "data"}"#,
            "/topic",
        ),
    ];
    for (tool, arguments, field) in calls {
        let result = inspector_call(target, tool, arguments, 0);
        assert!(
            result
                .pointer(&format!("/result/structuredContent{field}"))
                .is_some(),
            "{tool}: {result}"
        );
        assert_eq!(
            result.pointer("/result/isError"),
            Some(&json!(false)),
            "{tool}: {result}"
        );
    }
    // A failed call is an isError result (exit 5 with the result on stdout).
    let bad = inspector_call(target, "lightning.train", "{\"model\":{}}", 5);
    assert_eq!(bad.pointer("/result/isError"), Some(&json!(true)), "{bad}");
}

#[test]
fn inspector_cli_over_stdio_and_http() {
    let state = ServerState::new();
    let mut command = vec![server_binary()];
    command.extend(state.args());
    command.push("--");
    inspector_session(&command);
    let server = HttpServer::start(&[]);
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    inspector_session(&["--transport", "http", "--server-url", &url]);
}

#[test]
fn conformance_suite_in_every_version() {
    let clients = clients();
    let server = HttpServer::start(&[]);
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    for version in ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"] {
        let output = run(
            Command::new(clients.node())
                .arg(clients.package("conformance/dist/index.js"))
                .args([
                    "server",
                    "--url",
                    &url,
                    "--suite",
                    "all",
                    "--spec-version",
                    version,
                ])
                .arg("--expected-failures")
                .arg(clients_dir().join("conformance-expected-failures.yaml")),
            0,
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("passed"), "{version}: {stdout}");
    }
}

#[test]
fn the_typescript_sdk_runs_a_training_as_a_task_in_both_generations() {
    let clients = clients();
    let server = HttpServer::start(&[]);
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    // ts_tasks.mjs: the SDK v2 client with its Tasks extension client, in a 2025-11-25
    // session (Tasks version 1) and a 2026-07-28 one (the extension).
    let output = run(
        Command::new(clients.node())
            .current_dir(&clients.dir)
            .arg(clients_dir().join("ts_tasks.mjs"))
            .arg(&url),
        0,
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("ts_tasks.mjs prints JSON");
    assert_eq!(summary.get("ok"), Some(&json!(true)), "{summary}");
    let protocols: Vec<&str> = summary
        .get("sessions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("protocol").and_then(Value::as_str))
        .collect();
    assert_eq!(protocols, ["2025-11-25", "2026-07-28"], "{summary}");
}

/// The Tasks scenarios of the conformance suite (the 2026-07-28 extension; run only when
/// named). They call fixture tools the product does not ship: the `tasks_fixtures` example
/// serves them through the same protocol layer, HTTP transport and run store.
const TASK_SCENARIOS: [&str; 10] = [
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-mrtr-input",
    "tasks-request-headers",
    "tasks-dispatch-and-envelope",
    "tasks-status-notifications",
    "tasks-required-task-error",
    "tasks-mrtr-composition",
];

#[test]
fn conformance_tasks_scenarios_against_the_fixtures() {
    let clients = clients();
    let server = HttpServer::start_example("tasks_fixtures", &["0"]);
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    for scenario in TASK_SCENARIOS {
        let output = run(
            Command::new(clients.node())
                .arg(clients.package("conformance/dist/index.js"))
                .args(["server", "--url", &url, "--scenario", scenario])
                .arg("--expected-failures")
                .arg(clients_dir().join("conformance-tasks-expected-failures.yaml")),
            0,
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("FAILED:"), "{scenario}: {stdout}");
    }
}

#[test]
fn a_checkpoint_reads_in_python_with_safetensors_and_numpy() {
    let clients = clients();
    let state = ServerState::new();
    let mut server = Command::new(server_binary())
        .args(state.args())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    if let Some(mut stdin) = server.stdin.take() {
        let request = json!({"id": 1, "method": "lightning.train", "params": {
            "model": {"_target_": SIMPLE, "input_dim": 4, "num_classes": 3},
            "trainer": {"max_epochs": 2, "seed": 9}}});
        std::io::Write::write_all(&mut stdin, format!("{request}\n").as_bytes())
            .expect("the request is written to stdin");
    }
    let output = server.wait_with_output().expect("the server's output");
    let reply: Value = serde_json::from_slice(&output.stdout).expect("one JSON reply");
    let path = reply
        .pointer("/result/structuredContent/checkpoint_path")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no checkpoint_path in {reply}"));
    let file = state.checkpoints().join(path);

    let read = run(
        Command::new(clients.python())
            .arg(clients_dir().join("read_checkpoint.py"))
            .arg(&file),
        0,
    );
    let python: Value =
        serde_json::from_slice(&read.stdout).expect("read_checkpoint.py prints JSON");

    let bytes = std::fs::read(&file).expect("the checkpoint file is read");
    let checkpoint =
        lightning_mcp::checkpoint::decode(&bytes, true).expect("the checkpoint decodes");
    let (params, meta) = (&checkpoint.params, &checkpoint.meta);
    let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["layer.bias", "layer.weight"]);
    // Adam's two moments of each parameter, for resuming.
    let mut optimizer_names: Vec<&str> = checkpoint
        .optimizer_tensors
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    optimizer_names.sort_unstable();
    assert_eq!(
        optimizer_names,
        [
            "layer.bias.momentum.moment_1",
            "layer.bias.momentum.moment_2",
            "layer.weight.momentum.moment_1",
            "layer.weight.momentum.moment_2"
        ]
    );
    let tensors = python
        .get("tensors")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{python}"));
    assert_eq!(
        tensors.len(),
        params.len() + checkpoint.optimizer_tensors.len(),
        "{python}"
    );
    let optimizer_state = checkpoint.optimizer_tensors.iter().map(|p| {
        (
            format!("{}{}", lightning_mcp::checkpoint::OPTIMIZER_PREFIX, p.name),
            p,
        )
    });
    for (name, p) in params
        .iter()
        .map(|p| (p.name.clone(), p))
        .chain(optimizer_state)
    {
        let seen = tensors
            .get(&name)
            .unwrap_or_else(|| panic!("Python did not see {name}"));
        assert_eq!(seen.get("dtype"), Some(&json!("float32")), "{seen}");
        assert_eq!(seen.get("shape"), Some(&json!(p.shape)), "{seen}");
        // Python prints each float32 widened exactly to a double; back to f32 it is the
        // value written (serde_json's parsing may be an ulp off in the double).
        let values: Vec<f32> = seen
            .get("values")
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(values, p.values, "{name}");
    }
    let expected_shapes: Vec<(String, Vec<usize>)> = {
        let mut s: Vec<_> = params
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        expected_shapes,
        [
            ("layer.bias".to_string(), vec![3]),
            ("layer.weight".to_string(), vec![3, 4])
        ]
    );
    assert_eq!(
        python.pointer("/metadata/lightning_mcp"),
        // Through its JSON text: f32 settings print as written ("0.001"), not widened.
        serde_json::to_string(meta)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .as_ref()
    );
    assert_eq!(meta.target, SIMPLE);
    // After 2 epochs: the last epoch's index, as Lightning stores it.
    assert_eq!((meta.epoch, meta.global_step), (1, 16));
}

#[test]
fn a_python_model_built_with_componentize_py_registers_and_trains() {
    // Built as its author would: componentize-py against the repository's WIT.
    let models = tempfile::tempdir().expect("a temporary directory");
    build_python_models(models.path(), &["linear"]);
    let dir = models.path().to_string_lossy().into_owned();
    let mut server = support::StdioServer::start(&["--models-dir", &dir]);
    let iris = json!({"dataset": "iris", "batch_size": 16});
    let linear = "lightning_mcp.testing.PythonLinear";
    let train = |server: &mut support::StdioServer, id: u64, seed: u64| {
        train_for_five_epochs(server, id, linear, iris.clone(), seed)
    };
    let first = train(&mut server, 1, 5);
    let losses: Vec<f64> = first
        .get("history")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .filter_map(|r| r.pointer("/metrics/train_loss").and_then(Value::as_f64))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        losses.len() == 5 && losses.last() < losses.first(),
        "the loss falls: {losses:?}"
    );
    // Its math runs on the host and its randomness is the run's: the same seed, the same
    // numbers; another seed, another draw.
    assert_eq!(
        train(&mut server, 2, 5).get("metrics"),
        first.get("metrics")
    );
    let other = train(&mut server, 3, 6);
    assert_ne!(
        other.pointer("/metrics/draw"),
        first.pointer("/metrics/draw")
    );
}

/// Builds the Python `modules` (files of `examples/python-model` or `tests/guests/python`,
/// with the Python SDK) into components in `models`, as the example's README says.
fn build_python_models(models: &Path, modules: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // From a copy of the sources, so that their bytecode caches stay out of the tree.
    let source = tempfile::tempdir().expect("a temporary directory");
    run(
        Command::new("cp")
            .arg("-r")
            .arg(root.join("guest-sdk-python/lightning_mcp"))
            .arg(root.join("examples/python-model/simple_classifier.py"))
            .arg(root.join("examples/python-model/residual_mlp.py"))
            .arg(root.join("examples/python-model/mlp.py"))
            .arg(root.join("tests/guests/python/hostile.py"))
            .arg(root.join("tests/guests/python/linear.py"))
            .arg(source.path()),
        0,
    );
    for module in modules {
        run(
            Command::new(clients().componentize_py())
                .arg("-d")
                .arg(root.join("wit"))
                .args(["-w", "model", "componentize", "-p"])
                .arg(source.path())
                .arg(module)
                .arg("-o")
                .arg(models.join(format!("{module}.wasm"))),
            0,
        );
    }
}

#[test]
fn python_models_train_to_the_rust_built_ins_numbers() {
    let models = tempfile::tempdir().expect("a temporary directory");
    build_python_models(models.path(), &["simple_classifier", "mlp", "residual_mlp"]);
    let dir = models.path().to_string_lossy().into_owned();
    let mut server = support::StdioServer::start(&["--models-dir", &dir]);
    let train = |server: &mut support::StdioServer, id: u64, target: &str, data: Value| {
        train_for_five_epochs(server, id, target, data, 3)
    };
    // The Python port declares the built-in's parameters in its order, and the math runs on
    // the host: the same seed and data give exactly the same numbers, epoch by epoch.
    let iris = json!({"dataset": "iris", "batch_size": 16});
    let rust = train(&mut server, 1, SIMPLE, iris.clone());
    let python = train(&mut server, 2, "my_project.models.SimpleClassifier", iris);
    assert_eq!(python.get("metrics"), rust.get("metrics"));
    assert_eq!(python.get("history"), rust.get("history"));
    // The MLP, on the data each brings: the Python port draws the built-in's clusters.
    let own = Value::Null;
    let rust = train(&mut server, 4, "lightning_mcp.models.mlp.MLP", own.clone());
    let python = train(&mut server, 5, "my_project.models.MLP", own);
    assert_eq!(python.get("metrics"), rust.get("metrics"));
    assert_eq!(python.get("history"), rust.get("history"));
    // Each one's checkpoint loads into the other (the same names and shapes), and validates
    // to the same numbers there.
    let checkpoint = |result: &Value| result.get("checkpoint_path").cloned();
    for (id, model, ckpt_path) in [
        (6, "lightning_mcp.models.mlp.MLP", checkpoint(&python)),
        (7, "my_project.models.MLP", checkpoint(&rust)),
    ] {
        let arguments = json!({"model": {"_target_": model}, "ckpt_path": ckpt_path,
                               "trainer": {"seed": 3}});
        let validated = server.call_tool(id, "lightning.validate", arguments);
        let metrics = support::structured(&validated).get("metrics").cloned();
        let val_loss = metrics.as_ref().and_then(|m| m.get("val_loss"));
        assert_eq!(val_loss, rust.pointer("/metrics/val_loss"), "{validated}");
    }
    // A residual MLP, which a Sequential config cannot express, learns the digits.
    let digits = json!({"dataset": "digits", "input_shape": [64]});
    let residual = train(&mut server, 3, "my_project.models.ResidualMLP", digits);
    let val_acc = residual
        .pointer("/metrics/val_acc")
        .and_then(Value::as_f64)
        .unwrap_or_default();
    assert!(val_acc >= 0.95, "val_acc {val_acc}: {residual}");
}

#[test]
fn a_python_guest_does_no_more_harm_than_a_rust_one() {
    let models = tempfile::tempdir().expect("a temporary directory");
    build_python_models(models.path(), &["hostile"]);
    let dir = models.path().to_string_lossy().into_owned();
    let mut server = support::StdioServer::start(&[
        "--models-dir",
        &dir,
        "--max-guest-memory-mib",
        "64",
        "--max-concurrent-runs",
        "4",
    ]);
    let neighbour = json!({"model": {"_target_": "lightning_mcp.models.mlp.MLP"},
                           "trainer": {"max_epochs": 2, "seed": 11}});
    let reference = server.call_tool(1, "lightning.train", neighbour.clone());
    let reference = support::structured(&reference).get("metrics").cloned();
    // (mode, the request's limits, what its error says; `None`: it completes)
    let corpus: [(&str, Value, Option<&[&str]>); 8] = [
        (
            "infinite_loop",
            json!({"timeout_seconds": 2}),
            Some(&["time limit of 2 s"]),
        ),
        ("memory_bomb", json!({}), Some(&["memory"])),
        // CPython keeps its frames on the heap: a million of them meet the memory limit.
        (
            "deep_recursion",
            json!({}),
            Some(&["guest memory limit of 64 MiB"]),
        ),
        (
            "read_file",
            json!({}),
            Some(&["/etc/passwd", "No such file"]),
        ),
        ("open_socket", json!({}), Some(&["training failed"])),
        (
            "read_environ",
            json!({}),
            Some(&["0 environment variables"]),
        ),
        ("huge_error", json!({}), Some(&["cut"])),
        ("print_flood", json!({}), None),
    ];
    for (index, (mode, limits, expected)) in (0u64..).zip(corpus) {
        let id = 10 + 10 * index;
        let hostile = json!({"model": {"_target_": "lightning_mcp.testing.PythonHostile",
                                       "mode": mode},
                             "data": {"dataset": "iris"}, "limits": limits,
                             "trainer": {"max_epochs": 1}});
        let results = concurrent_calls(&mut server, &[(id, &hostile), (id + 1, &neighbour)]);
        let [result, beside] = results.as_slice() else {
            panic!("two results: {results:?}");
        };
        match expected {
            Some(needles) => {
                let message = support::tool_error(result);
                assert!(
                    message.len() < 16_384,
                    "{mode}: a {} byte error",
                    message.len()
                );
                for needle in needles {
                    assert!(
                        message.contains(needle),
                        "{mode}: {message:?} lacks {needle:?}"
                    );
                }
            }
            None => assert_eq!(
                support::structured(result).get("status"),
                Some(&json!("completed")),
                "{mode}: {result}"
            ),
        }
        assert_eq!(
            support::structured(beside).get("metrics").cloned(),
            reference,
            "{mode}: the neighbour's numbers changed"
        );
        let pong = server.request(&json!({"jsonrpc": "2.0", "id": id + 2, "method": "ping"}));
        assert_eq!(pong.get("result"), Some(&json!({})), "{mode}: {pong}");
    }
}

#[test]
fn lightning_register_builds_python_source_on_the_server() {
    let componentize_py = clients().componentize_py().to_string_lossy().into_owned();
    let flags = ["--allow-register", "--componentize-py", &componentize_py];
    let checkpoints = tempfile::tempdir().expect("a temporary directory");
    let mut server = support::StdioServer::start_at(&flags, checkpoints.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-model");
    let source = std::fs::read_to_string(examples.join("simple_classifier.py"))
        .expect("the example's source");
    let register = |server: &mut support::StdioServer, id: u64, source: &str, replace: bool| {
        server.call_tool(
            id,
            "lightning.register",
            json!({"python": source, "replace": replace}),
        )
    };
    let registered = register(&mut server, 1, &source, false);
    let registered = support::structured(&registered);
    let target = "my_project.models.SimpleClassifier";
    assert_eq!(registered.get("status"), Some(&json!("registered")));
    assert_eq!(registered.get("target"), Some(&json!(target)));
    assert!(
        registered.get("build_ms").is_some_and(Value::is_u64),
        "{registered}"
    );
    // The same source again is the same model: it is not built again.
    let again = register(&mut server, 5, &source, false);
    let again = support::structured(&again);
    assert_eq!(again.get("status"), Some(&json!("unchanged")));
    assert_eq!(again.get("sha256"), registered.get("sha256"));
    assert_eq!(again.get("build_ms"), None);

    // It trains to exactly the built-in's numbers, and its checkpoint validates.
    let iris = json!({"dataset": "iris", "batch_size": 16});
    let rust = train_for_five_epochs(&mut server, 2, SIMPLE, iris.clone(), 3);
    let python = train_for_five_epochs(&mut server, 3, target, iris, 3);
    assert_eq!(python.get("metrics"), rust.get("metrics"));
    let validated = server.call_tool(
        4,
        "lightning.validate",
        json!({"model": {"_target_": target}, "ckpt_path": python.get("checkpoint_path"),
               "data": {"dataset": "iris", "batch_size": 16}, "trainer": {"seed": 3}}),
    );
    assert_eq!(
        support::structured(&validated).pointer("/metrics/val_loss"),
        rust.pointer("/metrics/val_loss")
    );

    // A model's faults are named, with the model's own traceback, and the server goes on.
    let cases: [(&str, &[&str]); 4] = [
        (
            "import lightning_mcp as L\nclass Net(L.LightningModule:\n    pass\n",
            &["model.py\", line 2", "SyntaxError"],
        ),
        (
            "import lightning_mcp as L\n",
            &["no attribute 'LightningModule'", "L.export(YourModel)"],
        ),
        // Its top-level code runs at build time, in componentize-py's sandbox.
        (
            "print(open('/etc/passwd').read())\n",
            &["FileNotFoundError", "/etc/passwd"],
        ),
        (
            "hoard = [bytearray(10**8) for _ in range(30)]\n",
            &["ran out of its 1024 MiB of memory (--max-build-memory-mib)"],
        ),
    ];
    for (id, (source, needles)) in (10..).zip(cases) {
        let message = support::tool_error(&register(&mut server, id, source, false));
        assert!(message.len() < 8192, "a {} byte error", message.len());
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }
    let message = support::tool_error(&server.call_tool(
        20,
        "lightning.register",
        json!({"python": source, "component": "AA=="}),
    ));
    assert!(message.contains("exactly one"), "{message}");
    // Another source for the same target replaces it only when asked to.
    let edited = source.replace("Adam(lr=self.hparams.lr)", "SGD(lr=self.hparams.lr)");
    let message = support::tool_error(&register(&mut server, 21, &edited, false));
    assert!(message.contains("pass replace: true"), "{message}");
    let replaced = register(&mut server, 22, &edited, true);
    let replaced = support::structured(&replaced).clone();
    assert_eq!(replaced.get("status"), Some(&json!("replaced")));
    // After a restart, the kept build is registered again, and known by its source.
    drop(server);
    let mut server = support::StdioServer::start_at(&flags, checkpoints.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for id in 30.. {
        let models = server.call_tool(id, "lightning.inspect", json!({"what": "models"}));
        if models.to_string().contains(target) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not registered again");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let again = register(&mut server, 29, &edited, false);
    let again = support::structured(&again);
    assert_eq!(again.get("status"), Some(&json!("unchanged")));
    assert_eq!(again.get("sha256"), replaced.get("sha256"));

    // A build that does not end is stopped at the server's limit.
    let mut brief = support::StdioServer::start(&[
        "--allow-register",
        "--componentize-py",
        &componentize_py,
        "--max-build-seconds",
        "2",
    ]);
    let started = std::time::Instant::now();
    let message = support::tool_error(&register(&mut brief, 1, "while True:\n    pass\n", false));
    assert!(message.contains("ran past its 2 s limit"), "{message}");
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());

    // Without a componentize-py, the error says how to get one.
    let mut without = support::StdioServer::start(&[
        "--allow-register",
        "--componentize-py",
        "/nonexistent/componentize-py",
    ]);
    let message = support::tool_error(&register(&mut without, 1, &source, false));
    for needle in [
        "cannot run /nonexistent/componentize-py",
        "pip install componentize-py==0.25.1",
        "pass it as `component`",
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

/// Sends the `(id, arguments)` training calls at once; their results, in that order.
fn concurrent_calls(server: &mut support::StdioServer, calls: &[(u64, &Value)]) -> Vec<Value> {
    for (id, arguments) in calls {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "lightning.train", "arguments": arguments}});
        server.send_raw(&call.to_string());
    }
    let mut results: Vec<Option<Value>> = vec![None; calls.len()];
    while results.iter().any(Option::is_none) {
        let message = server.next_message();
        let index = calls
            .iter()
            .position(|(id, _)| message.get("id") == Some(&json!(id)));
        if let (Some(index), Some(result)) = (index, message.get("result"))
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(result.clone());
        }
    }
    results.into_iter().flatten().collect()
}

/// Trains `target` on `data` for 5 epochs with `seed` on the CPU; the result, which must be
/// a completed training.
fn train_for_five_epochs(
    server: &mut support::StdioServer,
    id: u64,
    target: &str,
    data: Value,
    seed: u64,
) -> Value {
    let arguments = json!({
        "model": {"_target_": target},
        "data": data,
        "trainer": {"max_epochs": 5, "seed": seed, "accelerator": "cpu"},
    });
    let result = server.call_tool(id, "lightning.train", arguments);
    let structured = support::structured(&result).clone();
    assert_eq!(
        structured.get("status"),
        Some(&json!("completed")),
        "{result}"
    );
    structured
}
