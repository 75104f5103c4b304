//! The losses a guest computes on the host: cross-entropy and mean squared error; and a
//! classifier's accuracy.

use super::create::*;
use super::ops::{OpResult, err, float_tensor, int_tensor, reshape_to};
use super::{DType, Tensor, TensorError, guarded, with_rank};
use burn::tensor::activation;

/// Fraction of rows of `logits` whose argmax over the last dim equals the i64 `labels`, shape
/// `[1]`: the argmax, comparison and mean in one call, with their numbers.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> OpResult {
    let renamed = |e: TensorError| TensorError {
        op: "accuracy",
        ..e
    };
    let predicted = super::argmax(logits, -1, false).map_err(renamed)?;
    super::mean(&super::equal(&predicted, labels).map_err(renamed)?)
}

/// Mean cross-entropy of logits `[n, classes]` against i64 class indices `[n]`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> OpResult {
    const OP: &str = "cross-entropy";
    logits.require_float(OP)?;
    let (ls, ts) = (logits.shape(), targets.shape());
    let [n, classes] = ls[..] else {
        return Err(err(OP, format!("logits must be [n, classes], got {ls:?}")));
    };
    if targets.dtype() != DType::I64 || ts != [n] {
        let kind = match targets.dtype() {
            DType::I64 => "class indices",
            DType::F32 => "float values",
        };
        return Err(err(
            OP,
            format!(
                "targets must be class indices (whole numbers) of shape [{n}], got {kind} of \
                 shape {ts:?}: a classifier's data needs one whole-number class per sample"
            ),
        ));
    }
    let labels = to_i64(targets)?;
    if let Some((row, bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| !(0..classes as i64).contains(l))
    {
        return Err(err(
            OP,
            format!(
                "target class {bad} (row {row} of the batch) is out of range for the model's \
                 {classes} classes: give the model as many outputs as the data has classes"
            ),
        ));
    }
    let index = reshape_to(OP, targets, &[n, 1])?;
    guarded(OP, || {
        let log_probs = activation::log_softmax(float_tensor::<2>(logits), 1);
        log_probs
            .gather(1, int_tensor::<2>(&index))
            .mean()
            .neg()
            .into_bridge()
    })
    .map(Tensor::from_bridge)
}

/// Mean squared error of two tensors of the same shape; i64 targets (a request's
/// whole-number values) count as their float values.
pub fn mse(prediction: &Tensor, target: &Tensor) -> OpResult {
    const OP: &str = "mse";
    prediction.require_float(OP)?;
    if prediction.shape() != target.shape() {
        return Err(err(
            OP,
            format!(
                "shapes differ: prediction {:?} vs target {:?}",
                prediction.shape(),
                target.shape()
            ),
        ));
    }
    with_rank!(OP, prediction.rank(), D => guarded(OP, || {
        let target = match target.dtype() {
            DType::F32 => float_tensor::<D>(target),
            DType::I64 => int_tensor::<D>(target).float(),
        };
        let diff = float_tensor::<D>(prediction).sub(target);
        diff.clone().mul(diff).mean().into_bridge()
    })?)
    .map(Tensor::from_bridge)
}
