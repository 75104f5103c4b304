//! The run store's costs:
//! - what it adds to a whole-process 1-epoch training: opening the store at start-up (file
//!   lock, WAL, schema, the unfinished runs), and the writes one training makes (the run
//!   created, started, an epoch's point with its checkpoint, the result), on a file store;
//! - `lightning.runs` `list` (and `get`) over 10,000 stored runs;
//! - from SIGKILL to the restarted server answering, to the resumed run working, to its first
//!   epoch after the resume (the release binary, a digits MLP training checkpointing every
//!   epoch).
//!
//! `cargo bench -p lightning-mcp --bench runs`

#![allow(clippy::expect_used, clippy::indexing_slicing)]

#[path = "timing.rs"]
mod timing;

use lightning_mcp::cancel::CancelToken;
use lightning_mcp::protocol::{CallObserver, CallToolResult};
use lightning_mcp::runs::{Filter, NewRun, Origin, Retention, Runs, SqliteStore, Status};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_lightning-mcp");

/// The arguments of the whole-process benchmark's 1-epoch training.
fn arguments() -> Value {
    json!({"model": {"_target_": "lightning_mcp.models.simple.SimpleClassifier",
                     "input_dim": 4, "num_classes": 3},
           "trainer": {"max_epochs": 1, "accelerator": "cpu"}})
}

/// A training result of the usual size (~1.5 KB of JSON).
fn result() -> CallToolResult {
    CallToolResult::success(json!({
        "status": "completed",
        "model": {"class": "SimpleClassifier", "target": "lightning_mcp.models.simple.SimpleClassifier",
                  "num_parameters": 99, "hyperparameters": {"input_dim": 4, "num_classes": 3, "lr": 0.01}},
        "trainer": {"max_epochs": 1, "max_steps": -1, "accelerator": "cpu", "devices": 1,
                    "device": {"name": "cpu", "backend": "flex"}, "seed": 0,
                    "current_epoch": 1, "global_step": 8, "stopped_early": false},
        "metrics": {"train_loss": 1.1, "val_loss": 1.2, "val_acc": 0.4},
        "log_dir": "lightning_logs/version_0",
        "checkpoint_path": "lightning_logs/version_0/checkpoints/epoch=0-step=8.safetensors",
        "history": [{"epoch": 0, "global_step": 8, "metrics": {"train_loss": 1.1, "val_loss": 1.2, "val_acc": 0.4}}],
        "samples_per_second": 20000.0, "duration_seconds": 0.004,
    }))
}

fn open(dir: &std::path::Path) -> Runs {
    let store = SqliteStore::open(&dir.join("runs.sqlite3")).expect("store");
    Runs::new(Box::new(store), "bench".into(), Retention::default())
}

/// The store's part of one 1-epoch training.
fn one_training(runs: &Runs) {
    let cancel = CancelToken::new();
    let run = runs
        .create(
            NewRun {
                tool: "lightning.train".into(),
                target: "lightning_mcp.models.simple.SimpleClassifier".into(),
                arguments: arguments(),
                origin: Origin::Call,
                ttl: None,
            },
            &cancel,
        )
        .expect("create");
    let recorder = runs.observer(&run.id);
    recorder.started();
    recorder.progress(8.0, Some(8.0), "epoch 1/1 done");
    recorder.point(&json!({"epoch": 0, "global_step": 8,
        "metrics": {"train_loss": 1.1, "val_loss": 1.2, "val_acc": 0.4},
        "checkpoint": "lightning_logs/version_0/checkpoints/epoch=0-step=8.safetensors"}));
    runs.finish(&run.id, &result());
}

fn store_overhead() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The store a server opens at start-up (after the first start: the file exists).
    drop(open(dir.path()));
    let mut open_store = || {
        let runs = open(dir.path());
        assert!(runs.recovery().expect("recovery").is_none());
    };
    let results = timing::measure_interleaved(5, 10, 10, &mut [&mut open_store]);
    println!(
        "open the store at start-up (lock, WAL, schema, what to recover): {}",
        results[0]
    );
    let runs = open(dir.path());
    let mut training = || one_training(&runs);
    let results = timing::measure_interleaved(20, 10, 50, &mut [&mut training]);
    println!(
        "the writes of one 1-epoch training (create, start, point, result): {}",
        results[0]
    );
}

fn listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = Runs::new(
        Box::new(SqliteStore::open(&dir.path().join("runs.sqlite3")).expect("store")),
        "bench".into(),
        Retention {
            ttl: None,
            max_runs: 20_000,
        },
    );
    let filled = Instant::now();
    let mut ids = Vec::new();
    for i in 0..10_000 {
        let cancel = CancelToken::new();
        let run = runs
            .create(
                NewRun {
                    tool: "lightning.train".into(),
                    target: if i % 10 == 0 {
                        "lightning_mcp.models.mlp.MLP"
                    } else {
                        "lightning_mcp.models.simple.SimpleClassifier"
                    }
                    .into(),
                    arguments: arguments(),
                    origin: Origin::Background,
                    ttl: None,
                },
                &cancel,
            )
            .expect("create");
        runs.finish(&run.id, &result());
        ids.push(run.id);
    }
    println!(
        "filled 10,000 runs in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let mut first_page = || {
        let page = runs.list(&Filter::default(), None, 20).expect("list");
        assert_eq!(page.runs.len(), 20);
    };
    let mut largest_page = || {
        let page = runs.list(&Filter::default(), None, 100).expect("list");
        assert_eq!(page.runs.len(), 100);
    };
    let by_target = Filter {
        target: Some("lightning_mcp.models.mlp.MLP".into()),
        ..Filter::default()
    };
    let mut filtered = || {
        let page = runs.list(&by_target, None, 20).expect("list");
        assert_eq!(page.total, 1_000);
    };
    let completed = Filter {
        statuses: vec![Status::Completed],
        ..Filter::default()
    };
    let deep = runs
        .list(&completed, None, 9_000)
        .expect("list")
        .next
        .expect("a cursor");
    let mut deep_page = || {
        runs.list(&completed, Some(&deep), 20).expect("list");
    };
    let middle = ids[5_000].clone();
    let mut get = || {
        runs.get(&middle).expect("get");
    };
    let results = timing::measure_interleaved(
        5,
        10,
        20,
        &mut [
            &mut first_page,
            &mut largest_page,
            &mut filtered,
            &mut deep_page,
            &mut get,
        ],
    );
    let names = [
        "list, first page of 20 (of 10,000)",
        "list, a page of 100",
        "list, filtered by target (1,000 match), page of 20",
        "list, status completed, page of 20 after 9,000",
        "get one run with its result",
    ];
    for (name, summary) in names.iter().zip(results) {
        println!("{name:<52} {summary}");
    }
}

/// A stdio server with the checkpoint directory `dir`.
struct Served {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Served {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(BINARY)
            .args(["--log", "warn", "--cache-dir"])
            .arg(dir.join("cache"))
            .arg("--checkpoint-dir")
            .arg(dir.join("checkpoints"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn call(&mut self, name: &str, arguments: Value) -> Value {
        let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}});
        writeln!(self.stdin, "{line}").expect("write");
        let reply: Value =
            serde_json::from_str(&self.lines.next().expect("a reply").expect("read"))
                .expect("json");
        reply["result"]["structuredContent"].clone()
    }
}

fn resume_after_kill(rounds: usize) {
    let training = json!({"model": {"_target_": "lightning_mcp.models.mlp.MLP"},
        "data": {"dataset": "digits", "input_shape": [64], "shuffle": true},
        "trainer": {"max_epochs": 400, "seed": 3}, "background": true});
    let mut answered = Vec::new();
    let mut working = Vec::new();
    let mut first_epoch = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Served::start(dir.path());
        let run_id = server.call("lightning.train", training.clone())["run_id"]
            .as_str()
            .expect("a run id")
            .to_string();
        let get = json!({"action": "get", "run_id": run_id});
        loop {
            let run = server.call("lightning.runs", get.clone());
            if run["checkpoint"].is_string() && run["history_points"].as_u64() >= Some(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        server.child.kill().expect("kill");
        server.child.wait().expect("wait");
        let killed = Instant::now();
        let mut server = Served::start(dir.path());
        let run = server.call("lightning.runs", get.clone());
        answered.push(killed.elapsed());
        let points = run["history_points"].as_u64().unwrap_or(0);
        // Working again once resumed (until then it reads as the killed server left it).
        let resumed = |run: &Value| run["resumes"] == 1 && run["status"] == "working";
        let mut run = run;
        while !resumed(&run) {
            run = server.call("lightning.runs", get.clone());
        }
        working.push(killed.elapsed());
        loop {
            let run = server.call("lightning.runs", get.clone());
            if run["history_points"].as_u64().unwrap_or(0) > points {
                break;
            }
        }
        first_epoch.push(killed.elapsed());
        server.call(
            "lightning.runs",
            json!({"action": "cancel", "run_id": run_id}),
        );
        drop(server.stdin);
        server.child.wait().expect("wait");
    }
    let names = [
        "SIGKILL -> restarted server answers lightning.runs",
        "SIGKILL -> the resumed run is working",
        "SIGKILL -> its first epoch after the resume is recorded",
    ];
    for (name, times) in names.iter().zip([answered, working, first_epoch]) {
        println!("{name:<56} {}", timing::summarize(times));
    }
}

fn main() {
    store_overhead();
    listing();
    resume_after_kill(10);
}
