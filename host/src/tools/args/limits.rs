//! The limits a request sets for its own run (`limits`): each may lower the server's.

use crate::sandbox::{Limits, NAMED_LIMITS, NamedLimit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Limits a request sets for its own run: each may lower the server's limit, never raise it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsArg {
    /// Wall-clock budget of this call, in seconds (fractions allowed).
    pub timeout_seconds: Option<f64>,
    /// Largest guest linear memory, in MiB.
    pub guest_memory_mib: Option<u64>,
    /// Largest sum of the host tensors the model holds, in MiB.
    ///
    /// Live tensors, datasets and the autodiff graph of a step.
    pub tensor_memory_mib: Option<u64>,
    /// Most tensor handles the model may hold at once.
    pub tensor_handles: Option<u64>,
    /// Highest tensor rank.
    pub tensor_rank: Option<u64>,
    /// Most elements of one tensor.
    pub tensor_elements: Option<u64>,
    /// Most elements of one guest table.
    pub table_elements: Option<u64>,
    /// Most core instances the component may create.
    pub instances: Option<u64>,
    /// Most optimizer steps the run may plan.
    pub total_steps: Option<u64>,
    /// Largest batch.
    pub batch_size: Option<u64>,
    /// Most samples in one dataset.
    pub dataset_samples: Option<u64>,
}

impl LimitsArg {
    /// The server's `limits` lowered by this request. A value of 0, or above the server's,
    /// is an error naming the limit; `timeout_seconds` lowers the training budget when
    /// `training`, else the call budget.
    pub fn apply(&self, server: &Limits, training: bool) -> Result<Limits, String> {
        let asked = serde_json::to_value(self).map_err(|e| format!("limits: {e}"))?;
        let mut limits = server.clone();
        for limit in &NAMED_LIMITS {
            if let Some(value) = asked.get(limit.name).and_then(Value::as_u64) {
                let lowered = lower(limit, value, server)?;
                (limit.set)(&mut limits, lowered);
            }
        }
        if let Some(seconds) = self.timeout_seconds {
            let budget = if training {
                &mut limits.train_timeout
            } else {
                &mut limits.call_timeout
            };
            *budget = lower_timeout(seconds, *budget)?;
        }
        Ok(limits)
    }
}

/// `asked` (in the unit of `limit`'s name) as the limit's new value, in its field's units:
/// between 1 and the `server`'s.
fn lower(limit: &NamedLimit, asked: u64, server: &Limits) -> Result<u64, String> {
    let most = limit.value(server);
    if asked == 0 || asked > most {
        return Err(format!(
            "limits.{} must be between 1 and the server's limit of {most}, got {asked}; a \
             request may lower a limit, never raise it",
            limit.name
        ));
    }
    Ok(asked.saturating_mul(limit.unit))
}

/// `seconds` as a time budget: above 0 and at most the server's `budget`.
fn lower_timeout(seconds: f64, budget: Duration) -> Result<Duration, String> {
    let max = budget.as_secs_f64();
    if !(seconds > 0.0 && seconds <= max) {
        return Err(format!(
            "limits.timeout_seconds must be above 0 and at most the server's limit of {max} s, \
             got {seconds}; a request may lower a limit, never raise it"
        ));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|e| format!("limits.timeout_seconds: {seconds} is not a duration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_names_every_limit_of_the_table() {
        let schema = crate::tools::schema::options::<LimitsArg>();
        let mut named: Vec<&str> = NAMED_LIMITS.iter().map(|l| l.name).collect();
        named.insert(0, "timeout_seconds");
        let listed: Vec<&str> = schema.keys().map(String::as_str).collect();
        assert_eq!(listed, named);
    }

    #[test]
    fn a_request_lowers_each_limit_and_never_raises_one() {
        let server = Limits::default();
        for limit in &NAMED_LIMITS {
            let most = limit.value(&server);
            let arg: LimitsArg = serde_json::from_value(serde_json::json!({limit.name: 1}))
                .expect("a limit of 1 parses");
            let lowered = arg.apply(&server, true).expect("1 is within every limit");
            assert_eq!(limit.value(&lowered), 1, "{}", limit.name);
            let raised: LimitsArg =
                serde_json::from_value(serde_json::json!({limit.name: most + 1}))
                    .expect("any count parses");
            let error = raised.apply(&server, true).expect_err("above the server's");
            assert!(error.contains(&format!("limits.{}", limit.name)), "{error}");
        }
    }
}
