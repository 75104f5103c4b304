//! Adapts a [`LightningModule`] to the generated `lightning-module` export trait.

use crate::wit::exports::lightning::model::lightning_module as wit;
use crate::wit::lightning::model::tensors::Tensor as RawTensor;
use crate::{
    Dataset, Error, Interval, LightningModule, LrScheduler, Optimizer, Result, Schedule, Split,
    Tensor,
};
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

thread_local! {
    /// The one model instance of this component, created by `init`.
    static MODEL: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Exports `M`; used through [`export_model!`](crate::export_model), not directly.
#[derive(Debug)]
pub struct Exporter<M>(PhantomData<M>);

fn with_model<M: LightningModule, T>(f: impl FnOnce(&mut M) -> Result<T>) -> Result<T, String> {
    MODEL.with(|cell| {
        let mut slot = cell.borrow_mut();
        let model = slot
            .as_mut()
            .and_then(|m| m.downcast_mut::<M>())
            .ok_or_else(|| "the model was not initialised: call init first".to_string())?;
        f(model).map_err(|e| e.to_string())
    })
}

fn parse_hyperparameters<M: LightningModule>(json: &str) -> Result<M::Hyperparameters> {
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = without_position(&e.into_inner());
        if path == "." {
            Error::new(format!("hyperparameters: {inner}"))
        } else {
            Error::new(format!("{path}: {inner}"))
        }
    })
}

/// `e`'s message without serde's ` at line 1 column 13`: the host wrote the JSON, so its
/// positions mean nothing to the caller, whom the field path already guides.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    message
        .strip_suffix(&position)
        .map_or_else(|| message.clone(), str::to_string)
}

impl<M: LightningModule> wit::Guest for Exporter<M> {
    fn describe() -> wit::Description {
        wit::Description {
            target: M::TARGET.to_string(),
            class_name: M::class_name().to_string(),
            summary: M::SUMMARY.to_string(),
            hyperparameters: serde_json::to_string(&M::Hyperparameters::default())
                .unwrap_or_else(|_| "{}".to_string()),
        }
    }

    fn init(hyperparameters: String) -> Result<String, String> {
        let hparams = parse_hyperparameters::<M>(&hyperparameters).map_err(|e| e.to_string())?;
        crate::naming::reset();
        let model = M::new(&hparams).map_err(|e| e.to_string())?;
        let resolved = serde_json::to_string(&hparams).map_err(|e| e.to_string())?;
        MODEL.with(|cell| *cell.borrow_mut() = Some(Box::new(model)));
        Ok(resolved)
    }

    fn forward(inputs: RawTensor) -> Result<RawTensor, String> {
        let inputs = Tensor::from_raw(inputs);
        with_model::<M, _>(|m| m.forward(&inputs)?.into_raw())
    }

    fn training_step(
        inputs: RawTensor,
        targets: RawTensor,
        batch_index: u32,
    ) -> Result<RawTensor, String> {
        let (inputs, targets) = (Tensor::from_raw(inputs), Tensor::from_raw(targets));
        with_model::<M, _>(|m| m.training_step(inputs, targets, batch_index)?.into_raw())
    }

    fn validation_step(
        inputs: RawTensor,
        targets: RawTensor,
        batch_index: u32,
    ) -> Result<(), String> {
        let (inputs, targets) = (Tensor::from_raw(inputs), Tensor::from_raw(targets));
        with_model::<M, _>(|m| m.validation_step(inputs, targets, batch_index))
    }

    fn test_step(inputs: RawTensor, targets: RawTensor, batch_index: u32) -> Result<(), String> {
        let (inputs, targets) = (Tensor::from_raw(inputs), Tensor::from_raw(targets));
        with_model::<M, _>(|m| m.test_step(inputs, targets, batch_index))
    }

    fn predict_step(inputs: RawTensor, batch_index: u32) -> Result<RawTensor, String> {
        let inputs = Tensor::from_raw(inputs);
        with_model::<M, _>(|m| m.predict_step(inputs, batch_index)?.into_raw())
    }

    fn configure_optimizers() -> wit::Optimization {
        let chosen = with_model::<M, _>(|m| Ok(m.configure_optimizers()))
            .unwrap_or_else(|_| Optimizer::adam(1e-3).into());
        wit::Optimization {
            optimizer: optimizer_to_wit(chosen.optimizer),
            lr_scheduler: chosen.lr_scheduler.map(scheduler_to_wit),
        }
    }
    fn dataset(split: wit::Split, seed: u64) -> Result<Option<wit::ModelData>, String> {
        let split = match split {
            wit::Split::Train => Split::Train,
            wit::Split::Validation => Split::Validation,
            wit::Split::Test => Split::Test,
            wit::Split::Predict => Split::Predict,
        };
        with_model::<M, _>(|m| m.dataset(split, seed)?.map(Dataset::into_wit).transpose())
    }
}

impl Dataset {
    /// The dataset as the contract hands it over.
    fn into_wit(self) -> Result<wit::ModelData> {
        Ok(wit::ModelData {
            inputs: self.inputs.into_raw()?,
            targets: self.targets.map(Tensor::into_raw).transpose()?,
            batch_size: self.batch_size,
        })
    }
}

fn optimizer_to_wit(optimizer: Optimizer) -> wit::Optimizer {
    match optimizer {
        Optimizer::Sgd {
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        } => wit::Optimizer::Sgd(wit::SgdConfig {
            lr,
            momentum,
            dampening,
            weight_decay,
            nesterov,
        }),
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => wit::Optimizer::Adam(wit::AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        }),
        Optimizer::AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => wit::Optimizer::Adamw(wit::AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        }),
    }
}

fn scheduler_to_wit(scheduler: LrScheduler) -> wit::LrScheduler {
    let schedule = match scheduler.schedule {
        Schedule::Step { step_size, gamma } => {
            wit::Schedule::Step(wit::StepSchedule { step_size, gamma })
        }
        Schedule::Cosine { t_max, eta_min } => {
            wit::Schedule::Cosine(wit::CosineSchedule { t_max, eta_min })
        }
        Schedule::Linear {
            start_factor,
            end_factor,
            total_iters,
        } => wit::Schedule::Linear(wit::LinearSchedule {
            start_factor,
            end_factor,
            total_iters,
        }),
    };
    wit::LrScheduler {
        schedule,
        interval: match scheduler.interval {
            Interval::Epoch => wit::Interval::Epoch,
            Interval::Step => wit::Interval::Step,
        },
        warmup_iters: scheduler.warmup_iters,
        warmup_start_factor: scheduler.warmup_start_factor,
    }
}
