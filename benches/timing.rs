//! A small timing harness shared by the bench binaries: warm up, sample variants in
//! alternating rounds, report quantiles.

use std::time::{Duration, Instant};

/// Quantiles of a set of timings.
pub struct Summary {
    pub samples: usize,
    pub min: Duration,
    pub median: Duration,
    pub p90: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:>8.3} ms   min {:>8.3} ms   p90 {:>8.3} ms   ({} samples)",
            ms(self.median),
            ms(self.min),
            ms(self.p90),
            self.samples
        )
    }
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times several variants in alternating rounds of `per_round` runs each, so that a machine
/// whose load drifts during the run treats them alike. Returns one summary per variant.
pub fn measure_interleaved(
    warmup: usize,
    rounds: usize,
    per_round: usize,
    variants: &mut [&mut dyn FnMut()],
) -> Vec<Summary> {
    for f in variants.iter_mut() {
        for _ in 0..warmup {
            f();
        }
    }
    let mut times: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (f, samples) in variants.iter_mut().zip(times.iter_mut()) {
            samples.extend((0..per_round).map(|_| time(f)));
        }
    }
    times.into_iter().map(summarize).collect()
}

fn time(f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Quantiles of `times`.
pub fn summarize(mut times: Vec<Duration>) -> Summary {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len().saturating_sub(1)) as f64 * q).round() as usize;
        times.get(index).copied().unwrap_or_default()
    };
    Summary {
        samples: times.len(),
        min: at(0.0),
        median: at(0.5),
        p90: at(0.9),
    }
}
