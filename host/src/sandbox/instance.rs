//! One instantiated model: a store with its own limits and deadline, and typed calls into the
//! guest's `lightning-module` exports that turn traps and limit breaches into
//! [`SandboxError`]s.

use super::SandboxError;
use super::bindings::{Model, ModelPre, module};
use super::limits::{LimitExceeded, Limits};
use super::state::{GuestTensor, HostState, Mode, Parameter};
use super::wasi::GuestLine;
use crate::cancel::{CancelToken, Cancelled};
use crate::tensor::{
    self, Device, Interval, Optimization, OptimizerConfig, Schedule, SchedulerConfig, Tensor,
};
use std::time::{Duration, Instant};
use wasmtime::component::Resource;
use wasmtime::{Store, UpdateDeadline};

/// A data split, as the guest's `dataset` hook knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data.
    Validation,
    /// Test data.
    Test,
    /// Inputs to predict.
    Predict,
}

/// Data a model brings itself.
#[derive(Debug)]
pub struct ModelData {
    /// `[samples, ...]`.
    pub inputs: Tensor,
    /// `[samples, ...]`, absent for predict data.
    pub targets: Option<Tensor>,
    /// The batch size of the model's own loader.
    pub batch_size: usize,
}

/// A model component instantiated in its own store.
pub struct ModelInstance {
    store: Store<HostState>,
    model: Model,
    broken: Option<String>,
    /// When the run's wall-clock budget ends, if it can be represented.
    deadline: Option<Instant>,
    /// The budget, for errors.
    budget: Duration,
}

impl std::fmt::Debug for ModelInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelInstance")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl ModelInstance {
    /// Instantiates `pre` in a fresh store whose wall-clock deadline is `budget` from now.
    /// At every engine tick while the guest runs, the store checks the deadline and `cancel`.
    pub(crate) fn new(
        pre: &ModelPre<HostState>,
        device: Device,
        limits: &Limits,
        seed: u64,
        budget: Duration,
        cancel: CancelToken,
    ) -> Result<Self, SandboxError> {
        let mut store = Store::new(pre.engine(), HostState::new(device, limits.clone(), seed));
        store.limiter(|state| state.limiter());
        // A budget too long to represent is no deadline at all.
        let deadline = Instant::now().checked_add(budget);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if cancel.is_cancelled() {
                return Err(Cancelled.into());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(LimitExceeded::Deadline { budget }.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let model = match pre.instantiate(&mut store) {
            Ok(model) => model,
            Err(e) => return Err(classify(&store, &e)),
        };
        Ok(Self {
            store,
            model,
            broken: None,
            deadline,
            budget,
        })
    }

    /// Runs one guest export in `mode`; a trap breaks the instance for good.
    fn call<T>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&module::Guest, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, SandboxError> {
        if let Some(reason) = &self.broken {
            return Err(SandboxError::Trap(format!(
                "the model instance is unusable after an earlier failure: {reason}"
            )));
        }
        self.store.data_mut().set_mode(mode);
        let outcome = f(
            self.model.lightning_model_lightning_module(),
            &mut self.store,
        );
        let returned = outcome.map_err(|e| {
            let error = classify(&self.store, &e);
            self.broken = Some(error.to_string());
            error
        })?;
        // A value `log` refused fails the call that logged it.
        match self.store.data_mut().take_log_error() {
            Some(refused) => Err(SandboxError::Model(refused)),
            None => Ok(returned),
        }
    }

    /// Hands a host tensor to the guest.
    fn give(&mut self, t: Tensor) -> Result<Resource<GuestTensor>, SandboxError> {
        self.store
            .data_mut()
            .give(t)
            .map_err(|e| classify(&self.store, &e))
    }

    /// Takes back a tensor the guest returned.
    fn take(&mut self, handle: Resource<GuestTensor>) -> Result<Tensor, SandboxError> {
        self.store
            .data_mut()
            .take(handle)
            .map_err(|e| classify(&self.store, &e))
    }

    /// The guest's static description.
    pub fn describe(&mut self) -> Result<module::Description, SandboxError> {
        self.call(Mode::Eval, |m, s| m.call_describe(s))
    }

    /// Builds the model from hyperparameters (a JSON object); returns the resolved ones.
    pub fn init(&mut self, hyperparameters: &str) -> Result<String, SandboxError> {
        self.call(Mode::Init, |m, s| m.call_init(s, hyperparameters))?
            .map_err(SandboxError::from_guest)
    }

    /// One training step; returns the loss, still attached to the autodiff graph.
    pub fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<Tensor, SandboxError> {
        let (x, y) = (self.give(inputs)?, self.give(targets)?);
        let loss = self
            .call(Mode::Train, |m, s| {
                m.call_training_step(s, x, y, batch_index)
            })?
            .map_err(SandboxError::from_guest)?;
        self.take(loss)
    }

    /// Errs with the deadline's error unless `needed` fits before the run's deadline: for
    /// host work that no deadline interrupts once started (a backward pass).
    pub fn ensure_time_for(&self, needed: Duration) -> Result<(), SandboxError> {
        match self.deadline {
            Some(deadline) if Instant::now() + needed > deadline => Err(LimitExceeded::Deadline {
                budget: self.budget,
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// Ends a training step. When no backward pass consumed its autodiff graph (the step or
    /// backward failed), drops the graph's tensors and sweeps their records, without the cost
    /// of a backward pass over them, so that a failed step leaves nothing behind.
    pub fn end_step(&mut self, graph_consumed: bool) {
        drop(self.store.data_mut().take_step_graph());
        if !graph_consumed && let Err(e) = tensor::sweep_graph(self.device()) {
            tracing::warn!("releasing the graph of a failed step: {e}");
        }
    }

    /// One validation step (the guest logs its metrics).
    pub fn validation_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<(), SandboxError> {
        let (x, y) = (self.give(inputs)?, self.give(targets)?);
        self.call(Mode::Eval, |m, s| {
            m.call_validation_step(s, x, y, batch_index)
        })?
        .map_err(SandboxError::from_guest)
    }

    /// One test step (the guest logs its metrics).
    pub fn test_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        batch_index: u32,
    ) -> Result<(), SandboxError> {
        let (x, y) = (self.give(inputs)?, self.give(targets)?);
        self.call(Mode::Eval, |m, s| m.call_test_step(s, x, y, batch_index))?
            .map_err(SandboxError::from_guest)
    }

    /// One prediction step; returns the model's output for the batch, which counts against
    /// the run's tensor memory from then on.
    pub fn predict_step(
        &mut self,
        inputs: Tensor,
        batch_index: u32,
    ) -> Result<Tensor, SandboxError> {
        let x = self.give(inputs)?;
        let output = self
            .call(Mode::Eval, |m, s| m.call_predict_step(s, x, batch_index))?
            .map_err(SandboxError::from_guest)?;
        let output = self.take(output)?;
        // The host keeps every batch's output for the reply: it counts until the run ends.
        self.store
            .data_mut()
            .hold(output.size_in_bytes())
            .map_err(|e| classify(&self.store, &e))?;
        Ok(output)
    }

    /// The optimizer and learning-rate scheduler the model asks for, checked for sane numbers.
    pub fn configure_optimizers(&mut self) -> Result<Optimization, SandboxError> {
        let chosen = self.call(Mode::Eval, |m, s| m.call_configure_optimizers(s))?;
        let optimizer = match chosen.optimizer {
            module::Optimizer::Sgd(c) => OptimizerConfig::Sgd {
                lr: c.lr,
                momentum: c.momentum,
                dampening: c.dampening,
                weight_decay: c.weight_decay,
                nesterov: c.nesterov,
            },
            module::Optimizer::Adam(c) => OptimizerConfig::Adam {
                lr: c.lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
            },
            module::Optimizer::Adamw(c) => OptimizerConfig::AdamW {
                lr: c.lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
            },
        };
        optimizer.validate().map_err(SandboxError::Model)?;
        let scheduler = chosen.lr_scheduler.map(|s| SchedulerConfig {
            schedule: match s.schedule {
                module::Schedule::Step(c) => Schedule::Step {
                    step_size: c.step_size,
                    gamma: c.gamma,
                },
                module::Schedule::Cosine(c) => Schedule::Cosine {
                    t_max: c.t_max,
                    eta_min: c.eta_min,
                },
                module::Schedule::Linear(c) => Schedule::Linear {
                    start_factor: c.start_factor,
                    end_factor: c.end_factor,
                    total_iters: c.total_iters,
                },
            },
            interval: match s.interval {
                module::Interval::Epoch => Interval::Epoch,
                module::Interval::Step => Interval::Step,
            },
            warmup_iters: s.warmup_iters,
            warmup_start_factor: s.warmup_start_factor,
        });
        if let Some(scheduler) = &scheduler {
            scheduler.validate().map_err(SandboxError::Model)?;
        }
        Ok(Optimization {
            optimizer,
            scheduler,
        })
    }

    /// The model's own data for `split`, if it brings any.
    pub fn dataset(&mut self, split: Split, seed: u64) -> Result<Option<ModelData>, SandboxError> {
        let wit_split = match split {
            Split::Train => module::Split::Train,
            Split::Validation => module::Split::Validation,
            Split::Test => module::Split::Test,
            Split::Predict => module::Split::Predict,
        };
        let Some(data) = self
            .call(Mode::Eval, |m, s| m.call_dataset(s, wit_split, seed))?
            .map_err(SandboxError::from_guest)?
        else {
            return Ok(None);
        };
        let inputs = self.take(data.inputs)?;
        let targets = data.targets.map(|t| self.take(t)).transpose()?;
        if data.batch_size == 0 {
            return Err(SandboxError::Model(format!(
                "dataset({split:?}): batch size must be at least 1"
            )));
        }
        let batch_size = data.batch_size as usize;
        self.admit_data(&inputs, targets.as_ref(), batch_size)?;
        Ok(Some(ModelData {
            inputs,
            targets,
            batch_size,
        }))
    }

    /// Checks a dataset the run is to use (the model's own, or a request's) against the run's
    /// batch-size and dataset-size limits, and counts its tensors against the run's tensor
    /// memory for the rest of the run.
    pub fn admit_data(
        &mut self,
        inputs: &Tensor,
        targets: Option<&Tensor>,
        batch_size: usize,
    ) -> Result<(), SandboxError> {
        let limits = self.store.data().limits();
        let samples = inputs.shape().first().copied().unwrap_or(0);
        if batch_size > limits.max_batch_size {
            return Err(LimitExceeded::BatchSize {
                size: batch_size,
                limit: limits.max_batch_size,
            }
            .into());
        }
        if samples > limits.max_dataset_samples {
            return Err(LimitExceeded::DatasetSamples {
                samples,
                limit: limits.max_dataset_samples,
            }
            .into());
        }
        let bytes = inputs.size_in_bytes() + targets.map_or(0, Tensor::size_in_bytes);
        self.store
            .data_mut()
            .hold(bytes)
            .map_err(|e| classify(&self.store, &e))
    }

    /// The model's forward pass on `inputs`, without tracking gradients.
    pub fn forward(&mut self, inputs: Tensor) -> Result<Tensor, SandboxError> {
        let x = self.give(inputs)?;
        let output = self
            .call(Mode::Eval, |m, s| m.call_forward(s, x))?
            .map_err(SandboxError::from_guest)?;
        self.take(output)
    }

    /// The declared parameters, in declaration order.
    pub fn parameters(&self) -> &[Parameter] {
        self.store.data().parameters()
    }

    /// The limits of this instance's run.
    pub fn limits(&self) -> &Limits {
        self.store.data().limits()
    }

    /// The device the instance's tensors live on.
    pub fn device(&self) -> &Device {
        self.store.data().device()
    }

    /// Replaces every parameter's value with `update(index, value)`, which owns the value so
    /// that an optimizer can update it in place. If an update fails, that parameter is lost and
    /// the instance refuses further calls.
    pub fn update_parameters<E>(
        &mut self,
        mut update: impl FnMut(usize, Tensor) -> Result<Tensor, E>,
    ) -> Result<(), E> {
        let params = self.store.data_mut().take_parameters();
        let mut updated = Vec::with_capacity(params.len());
        let mut outcome = Ok(());
        for (index, param) in params.into_iter().enumerate() {
            if outcome.is_err() {
                updated.push(param);
                continue;
            }
            let Parameter {
                name,
                value,
                trainable,
            } = param;
            match update(index, value) {
                Ok(value) => updated.push(Parameter {
                    name,
                    value,
                    trainable,
                }),
                Err(e) => {
                    self.broken = Some(format!("updating parameter {name} failed"));
                    outcome = Err(e);
                }
            }
        }
        self.store.data_mut().restore_parameters(updated);
        outcome
    }

    /// The metrics logged since the last call.
    pub fn take_logged(&mut self) -> Vec<(String, f32)> {
        self.store.data_mut().take_logged()
    }

    /// The lines the guest printed since the last call (at most 200 per stream over the
    /// instance's life).
    pub fn take_output(&mut self) -> Vec<GuestLine> {
        self.store.data_mut().take_guest_output()
    }
}

/// Names what went wrong in a failed guest call: a limit, the deadline, a panic or a trap.
fn classify(store: &Store<HostState>, e: &wasmtime::Error) -> SandboxError {
    if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
        return SandboxError::Limit(limit.clone());
    }
    if e.downcast_ref::<Cancelled>().is_some() {
        return SandboxError::Cancelled(Cancelled);
    }
    // wasmtime refuses instances past `ResourceLimiter::instances` with an error of its own.
    if e.root_cause()
        .to_string()
        .contains("instance count too high")
    {
        return SandboxError::Limit(LimitExceeded::Instances {
            limit: store.data().limits().max_instances,
        });
    }
    let tail = store.data().stderr_tail();
    if tail.lines().any(|l| l.contains("panicked")) {
        return SandboxError::Trap(format!(
            "the model panicked: {}",
            super::text::shown(&panic_message(&tail))
        ));
    }
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => {
            "the model overflowed its call stack (too deep recursion)".to_string()
        }
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "the model trapped: it executed `unreachable`".to_string()
        }
        Some(trap) => format!("the model trapped: {trap}"),
        None => format!(
            "the model trapped: {}",
            super::text::shown(&e.root_cause().to_string())
        ),
    };
    if tail.is_empty() {
        SandboxError::Trap(what)
    } else {
        SandboxError::Trap(format!("{what} (stderr: {})", super::text::shown(&tail)))
    }
}

/// The panic line and what follows it, from a Rust guest's stderr.
fn panic_message(tail: &str) -> String {
    let start = tail
        .rfind("panicked")
        .and_then(|i| tail.get(..i))
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |n| n + 1);
    tail.get(start..)
        .unwrap_or(tail)
        .lines()
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join(" ")
}
