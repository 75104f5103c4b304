//! GPU runs in a worker process, one per adapter, kept for the server's life.
//!
//! A GPU driver runs inside the process that uses it, and drivers crash: lavapipe segfaults
//! compiling cubecl's SPIR-V kernels (`shared/STACK.md`), and a crashed driver takes its
//! process with it. So the server runs every training, validation, test and prediction placed
//! on a GPU in a child — its own binary with [`WORKER_FLAG`] — and a crash there is a tool
//! error naming the signal, while the server, its other calls and its CPU runs go on.
//!
//! The worker for an adapter starts on the first call placed there and serves every later one
//! ([`Pool`]): the adapter is opened, and Burn's compiled kernels and autotune results are
//! cached, once per worker, not once per call. It runs its calls concurrently, each on its own
//! thread. A worker that crashed (or was killed for ignoring a cancellation) fails the calls
//! it was serving; the next call starts a new one.
//!
//! The protocol is JSON lines. The server writes a [`Request`] per line on the worker's stdin:
//! first its configuration, then calls and cancellations. The worker answers with a [`Reply`]
//! per line on stdout, each tagged with its call's id: the call's notifications as they
//! happen, then its result. Stdin closing (the server went away) cancels every call. Logs go
//! to stderr, which the worker shares with the server.

mod pool;

pub use pool::Pool;

use super::Tools;
use super::accelerator::Placement;
use crate::cancel::CancelToken;
use crate::gpu::Adapter;
use crate::protocol::{CallContext, CallObserver, CallToolResult, Image, LogLevel, POINT_METHOD};
use crate::runtime::{Runtime, RuntimeConfig, WorkerConfig};
use crate::sync::lock;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead as _, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

/// The command-line flag that makes the binary a GPU worker, serving calls from stdin.
pub const WORKER_FLAG: &str = "--gpu-worker";

/// A line the server writes to a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// The server's configuration: the first line, once.
    Configure(WorkerConfig),
    /// Run a call.
    Run(Job),
    /// Stop the call with this id.
    Cancel(u64),
}

/// A call a worker runs.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    /// The call's id, unique for the worker's life.
    id: u64,
    tool: String,
    arguments: Value,
    adapter: Adapter,
    /// The SHA-256 of the server's component of the call's model: the worker runs that one or
    /// none (a file in the models directory may have changed since the server loaded it).
    sha256: Option<String>,
    /// An uploaded model's component (base64), registered before the call runs.
    upload: Option<String>,
}

/// A line a worker writes: a message about call `id`.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: u64,
    message: Message,
}

/// What a worker says about a call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    /// The worker has loaded the model and starts the call: its run budget counts from here.
    Started,
    /// A notification of the call (progress, log).
    Notification(Value),
    /// The call's result.
    Result(WireResult),
}

/// A [`CallToolResult`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct WireResult {
    structured: Value,
    is_error: bool,
    /// PNG images, base64.
    png: Vec<String>,
}

fn to_wire(result: &CallToolResult) -> WireResult {
    WireResult {
        structured: result.structured.clone(),
        is_error: result.is_error,
        png: result
            .images
            .iter()
            .filter(|image| image.mime_type == "image/png")
            .map(|image| base64::engine::general_purpose::STANDARD.encode(&image.data))
            .collect(),
    }
}

fn from_wire(wire: WireResult) -> CallToolResult {
    let mut result = if wire.is_error {
        CallToolResult {
            structured: wire.structured,
            images: Vec::new(),
            is_error: true,
        }
    } else {
        CallToolResult::success(wire.structured)
    };
    for png in wire.png {
        if let Ok(data) = base64::engine::general_purpose::STANDARD.decode(png) {
            result = result.with_image(Image {
                data,
                mime_type: "image/png",
            });
        }
    }
    result
}

/// Writes `message` as one JSON line and flushes it: the wire format both ways.
fn write_line(out: &mut impl Write, message: &impl Serialize) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).and_then(|()| out.flush())
}

/// Writes [`Reply`] lines to stdout, one at a time.
#[derive(Clone)]
struct Replies(Arc<Mutex<std::io::Stdout>>);

impl Replies {
    fn send(&self, id: u64, message: Message) {
        if let Err(e) = write_line(&mut *lock(&self.0), &Reply { id, message }) {
            tracing::warn!("the GPU worker cannot write to the server: {e}");
        }
    }
}

/// In the worker process: reads its configuration, then serves calls from stdin until it
/// closes, each on its own thread; their notifications and results go to stdout.
pub fn serve() -> anyhow::Result<()> {
    die_with_the_server();
    let replies = Replies(Arc::new(Mutex::new(std::io::stdout())));
    let mut lines = std::io::stdin().lock().lines();
    let config = match lines.next().transpose()?.map(|l| serde_json::from_str(&l)) {
        Some(Ok(Request::Configure(config))) => config,
        // E.g. a server and a worker of different versions (the binary was replaced).
        other => anyhow::bail!("the GPU worker expected its configuration, got {other:?}"),
    };
    // The server records the runs; the worker's own store only satisfies the tools.
    let runs = Arc::new(crate::runs::Runs::in_memory()?);
    let tools = Arc::new(Tools::new(Runtime::new(RuntimeConfig::from(config)), runs));
    let calls: Arc<Mutex<HashMap<u64, CancelToken>>> = Arc::default();
    for line in lines {
        match serde_json::from_str(&line?) {
            Ok(Request::Run(job)) => {
                let cancel = CancelToken::new();
                lock(&calls).insert(job.id, cancel.clone());
                let id = job.id;
                let (tools, thread_replies, thread_calls) =
                    (tools.clone(), replies.clone(), calls.clone());
                let spawned = std::thread::Builder::new().spawn(move || {
                    // A bug in a tool must not leave the server's call waiting for its timeout.
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        run_job(&tools, job, cancel, &thread_replies)
                    }))
                    .unwrap_or_else(|_| {
                        tracing::error!("a GPU call panicked in the worker");
                        CallToolResult::error("internal error in the GPU worker")
                    });
                    lock(&thread_calls).remove(&id);
                    thread_replies.send(id, Message::Result(to_wire(&result)));
                });
                if let Err(e) = spawned {
                    lock(&calls).remove(&id);
                    let result = CallToolResult::error(format!(
                        "the GPU worker could not start a thread for the call: {e}"
                    ));
                    replies.send(id, Message::Result(to_wire(&result)));
                }
            }
            Ok(Request::Cancel(id)) => {
                if let Some(cancel) = lock(&calls).get(&id) {
                    cancel.cancel();
                }
            }
            Ok(Request::Configure(_)) => tracing::warn!("the GPU worker was configured twice"),
            Err(e) => tracing::warn!("the GPU worker got an unreadable request: {e}"),
        }
    }
    // The server is gone: stop every call (the kernel kills this process with it anyway).
    lock(&calls).values().for_each(CancelToken::cancel);
    Ok(())
}

/// Runs one call in the worker, its notifications sent as they happen.
fn run_job(tools: &Tools, job: Job, cancel: CancelToken, replies: &Replies) -> CallToolResult {
    let id = job.id;
    let notify = |notification: Value| replies.send(id, Message::Notification(notification));
    // Everything goes to the server, whose own context filters it for the client and
    // records the run's history points.
    let points = ForwardPoints(&notify);
    let base = CallContext::new(cancel, Some(json!(0)), Some(LogLevel::Debug), &notify);
    let ctx = base.observed_by(&points);
    match prepare(tools.runtime(), &job.arguments, job.sha256, job.upload) {
        Ok(()) => {
            replies.send(id, Message::Started);
            tools.run_placed(
                &job.tool,
                &job.arguments,
                &Placement::Gpu(job.adapter),
                &ctx,
            )
        }
        Err(message) => CallToolResult::error(message),
    }
}

/// Sends a call's history points to the server, which records them in its run store.
struct ForwardPoints<'a>(&'a (dyn Fn(Value) + Send + Sync));

impl CallObserver for ForwardPoints<'_> {
    fn started(&self) {}

    fn progress(&self, _progress: f64, _total: Option<f64>, _message: &str) {}

    fn point(&self, record: &Value) {
        (self.0)(json!({ "jsonrpc": "2.0", "method": POINT_METHOD, "params": record }));
    }
}

/// Registers the job's upload, and checks that the worker's model is the server's.
fn prepare(
    runtime: &Runtime,
    arguments: &Value,
    sha256: Option<String>,
    upload: Option<String>,
) -> Result<(), String> {
    if let Some(upload) = upload {
        let wasm = base64::engine::general_purpose::STANDARD
            .decode(upload)
            .map_err(|e| format!("the uploaded model's bytes: {e}"))?;
        runtime.register_upload(&wasm, true)?;
    }
    let target = arguments.pointer("/model/_target_").and_then(Value::as_str);
    if let (Some(target), Some(sha256)) = (target, sha256) {
        let model = runtime.model(target)?;
        if model.sha256 != sha256 {
            return Err(format!(
                "{target}: its component changed on disk since the server loaded it; restart \
                 the server to use the new one"
            ));
        }
    }
    Ok(())
}

/// Asks the kernel to kill this worker when the server that started it dies, so that one
/// stuck in a GPU driver cannot outlive it.
#[allow(unsafe_code)]
fn die_with_the_server() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_PDEATHSIG, sig)` only sets this process's parent-death signal; it
    // reads no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}
