//! The MCP methods: lifecycle, discovery, logging, tools, and the legacy form.

use super::ServerInfo;
use super::context::{LogLevel, Notify};
use super::jsonrpc::{ErrorCode, RpcError};
use super::session::{Pending, Session};
use super::tasks::{self, Generation};
use super::version::{self, META_SERVER_INFO, SUPPORTED_VERSIONS};
use serde_json::{Value, json};
use std::sync::Arc;

/// How long a stateless client may cache `server/discover` and `tools/list` (the tool list
/// never changes while the server runs).
const LIST_TTL_MS: u64 = 3_600_000;

/// What a request answers: a result built for it, or one shared by every request.
pub(super) enum Answer {
    /// A result of this request, to be completed for its version with [`finish`].
    Fresh(Value),
    /// A complete result built and written once (the tool list).
    Shared(Arc<str>),
}

/// Runs one request.
pub(super) fn dispatch(pending: &Pending, notify: Notify<'_>) -> Result<Answer, RpcError> {
    let stateless = version::is_stateless(pending.version);
    if pending.request.method == "tools/list" {
        return Ok(Answer::Shared(
            pending.session.server().tool_list(stateless),
        ));
    }
    method(pending, notify, stateless).map(Answer::Fresh)
}

fn method(pending: &Pending, notify: Notify<'_>, stateless: bool) -> Result<Value, RpcError> {
    let request = &pending.request;
    let server = pending.session.server();
    match request.method.as_str() {
        "server/discover" => Ok(discover(&pending.session)),
        "initialize" if !stateless => initialize(pending),
        "ping" if !stateless => Ok(json!({})),
        "logging/setLevel" if !stateless => set_level(pending),
        "tools/call" => call_tool(pending, notify),
        method
            if method.starts_with("tasks/")
                && let Some(answer) = tasks::method(pending, Generation::of(pending), notify) =>
        {
            answer
        }
        // The legacy form: the tool name as the method (`lightning.train`, or
        // `lightning/train` as the Python project's examples write it), params as arguments.
        method => match server.tool_for_method(method) {
            Some(tool) => {
                let arguments = match &request.params {
                    Value::Null => json!({}),
                    params => without_meta(params),
                };
                let ctx = pending.context(notify);
                server
                    .call(tool, arguments, &ctx)
                    .map(|r| r.to_json())
                    .ok_or_else(|| {
                        RpcError::new(
                            ErrorCode::InternalError,
                            format!("tool {tool} is listed but not provided"),
                        )
                    })
            }
            _ => Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!(
                    "Unknown method '{method}'{}",
                    if stateless {
                        format!(" in protocol version {}", pending.version)
                    } else {
                        String::new()
                    }
                ),
            )),
        },
    }
}

/// Completes a result for the version it is answered in: stateless results say
/// `resultType` and name the server.
pub(super) fn finish(mut result: Value, version: &str, info: &ServerInfo) -> Value {
    if version::is_stateless(version)
        && let Value::Object(fields) = &mut result
    {
        // A task's creation says `resultType: "task"` itself.
        fields
            .entry("resultType")
            .or_insert_with(|| json!("complete"));
        let meta = fields.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(
                META_SERVER_INFO.into(),
                json!({ "name": info.name, "version": info.version }),
            );
        }
    }
    result
}

/// Adds the stateless era's caching hints to a list result.
pub(super) fn cached(mut result: Value, stateless: bool) -> Value {
    if stateless && let Value::Object(fields) = &mut result {
        fields.insert("ttlMs".into(), json!(LIST_TTL_MS));
        fields.insert("cacheScope".into(), json!("public"));
    }
    result
}

/// The server's capabilities in `version`: Tasks version 1 in 2025-11-25, the Tasks
/// extension in the stateless era.
fn capabilities(version: &str) -> Value {
    let mut capabilities = json!({ "tools": { "listChanged": false }, "logging": {} });
    if version == tasks::V1_VERSION
        && let Value::Object(fields) = &mut capabilities
    {
        fields.insert("tasks".into(), tasks::v1_capability());
    }
    if version::is_stateless(version) {
        tasks::advertise_extension(&mut capabilities);
    }
    capabilities
}

fn discover(session: &Session) -> Value {
    let result = json!({
        "supportedVersions": SUPPORTED_VERSIONS,
        "capabilities": capabilities(version::STATELESS_VERSION),
        "instructions": session.server().instructions(),
    });
    cached(result, true)
}

fn initialize(pending: &Pending) -> Result<Value, RpcError> {
    let asked = match pending.request.params.get("protocolVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(asked)) => Some(asked.as_str()),
        Some(other) => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("protocolVersion must be a string, got {other}"),
            ));
        }
    };
    let version = version::negotiate(asked);
    pending.session.set_version(version);
    let server = pending.session.server();
    let info = server.info();
    Ok(json!({
        "protocolVersion": version,
        "capabilities": capabilities(version),
        "serverInfo": { "name": info.name, "version": info.version },
        "instructions": server.instructions(),
    }))
}

fn set_level(pending: &Pending) -> Result<Value, RpcError> {
    let level = pending
        .request
        .params
        .get("level")
        .cloned()
        .unwrap_or_default();
    let level = LogLevel::parse(&level, "logging/setLevel params.level")?;
    pending.session.set_log_level(level);
    Ok(json!({}))
}

fn call_tool(pending: &Pending, notify: Notify<'_>) -> Result<Value, RpcError> {
    let params = &pending.request.params;
    let server = pending.session.server();
    let name = match params.get("name") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("tools/call params.name must be a string, got {other}"),
            ));
        }
        None => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                "tools/call needs params.name",
            ));
        }
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(args @ Value::Object(_)) => args.clone(),
        Some(other) => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("tools/call params.arguments must be an object, got {other}"),
            ));
        }
    };
    let generation = Generation::of(pending);
    let support = server.task_support(name);
    let asked = params.get("task").is_some();
    let stateless = version::is_stateless(pending.version);
    if tasks::as_task(generation, support, asked, stateless, name)?
        && let Some(generation) = generation
    {
        return tasks::create(pending, generation, name, arguments);
    }
    let ctx = pending.context(notify);
    server
        .call(name, arguments, &ctx)
        .map(|r| r.to_json())
        .ok_or_else(|| {
            let message = match server.off_because(name) {
                Some(why) => format!("{name} is off on this server: {why}"),
                None => format!("Unknown tool: {name}"),
            };
            RpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "{message}; available tools: {}",
                    server.tool_names().join(", ")
                ),
            )
        })
}

/// The legacy form's params as tool arguments: everything but `_meta`.
fn without_meta(params: &Value) -> Value {
    let mut arguments = params.clone();
    if let Value::Object(fields) = &mut arguments {
        fields.remove("_meta");
    }
    arguments
}
