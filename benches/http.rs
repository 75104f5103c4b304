//! Throughput and latency of the release binary's Streamable HTTP endpoint on loopback:
//! `tools/list` and `lightning.inspect` `environment`, over 1 and 32 keep-alive connections,
//! a bounded number of requests each.
//!
//! `cargo bench -p lightning-mcp --bench http`
//! With `LIGHTNING_MCP_BENCH_URL=http://127.0.0.1:PORT/mcp` it measures that server instead
//! (e.g. the Python project's FastAPI server; `tools/list` only).

#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_lightning-mcp");
const TOOLS_LIST: &str = r#"{"id":"1","method":"tools/list","params":{}}"#;
const INSPECT: &str = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"lightning.inspect","arguments":{"what":"environment"}}}"#;
/// Requests per measurement, split across the connections.
const REQUESTS: usize = 20_000;
const WARMUP: usize = 1_000;

/// Starts the release server on a free port; returns it with its host:port.
fn start() -> (Child, String) {
    let mut child = Command::new(BINARY)
        .args(["--http", "--port", "0", "--log", "info", "--no-cache"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines.next().expect("server exited").expect("stderr");
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, address)
}

/// One keep-alive connection sending `body` `count` times; returns each request's latency.
fn client(address: &str, path: &str, body: &str, count: usize) -> Vec<Duration> {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
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
        latencies.push(started.elapsed());
    }
    latencies
}

/// `REQUESTS` requests over `connections` connections: requests/s, p50 and p99 latency.
fn measure(address: &str, path: &str, body: &str, connections: usize) -> String {
    let per_connection = REQUESTS / connections;
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (address, path, body) = (address.to_string(), path.to_string(), body.to_string());
            std::thread::spawn(move || client(&address, &path, &body, per_connection))
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
    let external = std::env::var("LIGHTNING_MCP_BENCH_URL").ok();
    let (child, address, path) = match &external {
        Some(url) => {
            let rest = url.strip_prefix("http://").expect("an http:// URL");
            let (address, path) = rest.split_once('/').expect("a path");
            (None, address.to_string(), format!("/{path}"))
        }
        None => {
            let (child, address) = start();
            (Some(child), address, "/mcp".to_string())
        }
    };
    let mut requests = vec![("tools/list", TOOLS_LIST)];
    if external.is_none() {
        requests.push(("lightning.inspect environment", INSPECT));
    }
    for (name, body) in requests {
        client(&address, &path, body, WARMUP);
        for connections in [1, 32] {
            let result = measure(&address, &path, body, connections);
            println!("{name:<30} {connections:>2} connection(s)  {result}");
        }
    }
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}
