//! A small timing harness shared by the bench binaries: warm up, sample, report quantiles.

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
            "median {:>9.3} ms   min {:>9.3} ms   p90 {:>9.3} ms   ({} samples)",
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

/// Runs `f` `warmup` times untimed, then `samples` times timed.
pub fn measure(warmup: usize, samples: usize, mut f: impl FnMut()) -> Summary {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() - 1) as f64 * q).round() as usize;
        times.get(index).copied().unwrap_or_default()
    };
    Summary {
        samples: times.len(),
        min: at(0.0),
        median: at(0.5),
        p90: at(0.9),
    }
}
