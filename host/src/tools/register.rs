//! `lightning.register`: uploads a model, a component (base64) or a Python module that the
//! server builds into one, and registers it under the target it declares. Offered only when
//! the server runs with `--allow-register`.

use super::args;
use super::bounds::Bounds;
use super::schema;
use crate::protocol::{CallContext, ToolDefinition};
use crate::python_build::PythonBuild;
use crate::runs::{KeptUpload, Runs};
use crate::runtime::{Runtime, UploadLimits};
use crate::sandbox::{Insertion, RegisteredModel};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// The tool's name.
pub const NAME: &str = "lightning.register";

/// Arguments of `lightning.register`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterArgs {
    /// A component (.wasm), base64.
    pub component: Option<String>,
    /// Or a Python module's source (lightning.inspect help python).
    pub python: Option<String>,
    /// Replace a model uploaded earlier under the same target (default false). Built-in
    /// models and models from the models directory are never replaced.
    #[serde(default)]
    pub replace: bool,
}

/// A checked `lightning.register` call.
#[derive(Debug)]
pub struct Request {
    upload: Upload,
    replace: bool,
}

/// What a `lightning.register` call uploads.
#[derive(Debug)]
enum Upload {
    /// A component, decoded.
    Component(Vec<u8>),
    /// A Python module's source, to build.
    Python(String),
}

/// What a successful `lightning.register` returns.
#[derive(Debug, Serialize)]
pub struct RegisterOutput {
    /// `registered` (new target), `replaced` (an earlier upload replaced) or `unchanged`
    /// (this component was registered already).
    pub status: &'static str,
    /// The target to train it with (`model._target_`).
    pub target: String,
    /// The model's class name.
    pub class: String,
    /// Its description.
    pub description: String,
    /// Its default hyperparameters.
    pub hyperparameters: Map<String, Value>,
    /// `upload`.
    pub source: String,
    /// Hex SHA-256 of the component.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size_bytes: usize,
    /// How long building the Python source took, in milliseconds (Python uploads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<u64>,
}

pub(super) fn definition(uploads: UploadLimits) -> ToolDefinition {
    ToolDefinition {
        name: NAME,
        title: "Register a model",
        description: "Uploads a model: a WebAssembly component of world \
            lightning:model/model@0.5.0, or a Python module the server builds into one. It \
            is checked, compiled and registered under the target its `describe` declares, \
            for lightning.train and inspect. A taken target is refused; `replace: true` \
            replaces an earlier upload. Uploads run in the same sandbox and limits as every \
            model, and are kept across restarts.",
        input_schema: upload_schema(uploads),
    }
}

/// The input schema, with the size limit on `component`.
fn upload_schema(uploads: UploadLimits) -> Value {
    let mut schema = schema::listed::<RegisterArgs>(&[]);
    if let Some(component) = schema.pointer_mut("/properties/component")
        && let Some(object) = component.as_object_mut()
    {
        object.insert(
            "maxLength".into(),
            Value::from(base64_len(uploads.max_bytes)),
        );
    }
    schema
}

/// Length of the padded base64 of `bytes` bytes.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3).saturating_mul(4)
}

/// Parses `lightning.register` arguments: the base64's length is checked before it is
/// decoded, and the decoded size after.
pub(super) fn parse(arguments: &Value, uploads: UploadLimits) -> Result<Request, String> {
    let bounds = Bounds {
        max_string: base64_len(uploads.max_bytes).max(Bounds::ARGUMENTS.max_string),
        ..Bounds::ARGUMENTS
    };
    let args: RegisterArgs = args::parse_within(arguments, &bounds).map_err(|e| {
        if e.contains("component: a string of") {
            format!(
                "{e} (the base64 of a {} byte upload limit, --max-register-bytes)",
                uploads.max_bytes
            )
        } else {
            e
        }
    })?;
    let upload = match (args.component, args.python) {
        (Some(component), None) => Upload::Component(decode(&component, uploads)?),
        (None, Some(python)) => Upload::Python(python),
        (Some(_), Some(_)) | (None, None) => {
            return Err(
                "invalid arguments: pass either `component` (a built component, \
                 base64) or `python` (a model module's source), exactly one"
                    .into(),
            );
        }
    };
    Ok(Request {
        upload,
        replace: args.replace,
    })
}

/// Decodes a base64 component within the upload limit.
fn decode(component: &str, uploads: UploadLimits) -> Result<Vec<u8>, String> {
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(component.trim())
        .map_err(|e| format!("invalid arguments: component: not base64: {e}"))?;
    if wasm.len() > uploads.max_bytes {
        return Err(format!(
            "invalid arguments: component: {} bytes, above the upload limit of {} bytes \
             (--max-register-bytes)",
            wasm.len(),
            uploads.max_bytes
        ));
    }
    Ok(wasm)
}

/// Registers the upload and keeps it in the run store, so that it is registered again when
/// the server restarts (and the runs that use it resume). Python source that was built before
/// and is still registered is not built again.
pub(super) fn run(
    runtime: &Runtime,
    runs: &Runs,
    request: Request,
    ctx: &CallContext,
) -> Result<Value, String> {
    let built_from = match &request.upload {
        Upload::Component(_) => None,
        Upload::Python(source) => Some(PythonBuild::key(source)),
    };
    if let Some(model) = built_from
        .as_deref()
        .map(|key| built_before(runtime, runs, key))
        .transpose()?
        .flatten()
    {
        return output(&model, Insertion::Unchanged, None);
    }
    // Building and compiling take CPU like a run does: they wait for nothing, but count as one.
    let _slot = runtime
        .run_slot(runtime.limits(), ctx.cancel_token())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let wasm = match request.upload {
        Upload::Component(wasm) => wasm,
        Upload::Python(source) => runtime
            .python_build()
            .build(&source, ctx.cancel_token())
            .map_err(|e| format!("the Python model was not built: {e}"))?,
    };
    let build_ms = built_from
        .is_some()
        .then(|| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    let (model, insertion) = runtime
        .register_upload(&wasm, request.replace)
        .map_err(|e| format!("the component was not registered: {e}"))?;
    if insertion != Insertion::Unchanged {
        let kept = KeptUpload {
            sha256: &model.sha256,
            target: &model.description.target,
            wasm: &wasm,
            built_from: built_from.as_deref(),
        };
        runs.keep_upload(&kept)
            .map_err(|e| format!("registered, but not kept for a restart: {e}"))?;
    }
    tracing::info!(
        target = model.description.target,
        sha256 = model.sha256,
        ?insertion,
        "model uploaded"
    );
    output(&model, insertion, build_ms)
}

/// The model built from `key` before, if it is still registered.
fn built_before(
    runtime: &Runtime,
    runs: &Runs,
    key: &str,
) -> Result<Option<Arc<RegisteredModel>>, String> {
    let Some(sha256) = runs
        .built_upload(key)
        .map_err(|e| format!("cannot read the run store: {e}"))?
    else {
        return Ok(None);
    };
    runtime.registered_upload(&sha256)
}

/// The result for `model`, registered as `insertion` says.
fn output(
    model: &RegisteredModel,
    insertion: Insertion,
    build_ms: Option<u64>,
) -> Result<Value, String> {
    let hyperparameters = match &model.description.hyperparameters {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let output = RegisterOutput {
        status: match insertion {
            Insertion::Added => "registered",
            Insertion::Replaced => "replaced",
            Insertion::Unchanged => "unchanged",
        },
        target: model.description.target.clone(),
        class: model.description.class_name.clone(),
        description: model.description.summary.clone(),
        hyperparameters,
        source: model.source.to_string(),
        sha256: model.sha256.clone(),
        size_bytes: model.upload.as_ref().map_or(0, |wasm| wasm.len()),
        build_ms,
    };
    serde_json::to_value(output).map_err(|e| format!("cannot write the result: {e}"))
}
