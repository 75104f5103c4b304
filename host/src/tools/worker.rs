//! GPU runs in a worker process.
//!
//! A GPU driver runs inside the process that uses it, and drivers crash: lavapipe segfaults
//! compiling cubecl's SPIR-V kernels (`shared/STACK.md`), and a crashed driver takes its
//! process with it. So the server runs every training, validation, test and prediction placed
//! on a GPU in a child — its own binary with [`WORKER_FLAG`] — and a crash there is a tool
//! error naming the signal, while the server, its other calls and its CPU runs go on.
//!
//! The child reads one [`Job`] line on stdin: the server's configuration, the tool call and
//! the adapter. It answers with [`Message`] lines on stdout: the call's notifications as they
//! happen, then its result. A `cancel` line on stdin, or stdin closing (the server went away),
//! cancels the call; the server kills a worker that has not stopped [`KILL_GRACE`] after being
//! told to (which it is when the client cancels, or [`KILL_GRACE`] past the server's run
//! budget). Its logs go to stderr, which it shares with the
//! server.

use super::Tools;
use super::accelerator::Placement;
use crate::cancel::CancelToken;
use crate::gpu::Adapter;
use crate::protocol::{CallContext, CallToolResult, Image, LogLevel};
use crate::runtime::{Runtime, RuntimeConfig, WorkerConfig};
use anyhow::Context as _;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The command-line flag that makes the binary run one [`Job`] from stdin and exit.
pub const WORKER_FLAG: &str = "--gpu-worker";

/// How long a worker may take to stop once cancelled, or past the server's run budget, before
/// it is told to stop or killed.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// What a worker runs.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    config: WorkerConfig,
    tool: String,
    arguments: Value,
    adapter: Adapter,
    /// An uploaded model's component (base64), registered before the call runs.
    upload: Option<String>,
}

/// One line a worker writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
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

/// Runs tool call `tool` on `adapter` in a worker process, forwarding its notifications to
/// `ctx` and its cancellation to the worker. Holds no run slot itself: the caller does.
pub(super) fn run(
    runtime: &Runtime,
    tool: &str,
    arguments: Value,
    adapter: &Adapter,
    ctx: &CallContext,
) -> Result<CallToolResult, String> {
    let exe = runtime
        .executable()
        .ok_or("this server does not know its executable, which GPU runs need")?;
    let upload = arguments
        .pointer("/model/_target_")
        .and_then(Value::as_str)
        .and_then(|target| runtime.model(target).ok())
        .and_then(|model| model.upload.clone())
        .map(|wasm| base64::engine::general_purpose::STANDARD.encode(wasm));
    let job = Job {
        config: runtime.worker_config(),
        tool: tool.to_string(),
        arguments,
        adapter: adapter.clone(),
        upload,
    };
    let mut line = serde_json::to_vec(&job).map_err(|e| format!("the GPU worker's job: {e}"))?;
    line.push(b'\n');
    let mut child = Command::new(exe)
        .arg(WORKER_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the GPU worker: {e}"))?;
    let outcome = supervise(&mut child, &line, runtime.limits().train_timeout, ctx);
    // Whatever happened, the worker is gone before the call returns.
    let _ = child.kill();
    let status = child.wait();
    let on = describe(adapter);
    match (outcome, status) {
        (Ok(Some(result)), _) => Ok(result),
        (Ok(None), Ok(status)) => Err(ended_without_result(tool, &on, status)),
        (Ok(None), Err(e)) => Err(format!("{tool}: the GPU worker on {on} was lost: {e}")),
        (Err(e), _) => Err(format!("{tool}: the GPU worker on {on}: {e}")),
    }
}

/// Feeds `job` to the worker and relays what it says until it ends; `None` when it ended
/// without a result.
fn supervise(
    child: &mut Child,
    job: &[u8],
    budget: Duration,
    ctx: &CallContext,
) -> Result<Option<CallToolResult>, String> {
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // A worker that died before reading its job shows as a closed pipe here and as its exit
    // status after.
    if stdin.write_all(job).and_then(|()| stdin.flush()).is_err() {
        return Ok(None);
    }
    let started = Instant::now();
    let mut told_to_stop: Option<Instant> = None;
    let mut result = None;
    loop {
        match received.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(line)) => match serde_json::from_str::<Message>(&line) {
                Ok(Message::Notification(n)) => ctx.forward(&n),
                Ok(Message::Result(wire)) => result = Some(from_wire(wire)),
                Err(e) => tracing::warn!("the GPU worker wrote an unreadable line: {e}"),
            },
            Ok(Err(e)) => return Err(format!("reading its answer: {e}")),
            Err(RecvTimeoutError::Disconnected) => return Ok(result),
            Err(RecvTimeoutError::Timeout) => {}
        }
        // The worker keeps its own (the request's) deadline; this one only catches a worker
        // that does not.
        let overdue = started.elapsed() > budget + KILL_GRACE;
        if (ctx.is_cancelled() || overdue) && told_to_stop.is_none() {
            let _ = stdin.write_all(b"cancel\n").and_then(|()| stdin.flush());
            told_to_stop = Some(Instant::now());
        }
        if told_to_stop.is_some_and(|t| t.elapsed() > KILL_GRACE) {
            let _ = child.kill();
            return Err(format!(
                "it did not stop within {} s of being {} and was killed",
                KILL_GRACE.as_secs(),
                if overdue {
                    "past the run's time budget"
                } else {
                    "cancelled"
                }
            ));
        }
    }
}

/// The error of a worker that ended without answering: a crash names its signal.
fn ended_without_result(tool: &str, on: &str, status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let how = match status.signal() {
        Some(signal) => format!("crashed (signal {signal}{})", signal_name(signal)),
        None => format!("ended ({status}) without a result"),
    };
    format!(
        "{tool}: the GPU worker running it on {on} {how}: the GPU driver failed. The server is \
         unaffected; accelerator \"cpu\" runs without the driver"
    )
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => ", SIGSEGV",
        libc::SIGABRT => ", SIGABRT",
        libc::SIGBUS => ", SIGBUS",
        libc::SIGILL => ", SIGILL",
        libc::SIGFPE => ", SIGFPE",
        libc::SIGKILL => ", SIGKILL",
        _ => "",
    }
}

/// `adapter 0: llvmpipe (Vulkan)`.
fn describe(adapter: &Adapter) -> String {
    format!(
        "adapter {}: {} ({})",
        adapter.index, adapter.name, adapter.backend
    )
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

/// In the worker process: reads the job from stdin, runs it, writes its notifications and
/// result to stdout.
pub fn serve() -> anyhow::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).context("reading the job")?;
    let job: Job = serde_json::from_str(&line).context("reading the job")?;
    drop(stdin);
    let cancel = CancelToken::new();
    let cancelled = cancel.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "cancel" => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Told to, or the server is gone.
        cancelled.cancel();
    });
    let stdout = Mutex::new(std::io::stdout());
    let send = |message: &Message| {
        let mut out = stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = serde_json::to_writer(&mut *out, message)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            tracing::warn!("the GPU worker cannot write to the server: {e}");
        }
    };
    let notify = |notification: Value| send(&Message::Notification(notification));
    // Everything goes to the server, whose own context filters it for the client.
    let ctx = CallContext::new(cancel, Some(json!(0)), Some(LogLevel::Debug), &notify);
    let runtime = Runtime::new(RuntimeConfig::from(job.config));
    let result = match job
        .upload
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
    {
        Some(Err(e)) => CallToolResult::error(format!("the uploaded model's bytes: {e}")),
        Some(Ok(wasm)) => match runtime.register_upload(&wasm, true) {
            Ok(_) => run_job(runtime, &job.tool, job.arguments, job.adapter, &ctx),
            Err(e) => CallToolResult::error(e),
        },
        None => run_job(runtime, &job.tool, job.arguments, job.adapter, &ctx),
    };
    send(&Message::Result(to_wire(&result)));
    Ok(())
}

fn run_job(
    runtime: std::sync::Arc<Runtime>,
    tool: &str,
    arguments: Value,
    adapter: Adapter,
    ctx: &CallContext,
) -> CallToolResult {
    Tools::new(runtime).run_placed(tool, arguments, &Placement::Gpu(adapter), ctx)
}
