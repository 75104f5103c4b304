//! The server's side of its GPU workers: one per adapter, started on first use, shared by
//! every call placed on that adapter, replaced once it has ended.

use super::{Job, Message, Reply, Request, WORKER_FLAG, from_wire, write_line};
use crate::gpu::Adapter;
use crate::protocol::{CallContext, CallToolResult};
use crate::runtime::Runtime;
use crate::sync::lock;
use base64::Engine as _;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a call may take to stop once cancelled, or past the server's run budget, before
/// it is told to stop or its worker is killed.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// The GPU workers of a server, by adapter index.
#[derive(Debug, Default)]
pub struct Pool {
    workers: Mutex<HashMap<usize, Arc<Worker>>>,
}

impl Pool {
    /// Runs tool call `tool` on `adapter` in its worker, forwarding the call's notifications
    /// to `ctx` and its cancellation to the worker. Holds no run slot itself: the caller does.
    pub(in crate::tools) fn run(
        &self,
        runtime: &Runtime,
        tool: &str,
        arguments: Value,
        adapter: &Adapter,
        ctx: &CallContext,
    ) -> Result<CallToolResult, String> {
        let on = describe(adapter);
        let worker = self
            .worker(runtime, adapter)
            .map_err(|e| format!("{tool}: cannot start the GPU worker for {on}: {e}"))?;
        let target = arguments.pointer("/model/_target_").and_then(Value::as_str);
        let model = target.and_then(|target| runtime.model(target).ok());
        let sha256 = model.as_ref().map(|m| m.sha256.clone());
        // An upload crosses to the worker once; later calls name it by its hash.
        let upload = model
            .and_then(|m| m.upload.clone())
            .filter(|_| !worker.has_upload(target, sha256.as_deref()))
            .map(|wasm| base64::engine::general_purpose::STANDARD.encode(wasm));
        // What the worker will know once it starts the call (it checks the hash first).
        let registers = upload
            .as_ref()
            .and(target.zip(sha256.as_deref()))
            .map(|(target, sha256)| (target.to_string(), sha256.to_string()));
        let job = Job {
            id: worker.next_id.fetch_add(1, Ordering::Relaxed),
            tool: tool.to_string(),
            adapter: adapter.clone(),
            sha256,
            upload,
            arguments,
        };
        worker
            .call(job, registers, runtime.limits().train_timeout, ctx)
            .map_err(|ending| ending.describe(tool, &on))
    }

    /// The live worker of `adapter`, started if it has none.
    fn worker(&self, runtime: &Runtime, adapter: &Adapter) -> Result<Arc<Worker>, String> {
        let mut workers = lock(&self.workers);
        if let Some(worker) = workers.get(&adapter.index)
            && worker.usable()
        {
            return Ok(worker.clone());
        }
        let worker = Worker::start(runtime)?;
        workers.insert(adapter.index, worker.clone());
        Ok(worker)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for worker in lock(&self.workers).values() {
            worker.kill("its server stopped".into());
        }
    }
}

/// Why a worker ended, as its calls learn it.
#[derive(Clone, Debug)]
enum Ending {
    /// Killed by a signal it did not ask for: the driver crashed.
    Crashed(i32),
    /// It exited without answering.
    Exited(ExitStatus),
    /// The server killed it, for this reason.
    Killed(String),
    /// Its pipes broke, or it could not be waited for.
    Lost(String),
}

impl Ending {
    /// The tool error of a call of `tool` that the worker on `on` did not answer.
    fn describe(&self, tool: &str, on: &str) -> String {
        let worker = format!("{tool}: the GPU worker running it on {on}");
        match self {
            Self::Crashed(signal) => format!(
                "{worker} crashed (signal {signal}{}): the GPU driver failed. The server is \
                 unaffected, and the next GPU call starts a new worker; accelerator \"cpu\" runs \
                 without the driver",
                signal_name(*signal)
            ),
            Self::Exited(status) => format!(
                "{worker} ended ({status}) without a result; the server's log (stderr) has its \
                 own"
            ),
            Self::Killed(why) => format!("{worker} was killed: {why}"),
            Self::Lost(why) => format!("{worker} was lost: {why}"),
        }
    }

    fn of(status: std::io::Result<ExitStatus>) -> Self {
        use std::os::unix::process::ExitStatusExt as _;
        match status {
            Ok(status) => status.signal().map_or(Self::Exited(status), Self::Crashed),
            Err(e) => Self::Lost(e.to_string()),
        }
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

/// What a call hears from its worker.
enum Event {
    Message(Message),
    Ended(Ending),
}

/// One worker process and the calls it is serving.
#[derive(Debug)]
struct Worker {
    pid: u32,
    input: Mutex<ChildStdin>,
    /// The calls in flight, by id: where their worker's messages go.
    calls: Mutex<HashMap<u64, Sender<Event>>>,
    next_id: AtomicU64,
    /// Set once, under the `calls` lock, when the worker has ended.
    ending: OnceLock<Ending>,
    /// Why the server killed it, and whether its process has been reaped.
    process: Mutex<Process>,
    /// The uploaded models it has registered: the hash of each target's component.
    uploads: Mutex<HashMap<String, String>>,
}

/// The server's dealings with a worker's process.
#[derive(Debug, Default)]
struct Process {
    /// Why the server killed it, if it did.
    killed: Option<String>,
    /// Whether it has been reaped: from then on its pid may name another process.
    reaped: bool,
}

impl Worker {
    /// Starts a worker with this server's configuration, and the thread that reads it.
    fn start(runtime: &Runtime) -> Result<Arc<Self>, String> {
        let exe = runtime
            .executable()
            .ok_or("this server does not know its executable, which GPU runs need")?;
        let mut command = Command::new(exe);
        command.arg(WORKER_FLAG);
        if let Some(filter) = runtime.log_filter() {
            command.arg("--log").arg(filter);
        }
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_from_a_lasting_thread(command).map_err(|e| e.to_string())?;
        let (Some(mut input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("its pipes were not set up".into());
        };
        let configure = Request::Configure(runtime.worker_config());
        if let Err(e) = write_line(&mut input, &configure) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.to_string());
        }
        let worker = Arc::new(Self {
            pid: child.id(),
            input: Mutex::new(input),
            calls: Mutex::default(),
            next_id: AtomicU64::new(1),
            ending: OnceLock::new(),
            process: Mutex::default(),
            uploads: Mutex::default(),
        });
        let reader = worker.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("gpu-worker-{}", worker.pid))
            .spawn(move || reader.read(child, BufReader::new(output)));
        if let Err(e) = spawned {
            worker.kill("no thread could be started to read it".into());
            return Err(e.to_string());
        }
        tracing::info!(pid = worker.pid, "started a GPU worker");
        Ok(worker)
    }

    /// Routes the worker's replies to their calls until it ends; then tells every call in
    /// flight why.
    fn read(&self, mut child: Child, output: BufReader<std::process::ChildStdout>) {
        for line in output.lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Reply>(&line) {
                Ok(reply) => {
                    if let Some(call) = lock(&self.calls).get(&reply.id) {
                        let _ = call.send(Event::Message(reply.message));
                    }
                }
                Err(e) => tracing::warn!("the GPU worker wrote an unreadable line: {e}"),
            }
        }
        // Exited but not reaped, so that `kill` cannot signal another process under its pid.
        wait_for_exit(self.pid);
        let killed = {
            let mut process = lock(&self.process);
            process.reaped = true;
            process.killed.clone()
        };
        let status = child.wait();
        let ending = match killed {
            Some(why) => Ending::Killed(why),
            None => Ending::of(status),
        };
        tracing::warn!(pid = self.pid, "a GPU worker ended: {ending:?}");
        let mut calls = lock(&self.calls);
        let _ = self.ending.set(ending.clone());
        for (_, call) in calls.drain() {
            let _ = call.send(Event::Ended(ending.clone()));
        }
    }

    /// Sends `job` to the worker and relays what it says about it until it answers; once the
    /// worker starts it, records `registers` (an uploaded target and its hash) as known there.
    fn call(
        &self,
        job: Job,
        mut registers: Option<(String, String)>,
        budget: Duration,
        ctx: &CallContext,
    ) -> Result<CallToolResult, Ending> {
        let id = job.id;
        let events = self.submit(job)?;
        let _forget = Forget { worker: self, id };
        // Until it starts the call, the worker's time is loading the model; then the run's.
        let mut clock = Instant::now();
        let mut told_to_stop: Option<(Instant, &str)> = None;
        loop {
            match events.recv_timeout(Duration::from_millis(20)) {
                Ok(Event::Message(Message::Started)) => {
                    clock = Instant::now();
                    if let Some((target, sha256)) = registers.take() {
                        lock(&self.uploads).insert(target, sha256);
                    }
                }
                Ok(Event::Message(Message::Notification(n))) => ctx.forward(&n),
                Ok(Event::Message(Message::Result(wire))) => return Ok(from_wire(wire)),
                Ok(Event::Ended(ending)) => return Err(ending),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Ending::Lost("its reader stopped".into()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if told_to_stop.is_none() {
                // The worker keeps the call's own deadline; this one only catches a call that
                // does not stop.
                let why = if ctx.is_cancelled() {
                    Some("cancelled")
                } else if clock.elapsed() > budget + KILL_GRACE {
                    Some("past the run's time budget")
                } else {
                    None
                };
                if let Some(why) = why {
                    let _ = write_line(&mut *lock(&self.input), &Request::Cancel(id));
                    told_to_stop = Some((Instant::now(), why));
                }
            }
            if let Some((since, why)) = told_to_stop.filter(|(s, _)| s.elapsed() > KILL_GRACE) {
                let why = format!(
                    "a call did not stop within {} s of being {why} ({:.0} s ago)",
                    KILL_GRACE.as_secs(),
                    since.elapsed().as_secs_f64()
                );
                self.kill(why.clone());
                return Err(Ending::Killed(why));
            }
        }
    }

    /// Whether the worker has registered `target` as the uploaded component with this hash.
    fn has_upload(&self, target: Option<&str>, sha256: Option<&str>) -> bool {
        let uploads = lock(&self.uploads);
        target
            .zip(sha256)
            .is_some_and(|(target, sha256)| uploads.get(target).map(String::as_str) == Some(sha256))
    }

    /// Registers a call and writes its job; its events arrive on the receiver.
    fn submit(&self, job: Job) -> Result<Receiver<Event>, Ending> {
        let (events, receiver) = mpsc::channel();
        {
            let mut calls = lock(&self.calls);
            if let Some(ending) = self.ending.get() {
                return Err(ending.clone());
            }
            calls.insert(job.id, events);
        }
        // A broken pipe shows as the worker's ending, which the reader sends.
        let _ = write_line(&mut *lock(&self.input), &Request::Run(job));
        Ok(receiver)
    }

    /// Kills the worker; its reader then fails the calls in flight, saying `reason`.
    fn kill(&self, reason: String) {
        let mut process = lock(&self.process);
        process.killed.get_or_insert(reason);
        if process.reaped {
            return;
        }
        // SAFETY: `kill(2)` on our own child's pid while it is not reaped: its reader marks it
        // reaped under this lock before reaping it, so the pid still names this worker (or
        // its zombie).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
        }
    }

    /// Whether later calls may use it: neither ended nor being killed.
    fn usable(&self) -> bool {
        self.ending.get().is_none() && lock(&self.process).killed.is_none()
    }
}

/// Removes a call from its worker's table when the call returns.
struct Forget<'a> {
    worker: &'a Worker,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.worker.calls).remove(&self.id);
    }
}

/// Starts `command` from a thread that lives as long as the server. A worker's parent-death
/// signal (which kills it with its server) fires when the *thread* that started it ends, and a
/// call's thread may end long before the worker should.
fn spawn_from_a_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Spawn = (Command, Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Option<Sender<Spawn>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, received) = mpsc::channel::<Spawn>();
        std::thread::Builder::new()
            .name("gpu-worker-spawner".into())
            .spawn(move || {
                for (mut command, reply) in received {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| requests)
    });
    let gone = || std::io::Error::other("the thread that starts GPU workers is gone");
    let (reply, answer) = mpsc::channel();
    spawner
        .as_ref()
        .ok_or_else(gone)?
        .send((command, reply))
        .map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// Waits until child `pid` has exited, without reaping it.
#[allow(unsafe_code)]
fn wait_for_exit(pid: u32) {
    // SAFETY: a zeroed `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `waitid` writes only into `info`, which outlives the call; `WNOWAIT` leaves
        // the child to be reaped by `Child::wait`.
        let waited = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if waited == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}
