//! Normalisation ops of the WIT contract, validated before Burn sees them.

use super::ops::{OpResult, err, float_tensor};
use super::{Tensor, guarded, with_rank};
use burn::tensor::{Tensor as BurnTensor, module};

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
    for (what, t) in [("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            t.require_float(OP)?;
            if t.shape() != [d] {
                return Err(err(
                    OP,
                    format!(
                        "the {what} must be [{d}] for {shape:?}, got {:?}",
                        t.shape()
                    ),
                ));
            }
        }
    }
    if !(eps.is_finite() && eps > 0.0) {
        return Err(err(
            OP,
            format!("eps must be a finite number > 0, got {eps}"),
        ));
    }
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
