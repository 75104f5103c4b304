//! Whole-process timings of the release binary over stdio, against the Python project's
//! 4.6 s and 4.5 s on the same machine:
//! - start → the `initialize` reply arrives;
//! - start → a legacy-form `lightning.train` of SimpleClassifier for 1 epoch is answered and
//!   the process has exited.
//!
//! The compile cache is warmed once, as after any first start.
//!
//! `cargo bench -p lightning-mcp --bench process`

#![allow(clippy::expect_used)]

#[path = "timing.rs"]
mod timing;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_lightning-mcp");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
const TRAIN: &str = r#"{"id":"1","method":"lightning.train","params":{"model":{"_target_":"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},"trainer":{"max_epochs":1,"accelerator":"cpu"}}}"#;

/// Starts the server, sends `line`, waits for the first reply; with `wait_exit`, also closes
/// stdin and waits for the process to exit.
fn round_trip(cache: &Path, line: &str, wait_exit: bool) {
    let mut child = Command::new(BINARY)
        .args(["--log", "warn", "--cache-dir"])
        .arg(cache)
        .arg("--checkpoint-dir")
        .arg(cache.join("checkpoints"))
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
    drop(stdin);
    if wait_exit {
        child.wait().expect("wait");
    } else {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn main() {
    let cache = std::env::temp_dir().join(format!("lightning-mcp-bench-{}", std::process::id()));
    round_trip(&cache, TRAIN, true); // warms the compile cache
    let mut init = || round_trip(&cache, INITIALIZE, false);
    let mut train = || round_trip(&cache, TRAIN, true);
    let results = timing::measure_interleaved(3, 10, 3, &mut [&mut init, &mut train]);
    if let [init, train] = results.as_slice() {
        println!("process start -> initialize answered:                    {init}");
        println!("whole-process lightning.train, SimpleClassifier, 1 epoch: {train}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}
