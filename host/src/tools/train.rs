//! `lightning.train`: builds a registered model and fits it on its data.

use super::args::{self, ModelSpec, TrainerArgs};
use super::{build_model, num_parameters};
use crate::data::Dataset;
use crate::protocol::ToolDefinition;
use crate::runtime::Runtime;
use crate::sandbox::{ModelData, ModelInstance, Split};
use crate::trainer::{self, FitConfig};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;

/// The tool's name.
pub const NAME: &str = "lightning.train";

/// Arguments of `lightning.train`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    /// The model to train.
    pub model: ModelSpec,
    /// Trainer options (PyTorch Lightning's names).
    pub trainer: Option<TrainerArgs>,
}

pub(super) fn definition() -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Train a model",
        description: "Builds a registered model (model._target_ plus hyperparameters) inside \
            the WebAssembly sandbox and fits it with PyTorch Lightning's trainer options \
            (max_epochs, max_steps, limit_train_batches, limit_val_batches, seed, accelerator, \
            devices), validating after each epoch. Returns status, model.class, \
            model.num_parameters, model.hyperparameters, trainer settings and metrics \
            (train_loss, val_loss, val_acc, ...: per-epoch means of the last epoch).",
        input_schema: args::schema::<TrainArgs>(),
    }
}

pub(super) fn run(runtime: &Runtime, arguments: Value) -> Result<Value, String> {
    let started = Instant::now();
    let args: TrainArgs = args::parse(arguments)?;
    let options = args.trainer.unwrap_or_default().resolve()?;
    let model = runtime.model(&args.model.target)?;
    let target = &model.description.target;
    let _slot = runtime.run_slot();
    let (mut instance, hyperparameters) = build_model(
        runtime,
        &model,
        &args.model,
        options.device.clone(),
        options.seed,
        runtime.limits().train_timeout,
    )?;
    let train = own_data(&mut instance, Split::Train, options.seed)?
        .ok_or_else(|| format!("{target} brings no training data of its own"))?;
    let val = own_data(&mut instance, Split::Validation, options.seed)?;
    let config = FitConfig {
        max_epochs: options.max_epochs,
        max_steps: options.max_steps,
        limit_train_batches: options.limit_train_batches,
        limit_val_batches: options.limit_val_batches,
    };
    let report = trainer::fit(&mut instance, &config, &train, val.as_ref())
        .map_err(|e| format!("{target}: training failed: {e}"))?;
    Ok(json!({
        "status": "completed",
        "model": {
            "class": model.description.class_name,
            "target": target,
            "num_parameters": num_parameters(&instance),
            "hyperparameters": hyperparameters,
        },
        "trainer": {
            "max_epochs": options.max_epochs,
            "max_steps": options.max_steps.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
            "accelerator": options.accelerator,
            "devices": 1,
            "seed": options.seed,
            "current_epoch": report.epochs,
            "global_step": report.global_step,
        },
        "metrics": report.metrics,
        "duration_seconds": started.elapsed().as_secs_f64(),
    }))
}

/// The model's own data for `split` as a [`Dataset`], if it brings any.
fn own_data(
    instance: &mut ModelInstance,
    split: Split,
    seed: u64,
) -> Result<Option<Dataset>, String> {
    let Some(ModelData {
        inputs,
        targets,
        batch_size,
    }) = instance
        .dataset(split, seed)
        .map_err(|e| format!("the model's {split:?} data: {e}"))?
    else {
        return Ok(None);
    };
    Dataset::new(inputs, targets, batch_size)
        .map(Some)
        .map_err(|e| format!("the model's {split:?} data: {e}"))
}
