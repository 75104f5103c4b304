//! What every call on a model shares, and above all the four run tools (train, validate,
//! test, predict): the request's common part, the inputs settled before the model runs, the
//! model built in a run slot with its checkpoint loaded, and the model part of a result.
//!
//! Every failure after the model is resolved is said once, with its target in front
//! ([`of_model`]); the steps below it say only what went wrong.

use super::accelerator::Placement;
use super::args::{DataArgs, LimitsArg, ModelSpec, TrainerArgs, TrainerOptions};
use super::checkpoint::{self, Restored};
use super::{data, sizes};
use crate::cancel::CancelToken;
use crate::protocol::CallContext;
use crate::runtime::{RunSlot, Runtime};
use crate::sandbox::{
    Limits, MAX_DEFAULT_HYPERPARAMETERS, ModelInstance, RegisteredModel, SandboxError, Split,
};
use crate::tensor::Device;
use crate::trainer::TrainError;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Resolves model `target` and runs `call` on it; every error `call` returns is said after
/// the model's target: `{target}: {error}`.
pub(super) fn of_model<T>(
    runtime: &Runtime,
    target: &str,
    call: impl FnOnce(Arc<RegisteredModel>) -> Result<T, String>,
) -> Result<T, String> {
    let model = runtime.model(target)?;
    let target = model.description.target.clone();
    call(model).map_err(|e| format!("{target}: {e}"))
}

/// The part of a run tool's checked request that every run tool has.
#[derive(Debug)]
pub(super) struct RunRequest {
    /// The model to build.
    pub model: ModelSpec,
    /// The trainer options, resolved.
    pub options: TrainerOptions,
    /// The run's limits: the request's, within the server's.
    pub limits: Limits,
    /// The call's data, when it gives any.
    pub data: Option<DataArgs>,
    /// The checkpoint to start from.
    pub ckpt_path: Option<String>,
    /// Whether the call asked to run in the background.
    pub background: bool,
}

impl RunRequest {
    /// A run of `model` with the `trainer` options and the `limits` asked for (each at most
    /// the server's `within`), on the model's own data, from its initial weights.
    pub fn new(
        model: ModelSpec,
        trainer: Option<TrainerArgs>,
        limits: Option<LimitsArg>,
        within: &Limits,
    ) -> Result<Self, String> {
        Ok(Self {
            options: trainer.unwrap_or_default().resolve()?,
            limits: limits.unwrap_or_default().apply(within, true)?,
            model,
            data: None,
            ckpt_path: None,
            background: false,
        })
    }
}

/// A model run's inputs, settled before its model is built: the registered model, the
/// checkpoint to load (read), the call's data (loaded), the hyperparameters completed from
/// both, and the request's options and limits.
pub(super) struct Settled {
    /// The registered model.
    pub model: Arc<RegisteredModel>,
    /// The checkpoint at `ckpt_path`, read; taken when the model is built.
    pub opened: Option<checkpoint::Opened>,
    /// The call's data.
    pub data: data::CallData,
    /// The spec to build, completed.
    pub fitted: sizes::Fitted,
    /// The trainer options.
    pub options: TrainerOptions,
    /// The run's limits.
    pub limits: Limits,
}

impl Settled {
    /// The model's registered target.
    pub fn target(&self) -> &str {
        &self.model.description.target
    }
}

/// Settles `request` for a run of `model`: loads the call's data (for the loops over
/// `splits`, `whole` as in [`data::CallData::split`]), reads the checkpoint (with its
/// optimizer state when `resuming`) and completes the spec with the hyperparameters it
/// leaves out, the checkpoint's first (when it is of this model), then the sizes the data
/// gives (see [`sizes`]).
pub(super) fn settle(
    runtime: &Runtime,
    model: Arc<RegisteredModel>,
    request: RunRequest,
    resuming: bool,
    (splits, whole): (&[Split], bool),
) -> Result<Settled, String> {
    let RunRequest {
        model: spec,
        options,
        limits,
        data,
        ckpt_path,
        background: _,
    } = request;
    let data = data::CallData::load(runtime, data, options.seed, &limits)?;
    let opened = ckpt_path
        .map(|path| checkpoint::open(runtime, &path, &limits, resuming))
        .transpose()
        .map_err(|e| format!("ckpt_path: {e}"))?;
    let fitted = sizes::fit(
        &spec,
        &model.description.hyperparameters,
        opened.as_ref().and_then(|o| o.hyperparameters_for(&model)),
        data.facts(splits, whole).as_ref(),
    )?;
    Ok(Settled {
        model,
        opened,
        data,
        fitted,
        options,
        limits,
    })
}

/// A settled model built for its run, holding its run slot.
pub(super) struct Built<'r> {
    /// The model, built and its checkpoint loaded.
    pub instance: ModelInstance,
    /// The hyperparameters it resolved.
    pub hyperparameters: Value,
    /// The checkpoint loaded into it.
    pub restored: Option<Restored>,
    /// The run's share of the server, held while the instance lives.
    _slot: RunSlot<'r>,
}

/// Waits for a run slot, then builds `settled`'s model at `placement` and loads its
/// checkpoint.
pub(super) fn build<'r>(
    runtime: &'r Runtime,
    settled: &mut Settled,
    placement: &Placement,
    ctx: &CallContext,
) -> Result<Built<'r>, String> {
    let slot = runtime
        .run_slot(&settled.limits, ctx.cancel_token())
        .map_err(|e| e.to_string())?;
    ctx.started();
    let budget = settled.limits.train_timeout;
    let (mut instance, hyperparameters) = build_model(
        &settled.model,
        &settled.fitted.spec,
        placement.device()?,
        &settled.limits,
        (settled.options.seed, budget),
        ctx.cancel_token(),
    )?;
    let restored = settled
        .opened
        .take()
        .map(|opened| checkpoint::restore(&mut instance, &settled.model, opened))
        .transpose()
        .map_err(|e| format!("ckpt_path: {e}"))?;
    Ok(Built {
        instance,
        hyperparameters,
        restored,
        _slot: slot,
    })
}

/// Waits for a run slot, then builds `model` from `spec` on the CPU with `seed`, in the call
/// budget of `limits`, as the tools that only look at a model do (inspect, checkpoint).
pub(super) fn build_on_cpu<'r>(
    runtime: &'r Runtime,
    model: &RegisteredModel,
    spec: &ModelSpec,
    (limits, seed): (&Limits, u64),
    ctx: &CallContext,
) -> Result<(RunSlot<'r>, ModelInstance, Value), String> {
    let slot = runtime
        .run_slot(limits, ctx.cancel_token())
        .map_err(|e| e.to_string())?;
    let device = crate::tensor::cpu_device();
    let budget = limits.call_timeout;
    let cancel = ctx.cancel_token();
    let (instance, hyperparameters) =
        build_model(model, spec, device, limits, (seed, budget), cancel)?;
    Ok((slot, instance, hyperparameters))
}

/// Instantiates `model` on `device` within `limits` (with its `seed`, in wall-clock
/// `budget`) and builds it from `spec`'s hyperparameters; returns the instance and the
/// resolved hyperparameters. Callers hold a [`Runtime::run_slot`] while the instance lives.
fn build_model(
    model: &RegisteredModel,
    spec: &ModelSpec,
    device: Device,
    limits: &Limits,
    (seed, budget): (u64, Duration),
    cancel: &CancelToken,
) -> Result<(ModelInstance, Value), String> {
    let mut instance = model
        .instantiate(device, limits, seed, budget, cancel.clone())
        .map_err(|e| e.to_string())?;
    let given = spec.hyperparameters_json();
    let resolved = instance
        .init(&given)
        .map_err(|e| format!("invalid model configuration: {e}"))?;
    // The given hyperparameters and the defaults (bounded at registration), no more.
    let most = given.len().saturating_add(MAX_DEFAULT_HYPERPARAMETERS);
    if resolved.len() > most {
        return Err(format!(
            "the model returned {} bytes of hyperparameters, more than the {most} that the \
             request's and its defaults make",
            resolved.len()
        ));
    }
    let hyperparameters = serde_json::from_str(&resolved).map_err(|e| {
        format!(
            "the model returned hyperparameters that are not JSON: {}",
            crate::sandbox::text::shown(&e.to_string())
        )
    })?;
    Ok((instance, hyperparameters))
}

/// The model part of a run's result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunModel {
    /// The model's class name.
    pub class: String,
    /// The registered target.
    pub target: String,
    /// Total parameter elements.
    pub num_parameters: usize,
}

impl RunModel {
    /// `model`, built with `num_parameters` trainable elements.
    pub(super) fn new(model: &RegisteredModel, num_parameters: usize) -> Self {
        Self {
            class: model.description.class_name.clone(),
            target: model.description.target.clone(),
            num_parameters,
        }
    }

    /// `instance`, a build of `model`.
    pub(super) fn of(model: &RegisteredModel, instance: &ModelInstance) -> Self {
        Self::new(model, num_parameters(instance))
    }
}

/// Total element count of the model's trainable parameters (buffers, such as running
/// statistics, are not parameters, as in PyTorch).
pub(super) fn num_parameters(instance: &ModelInstance) -> usize {
    instance
        .parameters()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.value.num_elements())
        .sum()
}

/// The message of a failed loop: `{verb} cancelled` when the call was cancelled (however
/// the cancellation reached the run), else `{verb} failed: {error}`.
pub(super) fn run_failed(verb: &str, error: TrainError) -> String {
    match error {
        TrainError::Cancelled(_) | TrainError::Sandbox(SandboxError::Cancelled(_)) => {
            format!("{verb} cancelled")
        }
        e => format!("{verb} failed: {e}"),
    }
}
