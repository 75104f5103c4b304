//! The official MCP clients against the built binary: the Python SDK (stdio and HTTP, both
//! negotiation modes), MCP Inspector's CLI (stdio and HTTP), and the MCP conformance suite
//! (every spec version from 2025-03-26 to 2026-07-28). `tests/clients/setup.sh` installs
//! them, pinned, under the target directory on first use.

mod http_support;

use http_support::HttpServer;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Every tool a server without `--allow-register` lists, in order.
const TOOLS: [&str; 5] = [
    "lightning.train",
    "lightning.validate",
    "lightning.test",
    "lightning.predict",
    "lightning.inspect",
];

const SIMPLE: &str = "lightning_mcp.models.simple.SimpleClassifier";

/// Where the pinned clients are installed.
struct Clients {
    dir: PathBuf,
}

impl Clients {
    fn python(&self) -> PathBuf {
        self.dir.join("venv/bin/python")
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
            .unwrap_or_else(|e| panic!("cannot run tests/clients/setup.sh: {e}"));
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
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cache = cache.path().to_string_lossy().into_owned();
    for mode in ["auto", "legacy"] {
        python_sdk(mode, &[server_binary(), "--cache-dir", &cache]);
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

/// Runs the Inspector CLI against `target` with `args`; returns its JSON output.
fn inspector(target: &[&str], args: &[&str], expected_exit: i32) -> Value {
    let clients = clients();
    let storage = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
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

/// Calls `lightning.train` with `arguments` (JSON) through the Inspector CLI.
fn inspector_train(target: &[&str], arguments: &str, expected_exit: i32) -> Value {
    inspector(
        target,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "lightning.train",
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
    let train = inspector_train(target, &arguments, 0);
    assert_eq!(
        train.pointer("/result/structuredContent/status"),
        Some(&json!("completed")),
        "{train}"
    );
    // A failed call is an isError result (exit 5 with the result on stdout).
    let bad = inspector_train(target, "{\"model\":{}}", 5);
    assert_eq!(bad.pointer("/result/isError"), Some(&json!(true)), "{bad}");
}

#[test]
fn inspector_cli_over_stdio_and_http() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cache = cache.path().to_string_lossy().into_owned();
    inspector_session(&[server_binary(), "--cache-dir", &cache, "--"]);
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
