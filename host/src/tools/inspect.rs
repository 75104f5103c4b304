//! `lightning.inspect`: a model's size and hyperparameters, a per-parameter summary table, the
//! environment (versions, backends, devices), the registered models, or help on a topic.

use super::accelerator::{self, DeviceRequest, Placement};
use super::args::{self, Accelerator, LimitsArg, ModelSpec};
use super::help::{self, Topic};
use super::model_run::{build_on_cpu, num_parameters, of_model};
use super::schema::{self, Shown};
use crate::gpu::Adapters;
use crate::protocol::{CallContext, ToolDefinition};
use crate::runs::Runs;
use crate::runtime::Runtime;
use crate::sandbox::{Limits, ModelInstance, NAMED_LIMITS, RegisteredModel};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The tool's name.
pub const NAME: &str = "lightning.inspect";

/// What to inspect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum What {
    /// A model's class, parameter counts and resolved hyperparameters (needs `model`).
    Model,
    /// A table of a model's parameters: name, shape, count (needs `model`).
    Summary,
    /// Versions, platform, backends and devices.
    Environment,
    /// Every registered model target with its description and hyperparameters (defaults and
    /// types).
    Models,
    /// Help on a `topic`: every option the tool list leaves out; without one, the topics.
    Help,
}

/// Arguments of `lightning.inspect`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectArgs {
    /// What to inspect.
    pub what: What,
    /// The model, for `what: model` and `what: summary`.
    pub model: Option<ModelSpec>,
    /// The help topic, for `what: help`.
    pub topic: Option<Topic>,
    /// Lower limits for building the model.
    ///
    /// Each at most the server's.
    pub limits: Option<LimitsArg>,
}

/// A checked `lightning.inspect` call.
#[derive(Debug)]
pub struct Request {
    subject: Subject,
    limits: Limits,
}

/// What a checked call inspects.
#[derive(Debug)]
enum Subject {
    Environment,
    Models,
    Help(Option<Topic>),
    Model(ModelSpec),
    Summary(ModelSpec),
}

/// Parses and checks `lightning.inspect` arguments against the server's `limits`.
pub(super) fn parse(arguments: &Value, limits: &Limits) -> Result<Request, String> {
    let args: InspectArgs = args::parse(arguments)?;
    if args.topic.is_some() && args.what != What::Help {
        return Err("invalid arguments: topic: `topic` goes with `what: help`".to_string());
    }
    let subject = match (args.what, args.model) {
        (What::Environment, _) => Subject::Environment,
        (What::Models, _) => Subject::Models,
        (What::Help, _) => Subject::Help(args.topic),
        (What::Model, Some(spec)) => Subject::Model(spec),
        (What::Summary, Some(spec)) => Subject::Summary(spec),
        (What::Model | What::Summary, None) => {
            return Err(
                "invalid arguments: model: `what: model` and `what: summary` need a \
                 `model` with a `_target_`"
                    .to_string(),
            );
        }
    };
    Ok(Request {
        subject,
        limits: args.limits.unwrap_or_default().apply(limits, false)?,
    })
}

pub(super) fn definition() -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Inspect models, the environment and help",
        description: "what=models: every registered model target with its description and \
            hyperparameters (types and defaults); what=model: class, num_parameters and \
            resolved hyperparameters of a model (pass model._target_ and hyperparameters); \
            what=summary: a table of its parameters; what=environment: versions, devices, \
            usable trainer.accelerator values, directories and limits; what=help: every \
            option the other tools accept, by topic (trainer, callbacks, data, limits, \
            schedulers, checkpoints, results, runs).",
        input_schema: schema::listed::<InspectArgs>(SHOWN),
    }
}

/// The options `tools/list` shows inside `lightning.inspect`'s object arguments.
pub(super) const SHOWN: &Shown = &[("limits", &["timeout_seconds"])];

pub(super) fn run(
    runtime: &Runtime,
    runs: &Runs,
    request: Request,
    ctx: &CallContext,
) -> Result<Value, String> {
    let (spec, summary) = match request.subject {
        Subject::Environment => return Ok(environment(runtime, runs)),
        Subject::Models => return models(runtime),
        Subject::Help(topic) => return Ok(help::help(topic, limits_json(runtime.limits()))),
        Subject::Model(spec) => (spec, false),
        Subject::Summary(spec) => (spec, true),
    };
    of_model(runtime, &spec.target, |model| {
        let limits = (&request.limits, 0);
        let (_slot, instance, hyperparameters) = build_on_cpu(runtime, &model, &spec, limits, ctx)?;
        Ok(if summary {
            summary_within(runtime, &model, &instance)
        } else {
            let total = num_parameters(&instance);
            json!({
                "class": model.description.class_name,
                "target": model.description.target,
                "num_parameters": total,
                "trainable_parameters": total,
                "hyperparameters": hyperparameters,
            })
        })
    })
}

/// The `what: summary` result of `instance`: as many parameters as the result's bound holds
/// (a model may have thousands).
fn summary_within(runtime: &Runtime, model: &RegisteredModel, instance: &ModelInstance) -> Value {
    let rows = |trainable: bool| -> Vec<Row> {
        instance
            .parameters()
            .iter()
            .filter(|p| p.trainable == trainable)
            .map(|p| (p.name.clone(), p.value.shape(), p.value.num_elements()))
            .collect()
    };
    let (parameters, buffers) = (rows(true), rows(false));
    let total = num_parameters(instance);
    let budget = runtime.max_result_bytes().saturating_sub(1024);
    let mut shown = parameters.len();
    loop {
        let result = summary_result(
            &model.description.class_name,
            total,
            &parameters,
            &buffers,
            shown,
        );
        let size = super::results::json_len(&result);
        if size <= budget || shown == 0 {
            return result;
        }
        shown /= 2;
    }
}

/// A parameter's name, shape and element count.
type Row = (String, Vec<usize>, usize);

/// The `what: summary` result, its table and list holding the first `shown` parameters.
fn summary_result(
    class: &str,
    total: usize,
    parameters: &[Row],
    buffers: &[Row],
    shown: usize,
) -> Value {
    let listed = |rows: &[Row]| -> Vec<Value> {
        rows.iter()
            .map(|(name, shape, count)| json!({"name": name, "shape": shape, "count": count}))
            .collect()
    };
    let first = parameters.get(..shown).unwrap_or(parameters);
    let mut result = json!({
        "class": class,
        "num_parameters": total,
        "summary": summary_table(first, total),
        "parameters": listed(first),
    });
    if let Value::Object(object) = &mut result {
        if shown < parameters.len() {
            object.insert(
                "truncated".into(),
                json!(format!(
                    "the first {shown} of {} parameters (and no buffers), the most the \
                     result's bound (--max-result-kb) holds",
                    parameters.len()
                )),
            );
        } else {
            object.insert("buffers".into(), Value::from(listed(buffers)));
        }
    }
    result
}

/// A Lightning-style `ModelSummary` table of `rows`, with the model's `total` parameters.
fn summary_table(rows: &[Row], total: usize) -> String {
    let shape = |s: &[usize]| format!("{s:?}");
    let name_width = rows.iter().map(|r| r.0.len()).chain([4]).max().unwrap_or(4);
    let shape_width = rows
        .iter()
        .map(|r| shape(&r.1).len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let index_width = rows.len().to_string().len();
    let mut out = String::new();
    let header = format!(
        "{:>index_width$} | {:<name_width$} | {:<shape_width$} | Params",
        "", "Name", "Shape"
    );
    let rule = "-".repeat(header.len() + 2);
    let _ = writeln!(out, "{header}\n{rule}");
    for (i, (name, s, count)) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i:>index_width$} | {name:<name_width$} | {:<shape_width$} | {count}",
            shape(s)
        );
    }
    if rows.iter().map(|r| r.2).sum::<usize>() < total {
        let _ = writeln!(out, "{:>index_width$} | …", "");
    }
    let _ = write!(
        out,
        "{rule}\n{total:<10} Trainable params\n{:<10} Non-trainable params\n{total:<10} Total params",
        0
    );
    out
}

fn environment(runtime: &Runtime, runs: &Runs) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let adapters = runtime.gpu_adapters();
    let (tensor_total, tensor_reserved) = runtime.tensor_memory();
    // What each `trainer.accelerator` value would run on here.
    let accelerators: serde_json::Map<String, Value> = Accelerator::ALL
        .iter()
        .map(|a| {
            let placed = accelerator::place(*a, DeviceRequest::One, || adapters);
            let entry = match placed {
                Ok(Placement::Cpu) => json!({"usable": true, "device": "cpu"}),
                Ok(Placement::Gpu(adapter)) => json!({
                    "usable": true,
                    "device": format!("adapter {}: {}", adapter.index, adapter.name),
                }),
                Err(why) => json!({"usable": false, "reason": why}),
            };
            (a.name().to_string(), entry)
        })
        .collect();
    let usable = |a: Accelerator| {
        accelerators
            .get(a.name())
            .and_then(|entry| entry.get("usable"))
            == Some(&json!(true))
    };
    json!({
        "lightning_mcp": env!("CARGO_PKG_VERSION"),
        "wasmtime": env!("LIGHTNING_MCP_WASMTIME_VERSION"),
        "burn": env!("LIGHTNING_MCP_BURN_VERSION"),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": cpus,
        "backends": [
            {
                "name": "flex",
                "accelerator": "cpu",
                "available": true,
                "devices": [{"index": 0, "name": "cpu", "type": "Cpu", "threads": cpus}],
            },
            wgpu_backend(adapters),
        ],
        "accelerators": accelerators,
        "cuda_available": usable(Accelerator::Cuda),
        "mps_available": usable(Accelerator::Mps),
        "gpu_adapters": match adapters {
            Adapters::Found(found) => json!({"available": true, "adapters": found}),
            Adapters::Unavailable(why) => json!({"available": false, "reason": why}),
        },
        "limits": limits_json(runtime.limits()),
        "max_result_bytes": runtime.max_result_bytes(),
        "uploads": runtime.uploads().map(|u| json!({
            "max_bytes": u.max_bytes,
            "max_models": u.max_models,
        })),
        "data_dir": runtime.data_dir().root().display().to_string(),
        "checkpoint_dir": runtime.checkpoint_dir().root().display().to_string(),
        "component_cache": runtime.cache().dir().map(|d| d.display().to_string()),
        "runs_in_progress": runtime.runs_in_progress(),
        "run_store": runs.describe(),
        "tensor_memory_mib": {
            "total": tensor_total >> 20,
            "reserved": tensor_reserved >> 20,
        },
        "model_instances_alive": crate::sandbox::live_instances(),
    })
}

/// The wgpu backend's entry in `backends`: the adapters Burn can run on.
fn wgpu_backend(adapters: &Adapters) -> Value {
    match adapters {
        Adapters::Found(found) => json!({
            "name": "wgpu",
            "accelerator": "gpu",
            "available": found.iter().any(|a| a.burn_device.is_some()),
            "devices": found
                .iter()
                .filter(|a| a.burn_device.is_some())
                .map(|a| json!({
                    "index": a.index,
                    "name": a.name,
                    "type": a.device_type,
                    "graphics_api": a.backend,
                }))
                .collect::<Vec<_>>(),
        }),
        Adapters::Unavailable(why) => json!({
            "name": "wgpu",
            "accelerator": "gpu",
            "available": false,
            "devices": [],
            "reason": why,
        }),
    }
}

fn models(runtime: &Runtime) -> Result<Value, String> {
    let (models, rejected) = runtime.models()?;
    let models: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({
                "target": m.description.target,
                "class": m.description.class_name,
                "description": m.description.summary,
                "hyperparameters": m.description.hyperparameters,
                "hyperparameter_types": json_types(&m.description.hyperparameters),
                "source": m.source.to_string(),
                "sha256": m.sha256,
            })
        })
        .collect();
    let rejected: Vec<Value> = rejected
        .iter()
        .map(|r| json!({"path": r.path.display().to_string(), "error": r.error}))
        .collect();
    Ok(json!({ "count": models.len(), "models": models, "rejected": rejected }))
}

/// The JSON type of each hyperparameter, as its default shows it (`optional` for a `null`
/// default: absent unless given).
fn json_types(defaults: &Value) -> Value {
    let types: serde_json::Map<String, Value> = defaults
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, default)| {
            let kind = match default {
                Value::Null => "optional",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            (name.clone(), Value::from(kind))
        })
        .collect();
    Value::Object(types)
}

/// The server's run limits under the names a request's `limits` uses.
fn limits_json(limits: &Limits) -> Value {
    let mut shown = serde_json::Map::new();
    let timeouts = json!({
        "call": limits.call_timeout.as_secs_f64(),
        "train": limits.train_timeout.as_secs_f64(),
    });
    shown.insert("timeout_seconds".into(), timeouts);
    for limit in &NAMED_LIMITS {
        shown.insert(limit.name.into(), json!(limit.value(limits)));
    }
    Value::Object(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_cut_short_says_so_and_keeps_the_totals() {
        let rows: Vec<Row> = (0..10)
            .map(|i| (format!("layers.{i}.weight"), vec![4, 4], 16))
            .collect();
        let whole = summary_result("Big", 160, &rows, &[], 10);
        assert!(whole.get("truncated").is_none());
        assert_eq!(whole.get("buffers"), Some(&json!([])));
        let cut = summary_result("Big", 160, &rows, &[], 3);
        assert_eq!(
            cut.get("parameters")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(3)
        );
        let table = cut
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            table.contains("| …") && table.contains("160        Total params"),
            "{table}"
        );
        let note = cut
            .get("truncated")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(note.contains("the first 3 of 10 parameters"), "{note}");
    }
}
