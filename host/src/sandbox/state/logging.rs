//! The metrics a guest logs (`lightning:model/log`), bounded in names and count.

use super::names::check_name;
use super::ops::OpError;
use super::{GuestTensor, HostState};
use crate::sandbox::bindings::log;
use crate::tensor::{self, TensorError};
use wasmtime::component::Resource;

/// Most distinct metric names one run may log.
const MAX_METRIC_NAMES: usize = 256;

/// Names of the columns the server writes to `metrics.csv` beside the model's metrics (its
/// own `lr-*` cannot be a metric name, which has no `-`).
const RESERVED_METRIC_NAMES: [&str; 2] = ["epoch", "step"];

impl log::Host for HostState {
    fn log(&mut self, name: String, value: f32) -> wasmtime::Result<()> {
        if let Err(e) = self.record(name, value)
            && self.log_error.is_none()
        {
            self.log_error = Some(e.message);
        }
        Ok(())
    }

    fn log_tensor(&mut self, name: String, value: Resource<GuestTensor>) -> Result<(), OpError> {
        let t = self.get(&value)?;
        let value = tensor::to_scalar("log-tensor", &t)?;
        Ok(self.record(name, value)?)
    }
}

impl HostState {
    /// Records a logged value, or says why it is refused: a name outside the name rule or
    /// one of the columns the server writes, more than [`Limits::max_logged_per_step`] values
    /// in one step, more than [`MAX_METRIC_NAMES`] names in a run.
    ///
    /// [`Limits::max_logged_per_step`]: crate::sandbox::Limits::max_logged_per_step
    fn record(&mut self, name: String, value: f32) -> Result<(), TensorError> {
        let refused = |message: String| Err(TensorError::new("log", message));
        check_name("metric name", &name).or_else(refused)?;
        if RESERVED_METRIC_NAMES.contains(&name.as_str()) {
            return refused(format!(
                "metric name {name} is a column the server writes to metrics.csv (epoch, \
                 step): pick another"
            ));
        }
        if self.logged.len() >= self.limits.max_logged_per_step {
            return refused(format!(
                "more than {} values logged in one step (the server's limit)",
                self.limits.max_logged_per_step
            ));
        }
        if !self.metric_names.contains(&name) {
            if self.metric_names.len() >= MAX_METRIC_NAMES {
                return refused(format!(
                    "more than {MAX_METRIC_NAMES} metric names in one run: {name} is one too many"
                ));
            }
            self.metric_names.insert(name.clone());
        }
        self.logged.push((name, value));
        Ok(())
    }
}
