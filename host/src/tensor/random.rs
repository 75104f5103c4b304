//! Seeded random numbers drawn on the host, so the same seed gives the same tensor on every
//! backend; parameter initialisation schemes with PyTorch's fan conventions.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A seeded random stream (ChaCha8: fast, portable, reproducible).
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A stream determined entirely by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// `0..count` in a random order (Fisher–Yates).
    pub fn permutation(&mut self, count: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..count).collect();
        for i in (1..count).rev() {
            order.swap(i, self.0.random_range(0..=i));
        }
        order
    }

    /// `count` samples of a normal distribution with mean 0.
    pub fn normal(&mut self, count: usize, std: f32) -> Vec<f32> {
        (0..count)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut self.0);
                z * std
            })
            .collect()
    }

    /// `count` samples uniform in `[low, high)` (`low < high`, both finite). Computed in f64 so
    /// that a range as wide as f32 allows cannot overflow, and kept strictly below `high`.
    pub fn uniform(&mut self, count: usize, low: f32, high: f32) -> Vec<f32> {
        let (lo, hi) = (f64::from(low), f64::from(high));
        let below_high = high.next_down().max(low);
        (0..count)
            .map(|_| {
                let r = self.0.random::<f64>();
                ((lo * (1.0 - r) + hi * r) as f32).min(below_high)
            })
            .collect()
    }

    /// A dropout mask: each element is `0` with probability `p`, else `1 / (1 - p)`.
    pub fn dropout_mask(&mut self, count: usize, p: f32) -> Vec<f32> {
        let keep = 1.0 / (1.0 - p);
        (0..count)
            .map(|_| {
                if self.0.random::<f32>() < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect()
    }
}

/// How a parameter's initial values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Normal with mean 0 and this standard deviation.
    Normal(f32),
    /// Uniform in `[low, high)`.
    Uniform(f32, f32),
    /// He/Kaiming uniform for ReLU: bound `sqrt(6 / fan_in)`.
    KaimingUniform,
    /// Glorot/Xavier uniform: bound `sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
}

impl Init {
    /// Checks the scheme's own numbers: finite, std ≥ 0, low < high.
    pub fn validate(self) -> Result<(), String> {
        match self {
            Init::Normal(std) if !(std.is_finite() && std >= 0.0) => {
                Err(format!("normal std must be finite and >= 0, got {std}"))
            }
            Init::Uniform(low, high) if !(low.is_finite() && high.is_finite() && low < high) => {
                Err(format!(
                    "uniform bounds must be finite with low < high, got [{low}, {high})"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Draws the initial values of a parameter of `shape`.
    pub fn sample(self, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
        let count = shape.iter().product();
        let (fan_in, fan_out) = fans(shape);
        match self {
            Init::Zeros => vec![0.0; count],
            Init::Ones => vec![1.0; count],
            Init::Normal(std) => rng.normal(count, std),
            Init::Uniform(low, high) => rng.uniform(count, low, high),
            Init::KaimingUniform => {
                let bound = (6.0 / fan_in as f32).sqrt();
                rng.uniform(count, -bound, bound)
            }
            Init::XavierUniform => {
                let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
                rng.uniform(count, -bound, bound)
            }
        }
    }
}

/// PyTorch's fan-in and fan-out: `shape[1] * receptive` and `shape[0] * receptive`.
fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let receptive: usize = rest.iter().product();
            (inp * receptive, out * receptive)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        assert_eq!(
            Rng::seeded(7).normal(16, 1.0),
            Rng::seeded(7).normal(16, 1.0)
        );
        assert_ne!(
            Rng::seeded(7).normal(16, 1.0),
            Rng::seeded(8).normal(16, 1.0)
        );
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&[10, 4]), (4, 10));
        assert_eq!(fans(&[8, 3, 5, 5]), (75, 200));
        assert_eq!(fans(&[6]), (6, 6));
    }

    #[test]
    fn kaiming_bound_holds() {
        let values = Init::KaimingUniform.sample(&[100, 24], &mut Rng::seeded(1));
        let bound = 0.5; // sqrt(6 / 24)
        assert!(values.iter().all(|v| v.abs() <= bound));
        assert!(values.iter().any(|v| v.abs() > bound * 0.9));
    }

    #[test]
    fn uniform_stays_in_range_even_for_extreme_bounds() {
        let values = Rng::seeded(5).uniform(10_000, -3.0e38, 3.0e38);
        assert!(
            values
                .iter()
                .all(|v| v.is_finite() && (-3.0e38..3.0e38).contains(v))
        );
        let narrow = Rng::seeded(5).uniform(10_000, 1.0, 1.0 + f32::EPSILON);
        assert!(narrow.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn dropout_mask_scales_kept_elements() {
        let mask = Rng::seeded(3).dropout_mask(10_000, 0.25);
        let zeros = mask.iter().filter(|v| **v == 0.0).count();
        assert!((2_000..3_000).contains(&zeros), "{zeros} zeros");
        assert!(
            mask.iter()
                .all(|v| *v == 0.0 || (*v - 4.0 / 3.0).abs() < 1e-6)
        );
    }

    #[test]
    fn bad_init_numbers_are_refused() {
        assert!(Init::Normal(-1.0).validate().is_err());
        assert!(Init::Uniform(1.0, 1.0).validate().is_err());
        assert!(Init::Uniform(0.0, f32::NAN).validate().is_err());
        assert!(Init::KaimingUniform.validate().is_ok());
    }
}
