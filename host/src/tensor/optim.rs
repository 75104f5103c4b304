//! Optimizers: Burn's optimizers stepping one host-owned parameter at a time (through
//! `DynOptimizer`) — Adam and AdamW on the CPU in one fused pass instead ([`fused_adam`]) —
//! and their state as named tensors and scalars for checkpoints. The learning rate they step
//! with is [`super::schedule`]'s.

use super::fused_adam::{self, AdamStep, Decay, Moments};
use super::schedule::SchedulerConfig;
use super::{
    DType, Device, NamedValues, Tensor, TensorError, from_f32, guarded, into_f32, is_cpu,
    trainable, with_rank,
};
use burn::optim::{
    AdamConfig, AdamWConfig, DynOptimizer, DynState, SgdConfig, StateSink, StateSource,
    decay::WeightDecayConfig, join_path, momentum::MomentumConfig,
};
use burn::tensor::{Tensor as BurnTensor, TensorData};
use burn_pack::Scalar;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An optimizer as a model asks for it (PyTorch's names and defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0 disables momentum).
        momentum: f32,
        /// Momentum dampening.
        dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW`.
    AdamW {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

impl OptimizerConfig {
    /// The optimizer's name as PyTorch spells its class (`SGD`, `Adam`, `AdamW`).
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "SGD",
            Self::Adam { .. } => "Adam",
            Self::AdamW { .. } => "AdamW",
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } | Self::AdamW { lr, .. } => *lr,
        }
    }

    /// Checks the numbers a (possibly hostile) model gave: finite, in range.
    pub fn validate(&self) -> Result<(), String> {
        let in_unit = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("optimizer {name} must be in [0, 1), got {v}"))
            }
        };
        let non_negative = |name: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("optimizer {name} must be finite and >= 0, got {v}"))
            }
        };
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("optimizer lr must be finite and > 0, got {lr}"));
        }
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => {
                in_unit("momentum", momentum)?;
                in_unit("dampening", dampening)?;
                if nesterov && (momentum == 0.0 || dampening != 0.0) {
                    return Err(format!(
                        "optimizer nesterov needs momentum > 0 and dampening 0 (as in PyTorch), \
                         got momentum {momentum} and dampening {dampening}"
                    ));
                }
                non_negative("weight_decay", weight_decay)
            }
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            }
            | Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => {
                in_unit("beta1", beta1)?;
                in_unit("beta2", beta2)?;
                non_negative("eps", eps)?;
                non_negative("weight_decay", weight_decay)
            }
        }
    }

    /// Adam's or AdamW's step at learning rate `lr`, for the fused CPU path; `None` for SGD.
    fn fused(&self, lr: f64) -> Option<AdamStep> {
        let (beta1, beta2, eps, decay) = match *self {
            Self::Sgd { .. } => return None,
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => (beta1, beta2, eps, Decay::L2(weight_decay)),
            Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => (beta1, beta2, eps, Decay::Decoupled(weight_decay)),
        };
        Some(AdamStep {
            lr: lr as f32,
            beta1,
            beta2,
            eps,
            decay,
        })
    }

    fn build(&self) -> Arc<dyn DynOptimizer> {
        match *self {
            Self::Sgd {
                momentum,
                dampening,
                weight_decay,
                nesterov,
                ..
            } => Arc::new(
                SgdConfig::new()
                    .with_momentum((momentum > 0.0).then(|| {
                        MomentumConfig::new()
                            .with_momentum(f64::from(momentum))
                            .with_dampening(f64::from(dampening))
                            .with_nesterov(nesterov)
                    }))
                    .with_weight_decay(
                        (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay)),
                    )
                    .build(),
            ),
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => Arc::new(
                AdamConfig::new()
                    .with_beta_1(beta1)
                    .with_beta_2(beta2)
                    .with_epsilon(eps)
                    .with_weight_decay(
                        (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay)),
                    )
                    .build(),
            ),
            Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
                ..
            } => Arc::new(
                AdamWConfig::new()
                    .with_beta_1(beta1)
                    .with_beta_2(beta2)
                    .with_epsilon(eps)
                    .with_weight_decay(weight_decay)
                    .build(),
            ),
        }
    }
}

/// A Burn optimizer with one state slot per parameter.
pub struct Optimizer {
    optimizer: Arc<dyn DynOptimizer>,
    config: OptimizerConfig,
    lr: f64,
    states: Vec<Option<ParamState>>,
}

/// One parameter's optimizer state, after its first step.
#[derive(Clone)]
enum ParamState {
    /// Burn's optimizer's.
    Burn(DynState),
    /// The fused Adam's, for a parameter of this shape.
    Fused(Vec<usize>, Moments),
}

/// Where Burn's Adam keeps a parameter's moments: `{parameter}.momentum.{leaf}`.
fn moments_prefix(parameter: &str) -> String {
    join_path(parameter, "momentum")
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer").field("lr", &self.lr).finish()
    }
}

impl Optimizer {
    /// An optimizer for `num_params` parameters.
    pub fn new(config: &OptimizerConfig, num_params: usize) -> Self {
        Self {
            optimizer: config.build(),
            config: config.clone(),
            lr: f64::from(config.lr()),
            states: vec![None; num_params],
        }
    }

    /// What the model asked for.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The learning rate of the next steps.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the next steps (a scheduler's).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The state of every parameter that has one (after its first step): tensors and scalars
    /// named `{parameter}.{leaf}` after `names`, the parameters' names in order.
    pub fn export_state(&self, names: &[&str]) -> Result<OptimizerState, TensorError> {
        const OP: &str = "optimizer-state";
        let mut exported = OptimizerState::default();
        for (name, state) in names.iter().zip(&self.states) {
            match state {
                Some(ParamState::Burn(state)) => {
                    let mut sink = StateSink::default();
                    guarded(OP, || self.optimizer.state_flatten(name, state, &mut sink))?;
                    for (name, data) in sink.tensors {
                        let shape = data.shape().to_vec();
                        let values = state_values(&name, data)?;
                        exported.tensors.push(NamedValues {
                            name,
                            shape,
                            values,
                        });
                    }
                    exported.scalars.extend(
                        sink.scalars
                            .into_iter()
                            .map(|(name, value)| (name, StateScalar::from(value))),
                    );
                }
                Some(ParamState::Fused(shape, moments)) => {
                    let prefix = moments_prefix(name);
                    for (leaf, values) in [
                        ("moment_1", &moments.moment_1),
                        ("moment_2", &moments.moment_2),
                    ] {
                        exported.tensors.push(NamedValues {
                            name: join_path(&prefix, leaf),
                            shape: shape.clone(),
                            values: values.clone(),
                        });
                    }
                    exported
                        .scalars
                        .insert(join_path(&prefix, "time"), StateScalar::UInt(moments.time));
                }
                None => {}
            }
        }
        Ok(exported)
    }

    /// Takes back the state [`export_state`](Self::export_state) gave, for parameters named
    /// `names` of shapes `shapes` on `device`. A parameter without state in `saved` starts
    /// fresh; a tensor of `saved` that belongs to no parameter, or is not of its parameter's
    /// shape (the state of SGD, Adam and AdamW is elementwise), is an error.
    pub fn import_state(
        &mut self,
        names: &[&str],
        shapes: &[Vec<usize>],
        saved: OptimizerState,
        device: &Device,
    ) -> Result<(), TensorError> {
        const OP: &str = "optimizer-state";
        let scalars = saved
            .scalars
            .into_iter()
            .map(|(name, value)| (name, value.into()))
            .collect();
        let mut source = StateSource::new(scalars);
        let mut problems: Vec<String> = Vec::new();
        for t in saved.tensors {
            // The longest parameter name the tensor's name extends (names may contain dots).
            let owner = names
                .iter()
                .zip(shapes)
                .filter(|(n, _)| {
                    t.name
                        .strip_prefix(**n)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .max_by_key(|(n, _)| n.len());
            match owner {
                None => problems.push(format!("{} belongs to no parameter", t.name)),
                Some((_, shape)) if *shape != t.shape => problems.push(format!(
                    "{} is {:?}, its parameter {shape:?}",
                    t.name, t.shape
                )),
                Some(_) if t.values.len() != t.shape.iter().product::<usize>() => {
                    problems.push(format!(
                        "{} has {} values for shape {:?}",
                        t.name,
                        t.values.len(),
                        t.shape
                    ))
                }
                Some(_) => source.insert_tensor(t.name, TensorData::new(t.values, t.shape)),
            }
        }
        if !problems.is_empty() {
            return Err(TensorError::new(OP, problems.join("; ")));
        }
        let fused = is_cpu(device) && self.config.fused(self.lr).is_some();
        let inner = device.clone().inner();
        for ((name, shape), slot) in names.iter().zip(shapes).zip(self.states.iter_mut()) {
            *slot = if fused {
                saved_moments(&mut source, name, shape)?
                    .map(|moments| ParamState::Fused(shape.clone(), moments))
            } else {
                guarded(OP, || {
                    self.optimizer
                        .state_unflatten(shape.len(), name, &mut source, &inner)
                })?
                .map(ParamState::Burn)
            };
        }
        Ok(())
    }

    /// One step of parameter `index`; returns the updated (trainable) parameter. The parameter
    /// is taken by value so that, when nothing else holds it, Burn updates it in place.
    pub fn step(
        &mut self,
        index: usize,
        param: Tensor,
        grad: Tensor,
    ) -> Result<Tensor, TensorError> {
        const OP: &str = "optimizer-step";
        if param.dtype() != DType::F32 || param.shape() != grad.shape() {
            return Err(TensorError::new(
                OP,
                format!(
                    "gradient {:?} does not match parameter {:?}",
                    grad.shape(),
                    param.shape()
                ),
            ));
        }
        let slot = self
            .states
            .get_mut(index)
            .ok_or_else(|| TensorError::new(OP, format!("no parameter {index}")))?;
        let rank = param.rank();
        let inner = with_rank!(OP, rank, D => BurnTensor::<D>::from_bridge(param.bridge).inner().into_bridge())?;
        let inner = Tensor::from_bridge(inner);
        let device = inner.device()?;
        if let Some(config) = self.config.fused(self.lr).filter(|_| is_cpu(&device)) {
            return trainable(fused_step(&config, slot, &device, inner, grad)?);
        }
        let state = match slot.take() {
            Some(ParamState::Burn(state)) => Some(state),
            Some(ParamState::Fused(..)) | None => None,
        };
        let (updated, state) = guarded(OP, || {
            self.optimizer
                .step_dyn(rank, self.lr, inner.bridge, grad.bridge, state)
        })?;
        *slot = state.map(ParamState::Burn);
        trainable(Tensor::from_bridge(updated))
    }
}

/// One fused Adam or AdamW step of `param` (on the CPU `device`, without autodiff), its state
/// in `slot`; the updated parameter. Both tensors are consumed, so that their values are taken
/// out of buffers nothing else holds rather than copied.
fn fused_step(
    config: &AdamStep,
    slot: &mut Option<ParamState>,
    device: &Device,
    param: Tensor,
    grad: Tensor,
) -> Result<Tensor, TensorError> {
    let shape = param.shape();
    let mut values = into_f32(param)?;
    let grad = into_f32(grad)?;
    let mut moments = match slot.take() {
        Some(ParamState::Fused(_, moments)) if moments.moment_1.len() == values.len() => moments,
        _ => Moments::new(values.len()),
    };
    fused_adam::step(config, &mut values, &grad, &mut moments);
    let updated = from_f32(device, values, &shape);
    *slot = Some(ParamState::Fused(shape, moments));
    updated
}

/// The values of optimizer-state tensor `name`, as f32.
fn state_values(name: &str, data: TensorData) -> Result<Vec<f32>, TensorError> {
    data.try_into_vec_as::<f32>()
        .map_err(|e| TensorError::new("optimizer-state", format!("{name}: {e:?}")))
}

/// A parameter's saved Adam moments, `None` when it has none; an error when only part of
/// them was saved.
fn saved_moments(
    source: &mut StateSource,
    name: &str,
    shape: &[usize],
) -> Result<Option<Moments>, TensorError> {
    const OP: &str = "optimizer-state";
    let prefix = moments_prefix(name);
    let mut take = |leaf: &str| {
        source
            .take_tensor(&prefix, leaf)
            .map(|data| state_values(&join_path(&prefix, leaf), data))
            .transpose()
    };
    let (moment_1, moment_2) = (take("moment_1")?, take("moment_2")?);
    let time = source.take_scalar(&prefix, "time").map(StateScalar::from);
    let len: usize = shape.iter().product();
    match (moment_1, moment_2, time) {
        (None, None, None) => Ok(None),
        (Some(moment_1), Some(moment_2), Some(StateScalar::UInt(time)))
            if moment_1.len() == len && moment_2.len() == len =>
        {
            Ok(Some(Moments {
                time,
                moment_1,
                moment_2,
            }))
        }
        _ => Err(TensorError::new(
            OP,
            format!(
                "{prefix}: Adam's state needs moment_1 and moment_2 of {len} values and a step \
                 count (time)"
            ),
        )),
    }
}

/// What a model's `configure-optimizers` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimization {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Its learning-rate scheduler, if any.
    pub scheduler: Option<SchedulerConfig>,
}

/// An optimizer's state outside Burn: tensors and scalars named `{parameter}.{leaf}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// The tensor leaves (moments, momentum buffers).
    pub tensors: Vec<NamedValues>,
    /// The scalar leaves (step counters).
    pub scalars: BTreeMap<String, StateScalar>,
}

/// One scalar of an optimizer's state, as JSON holds it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateScalar {
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// A number.
    Float(f64),
}

impl From<Scalar> for StateScalar {
    fn from(value: Scalar) -> Self {
        match value {
            Scalar::Bool(b) => Self::Bool(b),
            Scalar::UInt(u) => Self::UInt(u),
            Scalar::Int(i) => u64::try_from(i).map_or(Self::Int(i), Self::UInt),
            Scalar::Float(f) => Self::Float(f),
        }
    }
}

impl From<StateScalar> for Scalar {
    fn from(value: StateScalar) -> Self {
        match value {
            StateScalar::Bool(b) => Self::Bool(b),
            StateScalar::UInt(u) => Self::UInt(u),
            StateScalar::Int(i) => Self::Int(i),
            StateScalar::Float(f) => Self::Float(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu_device, from_f32, to_f32};

    fn adam() -> OptimizerConfig {
        OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    fn tensor(values: &[f32]) -> Tensor {
        let t = from_f32(&cpu_device(), values.to_vec(), &[values.len()]);
        t.and_then(trainable).expect("a trainable tensor")
    }

    /// Two Adam steps on one parameter, the second from `optimizer`'s state as it stands.
    fn step(optimizer: &mut Optimizer, param: Tensor) -> Tensor {
        let grad = from_f32(&cpu_device(), vec![0.5, -1.0], &[2]).expect("a gradient tensor");
        optimizer.step(0, param, grad).expect("an optimizer step")
    }

    #[test]
    fn optimizer_state_survives_export_and_import() {
        let mut original = Optimizer::new(&adam(), 1);
        let param = step(&mut original, tensor(&[1.0, 2.0]));
        let state = original
            .export_state(&["w"])
            .expect("the optimizer state is exported");
        let names: Vec<&str> = state.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["w.momentum.moment_1", "w.momentum.moment_2"]);
        assert_eq!(
            state.scalars.get("w.momentum.time"),
            Some(&StateScalar::UInt(1))
        );
        let values = to_f32(&param).unwrap_or_default();
        let mut restored = Optimizer::new(&adam(), 1);
        restored
            .import_state(&["w"], &[vec![2]], state.clone(), &cpu_device())
            .expect("the optimizer state is imported");
        let continued = step(&mut original, param);
        let resumed = step(&mut restored, tensor(&values));
        let read = |t: &Tensor| to_f32(t).expect("f32 values");
        assert_eq!(read(&continued), read(&resumed));
        // A fresh optimizer takes a different second step: the state mattered.
        let fresh = step(&mut Optimizer::new(&adam(), 1), tensor(&values));
        assert_ne!(read(&continued), read(&fresh));

        let refused = |names: &[&str], shapes: &[Vec<usize>]| {
            Optimizer::new(&adam(), 1)
                .import_state(names, shapes, state.clone(), &cpu_device())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            refused(&["w"], &[vec![3]]).contains("w.momentum.moment_1 is [2], its parameter [3]"),
            "{}",
            refused(&["w"], &[vec![3]])
        );
        assert!(
            refused(&["v"], &[vec![2]]).contains("w.momentum.moment_1 belongs to no parameter")
        );
        let mut short = state.clone();
        if let Some(t) = short.tensors.first_mut() {
            t.values.pop();
        }
        let message = Optimizer::new(&adam(), 1)
            .import_state(&["w"], &[vec![2]], short, &cpu_device())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("has 1 values for shape [2]"), "{message}");
    }
}
