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
    /// The SHA-256 of the server's component of the call's model: the worker runs that one or
    /// none (a file in the models directory may have changed since the server loaded it).
    sha256: Option<String>,
    /// An uploaded model's component (base64), registered before the call runs.
    upload: Option<String>,
}

/// One line a worker writes.
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
    let model = arguments
        .pointer("/model/_target_")
        .and_then(Value::as_str)
        .and_then(|target| runtime.model(target).ok());
    let job = Job {
        config: runtime.worker_config(),
        tool: tool.to_string(),
        adapter: adapter.clone(),
        sha256: model.as_ref().map(|m| m.sha256.clone()),
        upload: model
            .and_then(|m| m.upload.clone())
            .map(|wasm| base64::engine::general_purpose::STANDARD.encode(wasm)),
        arguments,
    };
    let mut line = serde_json::to_vec(&job).map_err(|e| format!("the GPU worker's job: {e}"))?;
    line.push(b'\n');
    let mut command = Command::new(exe);
    command.arg(WORKER_FLAG);
    if let Some(filter) = runtime.log_filter() {
        command.arg("--log").arg(filter);
    }
    let mut child = command
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
    // Until it starts the call, the worker's time is its start-up (loading the models); then
    // the run's.
    let mut clock = Instant::now();
    let mut told_to_stop: Option<(Instant, &str)> = None;
    loop {
        match received.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(line)) => match serde_json::from_str::<Message>(&line) {
                Ok(Message::Started) => clock = Instant::now(),
                Ok(Message::Notification(n)) => ctx.forward(&n),
                Ok(Message::Result(wire)) => return Ok(Some(from_wire(wire))),
                Err(e) => tracing::warn!("the GPU worker wrote an unreadable line: {e}"),
            },
            Ok(Err(e)) => return Err(format!("reading its answer: {e}")),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if told_to_stop.is_none() {
            // The worker keeps its own (the request's) deadline; this one only catches a
            // worker that does not.
            let why = if ctx.is_cancelled() {
                Some("cancelled")
            } else if clock.elapsed() > budget + KILL_GRACE {
                Some("past the run's time budget")
            } else {
                None
            };
            if let Some(why) = why {
                let _ = stdin.write_all(b"cancel\n").and_then(|()| stdin.flush());
                told_to_stop = Some((Instant::now(), why));
            }
        }
        if let Some((since, why)) = told_to_stop.filter(|(since, _)| since.elapsed() > KILL_GRACE) {
            let _ = child.kill();
            return Err(format!(
                "it did not stop within {} s of being {why} ({:.0} s ago) and was killed",
                KILL_GRACE.as_secs(),
                since.elapsed().as_secs_f64()
            ));
        }
    }
}

/// The error of a worker that ended without answering: a crash names its signal.
fn ended_without_result(tool: &str, on: &str, status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(signal) => format!(
            "{tool}: the GPU worker running it on {on} crashed (signal {signal}{}): the GPU \
             driver failed. The server is unaffected; accelerator \"cpu\" runs without the \
             driver",
            signal_name(signal)
        ),
        None => format!(
            "{tool}: the GPU worker running it on {on} ended ({status}) without a result; the \
             server's log (stderr) has its own"
        ),
    }
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
    die_with_the_server();
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
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let job = read
        .map_err(anyhow::Error::from)
        .and_then(|_| Ok(serde_json::from_str::<Job>(&line)?));
    let job = match job {
        Ok(job) => job,
        Err(e) => {
            // E.g. a server and a worker of different versions (the binary was replaced).
            let message = format!("the GPU worker could not read its job: {e}");
            send(&Message::Result(to_wire(&CallToolResult::error(
                message.clone(),
            ))));
            anyhow::bail!(message);
        }
    };
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
    let notify = |notification: Value| send(&Message::Notification(notification));
    // Everything goes to the server, whose own context filters it for the client.
    let ctx = CallContext::new(cancel, Some(json!(0)), Some(LogLevel::Debug), &notify);
    let runtime = Runtime::new(RuntimeConfig::from(job.config));
    let result = match prepare(&runtime, &job.arguments, job.sha256, job.upload) {
        Ok(()) => {
            send(&Message::Started);
            Tools::new(runtime).run_placed(
                &job.tool,
                &job.arguments,
                &Placement::Gpu(job.adapter),
                &ctx,
            )
        }
        Err(message) => CallToolResult::error(message),
    };
    send(&Message::Result(to_wire(&result)));
    Ok(())
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
