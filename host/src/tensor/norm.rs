//! Normalisation ops of the WIT contract, validated before Burn sees them.

use super::TensorError;
use super::ops::{OpResult, err, float_tensor, reshape_to};
use super::{Tensor, guarded, with_rank};
use burn::tensor::kind::BridgeTensor;
use burn::tensor::{Tensor as BurnTensor, module};

/// Checks that each given tensor of `named` is an f32 `[d]`, one value per feature of an input
/// of `shape`.
fn per_feature(
    op: &'static str,
    shape: &[usize],
    d: usize,
    named: &[(&str, Option<&Tensor>)],
) -> Result<(), TensorError> {
    for (what, t) in named {
        if let Some(t) = t {
            t.require_float(op)?;
            if t.shape() != [d] {
                return Err(err(
                    op,
                    format!(
                        "the {what} must be [{d}] for {shape:?}, got {:?}",
                        t.shape()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks a normalisation's `eps`: finite and > 0.
fn positive_eps(op: &'static str, eps: f32) -> Result<(), TensorError> {
    if eps.is_finite() && eps > 0.0 {
        Ok(())
    } else {
        Err(err(
            op,
            format!("eps must be a finite number > 0, got {eps}"),
        ))
    }
}

/// Layer normalisation over the last dim `d`, as PyTorch's `F.layer_norm(x, [d], weight,
/// bias, eps)`: `(x - mean) / sqrt(var + eps) * weight + bias`, the (biased) variance and the
/// mean taken over the last dim; `weight` and `bias` are `[d]` (absent: 1 and 0).
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> OpResult {
    const OP: &str = "layer-norm";
    x.require_float(OP)?;
    let shape = x.shape();
    let Some(&d) = shape.last() else {
        return Err(err(OP, "needs a tensor of rank 1 or more"));
    };
    per_feature(OP, &shape, d, &[("weight", weight), ("bias", bias)])?;
    positive_eps(OP, eps)?;
    with_rank!(OP, x.rank(), D => guarded(OP, || {
        let input = float_tensor::<D>(x);
        let gamma = weight
            .map(float_tensor::<1>)
            .unwrap_or_else(|| BurnTensor::<1>::ones([d], &input.device()));
        module::layer_norm(input, gamma, bias.map(float_tensor::<1>), f64::from(eps))
            .into_bridge()
    })?)
    .map(Tensor::from_bridge)
}

/// A batch-norm layer's running statistics, each `[c]`.
#[derive(Clone, Copy, Debug)]
pub struct RunningStats<'a> {
    /// The running mean.
    pub mean: &'a Tensor,
    /// The running (unbiased) variance.
    pub var: &'a Tensor,
}

/// What [`batch_norm`] returns.
#[derive(Debug)]
pub struct BatchNorm {
    /// The normalised tensor, of the input's shape.
    pub output: Tensor,
    /// In training, the updated running mean and variance (cut from the autodiff graph).
    pub running: Option<(Tensor, Tensor)>,
}

/// Batch normalisation over dim 1 of `[n, c, ...]`, as PyTorch's `F.batch_norm`. In
/// `training`, the input is normalised with its own per-channel mean and biased variance, and
/// the running statistics become `(1 - momentum) * running + momentum * batch` (the batch
/// variance unbiased); otherwise it is normalised with the running statistics. `weight` and
/// `bias` are `[c]` (absent: 1 and 0).
pub fn batch_norm(
    x: &Tensor,
    running: RunningStats<'_>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    momentum: f32,
    eps: f32,
    training: bool,
) -> Result<BatchNorm, TensorError> {
    const OP: &str = "batch-norm";
    x.require_float(OP)?;
    let shape = x.shape();
    let [n, c, per_channel] = channels(OP, &shape)?;
    let named = [
        ("running mean", Some(running.mean)),
        ("running variance", Some(running.var)),
        ("weight", weight),
        ("bias", bias),
    ];
    per_feature(OP, &shape, c, &named)?;
    if !(0.0..=1.0).contains(&momentum) {
        return Err(err(
            OP,
            format!("momentum must be in [0, 1], got {momentum}"),
        ));
    }
    positive_eps(OP, eps)?;
    let count = n.saturating_mul(per_channel);
    if training && count < 2 {
        return Err(err(
            OP,
            format!(
                "training needs more than one value per channel, got an input of shape {shape:?}"
            ),
        ));
    }
    let x3 = reshape_to(OP, x, &[n, c, per_channel])?;
    let (output, running) = guarded(OP, || {
        let input = float_tensor::<3>(&x3);
        let column = |t: BurnTensor<1>| t.reshape([1, c, 1]);
        let (mean, var, updated) = if training {
            let (mean, var, updated) = batch_statistics(&input, running, momentum, [c, count]);
            (mean, var, Some(updated))
        } else {
            let mean = column(float_tensor::<1>(running.mean));
            (mean, column(float_tensor::<1>(running.var)), None)
        };
        let mut y = (input - mean) / var.add_scalar(eps).sqrt();
        if let Some(w) = weight {
            y = y * column(float_tensor::<1>(w));
        }
        if let Some(b) = bias {
            y = y + column(float_tensor::<1>(b));
        }
        (y.into_bridge(), updated)
    })?;
    Ok(BatchNorm {
        output: reshape_to(OP, &Tensor::from_bridge(output), &shape)?,
        running: running.map(|(m, v)| (Tensor::from_bridge(m), Tensor::from_bridge(v))),
    })
}

/// `[n, c, values per channel]` of a batch-norm input `[n, c, ...]`.
fn channels(op: &'static str, shape: &[usize]) -> Result<[usize; 3], TensorError> {
    match shape {
        [n, c, rest @ ..] => Ok([*n, *c, rest.iter().product()]),
        _ => Err(err(
            op,
            format!("needs an input [n, c, ...] of rank 2 or more, got {shape:?}"),
        )),
    }
}

/// The per-channel mean and biased variance of `input` `[n, c, k]` (each `[1, c, 1]`), and
/// the running statistics moved `momentum` towards them (the batch variance unbiased over
/// the `count` values of a channel), cut from the autodiff graph.
fn batch_statistics(
    input: &BurnTensor<3>,
    running: RunningStats<'_>,
    momentum: f32,
    [channels, count]: [usize; 2],
) -> (BurnTensor<3>, BurnTensor<3>, (BridgeTensor, BridgeTensor)) {
    let mean = input.clone().mean_dim(2).mean_dim(0);
    let var = (input.clone() - mean.clone())
        .powi_scalar(2)
        .mean_dim(2)
        .mean_dim(0);
    let unbiased = count as f32 / (count - 1) as f32;
    let blend = |old: &Tensor, batch: BurnTensor<3>, scale: f32| {
        let old = float_tensor::<1>(old).detach();
        let batch = batch
            .detach()
            .reshape([channels])
            .mul_scalar(scale * momentum);
        old.mul_scalar(1.0 - momentum)
            .add(batch)
            .set_require_grad(false)
            .into_bridge()
    };
    let updated = (
        blend(running.mean, mean.clone(), 1.0),
        blend(running.var, var.clone(), unbiased),
    );
    (mean, var, updated)
}
