//! The guest's WASI: what a guest's standard library (Rust's, or CPython's) needs to link,
//! granting no authority.
//!
//! - `wasi:cli`: environment (empty), arguments (none), exit, stdin (empty), stdout and
//!   stderr (to the server log, never to the protocol's stdout; the last bytes of stderr are
//!   kept to explain a trap — a Rust guest prints its panic message there), terminals (none);
//! - `wasi:io`: error, poll and streams;
//! - `wasi:clocks`: virtual clocks, the same in every run, whose waits are over at once
//!   ([`super::clocks`]): a guest cannot learn the host's time or sleep past its deadline;
//! - `wasi:random`: generators seeded from the run's seed, so a seed fixes every number;
//! - `wasi:filesystem`: no preopened directory, so no path opens;
//! - `wasi:sockets`: every use refused (no TCP, UDP, name lookup or address).
//!
//! A component that imports anything else does not link, with an error naming the import.

use super::clocks::GuestClocks;
use super::state::HostState;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasi_rand::SeedableRng as _;
use wasi_rand::rngs::StdRng;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::io as wasi_io;
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

/// The WASI packages whose interfaces [`add_to_linker`] grants.
pub const GRANTED: [&str; 6] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Adds the granted WASI interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    add_cli_and_io(linker)?;
    add_virtual_clocks(linker)?;
    add_without_authority(linker)
}

/// `wasi:cli` and `wasi:io`.
fn add_cli_and_io(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let l = linker;
    cli::environment::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, <HostState as WasiCliView>::cli)?;
    wasi_io::error::add_to_linker::<_, GuestIo>(l, |s| s.ctx().table)?;
    wasi_io::poll::add_to_linker::<_, GuestIo>(l, |s| s.ctx().table)?;
    wasi_io::streams::add_to_linker::<_, GuestIo>(l, |s| s.ctx().table)?;
    Ok(())
}

/// `wasi:clocks`, virtual ([`super::clocks`]).
fn add_virtual_clocks(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    clocks::monotonic_clock::add_to_linker::<_, GuestClocks>(linker, HostState::clocks)?;
    clocks::wall_clock::add_to_linker::<_, GuestClocks>(linker, HostState::clocks)
}

/// `wasi:random` (seeded by [`sandboxed_wasi`]), `wasi:filesystem` (no preopens) and
/// `wasi:sockets` (every use refused): wasmtime-wasi's implementations, over a context that
/// grants them nothing.
fn add_without_authority(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let l = linker;
    let random = <HostState as WasiRandomView>::random;
    random::random::add_to_linker::<_, WasiRandom>(l, random)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, random)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, random)?;
    let files = <HostState as WasiFilesystemView>::filesystem;
    sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, files)?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, files)?;
    let net = <HostState as WasiSocketsView>::sockets;
    let options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<_, WasiSockets>(l, &options, net)?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, net)?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, net)?;
    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, net)?;
    sync::sockets::tcp::add_to_linker::<_, WasiSockets>(l, net)?;
    sync::sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, net)?;
    sync::sockets::udp::add_to_linker::<_, WasiSockets>(l, net)?;
    Ok(())
}

/// The `wasi:io` host state: the store's resource table.
struct GuestIo;

impl HasData for GuestIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Bytes of guest stderr kept for error messages.
const TAIL_BYTES: usize = 2048;
/// Lines one instance may write to the log; later lines are counted, not logged.
const MAX_LOGGED_LINES: usize = 200;

/// The last bytes a guest wrote to stderr.
pub type OutputTail = Arc<Mutex<String>>;

/// A line a guest printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLine {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, without its newline.
    pub text: String,
}

/// The lines a guest printed and the server logged (at most [`MAX_LOGGED_LINES`] per
/// stream), waiting to be taken by whoever reports them to the client.
pub type GuestLines = Arc<Mutex<Vec<GuestLine>>>;

/// The WASI context of one store: empty environment and stdin, log-bound stdout and stderr
/// whose logged lines also go to `lines`, randomness from `seed`, no preopened directory and
/// no network (wasmtime-wasi's defaults).
pub fn sandboxed_wasi(stderr_tail: OutputTail, lines: GuestLines, seed: u64) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(GuestOutput::new("stdout", None, lines.clone()))
        .stderr(GuestOutput::new("stderr", Some(stderr_tail), lines))
        .secure_random(StdRng::seed_from_u64(seed))
        .insecure_random(StdRng::seed_from_u64(seed.rotate_left(32)))
        .insecure_random_seed(u128::from(seed))
        .build()
}

/// One guest output stream: complete lines go to `tracing` under the `guest` target, and to
/// the instance's [`GuestLines`].
#[derive(Clone)]
struct GuestOutput {
    name: &'static str,
    shared: Arc<Mutex<Lines>>,
    tail: Option<OutputTail>,
    lines: GuestLines,
}

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    logged: usize,
}

impl GuestOutput {
    fn new(name: &'static str, tail: Option<OutputTail>, lines: GuestLines) -> Self {
        Self {
            name,
            shared: Arc::default(),
            tail,
            lines,
        }
    }

    fn accept(&self, bytes: &[u8]) {
        if let Some(tail) = &self.tail
            && let Ok(mut tail) = tail.lock()
        {
            tail.push_str(&String::from_utf8_lossy(bytes));
            if tail.len() > TAIL_BYTES {
                let cut = tail.len() - TAIL_BYTES;
                let cut = (cut..tail.len())
                    .find(|i| tail.is_char_boundary(*i))
                    .unwrap_or(tail.len());
                tail.replace_range(..cut, "");
            }
        }
        let Ok(mut lines) = self.shared.lock() else {
            return;
        };
        lines.partial.extend_from_slice(bytes);
        while let Some(end) = lines.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = lines.partial.drain(..=end).collect();
            lines.logged += 1;
            if lines.logged <= MAX_LOGGED_LINES {
                let text = super::text::shown(String::from_utf8_lossy(&line).trim_end());
                tracing::info!(target: "guest", stream = self.name, "{text}");
                if let Ok(mut pending) = self.lines.lock() {
                    pending.push(GuestLine {
                        stream: self.name,
                        text,
                    });
                }
            } else if lines.logged == MAX_LOGGED_LINES + 1 {
                tracing::warn!(target: "guest", stream = self.name, "further guest output is not logged");
            }
        }
        if lines.partial.len() > TAIL_BYTES {
            lines.partial.clear();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
