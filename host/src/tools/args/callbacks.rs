//! Lightning's `ModelCheckpoint` and `EarlyStopping` callbacks (`trainer.callbacks`).

use crate::tools::checkpoint::CheckpointRule;
use crate::trainer::{EarlyStopping, Mode};
use schemars::JsonSchema;
use serde::Deserialize;

/// What a callback option left out means: the option's `default` in its schema, and what
/// the callbacks resolve to.
mod default {
    pub const SAVE_TOP_K: i64 = 1;
    pub const SAVE_LAST: bool = false;
    pub const FILENAME: &str = "{epoch}-{step}";
    pub const MONITOR: &str = "val_loss";
    pub const PATIENCE: u32 = 3;
    pub const MIN_DELTA: f64 = 0.0;
}

/// A callback.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallbackArg {
    /// Lightning's `EarlyStopping`.
    EarlyStopping(EarlyStoppingArg),
    /// Lightning's `ModelCheckpoint`.
    ModelCheckpoint(ModelCheckpointArg),
}

/// Lightning's `ModelCheckpoint(monitor, mode, save_top_k, save_last, filename)`: checkpoints
/// written after every epoch into the run's `checkpoints/`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCheckpointArg {
    /// The metric that ranks checkpoints; without it, the latest epoch is kept.
    pub monitor: Option<String>,
    /// `min` or `max`.
    #[schemars(extend("default" = ModeArg::Min))]
    pub mode: Option<ModeArg>,
    /// How many of the best (or latest) checkpoints to keep (-1: all; 0: none).
    #[schemars(extend("default" = default::SAVE_TOP_K))]
    pub save_top_k: Option<i64>,
    /// Also keep `last.safetensors`, the latest epoch's.
    #[schemars(extend("default" = default::SAVE_LAST))]
    pub save_last: Option<bool>,
    /// The file name without extension: `{epoch}`, `{step}` and `{metric}` or
    /// `{metric:.2f}` become `epoch=3`, `step=48`, `val_loss=0.27`.
    #[schemars(extend("default" = default::FILENAME))]
    pub filename: Option<String>,
}

/// Lightning's `EarlyStopping(monitor, mode, patience, min_delta)`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingArg {
    /// The metric to watch.
    #[schemars(extend("default" = default::MONITOR))]
    pub monitor: Option<String>,
    /// `min` or `max`.
    #[schemars(extend("default" = ModeArg::Min))]
    pub mode: Option<ModeArg>,
    /// Checks without improvement before stopping.
    #[schemars(extend("default" = default::PATIENCE))]
    pub patience: Option<u32>,
    /// The least change that counts as improvement.
    #[schemars(extend("default" = default::MIN_DELTA))]
    pub min_delta: Option<f64>,
}

/// Which way a monitored metric improves.
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

impl ModelCheckpointArg {
    /// The checkpoint rule the callback asks for.
    pub(super) fn resolve(&self) -> Result<CheckpointRule, String> {
        let filename = self
            .filename
            .clone()
            .unwrap_or_else(|| default::FILENAME.into());
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.=+{}:".contains(c);
        if filename.is_empty() || filename.len() > 200 || !filename.chars().all(allowed) {
            return Err(format!(
                "trainer.callbacks model_checkpoint.filename must be 1 to 200 characters of \
                 [A-Za-z0-9_.=+-] and {{placeholders}}, got {filename:?}"
            ));
        }
        // `{metric:.Nf}`: N digits, as many as an f64 holds at most.
        let placeholders = filename
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next());
        for spec in placeholders {
            if let Some((_, precision)) = spec.split_once(":.") {
                let digits = precision.trim_end_matches('f');
                if !digits.parse::<usize>().is_ok_and(|p| p <= 17) {
                    return Err(format!(
                        "trainer.callbacks model_checkpoint.filename: the precision in {{{spec}}} \
                         must be 0 to 17 digits"
                    ));
                }
            }
        }
        let save_top_k = match self.save_top_k.unwrap_or(default::SAVE_TOP_K) {
            -1 => None,
            k if k >= 0 => Some(usize::try_from(k).unwrap_or(usize::MAX)),
            k => {
                return Err(format!(
                    "trainer.callbacks model_checkpoint.save_top_k must be -1 (all) or at \
                     least 0, got {k}"
                ));
            }
        };
        Ok(CheckpointRule {
            monitor: self.monitor.clone(),
            mode: match self.mode {
                None | Some(ModeArg::Min) => Mode::Min,
                Some(ModeArg::Max) => Mode::Max,
            },
            save_top_k,
            save_last: self.save_last.unwrap_or(default::SAVE_LAST),
            filename,
        })
    }
}

impl EarlyStoppingArg {
    /// The early-stopping rule the callback asks for.
    pub(super) fn resolve(&self) -> Result<EarlyStopping, String> {
        let min_delta = self.min_delta.unwrap_or(default::MIN_DELTA);
        if !(min_delta.is_finite() && min_delta >= 0.0) {
            return Err(format!(
                "trainer.callbacks early_stopping.min_delta must be a finite number >= 0, got \
                 {min_delta}"
            ));
        }
        Ok(EarlyStopping {
            monitor: self
                .monitor
                .clone()
                .unwrap_or_else(|| default::MONITOR.into()),
            mode: match self.mode {
                None | Some(ModeArg::Min) => Mode::Min,
                Some(ModeArg::Max) => Mode::Max,
            },
            patience: self.patience.unwrap_or(default::PATIENCE),
            min_delta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `{"type": kind}` and, for every option of `T` whose schema shows a default, `{"type":
    /// kind, option: default}`, as callbacks.
    fn with_each_default<T: JsonSchema>(kind: &str) -> (CallbackArg, Vec<(String, CallbackArg)>) {
        let parse = |v: Value| serde_json::from_value(v).expect("a callback parses");
        let given = crate::tools::schema::options::<T>()
            .into_iter()
            .filter_map(|(name, schema)| {
                let default = schema.get("default")?.clone();
                Some((name.clone(), parse(json!({"type": kind, name: default}))))
            })
            .collect();
        (parse(json!({"type": kind})), given)
    }

    fn resolved(callback: &CallbackArg) -> String {
        match callback {
            CallbackArg::EarlyStopping(e) => format!("{:?}", e.resolve()),
            CallbackArg::ModelCheckpoint(m) => format!("{:?}", m.resolve()),
        }
    }

    #[test]
    fn every_default_the_schema_shows_is_what_leaving_the_option_out_means() {
        let kinds = [
            with_each_default::<EarlyStoppingArg>("early_stopping"),
            with_each_default::<ModelCheckpointArg>("model_checkpoint"),
        ];
        let mut shown = 0;
        for (left_out, given) in &kinds {
            for (name, callback) in given {
                assert_eq!(resolved(callback), resolved(left_out), "{name}");
                shown += 1;
            }
        }
        assert_eq!(shown, 8, "options that show their default");
    }
}
