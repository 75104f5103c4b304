//! Per-epoch metric aggregation, like Lightning's `on_epoch=True` reduction: the mean of the
//! values a model logged in each step, weighted by the step's batch size.

use std::collections::BTreeMap;

/// Metric name → value, as reported to clients (Lightning's `callback_metrics`).
pub type Metrics = BTreeMap<String, f64>;

/// Running weighted sums of the values logged during one epoch or evaluation pass.
#[derive(Debug, Default)]
pub struct MetricAccumulator {
    sums: BTreeMap<String, (f64, f64)>,
}

impl MetricAccumulator {
    /// Adds the values one step logged, for a batch of `batch_size` samples.
    pub fn add(&mut self, logged: Vec<(String, f32)>, batch_size: usize) {
        let weight = batch_size.max(1) as f64;
        for (name, value) in logged {
            let (sum, total) = self.sums.entry(name).or_default();
            *sum += f64::from(value) * weight;
            *total += weight;
        }
    }

    /// The weighted mean of each metric.
    pub fn finish(self) -> Metrics {
        self.sums
            .into_iter()
            .map(|(name, (sum, total))| (name, sum / total))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_are_weighted_by_batch_size() {
        let mut acc = MetricAccumulator::default();
        acc.add(vec![("val_acc".into(), 1.0)], 8);
        acc.add(vec![("val_acc".into(), 0.0), ("val_loss".into(), 2.0)], 2);
        let metrics = acc.finish();
        assert_eq!(metrics.get("val_acc"), Some(&0.8));
        assert_eq!(metrics.get("val_loss"), Some(&2.0));
    }
}
