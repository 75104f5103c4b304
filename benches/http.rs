//! Throughput and latency of the release binary's Streamable HTTP endpoint on loopback:
//! `tools/list`, `lightning.inspect` `environment` and a small `lightning.train`
//! (SimpleClassifier, 1 epoch), over 1 and 32 keep-alive connections, a bounded number of
//! requests each.
//!
//! `cargo bench -p lightning-mcp --bench http`
//! With `LIGHTNING_MCP_BENCH_SERVER=COMMAND` it measures that server instead, started as
//! `COMMAND --http --port PORT` in a temporary directory (e.g. the Python project's
//! `VENV/bin/lightning-mcp`); `benches/compare_python.py` runs both side by side.

#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_lightning-mcp");
const TOOLS_LIST: &str = r#"{"id":"1","method":"tools/list","params":{}}"#;
const INSPECT: &str = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"lightning.inspect","arguments":{"what":"environment"}}}"#;
const TRAIN: &str = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"lightning.train","arguments":{"model":{"_target_":"lightning_mcp.models.simple.SimpleClassifier","input_dim":4,"num_classes":3},"trainer":{"max_epochs":1,"accelerator":"cpu"}}}}"#;

/// (name, body, requests per measurement split across the connections, warm-up requests).
const REQUESTS: [(&str, &str, usize, usize); 3] = [
    ("tools/list", TOOLS_LIST, 20_000, 1_000),
    ("lightning.inspect environment", INSPECT, 5_000, 200),
    ("lightning.train, 1 epoch", TRAIN, 320, 10),
];

/// Starts the server (ours, or `external`) on a free port in `dir`; returns it with its
/// host:port once it accepts connections.
fn start(external: Option<&str>, dir: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut command = match external {
        Some(program) => Command::new(program),
        None => {
            let mut command = Command::new(BINARY);
            command
                // As many trainings at once as there are connections, as the Python
                // server's thread pool runs them.
                .args([
                    "--log",
                    "warn",
                    "--max-concurrent-runs",
                    "64",
                    "--cache-dir",
                ])
                .arg(dir.join("cache"))
                .arg("--checkpoint-dir")
                .arg(dir.join("checkpoints"));
            command
        }
    };
    let mut child = command
        .args(["--http", "--port", &port.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while TcpStream::connect(&address).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}) before it listened");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the server did not listen within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, address)
}

/// One keep-alive connection sending `body` `count` times; returns each request's latency.
fn client(address: &str, body: &str, count: usize) -> Vec<Duration> {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut latencies = Vec::with_capacity(count);
    let mut line = String::new();
    let mut buf = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        writer.write_all(request.as_bytes()).expect("send");
        let mut length = 0;
        line.clear();
        reader.read_line(&mut line).expect("status");
        assert!(line.contains(" 200 "), "unexpected status: {line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("length");
            }
        }
        buf.resize(length, 0);
        reader.read_exact(&mut buf).expect("body");
        if latencies.is_empty() {
            let reply: String = String::from_utf8_lossy(&buf).split_whitespace().collect();
            assert!(
                reply.contains("\"result\"") && !reply.contains("\"isError\":true"),
                "unexpected reply: {reply}"
            );
        }
        latencies.push(started.elapsed());
    }
    latencies
}

/// `requests` requests over `connections` connections: requests/s, p50 and p99 latency.
fn measure(address: &str, body: &str, requests: usize, connections: usize) -> String {
    let per_connection = requests / connections;
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (address, body) = (address.to_string(), body.to_string());
            std::thread::spawn(move || client(&address, &body, per_connection))
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    let elapsed = started.elapsed();
    all.sort();
    let quantile = |q: f64| {
        let index = ((all.len() as f64 - 1.0) * q).round() as usize;
        all.get(index).copied().unwrap_or_default().as_secs_f64() * 1e3
    };
    format!(
        "{:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests)",
        all.len() as f64 / elapsed.as_secs_f64(),
        quantile(0.5),
        quantile(0.99),
        all.len()
    )
}

fn main() {
    let external = std::env::var("LIGHTNING_MCP_BENCH_SERVER").ok();
    let dir = std::env::temp_dir().join(format!("lightning-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (child, address) = start(external.as_deref(), &dir);
    let _server = KillOnDrop(child);
    for (name, body, requests, warmup) in REQUESTS {
        client(&address, body, warmup);
        for connections in [1, 32] {
            let result = measure(&address, body, requests, connections);
            println!("{name:<30} {connections:>2} connection(s)  {result}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stops the server when the bench ends, a failed one included.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
