//! Gradients of a guest's loss with respect to host-owned parameters.

use super::{DType, Tensor, TensorError, guarded, with_rank};
use burn::tensor::Tensor as BurnTensor;

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
