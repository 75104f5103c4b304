//! Gradients of a guest's loss with respect to host-owned parameters, and optimizer steps on
//! them with Burn's optimizers (one parameter at a time, through `DynOptimizer`).

use super::{DType, Tensor, TensorError, guarded, with_rank};
use burn::optim::{
    AdamConfig, AdamWConfig, DynOptimizer, DynState, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};
use burn::tensor::Tensor as BurnTensor;
use std::sync::Arc;

/// Marks a fresh f32 tensor as a trainable leaf of the autodiff graph.
pub fn trainable(t: Tensor) -> Result<Tensor, TensorError> {
    const OP: &str = "parameter";
    t.require_float(OP)?;
    with_rank!(OP, t.rank(), D => guarded(OP, || {
        BurnTensor::<D>::from_bridge(t.bridge).autodiff().require_grad().into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// Whether `t` is part of an autodiff graph (a parameter or a result computed from one).
pub fn is_tracked(t: &Tensor) -> bool {
    t.dtype() == DType::F32
        && with_rank!("is-tracked", t.rank(), D => BurnTensor::<D>::from_bridge(t.bridge.clone()).is_tracked())
            .unwrap_or(false)
}

/// Frees the autodiff graph behind `tensors` when no backward pass will: runs one backward
/// from the sum of them all, which consumes every node they reach, and drops the gradients.
pub fn release_graph(tensors: &[Tensor]) -> Result<(), TensorError> {
    let mut total: Option<Tensor> = None;
    for t in tensors {
        let part = super::sum(t)?;
        total = Some(match total {
            Some(acc) => super::add(&acc, &part)?,
            None => part,
        });
    }
    match total {
        Some(root) if is_tracked(&root) => backward(&root).map(drop),
        _ => Ok(()),
    }
}

/// Frees the autodiff bookkeeping of tensors that no longer exist.
///
/// Burn's autodiff backend records every op in a process-wide graph — untracked ones too — and
/// sweeps the records of dropped tensors only when a backward pass runs. Code that computes
/// without ever running backward (a validation pass, a guest looping over host calls) would
/// grow that graph without bound; this runs a backward pass on a throwaway one-element tensor,
/// whose sweep frees every record no live tensor needs.
pub fn sweep_graph(device: &super::Device) -> Result<(), TensorError> {
    let leaf = trainable(super::from_f32(device, vec![0.0], &[1])?)?;
    backward(&super::sum(&leaf)?).map(drop)
}

/// Gradients of one backward pass.
pub struct Gradients(burn::tensor::Gradients);

impl std::fmt::Debug for Gradients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gradients")
    }
}

/// Runs backward from a one-element f32 loss.
pub fn backward(loss: &Tensor) -> Result<Gradients, TensorError> {
    const OP: &str = "backward";
    loss.require_float(OP)?;
    if loss.num_elements() != 1 {
        return Err(TensorError::new(
            OP,
            format!(
                "the loss must have one element, got shape {:?}",
                loss.shape()
            ),
        ));
    }
    with_rank!(OP, loss.rank(), D => {
        let loss = BurnTensor::<D>::from_bridge(loss.bridge.clone());
        if !loss.is_tracked() {
            return Err(TensorError::new(
                OP,
                "the loss does not depend on any trainable parameter (was it detached?)",
            ));
        }
        guarded(OP, || Gradients(loss.backward()))?
    })
}

/// Takes the gradient of `param` out of `grads`, if the loss depended on it. Taking (not
/// copying) it lets the optimizer update in place.
pub fn take_grad(param: &Tensor, grads: &mut Gradients) -> Result<Option<Tensor>, TensorError> {
    const OP: &str = "grad";
    with_rank!(OP, param.rank(), D => guarded(OP, || {
        BurnTensor::<D>::from_bridge(param.bridge.clone())
            .grad_remove(&mut grads.0)
            .map(|g| Tensor::from_bridge(g.into_bridge()))
    })?)
}

/// An optimizer as a model asks for it (PyTorch's names and defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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
    lr: f64,
    states: Vec<Option<DynState>>,
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
            lr: f64::from(config.lr()),
            states: vec![None; num_params],
        }
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
        let (updated, state) = guarded(OP, || {
            self.optimizer
                .step_dyn(rank, self.lr, inner, grad.bridge, slot.take())
        })?;
        *slot = state;
        trainable(Tensor::from_bridge(updated))
    }
}
