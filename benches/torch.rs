//! PyTorch eager beside our models: `benches/torch_models.py` in a child Python (the one
//! `LIGHTNING_MCP_TORCH_PYTHON` names), stepped in rounds that alternate with ours. The child
//! times its own steps, so a pipe's round trip is never counted against either side, and the
//! two never run at once.

use crate::timing::{self, Summary};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming a Python that has PyTorch.
pub const PYTHON: &str = "LIGHTNING_MCP_TORCH_PYTHON";

/// A running `torch_models.py`.
pub struct Torch {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Torch {
    /// Starts the script with the Python `LIGHTNING_MCP_TORCH_PYTHON` names; `None` when it is
    /// not set.
    pub fn start() -> Option<Self> {
        let python = std::env::var_os(PYTHON)?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch_models.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start benches/torch_models.py");
        let input = child.stdin.take().expect("its stdin");
        let output = BufReader::new(child.stdout.take().expect("its stdout"));
        Some(Self {
            child,
            input,
            output,
        })
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.input, "{line}").expect("write to torch_models.py");
        let mut reply = String::new();
        self.output
            .read_line(&mut reply)
            .expect("read from torch_models.py");
        assert!(
            !reply.is_empty() && !reply.starts_with("error"),
            "torch_models.py answered {reply:?} to {line:?}"
        );
        reply.trim().to_string()
    }

    /// Builds `network` (a name `torch_models.py` knows); returns `PyTorch VERSION, N threads`.
    pub fn load(&mut self, network: &str) -> String {
        let reply = self.ask(&format!("load {network}"));
        let mut words = reply.split(' ').skip(1);
        let (version, threads) = (words.next().unwrap_or("?"), words.next().unwrap_or("?"));
        format!("PyTorch {version} eager, {threads} threads")
    }

    /// Runs `count` steps; their times.
    fn run(&mut self, count: usize) -> Vec<Duration> {
        self.ask(&format!("run {count}"))
            .split(' ')
            .map(|s| Duration::from_secs_f64(s.parse().expect("a step time")))
            .collect()
    }

    /// `ours` and the loaded network's step, `warmup` steps each, then `rounds` alternating
    /// rounds of `per_round` steps each: (ours, PyTorch's).
    pub fn side_by_side(
        &mut self,
        ours: &mut dyn FnMut(),
        (warmup, rounds, per_round): (usize, usize, usize),
    ) -> (Summary, Summary) {
        (0..warmup).for_each(|_| ours());
        self.run(warmup);
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            mine.extend((0..per_round).map(|_| {
                let started = Instant::now();
                ours();
                started.elapsed()
            }));
            theirs.extend(self.run(per_round));
        }
        (timing::summarize(mine), timing::summarize(theirs))
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
