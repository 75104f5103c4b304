//! The MCP tools, one module each, behind one [`ToolProvider`]: `lightning.train` and
//! `lightning.inspect`. A tool parses its arguments into typed structs (whose schema
//! `tools/list` shows), runs on the shared [`Runtime`], and returns the Python project's
//! result shapes.

mod args;
mod inspect;
mod train;

pub use args::{Accelerator, ModelSpec, TrainerArgs};

use crate::cancel::CancelToken;
use crate::protocol::{CallContext, CallToolResult, ToolDefinition, ToolProvider};
use crate::runtime::Runtime;
use crate::sandbox::{ModelInstance, RegisteredModel};
use serde_json::Value;
use std::sync::Arc;

/// The lightning tools over one runtime.
#[derive(Debug)]
pub struct Tools {
    runtime: Arc<Runtime>,
}

impl Tools {
    /// Tools that run on `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }
}

impl ToolProvider for Tools {
    fn tools(&self) -> Vec<ToolDefinition> {
        vec![train::definition(), inspect::definition()]
    }

    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult> {
        let outcome = match name {
            train::NAME => train::run(&self.runtime, arguments, ctx),
            inspect::NAME => inspect::run(&self.runtime, arguments, ctx),
            _ => return None,
        };
        Some(match outcome {
            Ok(result) => CallToolResult::success(result),
            Err(message) => {
                tracing::info!(tool = name, "tool call failed: {message}");
                CallToolResult::error(message)
            }
        })
    }
}

/// Instantiates `model` on `device` and builds it from `spec`'s hyperparameters; returns the
/// instance and the resolved hyperparameters. Callers hold a [`Runtime::run_slot`] while the
/// instance lives.
fn build_model(
    runtime: &Runtime,
    model: &RegisteredModel,
    spec: &ModelSpec,
    device: crate::tensor::Device,
    seed: u64,
    budget: std::time::Duration,
    cancel: &CancelToken,
) -> Result<(ModelInstance, Value), String> {
    let target = &model.description.target;
    let mut instance = model
        .instantiate(device, runtime.limits(), seed, budget, cancel.clone())
        .map_err(|e| format!("{target}: {e}"))?;
    let resolved = instance
        .init(&spec.hyperparameters_json())
        .map_err(|e| format!("{target}: invalid model configuration: {e}"))?;
    let hyperparameters = serde_json::from_str(&resolved).map_err(|e| {
        format!("{target}: the model returned hyperparameters that are not JSON: {e}")
    })?;
    Ok((instance, hyperparameters))
}

/// Total element count of the model's parameters.
fn num_parameters(instance: &ModelInstance) -> usize {
    instance
        .parameters()
        .iter()
        .map(|p| p.value.num_elements())
        .sum()
}
