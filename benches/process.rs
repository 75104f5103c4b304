//! Whole-process timings over stdio, each from starting the server:
//! - until the `initialize` reply arrives;
//! - until a legacy-form `lightning.train` of SimpleClassifier (1 and 10 epochs) is answered
//!   and the process has exited (stdin closed after the request);
//! - the same for `lightning.inspect` `environment`.
//!
//! Our release binary runs with a compile cache warmed once, as after any first start. With
//! `LIGHTNING_MCP_BENCH_SERVER=COMMAND` it measures that stdio server instead (started with
//! no arguments in a temporary directory, e.g. the Python project's `VENV/bin/lightning-mcp`),
//! with fewer samples (`LIGHTNING_MCP_BENCH_ROUNDS`, default 3; 10 for ours).
//! `benches/compare_python.py` runs both and prints them side by side.
//!
//! `cargo bench -p lightning-mcp --bench process`

#![allow(clippy::expect_used)]

#[path = "timing.rs"]
mod timing;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_lightning-mcp");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
const TRAIN_1: &str = r#"{"id":"1","method":"lightning.train","params":{"model":{"_target_":"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},"trainer":{"max_epochs":1,"accelerator":"cpu"}}}"#;
const TRAIN_10: &str = r#"{"id":"1","method":"lightning.train","params":{"model":{"_target_":"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},"trainer":{"max_epochs":10,"accelerator":"cpu"}}}"#;
const ENVIRONMENT: &str = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"lightning.inspect","arguments":{"what":"environment"}}}"#;

/// The server to measure: ours, or `LIGHTNING_MCP_BENCH_SERVER`.
struct Server {
    external: Option<String>,
    dir: std::path::PathBuf,
}

impl Server {
    fn command(&self) -> Command {
        match &self.external {
            Some(program) => {
                let mut command = Command::new(program);
                command.current_dir(&self.dir);
                command
            }
            None => {
                let mut command = Command::new(BINARY);
                command
                    .args(["--log", "warn", "--cache-dir"])
                    .arg(self.dir.join("cache"))
                    .arg("--checkpoint-dir")
                    .arg(self.dir.join("checkpoints"));
                command
            }
        }
    }

    /// Starts the server, sends `line`, waits for the reply; with `wait_exit`, also closes
    /// stdin and waits for the process to exit, else kills it.
    fn round_trip(&self, line: &str, wait_exit: bool) {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{line}").expect("write");
        let mut reply = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut reply)
            .expect("read");
        assert!(reply.contains("\"result\""), "unexpected reply: {reply}");
        let compact: String = reply.split_whitespace().collect();
        assert!(
            !compact.contains("\"isError\":true"),
            "a tool error: {reply}"
        );
        drop(stdin);
        if wait_exit {
            child.wait().expect("wait");
        } else {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() {
    let server = Server {
        external: std::env::var("LIGHTNING_MCP_BENCH_SERVER").ok(),
        dir: std::env::temp_dir().join(format!("lightning-mcp-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&server.dir).expect("a scratch directory");
    let rounds = std::env::var("LIGHTNING_MCP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if server.external.is_some() { 3 } else { 10 });
    let (warmup, per_round) = if server.external.is_some() {
        (1, 1)
    } else {
        (3, 3)
    };
    let mut init = || server.round_trip(INITIALIZE, false);
    let mut train_1 = || server.round_trip(TRAIN_1, true);
    let mut train_10 = || server.round_trip(TRAIN_10, true);
    let mut environment = || server.round_trip(ENVIRONMENT, true);
    let results = timing::measure_interleaved(
        warmup,
        rounds,
        per_round,
        &mut [&mut init, &mut train_1, &mut train_10, &mut environment],
    );
    let names = [
        "start -> initialize answered",
        "lightning.train SimpleClassifier, 1 epoch",
        "lightning.train SimpleClassifier, 10 epochs",
        "lightning.inspect environment",
    ];
    for (name, summary) in names.iter().zip(&results) {
        println!("{name:<44} {summary}");
    }
    let _ = std::fs::remove_dir_all(&server.dir);
}
