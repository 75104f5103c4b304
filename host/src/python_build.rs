//! Builds a model written in Python (one module for the Python guest SDK) into a component:
//! componentize-py, in a child process with a time, a memory and an output limit, against the
//! contract and the SDK this server embeds. The model's top-level code runs during the build
//! (componentize-py pre-initialises CPython), but inside componentize-py's own WebAssembly
//! sandbox, which sees only the build's directories.

use crate::cancel::CancelToken;
use crate::sandbox::sha256_hex;
use std::fs;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The componentize-py release the Python SDK is built and tested against.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The largest file a build may write: the component (CPython makes it about 18 MB) or its log.
pub const MAX_BUILD_OUTPUT_BYTES: u64 = 64 << 20;

/// The most of a failed build's log an error quotes, in bytes.
const MAX_QUOTED_LOG: usize = 4 << 10;

/// The most of a failed build's log that is read, from its end: a flood of output (up to
/// [`MAX_BUILD_OUTPUT_BYTES`]) is never held in memory.
const MAX_READ_LOG: u64 = 64 << 10;

/// How often a running build is checked for its deadline and cancellation.
const POLL: Duration = Duration::from_millis(20);

/// The name the model's module is built under (its tracebacks say `/1/model.py`).
const MODULE: &str = "model";

/// The name componentize-py looks for in the module: the class that exports the model.
const EXPORT: &str = "LightningModule";

/// The files a build needs beside the model: the contract, and the SDK's package.
const EMBEDDED: [(&str, &str); 9] = [
    ("wit/model.wit", include_str!("../../wit/model.wit")),
    (
        "sdk/lightning_mcp/__init__.py",
        include_str!("../../guest-sdk-python/lightning_mcp/__init__.py"),
    ),
    (
        "sdk/lightning_mcp/export.py",
        include_str!("../../guest-sdk-python/lightning_mcp/export.py"),
    ),
    (
        "sdk/lightning_mcp/hparams.py",
        include_str!("../../guest-sdk-python/lightning_mcp/hparams.py"),
    ),
    (
        "sdk/lightning_mcp/module.py",
        include_str!("../../guest-sdk-python/lightning_mcp/module.py"),
    ),
    (
        "sdk/lightning_mcp/naming.py",
        include_str!("../../guest-sdk-python/lightning_mcp/naming.py"),
    ),
    (
        "sdk/lightning_mcp/nn.py",
        include_str!("../../guest-sdk-python/lightning_mcp/nn.py"),
    ),
    (
        "sdk/lightning_mcp/optim.py",
        include_str!("../../guest-sdk-python/lightning_mcp/optim.py"),
    ),
    (
        "sdk/lightning_mcp/tensor.py",
        include_str!("../../guest-sdk-python/lightning_mcp/tensor.py"),
    ),
];

/// Where the server finds componentize-py, and the limits of one build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonBuild {
    /// componentize-py's executable; `None`: `componentize-py` on `PATH`.
    pub program: Option<PathBuf>,
    /// Longest a build may run.
    pub timeout: Duration,
    /// Most memory a build may allocate (its data segment, `RLIMIT_DATA`), in bytes.
    pub max_memory_bytes: u64,
}

impl Default for PythonBuild {
    fn default() -> Self {
        Self {
            program: None,
            timeout: Duration::from_secs(120),
            max_memory_bytes: 1 << 30,
        }
    }
}

/// Why a build gave no component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No usable componentize-py.
    #[error(
        "{0}. Building a Python model takes componentize-py {COMPONENTIZE_PY_VERSION}: install \
         it with `pip install componentize-py=={COMPONENTIZE_PY_VERSION}` and start the server \
         with it on PATH or with --componentize-py PATH; or build the component yourself \
         (README, \"Writing a model in Python\") and pass it as `component`"
    )]
    Unavailable(String),
    /// The build ran past its time limit and was killed.
    #[error(
        "the build ran past its {0} s limit (--max-build-seconds) and was stopped; a model's \
         top-level code runs during the build: keep it to imports and definitions"
    )]
    TimedOut(u64),
    /// The build ran out of memory.
    #[error(
        "the build ran out of its {0} MiB of memory (--max-build-memory-mib); a model's \
         top-level code runs during the build: keep it to imports and definitions"
    )]
    OutOfMemory(u64),
    /// The build wrote more than [`MAX_BUILD_OUTPUT_BYTES`] to a file or its log.
    #[error(
        "the build wrote more than {} MiB (its log or the component) and was stopped",
        MAX_BUILD_OUTPUT_BYTES >> 20
    )]
    TooMuchOutput,
    /// The caller cancelled the build.
    #[error("the build was cancelled")]
    Cancelled,
    /// componentize-py failed: what it said, from the model's traceback on.
    #[error("componentize-py could not build the model:\n{0}")]
    Failed(String),
    /// The build's directory or process could not be set up.
    #[error("cannot run the build: {0}")]
    Io(#[from] std::io::Error),
}

impl PythonBuild {
    /// Builds `source`, the text of a module that exports a model with the Python SDK
    /// (`LightningModule = L.export(Net)`), into a component.
    pub fn build(&self, source: &str, cancel: &CancelToken) -> Result<Vec<u8>, BuildError> {
        let program = self.program(cancel)?;
        let dir = tempfile::Builder::new()
            .prefix("lightning-mcp-build-")
            .tempdir()?;
        for (path, text) in EMBEDDED {
            write(&dir.path().join(path), text)?;
        }
        write(&dir.path().join(format!("app/{MODULE}.py")), source)?;
        let log = fs::File::create(dir.path().join("build.log"))?;
        let child = self
            .command(&program, dir.path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let status = self.wait(child, cancel)?;
        let out = dir.path().join("model.wasm");
        if status.success() {
            return Ok(fs::read(out)?);
        }
        Err(self.failure(status, &tail(&dir.path().join("build.log"))?))
    }

    /// What a build of `source` is made from, as a hex SHA-256: the source, the SDK and
    /// contract this server embeds, and the componentize-py release. A build is not
    /// reproducible byte for byte (CPython's start is snapshotted), but two builds of one key
    /// are the same model.
    pub fn key(source: &str) -> String {
        let embedded = EMBEDDED.iter().flat_map(|(path, text)| [*path, *text]);
        let parts = std::iter::once(COMPONENTIZE_PY_VERSION)
            .chain(embedded)
            .chain(std::iter::once(source));
        let mut bytes = Vec::new();
        for part in parts {
            bytes.extend_from_slice(&part.len().to_le_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        sha256_hex(&bytes)
    }

    /// componentize-py's path, checked to be the release the SDK is built against.
    fn program(&self, cancel: &CancelToken) -> Result<PathBuf, BuildError> {
        let program = match &self.program {
            Some(program) => program.clone(),
            None => on_path("componentize-py")
                .ok_or_else(|| BuildError::Unavailable("no componentize-py on PATH".into()))?,
        };
        let cannot_run = |e: std::io::Error| {
            BuildError::Unavailable(format!("cannot run {}: {e}", program.display()))
        };
        let mut child = Command::new(&program)
            .arg("--version")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(cannot_run)?;
        let stdout = child.stdout.take();
        let status = self.wait(child, cancel)?;
        let mut said = String::new();
        if let Some(mut stdout) = stdout {
            // A version line; whatever else it printed is not read.
            let _ = stdout.by_ref().take(256).read_to_string(&mut said);
        }
        let version = said.trim().trim_start_matches("componentize-py ");
        if !status.success() || version != COMPONENTIZE_PY_VERSION {
            return Err(BuildError::Unavailable(format!(
                "{} is componentize-py {:.40}, not {COMPONENTIZE_PY_VERSION}",
                program.display(),
                if version.is_empty() {
                    "of no version"
                } else {
                    version
                }
            )));
        }
        Ok(program)
    }

    /// The build's command: in `dir`, with no environment, under this build's limits.
    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .args(["-d", "wit", "-w", "model", "componentize"])
            .args(["-p", "sdk", "-p", "app", MODULE, "-o", "model.wasm"])
            .current_dir(dir)
            .env_clear()
            .stdin(Stdio::null());
        limit_child(&mut command, self.max_memory_bytes, MAX_BUILD_OUTPUT_BYTES);
        command
    }

    /// Waits for the build, killing it past its deadline or once cancelled.
    fn wait(&self, mut child: Child, cancel: &CancelToken) -> Result<ExitStatus, BuildError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            let stop = if cancel.is_cancelled() {
                Some(BuildError::Cancelled)
            } else if Instant::now() >= deadline {
                Some(BuildError::TimedOut(self.timeout.as_secs()))
            } else {
                None
            };
            if let Some(stop) = stop {
                // It may have ended since try_wait; either way it is reaped.
                let _ = child.kill();
                child.wait()?;
                return Err(stop);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Why a build that exited with `status` failed, from its `log`.
    fn failure(&self, status: ExitStatus, log: &[u8]) -> BuildError {
        let log = String::from_utf8_lossy(log);
        if wrote_too_much(status) {
            BuildError::TooMuchOutput
        } else if log.contains("MemoryError") || log.contains("memory allocation of") {
            BuildError::OutOfMemory(self.max_memory_bytes >> 20)
        } else if log.contains(&format!("has no attribute '{EXPORT}'")) {
            BuildError::Failed(format!(
                "{}\nend the module with `{EXPORT} = L.export(YourModel)`",
                quoted_log(&log)
            ))
        } else {
            BuildError::Failed(quoted_log(&log))
        }
    }
}

/// Writes `text` to `path`, making its directory.
fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)
}

/// The last [`MAX_READ_LOG`] bytes of the file at `path`.
fn tail(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let skip = file.metadata()?.len().saturating_sub(MAX_READ_LOG);
    file.seek(std::io::SeekFrom::Start(skip))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ_LOG).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The first executable file `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// What a failed build said, for an error: from the model's traceback (componentize-py wraps
/// it in its own) to before its stack backtrace, at most [`MAX_QUOTED_LOG`] bytes from its end.
fn quoted_log(log: &str) -> String {
    let from = log
        .find("AssertionError: ")
        .map_or(log, |at| &log[at + "AssertionError: ".len()..]);
    let end = ["\nCaused by:", "\nStack backtrace:"]
        .iter()
        .filter_map(|marker| from.find(marker))
        .min()
        .unwrap_or(from.len());
    let text = from[..end].trim();
    let mut start = text.len().saturating_sub(MAX_QUOTED_LOG);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let quoted = &text[start..];
    if start > 0 {
        format!("…{quoted}")
    } else {
        quoted.to_string()
    }
}

/// Whether the build was killed for writing past its file size limit (`SIGXFSZ`).
fn wrote_too_much(status: ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        status.signal() == Some(libc::SIGXFSZ)
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// Limits the child `command` starts to `memory` bytes of data and files of `file` bytes.
#[allow(unsafe_code)]
fn limit_child(command: &mut Command, memory: u64, file: u64) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        let limit = |bytes: u64| libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: bytes as libc::rlim_t,
        };
        let (memory, file) = (limit(memory), limit(file));
        // SAFETY: the closure runs in the child between fork and exec, and only calls
        // setrlimit, which is async-signal-safe, on values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                for (resource, value) in [(libc::RLIMIT_DATA, &memory), (libc::RLIMIT_FSIZE, &file)]
                {
                    if libc::setrlimit(resource, value) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_sdk_is_embedded() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk-python/lightning_mcp");
        let mut on_disk: Vec<String> = fs::read_dir(sdk)
            .expect("the SDK's directory")
            .map(|entry| {
                entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".py"))
            .map(|name| format!("sdk/lightning_mcp/{name}"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = EMBEDDED
            .iter()
            .map(|(path, _)| *path)
            .filter(|path| path.starts_with("sdk/"))
            .collect();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn a_failed_build_is_quoted_from_the_models_traceback_and_bounded() {
        let log = "Traceback (most recent call last):\n  File \"/venv/bin/componentize-py\"\n\
                   AssertionError:   File \"/1/model.py\", line 2\nSyntaxError: invalid syntax\n\
                   \n\nCaused by:\n    SyntaxError: invalid syntax\n\nStack backtrace:\n  0: anyhow";
        assert_eq!(
            quoted_log(log),
            "File \"/1/model.py\", line 2\nSyntaxError: invalid syntax"
        );
        let long = format!("AssertionError: {}end", "é".repeat(10_000));
        let quoted = quoted_log(&long);
        assert!(quoted.starts_with('…') && quoted.ends_with("end"));
        assert!(quoted.len() <= MAX_QUOTED_LOG + '…'.len_utf8());
    }
}
