//! Drives the built `lightning-mcp --http` over loopback with a minimal HTTP/1.1 client
//! (requests written by hand, so that tests control every header).

// Shared by several test binaries; each uses part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `lightning-mcp --http` on a free port.
pub struct HttpServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    _cache: tempfile::TempDir,
    _checkpoints: tempfile::TempDir,
}

impl HttpServer {
    /// Starts the binary with `--http --port 0` and `args`; waits for its address.
    pub fn start(args: &[&str]) -> Self {
        let cache = tempfile::tempdir().expect("a temporary directory");
        let checkpoints = tempfile::tempdir().expect("a temporary directory");
        let mut command = Command::new(env!("CARGO_BIN_EXE_lightning-mcp"));
        command
            .args(["--http", "--port", "0", "--log", "info"])
            .args(args)
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("--checkpoint-dir")
            .arg(checkpoints.path());
        Self::spawn(command, cache, checkpoints)
    }

    /// Starts example `name` of this package (built beside the tests) with `args`, an HTTP
    /// server that logs its address as the binary does; waits for its address.
    pub fn start_example(name: &str, args: &[&str]) -> Self {
        let examples = std::env::current_exe()
            .ok()
            .and_then(|test| Some(test.parent()?.parent()?.join("examples")))
            .expect("the examples directory beside the test binary");
        let mut command = Command::new(examples.join(name));
        command.args(args);
        let dir = || tempfile::tempdir().expect("a temporary directory");
        Self::spawn(command, dir(), dir())
    }

    fn spawn(
        mut command: Command,
        cache: tempfile::TempDir,
        checkpoints: tempfile::TempDir,
    ) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("the server's stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("the server logs its address before exiting");
            if let Some(address) = line.split("address=").nth(1) {
                let port = address.split_whitespace().next().unwrap_or_default();
                let port = port.rsplit(':').next().unwrap_or_default();
                break port
                    .parse()
                    .unwrap_or_else(|e| panic!("bad port in {line:?}: {e}"));
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            port,
            _cache: cache,
            _checkpoints: checkpoints,
        }
    }

    /// Sends SIGTERM and waits; returns whether the server exited cleanly.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot signal the server");
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response whose body is read as it arrives.
pub struct Response {
    /// The status code.
    pub status: u16,
    headers: Vec<(String, String)>,
    body: BufReader<TcpStream>,
    chunked: bool,
    chunk_left: usize,
    done: bool,
}

/// The headers every MCP POST carries unless a test says otherwise.
pub const MCP_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
];

/// Sends one request on a new connection (`Connection: close`); `Host` is 127.0.0.1:port
/// unless `headers` names one.
pub fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("a connection to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("a read timeout is set");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .expect("the request is sent");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("a status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    Response {
        status,
        headers,
        body: reader,
        chunked,
        chunk_left: 0,
        done: false,
    }
}

/// POSTs `body` to /mcp with [`MCP_HEADERS`] plus `extra`.
pub fn post(port: u16, extra: &[(&str, &str)], body: &Value) -> Response {
    let headers: Vec<(&str, &str)> = MCP_HEADERS.iter().chain(extra).copied().collect();
    send(port, "POST", "/mcp", &headers, &body.to_string())
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads up to `buf.len()` body bytes; 0 at the end.
    fn read_body(&mut self, buf: &mut [u8]) -> usize {
        if self.done {
            return 0;
        }
        if !self.chunked {
            let n = self.body.read(buf).unwrap_or(0);
            self.done = n == 0;
            return n;
        }
        if self.chunk_left == 0 {
            let mut size = String::new();
            if self.body.read_line(&mut size).unwrap_or(0) == 0 {
                self.done = true;
                return 0;
            }
            self.chunk_left = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if self.chunk_left == 0 {
                self.done = true;
                return 0;
            }
        }
        let want = self.chunk_left.min(buf.len());
        let n = self
            .body
            .read(buf.get_mut(..want).unwrap_or_default())
            .unwrap_or(0);
        self.chunk_left -= n;
        if self.chunk_left == 0 {
            let mut crlf = String::new();
            let _ = self.body.read_line(&mut crlf);
        }
        if n == 0 {
            self.done = true;
        }
        n
    }

    /// The whole body as text.
    pub fn text(mut self) -> String {
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = self.read_body(&mut buf);
            if n == 0 {
                break;
            }
            all.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        String::from_utf8_lossy(&all).into_owned()
    }

    /// The body as JSON.
    pub fn json(self) -> Value {
        let text = self.text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"))
    }

    /// The next Server-Sent Event's data as JSON; `None` at the end of the stream.
    pub fn next_event(&mut self, pending: &mut String) -> Option<Value> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data:?}")),
                );
            }
            let n = self.read_body(&mut buf);
            if n == 0 {
                return None;
            }
            pending.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default()));
        }
    }

    /// Every event of the stream.
    pub fn events(mut self) -> Vec<Value> {
        let mut pending = String::new();
        std::iter::from_fn(|| self.next_event(&mut pending)).collect()
    }
}

/// `initialize` at `version`; returns the reply and the session id it issued.
pub fn initialize(port: u16, version: &str) -> (Response, String) {
    let reply = post(
        port,
        &[],
        &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": {},
                           "clientInfo": {"name": "e2e", "version": "1"}}}),
    );
    let session = reply
        .header("mcp-session-id")
        .expect("initialize issues an Mcp-Session-Id")
        .to_string();
    (reply, session)
}
