//! What `configure_optimizers` returns: an [`Optimizer`] and, optionally, an [`LrScheduler`],
//! with PyTorch's names and defaults.

use serde::{Deserialize, Serialize};

/// The optimizer a model asks for, with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0 disables it).
        momentum: f32,
        /// Momentum dampening.
        dampening: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
    },
    /// `torch.optim.AdamW`.
    AdamW {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Numerical-stability term.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

/// An optimizer by name, as a model's hyperparameters take it (`"adam"`, `"adamw"`, `"sgd"`):
/// PyTorch's defaults besides the learning rate.
///
/// ```no_run
/// use lightning_mcp_guest_sdk::prelude::*;
///
/// #[derive(Deserialize)]
/// struct Hparams {
///     optimizer: OptimizerName,
///     lr: f32,
/// }
///
/// let h: Hparams = serde_json::from_str(r#"{"optimizer": "sgd", "lr": 0.1}"#)?;
/// assert_eq!(h.optimizer.with_lr(h.lr), Optimizer::sgd(0.1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// [`Optimizer::adam`].
    #[default]
    Adam,
    /// [`Optimizer::adamw`].
    Adamw,
    /// [`Optimizer::sgd`].
    Sgd,
}

impl OptimizerName {
    /// The optimizer with learning rate `lr`.
    pub fn with_lr(self, lr: f32) -> Optimizer {
        match self {
            Self::Adam => Optimizer::adam(lr),
            Self::Adamw => Optimizer::adamw(lr),
            Self::Sgd => Optimizer::sgd(lr),
        }
    }
}

impl Optimizer {
    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f32) -> Self {
        Self::Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    /// Adam with learning rate `lr` and PyTorch's defaults (betas 0.9/0.999, eps 1e-8).
    pub fn adam(lr: f32) -> Self {
        Self::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW with learning rate `lr` and PyTorch's defaults (weight decay 0.01).
    pub fn adamw(lr: f32) -> Self {
        Self::AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// This optimizer with weight decay `weight_decay` (an L2 penalty for SGD and Adam,
    /// decoupled for AdamW).
    pub fn with_weight_decay(mut self, weight_decay: f32) -> Self {
        match &mut self {
            Self::Sgd {
                weight_decay: w, ..
            }
            | Self::Adam {
                weight_decay: w, ..
            }
            | Self::AdamW {
                weight_decay: w, ..
            } => *w = weight_decay,
        }
        self
    }

    /// This optimizer with `scheduler` changing its learning rate.
    pub fn with_scheduler(self, scheduler: LrScheduler) -> Optimization {
        Optimization {
            optimizer: self,
            lr_scheduler: Some(scheduler),
        }
    }
}

/// An optimizer and its learning-rate scheduler, as Lightning's `configure_optimizers`
/// returns them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimization {
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Its scheduler, if any.
    pub lr_scheduler: Option<LrScheduler>,
}

impl From<Optimizer> for Optimization {
    fn from(optimizer: Optimizer) -> Self {
        Self {
            optimizer,
            lr_scheduler: None,
        }
    }
}

/// How the learning rate changes (`torch.optim.lr_scheduler`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// `StepLR`: the learning rate times `gamma` every `step_size` intervals.
    Step {
        /// Intervals between decays.
        step_size: u32,
        /// Decay factor (PyTorch's default 0.1).
        gamma: f32,
    },
    /// `CosineAnnealingLR`: down to `eta_min` along half a cosine over `t_max` intervals.
    Cosine {
        /// Intervals of the half period.
        t_max: u32,
        /// The lowest learning rate (default 0).
        eta_min: f32,
    },
    /// `LinearLR`: the learning rate times a factor going linearly from `start_factor` to
    /// `end_factor` over `total_iters` intervals.
    Linear {
        /// The first factor (default 1/3).
        start_factor: f32,
        /// The last factor (default 1).
        end_factor: f32,
        /// Intervals of the ramp (default 5).
        total_iters: u32,
    },
}

/// When a scheduler advances (Lightning's `interval`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// After every epoch (Lightning's default).
    #[default]
    Epoch,
    /// After every optimizer step.
    Step,
}

/// A learning-rate scheduler: an optional linear warm-up, then a [`Schedule`].
///
/// As JSON (e.g. a hyperparameter) it is one object named by its schedule, with PyTorch's
/// argument names and defaults: `{"name": "step", "step_size": 10, "gamma": 0.5}`,
/// `{"name": "cosine", "t_max": 100, "eta_min": 0.0}`, `{"name": "linear", "start_factor":
/// 0.1, "end_factor": 1.0, "total_iters": 5}`, each optionally with `"interval": "epoch"`
/// (default) or `"step"`, `"warmup_iters"` (default 0) and `"warmup_start_factor"`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SchedulerJson", into = "SchedulerJson")]
pub struct LrScheduler {
    /// The schedule after the warm-up.
    pub schedule: Schedule,
    /// When it advances.
    pub interval: Interval,
    /// Warm-up intervals (0: none), in which the factor climbs linearly to 1.
    pub warmup_iters: u32,
    /// The warm-up's first factor.
    pub warmup_start_factor: f32,
}

impl LrScheduler {
    /// `schedule`, advancing every epoch, without warm-up.
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            interval: Interval::Epoch,
            warmup_iters: 0,
            warmup_start_factor: DEFAULT_START_FACTOR,
        }
    }

    /// Advances after every optimizer step instead of every epoch.
    pub fn every_step(self) -> Self {
        Self {
            interval: Interval::Step,
            ..self
        }
    }

    /// Starts with a linear warm-up from `start_factor` over `iters` intervals.
    pub fn with_warmup(self, iters: u32, start_factor: f32) -> Self {
        Self {
            warmup_iters: iters,
            warmup_start_factor: start_factor,
            ..self
        }
    }
}

/// `LinearLR`'s default first factor.
const DEFAULT_START_FACTOR: f32 = 1.0 / 3.0;

/// The schedules by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScheduleName {
    Step,
    Cosine,
    Linear,
}

/// An [`LrScheduler`] as one flat JSON object. (A flat struct rather than a JSON map: maps
/// would seed a hasher, which needs randomness a model does not get.)
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulerJson {
    name: ScheduleName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gamma: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t_max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eta_min: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_factor: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_factor: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_iters: Option<u32>,
    #[serde(default)]
    interval: Interval,
    #[serde(default)]
    warmup_iters: u32,
    #[serde(default = "default_start_factor")]
    warmup_start_factor: f32,
}

fn default_start_factor() -> f32 {
    DEFAULT_START_FACTOR
}

impl TryFrom<SchedulerJson> for LrScheduler {
    type Error = String;

    fn try_from(json: SchedulerJson) -> Result<Self, String> {
        let given = [
            ("step_size", json.step_size.is_some()),
            ("gamma", json.gamma.is_some()),
            ("t_max", json.t_max.is_some()),
            ("eta_min", json.eta_min.is_some()),
            ("start_factor", json.start_factor.is_some()),
            ("end_factor", json.end_factor.is_some()),
            ("total_iters", json.total_iters.is_some()),
        ];
        let (name, takes): (&str, &[&str]) = match json.name {
            ScheduleName::Step => ("step", &["step_size", "gamma"]),
            ScheduleName::Cosine => ("cosine", &["t_max", "eta_min"]),
            ScheduleName::Linear => ("linear", &["start_factor", "end_factor", "total_iters"]),
        };
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !takes.contains(f)) {
            return Err(format!(
                "the {name} schedule takes {}, not {field}",
                takes.join(" and ")
            ));
        }
        let required = |field: &str, v: Option<u32>| {
            v.ok_or_else(|| format!("the {name} schedule needs {field}"))
        };
        let schedule = match json.name {
            ScheduleName::Step => Schedule::Step {
                step_size: required("step_size", json.step_size)?,
                gamma: json.gamma.unwrap_or(0.1),
            },
            ScheduleName::Cosine => Schedule::Cosine {
                t_max: required("t_max", json.t_max)?,
                eta_min: json.eta_min.unwrap_or(0.0),
            },
            ScheduleName::Linear => Schedule::Linear {
                start_factor: json.start_factor.unwrap_or(DEFAULT_START_FACTOR),
                end_factor: json.end_factor.unwrap_or(1.0),
                total_iters: json.total_iters.unwrap_or(5),
            },
        };
        Ok(Self {
            schedule,
            interval: json.interval,
            warmup_iters: json.warmup_iters,
            warmup_start_factor: json.warmup_start_factor,
        })
    }
}

impl From<LrScheduler> for SchedulerJson {
    fn from(s: LrScheduler) -> Self {
        let mut json = Self {
            name: ScheduleName::Step,
            step_size: None,
            gamma: None,
            t_max: None,
            eta_min: None,
            start_factor: None,
            end_factor: None,
            total_iters: None,
            interval: s.interval,
            warmup_iters: s.warmup_iters,
            warmup_start_factor: s.warmup_start_factor,
        };
        match s.schedule {
            Schedule::Step { step_size, gamma } => {
                json.step_size = Some(step_size);
                json.gamma = Some(gamma);
            }
            Schedule::Cosine { t_max, eta_min } => {
                json.name = ScheduleName::Cosine;
                json.t_max = Some(t_max);
                json.eta_min = Some(eta_min);
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                json.name = ScheduleName::Linear;
                json.start_factor = Some(start_factor);
                json.end_factor = Some(end_factor);
                json.total_iters = Some(total_iters);
            }
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduler_reads_and_writes_its_flat_json() {
        let json = r#"{"name":"cosine","t_max":10,"interval":"step","warmup_iters":2}"#;
        let parsed: LrScheduler = serde_json::from_str(json).expect("the scheduler JSON parses");
        let expected = LrScheduler::new(Schedule::Cosine {
            t_max: 10,
            eta_min: 0.0,
        })
        .every_step()
        .with_warmup(2, 1.0 / 3.0);
        assert_eq!(parsed, expected);
        let back = serde_json::to_string(&parsed).unwrap_or_default();
        let again: LrScheduler = serde_json::from_str(&back).expect("the written JSON parses back");
        assert_eq!(again, expected);
    }

    #[test]
    fn unknown_fields_and_names_are_errors() {
        let err = |json: &str| {
            serde_json::from_str::<LrScheduler>(json)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(r#"{"name":"step","step_size":2,"gama":0.5}"#).contains("gama"));
        assert!(err(r#"{"name":"exponential"}"#).contains("exponential"));
        assert!(err(r#"{"name":"cosine"}"#).contains("needs t_max"));
        assert!(err(r#"{"name":"cosine","t_max":3,"gamma":0.5}"#).contains("not gamma"));
        assert!(err(r#"{"name":"cosine","t_max":3,"interval":"batch"}"#).contains("batch"));
    }
}
