//! Lightning's `EarlyStopping` callback: the rule a request gives, and its running state,
//! which checkpoints carry so that a resumed fit keeps counting.

use super::{Metrics, Mode, TrainError};
use serde::{Deserialize, Serialize};

/// Stop once `monitor` has not improved by more than `min_delta` for `patience` checks in a
/// row.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The metric watched, e.g. `val_loss`.
    pub monitor: String,
    /// Whether it should fall or rise.
    pub mode: Mode,
    /// Checks without improvement tolerated.
    pub patience: u32,
    /// The least change that counts as improvement.
    pub min_delta: f64,
}

/// Where an early-stopping watch stands (Lightning's `best_score` and `wait_count`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
    /// The metric watched.
    pub monitor: String,
    /// The best value seen.
    pub best: Option<f64>,
    /// Checks since it last improved.
    pub wait_count: u32,
}

/// An [`EarlyStopping`] rule applied check after check.
#[derive(Debug)]
pub(super) struct Watch {
    rule: EarlyStopping,
    best: Option<f64>,
    waited: u32,
}

impl Watch {
    /// A watch of `rule`, continuing from `saved` when it watched the same metric.
    pub(super) fn new(rule: EarlyStopping, saved: Option<EarlyStoppingState>) -> Self {
        // A checkpoint's count beyond the patience means "stop at the next check".
        let (best, waited) = saved
            .filter(|s| s.monitor == rule.monitor)
            .map_or((None, 0), |s| (s.best, s.wait_count.min(rule.patience)));
        Self { rule, best, waited }
    }

    /// Its state, for a checkpoint.
    pub(super) fn state(&self) -> EarlyStoppingState {
        EarlyStoppingState {
            monitor: self.rule.monitor.clone(),
            best: self.best,
            wait_count: self.waited,
        }
    }

    /// Takes the latest metrics; `Ok(true)` when training should stop.
    pub(super) fn should_stop(&mut self, metrics: &Metrics) -> Result<bool, TrainError> {
        let Some(&value) = metrics.get(&self.rule.monitor) else {
            let logged: Vec<&str> = metrics.keys().map(String::as_str).collect();
            return Err(TrainError::Loss(format!(
                "early stopping monitors {:?}, which the model did not log (logged: {})",
                self.rule.monitor,
                logged.join(", ")
            )));
        };
        if !value.is_finite() {
            // Lightning's check_finite: a diverged metric ends the fit.
            return Ok(true);
        }
        let improved = self.best.is_none_or(|best| match self.rule.mode {
            Mode::Min => value < best - self.rule.min_delta,
            Mode::Max => value > best + self.rule.min_delta,
        });
        if improved {
            self.best = Some(value);
            self.waited = 0;
            return Ok(false);
        }
        self.waited = self.waited.saturating_add(1);
        Ok(self.waited >= self.rule.patience)
    }
}
