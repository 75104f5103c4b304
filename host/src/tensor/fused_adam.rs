//! Adam and AdamW in one pass over each parameter, for parameters on the CPU.
//!
//! Burn's optimizers update a parameter with a dozen tensor ops (scale, square, add, divide,
//! square root, ...), each a pass over memory and a new buffer, and on a transposed gradient
//! each a slow strided walk: about a third of an MLP's training step on the CPU. Here the
//! moments live as plain arrays beside the parameter and one loop updates all three. The math
//! is Burn's, operation for operation (so PyTorch's), and the state is saved and restored
//! under Burn's names (`{parameter}.momentum.moment_1`, `.moment_2`, `.time`), so checkpoints
//! do not depend on which path trained them.

/// The hyperparameters of one Adam or AdamW step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Numerical-stability term.
    pub eps: f32,
    /// The weight decay, and whether it is decoupled (AdamW) or an L2 penalty (Adam).
    pub decay: Decay,
}

/// How weight decay enters the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Decay {
    /// Adam's: `weight_decay * parameter` added to the gradient (0: none).
    L2(f32),
    /// AdamW's: the parameter scaled by `1 - lr * weight_decay` before the update.
    Decoupled(f32),
}

/// One parameter's Adam state: its step count and moments, each of the parameter's length.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Moments {
    /// Steps taken.
    pub time: u64,
    /// Running mean of the gradient.
    pub moment_1: Vec<f32>,
    /// Running mean of the squared gradient.
    pub moment_2: Vec<f32>,
}

impl Moments {
    /// The state before the first step of a parameter of `len` elements.
    pub fn new(len: usize) -> Self {
        Self {
            time: 0,
            moment_1: vec![0.0; len],
            moment_2: vec![0.0; len],
        }
    }
}

/// Updates `param` in place with its gradient `grad`, advancing `state`. The three have the
/// same length (checked by the caller).
pub(super) fn step(config: &AdamStep, param: &mut [f32], grad: &[f32], state: &mut Moments) {
    state.time = state.time.saturating_add(1);
    let time = i32::try_from(state.time).unwrap_or(i32::MAX);
    let bias_correction2_sqrt = (1.0 - config.beta2.powi(time)).sqrt();
    let combined = bias_correction2_sqrt / (1.0 - config.beta1.powi(time));
    let eps = config.eps * bias_correction2_sqrt;
    let (b1, b2) = (config.beta1, config.beta2);
    let (l2, keep) = match config.decay {
        Decay::L2(weight_decay) => (weight_decay, 1.0),
        Decay::Decoupled(weight_decay) => (0.0, 1.0 - config.lr * weight_decay),
    };
    let lr = config.lr;
    let moments = state.moment_1.iter_mut().zip(state.moment_2.iter_mut());
    for ((p, g), (m, v)) in param.iter_mut().zip(grad).zip(moments) {
        let g = if l2 == 0.0 { *g } else { *p * l2 + *g };
        *m = *m * b1 + g * (1.0 - b1);
        *v = *v * b2 + g * g * (1.0 - b2);
        let update = *m * combined / (v.sqrt() + eps);
        *p = *p * keep - update * lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's `torch.optim.Adam` / `AdamW` on `p = [1, -2, 0.5]` with the gradients
    /// `[0.3, -0.1, 0.02]` then `[-0.2, 0.4, 0.1]`, lr 0.1, in float64: the parameters after
    /// each step.
    const TORCH_ADAM: [[f64; 3]; 2] = [
        [0.9000000033333332, -1.900000009999999, 0.400000049999975],
        [0.8855479509285968, -1.9559503574851285, 0.3138954357310052],
    ];
    const TORCH_ADAMW: [[f64; 3]; 2] = [
        [0.8990000033333332, -1.898000009999999, 0.399500049999975],
        [0.8836489509252635, -1.9520523574751285, 0.31299593568100526],
    ];

    fn two_steps(decay: Decay) -> Vec<Vec<f32>> {
        let config = AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay,
        };
        let mut param = vec![1.0, -2.0, 0.5];
        let mut state = Moments::new(3);
        [[0.3, -0.1, 0.02], [-0.2, 0.4, 0.1]]
            .iter()
            .map(|grad| {
                step(&config, &mut param, grad, &mut state);
                param.clone()
            })
            .collect()
    }

    fn assert_matches(ours: &[Vec<f32>], torch: &[[f64; 3]; 2]) {
        for (step, (ours, torch)) in ours.iter().zip(torch).enumerate() {
            for (a, e) in ours.iter().zip(torch) {
                assert!(
                    (f64::from(*a) - e).abs() < 1e-6,
                    "step {}: {ours:?} vs PyTorch {torch:?}",
                    step + 1
                );
            }
        }
    }

    #[test]
    fn adam_and_adamw_take_pytorchs_steps() {
        assert_matches(&two_steps(Decay::L2(0.0)), &TORCH_ADAM);
        assert_matches(&two_steps(Decay::Decoupled(0.01)), &TORCH_ADAMW);
    }

    #[test]
    fn adam_l2_decay_adds_to_the_gradient() {
        let config = AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay: Decay::L2(0.5),
        };
        // The first step moves every element by lr (times its sign), whatever the gradient's
        // size: a decayed gradient of the opposite sign reverses the step.
        let mut param = vec![1.0_f32];
        let mut state = Moments::new(1);
        step(&config, &mut param, &[-0.2], &mut state);
        // g = -0.2 + 0.5 * 1.0 = 0.3 > 0: the parameter goes down by lr.
        assert!(
            param.first().is_some_and(|p| (p - 0.9).abs() < 1e-6),
            "{param:?}"
        );
        assert_eq!(state.time, 1);
    }
}
