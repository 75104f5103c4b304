//! What one sandboxed model instance holds on the host: its tensor handles, parameters, run
//! mode and logged metrics; and the implementation of the WIT imports on top of it.

use super::bindings::{log, params, tensors};
use super::limits::{GuestLimiter, LimitExceeded, Limits};
use super::wasi::{GuestLine, GuestLines, OutputTail, sandboxed_wasi};
use crate::tensor::{self, DType, Device, Init, Rng, Tensor, TensorError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Most distinct metric names one run may log.
pub const MAX_METRIC_NAMES: usize = 256;

/// Longest parameter, buffer or metric name.
const MAX_NAME: usize = 128;

/// Names that the files a model's parameters land in reserve: safetensors' header key.
const RESERVED_PARAMETER_NAMES: [&str; 1] = ["__metadata__"];

/// Names of the columns the server writes to `metrics.csv` beside the model's metrics (its
/// own `lr-*` cannot be a metric name, which has no `-`).
const RESERVED_METRIC_NAMES: [&str; 2] = ["epoch", "step"];

/// Whether `name` may name a parameter, buffer or metric: 1 to [`MAX_NAME`] characters of
/// `[A-Za-z0-9_.]`, which every file it lands in (safetensors, CSV, a checkpoint's file
/// name) takes as it is.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// The start of a refused name, for an error message.
fn quoted(name: &str) -> String {
    format!(
        "{:?}",
        super::text::shown(&name.chars().take(64).collect::<String>())
    )
}

/// Ops a guest runs between two sweeps of the autodiff graph's records (see
/// [`tensor::sweep_graph`]): bounds what a guest that never trains can make the host keep.
const OPS_PER_GRAPH_SWEEP: u32 = 4096;

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
        let wasi = sandboxed_wasi(stderr_tail.clone(), guest_lines.clone());
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

    /// Hands a host tensor to the guest as an owned handle. In a training step, a result that
    /// is part of the autodiff graph is also remembered: the graph keeps it alive after the
    /// guest drops its handle, until backward (or [`Self::take_step_graph`]) releases it.
    pub fn give(&mut self, t: Tensor) -> wasmtime::Result<Resource<GuestTensor>> {
        self.charge(t.size_in_bytes())?;
        if self.mode == Mode::Train && tensor::is_tracked(&t) {
            self.step_graph.push(t.clone());
        }
        Ok(self.table.push(GuestTensor::Value(Box::new(t)))?)
    }

    /// Keeps counting `bytes` of tensors the host took from the guest and holds for the rest
    /// of the run (its datasets) against the tensor memory limit.
    pub fn hold(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.reserve_bytes(bytes)
    }

    /// Ends a training step: returns the tracked results it produced (for the caller to
    /// release if no backward pass consumed them) and stops counting their memory.
    pub fn take_step_graph(&mut self) -> Vec<Tensor> {
        self.graph_bytes = 0;
        std::mem::take(&mut self.step_graph)
    }

    /// Takes back a handle the guest returned, freeing its table slot.
    pub fn take(&mut self, handle: Resource<GuestTensor>) -> wasmtime::Result<Tensor> {
        let entry = self.table.delete(handle)?;
        self.tensor_of(entry)
    }

    fn tensor_of(&mut self, entry: GuestTensor) -> wasmtime::Result<Tensor> {
        self.live_handles = self.live_handles.saturating_sub(1);
        match entry {
            GuestTensor::Value(t) => {
                let bytes = t.size_in_bytes();
                self.live_bytes = self.live_bytes.saturating_sub(bytes);
                if self.mode == Mode::Train && tensor::is_tracked(&t) {
                    self.graph_bytes = self.graph_bytes.saturating_add(bytes);
                }
                Ok(*t)
            }
            GuestTensor::Param(i) => self.param_value(i),
        }
    }

    fn param_value(&self, index: usize) -> wasmtime::Result<Tensor> {
        let p = self
            .params
            .get(index)
            .ok_or_else(|| wasmtime::Error::msg(format!("unknown parameter {index}")))?;
        Ok(match self.mode {
            Mode::Train => p.value.clone(),
            Mode::Init | Mode::Eval => tensor::detach(&p.value),
        })
    }

    /// The tensor behind a handle the guest lends.
    fn get(&self, handle: &Resource<GuestTensor>) -> wasmtime::Result<Tensor> {
        match self.table.get(handle)? {
            GuestTensor::Value(t) => Ok(Tensor::clone(t)),
            GuestTensor::Param(i) => self.param_value(*i),
        }
    }

    /// Counts `bytes` more of live tensors (and one more handle) against the limits; memory the
    /// current step's autodiff graph holds counts too.
    fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        if self.live_handles >= self.limits.max_handles {
            return Err(wasmtime::Error::new(LimitExceeded::Handles {
                limit: self.limits.max_handles,
            }));
        }
        self.reserve_bytes(bytes)?;
        self.live_handles += 1;
        Ok(())
    }

    /// Counts `bytes` more of live tensor memory, refusing to pass the limit.
    fn reserve_bytes(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.check_room(bytes)?;
        self.live_bytes = self.live_bytes.saturating_add(bytes);
        Ok(())
    }

    /// Turns an op's outcome into what the guest receives: a result above the run's rank or
    /// element limit is refused (and freed) like any invalid op.
    fn reply(
        &mut self,
        outcome: Result<Tensor, TensorError>,
    ) -> wasmtime::Result<Result<Resource<GuestTensor>, tensors::TensorError>> {
        self.count_op();
        let checked = outcome.and_then(|t| {
            self.check_size("result", &t.shape())?;
            Ok(t)
        });
        match checked {
            Ok(t) => Ok(Ok(self.give(t)?)),
            Err(e) => Ok(Err(wit_error(e))),
        }
    }

    /// Counts one op (whatever its outcome: Burn recorded it either way) and sweeps the
    /// autodiff records every [`OPS_PER_GRAPH_SWEEP`] ops.
    fn count_op(&mut self) {
        self.ops_since_sweep += 1;
        if self.ops_since_sweep >= OPS_PER_GRAPH_SWEEP {
            self.ops_since_sweep = 0;
            if let Err(e) = tensor::sweep_graph(&self.device) {
                tracing::warn!("sweeping the autodiff graph: {e}");
            }
        }
    }

    /// Checks a shape against the run's rank and element limits; returns its element count.
    fn check_size(&self, op: &'static str, shape: &[usize]) -> Result<usize, TensorError> {
        let max_rank = self.limits.max_tensor_rank;
        if shape.len() > max_rank {
            return Err(TensorError::new(
                op,
                format!(
                    "shape {shape:?} has rank {}, above the limit of {max_rank} (tensor_rank)",
                    shape.len()
                ),
            ));
        }
        let max = self.limits.max_tensor_elements;
        shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d))
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                TensorError::new(
                    op,
                    format!(
                        "shape {shape:?} is above the limit of {max} elements per tensor \
                         (tensor_elements)"
                    ),
                )
            })
    }

    /// Checks a tensor the guest asks to create, before anything is allocated for it: its
    /// shape against the rank and element limits (an error the guest sees) and its bytes
    /// against the tensor memory left (a limit that ends the run).
    fn check_new_tensor(
        &self,
        op: &'static str,
        shape: &[u32],
        dtype: DType,
    ) -> wasmtime::Result<Result<Vec<usize>, TensorError>> {
        let dims = match dims(op, shape).and_then(|d| self.check_size(op, &d).map(|n| (d, n))) {
            Ok(checked) => checked,
            Err(e) => return Ok(Err(e)),
        };
        let (dims, elements) = dims;
        let width = match dtype {
            DType::F32 => 4,
            DType::I64 => 8,
        };
        self.check_room(elements.saturating_mul(width))?;
        Ok(Ok(dims))
    }

    /// Fails with the tensor memory limit if `bytes` more would not fit.
    fn check_room(&self, bytes: usize) -> wasmtime::Result<()> {
        let total = self
            .live_bytes
            .saturating_add(self.graph_bytes)
            .saturating_add(bytes);
        if total > self.limits.max_tensor_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::TensorMemory {
                limit: self.limits.max_tensor_bytes,
            }));
        }
        Ok(())
    }

    fn unary(
        &mut self,
        handle: Resource<GuestTensor>,
        op: impl FnOnce(&Tensor) -> Result<Tensor, TensorError>,
    ) -> wasmtime::Result<Result<Resource<GuestTensor>, tensors::TensorError>> {
        let t = self.get(&handle)?;
        self.reply(op(&t))
    }

    fn binary(
        &mut self,
        a: Resource<GuestTensor>,
        b: Resource<GuestTensor>,
        op: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor, TensorError>,
    ) -> wasmtime::Result<Result<Resource<GuestTensor>, tensors::TensorError>> {
        let (x, y) = (self.get(&a)?, self.get(&b)?);
        self.reply(op(&x, &y))
    }
}

/// A WIT `(height, width)` as the tensor module takes it.
fn pair((h, w): (u32, u32)) -> tensor::Pair {
    [h as usize, w as usize]
}

fn pool_options(o: tensors::Pool2dOptions) -> tensor::Pool2dOptions {
    tensor::Pool2dOptions {
        kernel: pair(o.kernel),
        stride: pair(o.stride),
        padding: pair(o.padding),
        dilation: pair(o.dilation),
    }
}

fn wit_error(e: TensorError) -> tensors::TensorError {
    tensors::TensorError {
        op: e.op.to_string(),
        message: e.message,
    }
}

/// A guest's shape as host dims; a rank above [`tensor::MAX_RANK`] is refused before anything
/// is allocated for (or formatted from) a list the guest may have made huge.
fn dims(op: &'static str, shape: &[u32]) -> Result<Vec<usize>, TensorError> {
    if shape.len() > tensor::MAX_RANK {
        return Err(TensorError::new(
            op,
            format!(
                "the shape has rank {}, above the limit of {} (tensor_rank)",
                shape.len(),
                tensor::MAX_RANK
            ),
        ));
    }
    Ok(shape.iter().map(|d| *d as usize).collect())
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

type OpReply = wasmtime::Result<Result<Resource<GuestTensor>, tensors::TensorError>>;

impl tensors::Host for HostState {}

impl tensors::HostTensor for HostState {
    fn from_f32(&mut self, data: Vec<f32>, shape: Vec<u32>) -> OpReply {
        let outcome = match self.check_new_tensor("from-f32", &shape, DType::F32)? {
            Ok(shape) => tensor::from_f32(&self.device, data, &shape),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn from_i64(&mut self, data: Vec<i64>, shape: Vec<u32>) -> OpReply {
        let outcome = match self.check_new_tensor("from-i64", &shape, DType::I64)? {
            Ok(shape) => tensor::from_i64(&self.device, data, &shape),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn zeros(&mut self, shape: Vec<u32>) -> OpReply {
        let outcome = match self.check_new_tensor("zeros", &shape, DType::F32)? {
            Ok(shape) => tensor::zeros(&self.device, &shape),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn ones(&mut self, shape: Vec<u32>) -> OpReply {
        let outcome = match self.check_new_tensor("ones", &shape, DType::F32)? {
            Ok(shape) => tensor::ones(&self.device, &shape),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn randn(&mut self, shape: Vec<u32>, seed: u64) -> OpReply {
        let outcome = match self.check_new_tensor("randn", &shape, DType::F32)? {
            Ok(shape) => tensor::randn(&self.device, &shape, seed),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn uniform(&mut self, shape: Vec<u32>, low: f32, high: f32, seed: u64) -> OpReply {
        let outcome = match self.check_new_tensor("uniform", &shape, DType::F32)? {
            Ok(shape) => tensor::uniform(&self.device, &shape, low, high, seed),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn shape(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self
            .get(&t)?
            .shape()
            .into_iter()
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
            .collect())
    }

    fn dtype(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<tensors::Dtype> {
        Ok(match self.get(&t)?.dtype() {
            DType::F32 => tensors::Dtype::F32,
            DType::I64 => tensors::Dtype::I64,
        })
    }

    fn to_f32(
        &mut self,
        t: Resource<GuestTensor>,
    ) -> wasmtime::Result<Result<Vec<f32>, tensors::TensorError>> {
        Ok(tensor::to_f32(&self.get(&t)?).map_err(wit_error))
    }

    fn to_i64(
        &mut self,
        t: Resource<GuestTensor>,
    ) -> wasmtime::Result<Result<Vec<i64>, tensors::TensorError>> {
        Ok(tensor::to_i64(&self.get(&t)?).map_err(wit_error))
    }

    fn add(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::add)
    }

    fn sub(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::sub)
    }

    fn mul(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::mul)
    }

    fn div(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::div)
    }

    fn pow(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::pow)
    }

    fn add_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::add_scalar(x, value))
    }

    fn sub_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::sub_scalar(x, value))
    }

    fn mul_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::mul_scalar(x, value))
    }

    fn div_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::div_scalar(x, value))
    }

    fn pow_scalar(&mut self, t: Resource<GuestTensor>, exponent: f32) -> OpReply {
        self.unary(t, |x| tensor::pow_scalar(x, exponent))
    }

    fn neg(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::neg)
    }

    fn exp(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::exp)
    }

    fn log(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::log)
    }

    fn sqrt(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sqrt)
    }

    fn matmul(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::matmul)
    }

    fn transpose(&mut self, t: Resource<GuestTensor>, dim0: i32, dim1: i32) -> OpReply {
        self.unary(t, |x| tensor::transpose(x, dim0, dim1))
    }

    fn reshape(&mut self, t: Resource<GuestTensor>, shape: Vec<i64>) -> OpReply {
        self.unary(t, |x| tensor::reshape(x, &shape))
    }

    fn flatten(&mut self, t: Resource<GuestTensor>, start: i32, end: i32) -> OpReply {
        self.unary(t, |x| tensor::flatten(x, start, end))
    }

    fn relu(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::relu)
    }

    fn sigmoid(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sigmoid)
    }

    fn tanh(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::tanh)
    }

    fn gelu(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::gelu)
    }

    fn softmax(&mut self, t: Resource<GuestTensor>, dim: i32) -> OpReply {
        self.unary(t, |x| tensor::softmax(x, dim))
    }

    fn log_softmax(&mut self, t: Resource<GuestTensor>, dim: i32) -> OpReply {
        self.unary(t, |x| tensor::log_softmax(x, dim))
    }

    fn sum(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sum)
    }

    fn sum_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::sum_dim(x, dim, keepdim))
    }

    fn mean(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::mean)
    }

    fn mean_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::mean_dim(x, dim, keepdim))
    }

    fn max_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::max_dim(x, dim, keepdim))
    }

    fn argmax(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::argmax(x, dim, keepdim))
    }

    fn equal(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::equal)
    }

    fn cross_entropy(
        &mut self,
        logits: Resource<GuestTensor>,
        targets: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(logits, targets, tensor::cross_entropy)
    }

    fn mse(&mut self, prediction: Resource<GuestTensor>, target: Resource<GuestTensor>) -> OpReply {
        self.binary(prediction, target, tensor::mse)
    }

    fn conv2d(
        &mut self,
        x: Resource<GuestTensor>,
        weight: Resource<GuestTensor>,
        bias: Option<Resource<GuestTensor>>,
        options: tensors::Conv2dOptions,
    ) -> OpReply {
        let (x, weight) = (self.get(&x)?, self.get(&weight)?);
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        let options = tensor::Conv2dOptions {
            stride: pair(options.stride),
            padding: pair(options.padding),
            dilation: pair(options.dilation),
            groups: options.groups as usize,
        };
        self.reply(tensor::conv2d(&x, &weight, bias.as_ref(), &options))
    }

    fn max_pool2d(&mut self, t: Resource<GuestTensor>, options: tensors::Pool2dOptions) -> OpReply {
        self.unary(t, |x| tensor::max_pool2d(x, &pool_options(options)))
    }

    fn avg_pool2d(&mut self, t: Resource<GuestTensor>, options: tensors::Pool2dOptions) -> OpReply {
        self.unary(t, |x| tensor::avg_pool2d(x, &pool_options(options)))
    }

    fn adaptive_avg_pool2d(
        &mut self,
        t: Resource<GuestTensor>,
        height: u32,
        width: u32,
    ) -> OpReply {
        self.unary(t, |x| tensor::adaptive_avg_pool2d(x, pair((height, width))))
    }

    fn slice(&mut self, t: Resource<GuestTensor>, dim: i32, start: i64, end: i64) -> OpReply {
        self.unary(t, |x| tensor::slice(x, dim, start, end))
    }

    fn cat(&mut self, tensors: Vec<Resource<GuestTensor>>, dim: i32) -> OpReply {
        if let Err(e) = tensor::check_cat_count(tensors.len()) {
            return self.reply(Err(e));
        }
        let tensors = tensors
            .iter()
            .map(|t| self.get(t))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        self.reply(tensor::cat(&tensors, dim))
    }

    fn index_select(
        &mut self,
        t: Resource<GuestTensor>,
        dim: i32,
        indices: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(t, indices, |x, i| tensor::index_select(x, dim, i))
    }

    fn gather(
        &mut self,
        t: Resource<GuestTensor>,
        dim: i32,
        indices: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(t, indices, |x, i| tensor::gather(x, dim, i))
    }

    fn masked_fill(
        &mut self,
        t: Resource<GuestTensor>,
        mask: Resource<GuestTensor>,
        value: f32,
    ) -> OpReply {
        self.binary(t, mask, |x, m| tensor::masked_fill(x, m, value))
    }

    fn embedding(
        &mut self,
        indices: Resource<GuestTensor>,
        weight: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(indices, weight, tensor::embedding)
    }

    fn layer_norm(
        &mut self,
        x: Resource<GuestTensor>,
        weight: Option<Resource<GuestTensor>>,
        bias: Option<Resource<GuestTensor>>,
        eps: f32,
    ) -> OpReply {
        let x = self.get(&x)?;
        let weight = weight.map(|w| self.get(&w)).transpose()?;
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        self.reply(tensor::layer_norm(&x, weight.as_ref(), bias.as_ref(), eps))
    }

    fn batch_norm(
        &mut self,
        x: Resource<GuestTensor>,
        running_mean: Resource<GuestTensor>,
        running_var: Resource<GuestTensor>,
        weight: Option<Resource<GuestTensor>>,
        bias: Option<Resource<GuestTensor>>,
        momentum: f32,
        eps: f32,
    ) -> OpReply {
        let mean_index = match self.buffer_index(&running_mean, "running mean")? {
            Ok(index) => index,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        let var_index = match self.buffer_index(&running_var, "running variance")? {
            Ok(index) => index,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        if mean_index == var_index {
            return Ok(Err(wit_error(TensorError::new(
                "batch-norm",
                "the running mean and variance must be two different buffers",
            ))));
        }
        let x = self.get(&x)?;
        let (mean, var) = (self.get(&running_mean)?, self.get(&running_var)?);
        let weight = weight.map(|w| self.get(&w)).transpose()?;
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        let stats = tensor::RunningStats {
            mean: &mean,
            var: &var,
        };
        let training = self.mode == Mode::Train;
        let outcome = tensor::batch_norm(
            &x,
            stats,
            weight.as_ref(),
            bias.as_ref(),
            momentum,
            eps,
            training,
        )
        .map(|tensor::BatchNorm { output, running }| {
            if let Some((mean, var)) = running {
                for (index, value) in [(mean_index, mean), (var_index, var)] {
                    if let Some(buffer) = self.params.get_mut(index) {
                        buffer.value = value;
                    }
                }
            }
            output
        });
        self.reply(outcome)
    }

    fn causal_mask(&mut self, size: u32) -> OpReply {
        let outcome = match self.check_new_tensor("causal-mask", &[size, size], DType::F32)? {
            Ok(_) => tensor::causal_mask(&self.device, size as usize),
            Err(e) => Err(e),
        };
        self.reply(outcome)
    }

    fn dropout(&mut self, t: Resource<GuestTensor>, p: f32) -> OpReply {
        let x = self.get(&t)?;
        let training = (self.mode == Mode::Train).then_some(&mut self.rng);
        let outcome = tensor::dropout(&self.device, &x, p, training);
        self.reply(outcome)
    }

    fn detach(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<Resource<GuestTensor>> {
        let x = self.get(&t)?;
        self.give(tensor::detach(&x))
    }

    fn drop(&mut self, handle: Resource<GuestTensor>) -> wasmtime::Result<()> {
        self.take(handle).map(|_| ())
    }
}

impl params::Host for HostState {
    fn parameter(&mut self, name: String, shape: Vec<u32>, init: params::Init) -> OpReply {
        self.declare("parameter", name, shape, init, true)
    }

    fn buffer(&mut self, name: String, shape: Vec<u32>, init: params::Init) -> OpReply {
        self.declare("buffer", name, shape, init, false)
    }
}

impl HostState {
    /// Declares a parameter (`trainable`) or a buffer.
    fn declare(
        &mut self,
        op: &'static str,
        name: String,
        shape: Vec<u32>,
        init: params::Init,
        trainable: bool,
    ) -> OpReply {
        let shape = match self.check_new_tensor(op, &shape, DType::F32)? {
            Ok(shape) => shape,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        let init = match init {
            params::Init::Zeros => Init::Zeros,
            params::Init::Ones => Init::Ones,
            params::Init::Normal(std) => Init::Normal(std),
            params::Init::Uniform((low, high)) => Init::Uniform(low, high),
            params::Init::KaimingUniform => Init::KaimingUniform,
            params::Init::XavierUniform => Init::XavierUniform,
        };
        let checked = self
            .check_parameter(op, &name, &shape, init)
            .and_then(|()| {
                let values = init.sample(&shape, &mut self.rng);
                tensor::from_f32(&self.device, values, &shape)
            })
            .and_then(|value| leaf(value, trainable))
            .map_err(|e| TensorError::new(op, e.message));
        let value = match checked {
            Ok(v) => v,
            Err(e) => return Ok(Err(wit_error(e))),
        };
        self.charge(value.size_in_bytes())?;
        self.params.push(Parameter {
            name,
            value,
            trainable,
        });
        let index = self.params.len() - 1;
        Ok(Ok(self.table.push(GuestTensor::Param(index))?))
    }

    /// The index of the buffer behind `handle`, for an op that updates it in place.
    fn buffer_index(
        &self,
        handle: &Resource<GuestTensor>,
        what: &str,
    ) -> wasmtime::Result<Result<usize, TensorError>> {
        Ok(match self.table.get(handle)? {
            GuestTensor::Param(i) if self.params.get(*i).is_some_and(|p| !p.trainable) => Ok(*i),
            _ => Err(TensorError::new(
                "batch-norm",
                format!("the {what} must be a buffer declared with params.buffer"),
            )),
        })
    }
}

impl HostState {
    fn check_parameter(
        &self,
        op: &'static str,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<(), TensorError> {
        if self.mode != Mode::Init {
            return Err(TensorError::new(
                op,
                format!("{op}s can only be declared during init"),
            ));
        }
        if !valid_name(name) {
            return Err(TensorError::new(
                op,
                format!(
                    "name {} must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.]",
                    quoted(name)
                ),
            ));
        }
        if RESERVED_PARAMETER_NAMES.contains(&name) {
            return Err(TensorError::new(
                op,
                format!(
                    "name {name} is reserved by the checkpoint format (safetensors): pick another"
                ),
            ));
        }
        if self.params.iter().any(|p| p.name == name) {
            return Err(TensorError::new(op, format!("{name} is declared twice")));
        }
        if self.params.len() >= self.limits.max_parameters {
            return Err(TensorError::new(
                op,
                format!(
                    "a model may declare at most {} parameters and buffers",
                    self.limits.max_parameters
                ),
            ));
        }
        tensor::check_shape(op, shape)?;
        init.validate()
            .map_err(|m| TensorError::new(op, format!("{name}: {m}")))
    }
}

impl log::Host for HostState {
    fn log(&mut self, name: String, value: f32) -> wasmtime::Result<()> {
        if let Err(e) = self.record(name, value)
            && self.log_error.is_none()
        {
            self.log_error = Some(e.message);
        }
        Ok(())
    }

    fn log_tensor(
        &mut self,
        name: String,
        value: Resource<GuestTensor>,
    ) -> wasmtime::Result<Result<(), tensors::TensorError>> {
        let t = self.get(&value)?;
        Ok(tensor::to_scalar("log-tensor", &t)
            .and_then(|v| self.record(name, v))
            .map_err(wit_error))
    }
}

impl HostState {
    /// Records a logged value, or says why it is refused: a name outside the name rule or
    /// one of the columns the server writes, more than [`Limits::max_logged_per_step`] values
    /// in one step, more than [`MAX_METRIC_NAMES`] names in a run.
    fn record(&mut self, name: String, value: f32) -> Result<(), TensorError> {
        const OP: &str = "log";
        if !valid_name(&name) {
            return Err(TensorError::new(
                OP,
                format!(
                    "metric name {} must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.]",
                    quoted(&name)
                ),
            ));
        }
        if RESERVED_METRIC_NAMES.contains(&name.as_str()) {
            return Err(TensorError::new(
                OP,
                format!(
                    "metric name {name} is a column the server writes to metrics.csv (epoch, \
                     step): pick another"
                ),
            ));
        }
        if self.logged.len() >= self.limits.max_logged_per_step {
            return Err(TensorError::new(
                OP,
                format!(
                    "more than {} values logged in one step (the server's limit)",
                    self.limits.max_logged_per_step
                ),
            ));
        }
        if !self.metric_names.contains(&name) {
            if self.metric_names.len() >= MAX_METRIC_NAMES {
                return Err(TensorError::new(
                    OP,
                    format!(
                        "more than {MAX_METRIC_NAMES} metric names in one run: {name} is one too many"
                    ),
                ));
            }
            self.metric_names.insert(name.clone());
        }
        self.logged.push((name, value));
        Ok(())
    }
}
