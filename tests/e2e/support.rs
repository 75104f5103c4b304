//! Drives the built `lightning-mcp` binary over stdio, one JSON message per line.

// Shared by several test binaries; each uses part of it.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// Every tool a server without `--allow-register` lists, in order.
pub const TOOLS: [&str; 7] = [
    "lightning.train",
    "lightning.validate",
    "lightning.test",
    "lightning.predict",
    "lightning.runs",
    "lightning.checkpoint",
    "lightning.inspect",
];

/// How long any one reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server with its stdin, and its stdout lines arriving on a channel.
pub struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    cache: tempfile::TempDir,
    checkpoints: std::path::PathBuf,
    _own_checkpoints: Option<tempfile::TempDir>,
}

impl StdioServer {
    /// Starts the binary with `args` (and a private component cache and checkpoint
    /// directory).
    pub fn start(args: &[&str]) -> Self {
        let checkpoints = tempfile::tempdir().expect("a temporary directory");
        let mut server = Self::start_at(args, checkpoints.path());
        server._own_checkpoints = Some(checkpoints);
        server
    }

    /// Starts the binary with `args`, a private component cache and the checkpoint (and run
    /// store) directory `checkpoints`, which outlives the server.
    pub fn start_at(args: &[&str], checkpoints: &std::path::Path) -> Self {
        let cache = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(env!("CARGO_BIN_EXE_lightning-mcp"))
            .args(args)
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("--checkpoint-dir")
            .arg(checkpoints)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("the server's stdout is piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            cache,
            checkpoints: checkpoints.to_path_buf(),
            _own_checkpoints: None,
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's compile cache (private to it): a file per component it has loaded.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.cache.path()
    }

    /// The server's checkpoint directory (private to it).
    pub fn checkpoint_dir(&self) -> &std::path::Path {
        &self.checkpoints
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one raw line.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("a line is written to stdin");
        stdin.flush().expect("stdin is flushed");
    }

    /// The next line the server writes, parsed; every line must be JSON.
    pub fn next_message(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(REPLY_TIMEOUT)
            .expect("a reply from the server");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout carried a non-JSON line {line:?}: {e}"))
    }

    /// Sends `message` and returns the reply with the same id.
    pub fn request(&mut self, message: &Value) -> Value {
        self.send_raw(&message.to_string());
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        loop {
            let reply = self.next_message();
            if reply.get("id") == Some(&id) {
                return reply;
            }
        }
    }

    /// Calls a tool over JSON-RPC `tools/call`; returns the `CallToolResult`.
    pub fn call_tool(&mut self, id: u64, name: &str, arguments: Value) -> Value {
        let reply = self.request(&json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }));
        let result = reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("tools/call failed: {reply}"));
        assert_text_mirrors_structured(&result);
        result
    }

    /// Closes stdin and waits for the server to exit; returns its exit success.
    pub fn finish(mut self) -> bool {
        drop(self.stdin.take());
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text content of a tool result is the structured content as JSON.
#[track_caller]
pub fn assert_text_mirrors_structured(result: &Value) {
    let text = result
        .pointer("/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text content in {result}"));
    let parsed: Value = serde_json::from_str(text).expect("the text content is JSON");
    assert_eq!(Some(&parsed), result.get("structuredContent"));
}

/// The structured content of a successful tool result.
#[track_caller]
pub fn structured(result: &Value) -> &Value {
    assert_eq!(result.get("isError"), Some(&json!(false)), "{result}");
    result
        .get("structuredContent")
        .unwrap_or_else(|| panic!("no structuredContent in {result}"))
}

/// The error message of a failed tool result.
#[track_caller]
pub fn tool_error(result: &Value) -> String {
    assert_eq!(result.get("isError"), Some(&json!(true)), "{result}");
    result
        .pointer("/structuredContent/error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error message in {result}"))
        .to_string()
}

/// A number at `pointer`.
#[track_caller]
pub fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {value}"))
}

/// A server with the test model `lightning_mcp.testing.Misbehaving` registered from a models
/// directory (returned, to keep it alive).
pub fn with_test_model() -> (StdioServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("misbehaving.wasm"),
        lightning_mcp_guests::testing::MISBEHAVING,
    )
    .expect("the test model is written");
    let dir_arg = dir.path().to_string_lossy().into_owned();
    (StdioServer::start(&["--models-dir", &dir_arg]), dir)
}

/// The file names `lightning.checkpoint` `list` finds under `directory`, sorted.
pub fn listed_checkpoints(server: &mut StdioServer, id: u64, directory: &str) -> Vec<String> {
    let listed = server.call_tool(
        id,
        "lightning.checkpoint",
        json!({"action": "list", "directory": directory}),
    );
    let mut names: Vec<String> = structured(&listed)
        .get("checkpoints")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Sends a `lightning.train` call with `arguments` that would run for days (request id `long`,
/// progress token 1) and waits for its first progress notification.
pub fn start_long_training(server: &mut StdioServer, arguments: Value) {
    server.send_raw(
        &json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
                "params": {"name": "lightning.train", "_meta": {"progressToken": 1},
                           "arguments": arguments}})
        .to_string(),
    );
    let first = server.next_message();
    assert_eq!(
        first.get("method"),
        Some(&json!("notifications/progress")),
        "{first}"
    );
}
