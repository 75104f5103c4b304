//! What one sandboxed model instance holds on the host: its tensor handles, parameters, run
//! mode and logged metrics ([`HostState`]), and the WIT imports on top of it, one concern a
//! module: the accounting of handles and memory, the tensor ops, the parameter store and the
//! logged metrics.

mod accounting;
mod logging;
mod names;
mod ops;
mod params;

pub use ops::OpError;

use super::clocks::{ClockView, VirtualClock};
use super::limits::{GuestLimiter, Limits};
use super::wasi::{GuestLine, GuestLines, OutputTail, sandboxed_wasi};
use crate::tensor::{self, Device, Rng, Tensor, TensorError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What a guest's tensor handle points at.
#[derive(Debug)]
pub enum GuestTensor {
    /// A tensor the handle owns (boxed: a tensor of the wgpu build is 640 bytes).
    Value(Box<Tensor>),
    /// Parameter `index` of the model; it outlives the handle.
    Param(usize),
}

/// Which hook the host is running, which decides what the guest may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `init`: parameters may be declared.
    Init,
    /// A training step: parameters are tracked for autodiff, dropout is active.
    Train,
    /// Any other hook: no gradient tracking, dropout is the identity.
    Eval,
}

/// A parameter or buffer the guest declared.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// Its unique, dot-separated name.
    pub name: String,
    /// Its current value: a trainable autodiff leaf, or an untracked tensor for a buffer.
    pub value: Tensor,
    /// False for a buffer: saved in checkpoints, never given to the optimizer.
    pub trainable: bool,
}

impl Parameter {
    /// `value` as this parameter's new value: a trainable leaf unless it is a buffer.
    pub fn prepare(&self, value: Tensor) -> Result<Tensor, TensorError> {
        leaf(value, self.trainable)
    }
}

/// `value` as a trainable autodiff leaf, or cut from any graph for a buffer.
fn leaf(value: Tensor, trainable: bool) -> Result<Tensor, TensorError> {
    if trainable {
        tensor::trainable(value)
    } else {
        Ok(tensor::detach(&value))
    }
}

/// The store data of one model instance.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    limiter: GuestLimiter,
    limits: Limits,
    device: Device,
    mode: Mode,
    rng: Rng,
    params: Vec<Parameter>,
    logged: Vec<(String, f32)>,
    metric_names: BTreeSet<String>,
    /// Why a value the guest logged with `log` (which cannot return an error) was refused;
    /// the call that logged it fails with this.
    log_error: Option<String>,
    live_bytes: usize,
    live_handles: usize,
    graph_bytes: usize,
    step_graph: Vec<Tensor>,
    ops_since_sweep: u32,
    stderr_tail: OutputTail,
    guest_lines: GuestLines,
    /// The instance's virtual time.
    clock: VirtualClock,
}

/// How many model stores exist: each holds its instance's tensors, parameters and guest
/// memory, all freed when it is dropped.
static LIVE_STORES: AtomicUsize = AtomicUsize::new(0);

/// The number of model instances alive in the process (for `inspect environment`, and to
/// check that a cancelled or failed run released its memory).
pub fn live_instances() -> usize {
    LIVE_STORES.load(Ordering::Relaxed)
}

impl Drop for HostState {
    fn drop(&mut self) {
        LIVE_STORES.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HostState {
    /// Fresh state: no handles, no parameters, `Init` mode.
    pub fn new(device: Device, limits: Limits, seed: u64) -> Self {
        LIVE_STORES.fetch_add(1, Ordering::Relaxed);
        let stderr_tail = OutputTail::default();
        let guest_lines = GuestLines::default();
        let wasi = sandboxed_wasi(stderr_tail.clone(), guest_lines.clone(), seed);
        Self {
            table: ResourceTable::new(),
            wasi,
            limiter: GuestLimiter::new(&limits),
            limits,
            device,
            mode: Mode::Init,
            rng: Rng::seeded(seed),
            params: Vec::new(),
            logged: Vec::new(),
            metric_names: BTreeSet::new(),
            log_error: None,
            live_bytes: 0,
            live_handles: 0,
            graph_bytes: 0,
            step_graph: Vec::new(),
            ops_since_sweep: 0,
            stderr_tail,
            guest_lines,
            clock: VirtualClock::default(),
        }
    }

    /// The virtual clock, for the clock interfaces.
    pub fn clocks(&mut self) -> ClockView<'_> {
        ClockView {
            clock: &mut self.clock,
            table: &mut self.table,
        }
    }

    /// The device this instance's tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The limits of this run.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The wasmtime resource limiter for this store.
    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// Sets the hook being run.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The declared parameters, in declaration order.
    pub fn parameters(&self) -> &[Parameter] {
        &self.params
    }

    /// Takes the parameters out, so that an update can own their values.
    pub fn take_parameters(&mut self) -> Vec<Parameter> {
        std::mem::take(&mut self.params)
    }

    /// Puts (updated) parameters back.
    pub fn restore_parameters(&mut self, params: Vec<Parameter>) {
        self.params = params;
    }

    /// Takes the metrics logged since the last call.
    pub fn take_logged(&mut self) -> Vec<(String, f32)> {
        std::mem::take(&mut self.logged)
    }

    /// Takes why a value logged during the last call was refused, if one was.
    pub fn take_log_error(&mut self) -> Option<String> {
        self.log_error.take()
    }

    /// The lines the guest printed since the last call.
    pub fn take_guest_output(&mut self) -> Vec<GuestLine> {
        self.guest_lines
            .lock()
            .map(|mut lines| std::mem::take(&mut *lines))
            .unwrap_or_default()
    }

    /// The last lines the guest wrote to stderr (its panic message, typically).
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
