//! Learning-rate schedules (`torch.optim.lr_scheduler`): Burn's schedulers, after an optional
//! linear warm-up, driving the optimizer's learning rate by epoch or by step.

use super::{TensorError, guarded};
use burn::lr_scheduler::{
    LrSchedulerConfig, cosine::CosineAnnealingLrSchedulerConfig, linear::LinearLrSchedulerConfig,
    module_lr_scheduler::ModuleLrScheduler, module_lr_scheduler::ModuleLrSchedulerConfig,
    sequential::SequentialLrSchedulerConfig, step::StepLrSchedulerConfig,
};
use serde::{Deserialize, Serialize};

/// A learning-rate schedule as a model asks for it (`torch.optim.lr_scheduler`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Schedule {
    /// `StepLR`: times `gamma` every `step_size` intervals.
    Step {
        /// Intervals between decays.
        step_size: u32,
        /// Decay factor.
        gamma: f32,
    },
    /// `CosineAnnealingLR`: down to `eta_min` over `t_max` intervals.
    Cosine {
        /// Intervals of the half period.
        t_max: u32,
        /// The lowest learning rate.
        eta_min: f32,
    },
    /// `LinearLR`: a factor from `start_factor` to `end_factor` over `total_iters` intervals.
    Linear {
        /// The first factor.
        start_factor: f32,
        /// The last factor.
        end_factor: f32,
        /// Intervals of the ramp.
        total_iters: u32,
    },
}

/// When a scheduler advances (Lightning's `interval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// After every epoch.
    Epoch,
    /// After every optimizer step.
    Step,
}

/// A learning-rate scheduler: an optional linear warm-up, then a [`Schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// The schedule after the warm-up.
    pub schedule: Schedule,
    /// When it advances.
    pub interval: Interval,
    /// Warm-up intervals (0: none).
    pub warmup_iters: u32,
    /// The warm-up's first factor.
    pub warmup_start_factor: f32,
}

impl SchedulerConfig {
    /// Checks the numbers a (possibly hostile) model gave.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: u32| {
            if v >= 1 {
                Ok(())
            } else {
                Err(format!("lr_scheduler {name} must be >= 1, got {v}"))
            }
        };
        let factor = |name: &str, v: f32, zero_ok: bool| {
            let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
            if v.is_finite() && low_ok && v <= 1.0 {
                Ok(())
            } else {
                let low = if zero_ok { "[0" } else { "(0" };
                Err(format!("lr_scheduler {name} must be in {low}, 1], got {v}"))
            }
        };
        match self.schedule {
            Schedule::Step { step_size, gamma } => {
                positive("step_size", step_size)?;
                factor("gamma", gamma, false)?;
            }
            Schedule::Cosine { t_max, eta_min } => {
                positive("t_max", t_max)?;
                if !(eta_min.is_finite() && eta_min >= 0.0) {
                    return Err(format!(
                        "lr_scheduler eta_min must be finite and >= 0, got {eta_min}"
                    ));
                }
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                factor("start_factor", start_factor, false)?;
                factor("end_factor", end_factor, true)?;
                positive("total_iters", total_iters)?;
            }
        }
        if self.warmup_iters > 0 {
            factor("warmup_start_factor", self.warmup_start_factor, false)?;
        }
        Ok(())
    }

    /// Burn's scheduler for this config over the base learning rate `lr`.
    fn build(&self, lr: f64) -> Result<ModuleLrScheduler, String> {
        // Burn's cosine and linear schedules (a warm-up is one) take rates in (0, 1].
        let linear_or_cosine = self.warmup_iters > 0
            || matches!(
                self.schedule,
                Schedule::Cosine { .. } | Schedule::Linear { .. }
            );
        if linear_or_cosine && lr > 1.0 {
            return Err(format!(
                "lr_scheduler: cosine, linear and warm-up schedules need the optimizer's lr \
                 to be at most 1, got {lr}"
            ));
        }
        if let Schedule::Cosine { eta_min, .. } = self.schedule
            && f64::from(eta_min) > lr
        {
            return Err(format!(
                "lr_scheduler eta_min ({eta_min}) must be at most the optimizer's lr ({lr})"
            ));
        }
        let main: LrSchedulerConfig = match self.schedule {
            Schedule::Step { step_size, gamma } => {
                StepLrSchedulerConfig::new(lr, step_size as usize)
                    .with_gamma(f64::from(gamma))
                    .into()
            }
            Schedule::Cosine { t_max, eta_min } => {
                CosineAnnealingLrSchedulerConfig::new(lr, t_max as usize)
                    .with_min_lr(f64::from(eta_min))
                    .into()
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => LinearLrSchedulerConfig::new(
                lr * f64::from(start_factor),
                lr * f64::from(end_factor),
                total_iters as usize,
            )
            .into(),
        };
        let config = if self.warmup_iters == 0 {
            main
        } else {
            let iters = self.warmup_iters as usize;
            let warmup =
                LinearLrSchedulerConfig::new(lr * f64::from(self.warmup_start_factor), lr, iters);
            SequentialLrSchedulerConfig::new(vec![warmup.into(), main], vec![iters]).into()
        };
        ModuleLrSchedulerConfig::new(config)
            .init()
            .map_err(|e| format!("lr_scheduler: {e}"))
    }
}

/// The learning rate over a fit: a scheduler and how far it has advanced.
pub struct LrSchedule {
    scheduler: Option<(ModuleLrScheduler, Interval)>,
    lr: f64,
}

impl std::fmt::Debug for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LrSchedule").field("lr", &self.lr).finish()
    }
}

impl LrSchedule {
    /// The schedule of `config` over the base learning rate `lr` (a constant `lr` without
    /// one), at its start.
    pub fn new(lr: f64, config: Option<&SchedulerConfig>) -> Result<Self, String> {
        let Some(config) = config else {
            return Ok(Self {
                scheduler: None,
                lr,
            });
        };
        let mut scheduler = config.build(lr)?;
        let first =
            guarded("lr-scheduler", || scheduler.step().base()).map_err(|e| e.to_string())?;
        Ok(Self {
            scheduler: Some((scheduler, config.interval)),
            lr: first,
        })
    }

    /// The learning rate now.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// When the scheduler advances; `None` without one.
    pub fn interval(&self) -> Option<Interval> {
        self.scheduler.as_ref().map(|(_, interval)| *interval)
    }

    /// One `interval` has passed: advances the schedule if it advances then.
    pub fn advance(&mut self, interval: Interval) -> Result<(), TensorError> {
        if let Some((scheduler, _)) = self.scheduler.as_mut().filter(|(_, i)| *i == interval) {
            self.lr = guarded("lr-scheduler", || scheduler.step().base())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_check_their_numbers() {
        let config = |schedule| SchedulerConfig {
            schedule,
            interval: Interval::Epoch,
            warmup_iters: 0,
            warmup_start_factor: 0.5,
        };
        let err = |schedule| config(schedule).validate().err().unwrap_or_default();
        assert!(
            err(Schedule::Step {
                step_size: 1,
                gamma: f32::NAN
            })
            .contains("gamma")
        );
        assert!(
            err(Schedule::Cosine {
                t_max: 0,
                eta_min: 0.0
            })
            .contains("t_max must be >= 1")
        );
        assert!(
            err(Schedule::Linear {
                start_factor: 1.5,
                end_factor: 1.0,
                total_iters: 2
            })
            .contains("start_factor must be in (0, 1]")
        );
        let mut warm = config(Schedule::Step {
            step_size: 1,
            gamma: 0.5,
        });
        warm.warmup_iters = 3;
        warm.warmup_start_factor = 0.0;
        assert!(warm.validate().is_err());
        // Three epochs of StepLR(1, 0.5): lr / 8; a step does not advance it.
        let step = config(Schedule::Step {
            step_size: 1,
            gamma: 0.5,
        });
        let mut schedule = LrSchedule::new(0.8, Some(&step)).expect("a step schedule");
        for _ in 0..3 {
            schedule
                .advance(Interval::Epoch)
                .expect("the schedule advances an epoch");
            schedule
                .advance(Interval::Step)
                .expect("the schedule advances a step");
        }
        assert!((schedule.lr() - 0.1).abs() < 1e-12, "{}", schedule.lr());
        // Burn's cosine takes rates up to 1, and eta_min up to the rate: said plainly.
        let cosine = config(Schedule::Cosine {
            t_max: 2,
            eta_min: 0.5,
        });
        let err = |lr| LrSchedule::new(lr, Some(&cosine)).err().unwrap_or_default();
        assert!(err(2.0).contains("need the optimizer's lr to be at most 1, got 2"));
        assert!(err(0.1).contains("eta_min (0.5) must be at most the optimizer's lr (0.1)"));
    }
}
