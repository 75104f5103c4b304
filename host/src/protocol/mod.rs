//! The MCP server over JSON-RPC 2.0, independent of transport and of what the tools do.
//!
//! A transport opens a [`Session`] per client (a stdio connection, an HTTP session, or one
//! stateless HTTP request), hands it each message with [`Session::receive`] in arrival order,
//! and runs what it received with [`Received::run`], forwarding the notifications a request
//! sends (progress, log messages) before its reply. The session answers the lifecycle
//! methods of every version from 2024-11-05 to the stateless 2026-07-28 itself and hands
//! `tools/call` — and the legacy form, where the tool name is the method and there is no
//! `jsonrpc` field — to a [`ToolProvider`]. Three kinds of failure stay apart: a protocol
//! error is a JSON-RPC `error`; a tool's bad arguments or failed run is a result with
//! `isError: true`.

mod context;
mod dispatch;
mod jsonrpc;
mod session;
mod tasks;
mod version;

pub use context::{CallContext, CallObserver, LogLevel, Notify, POINT_METHOD};
pub use jsonrpc::{ErrorCode, Reply, Request, RpcError, echo_id};
pub use session::{Received, Session};
pub use tasks::{TaskError, TaskInfo, TaskStatus, TaskStore, TaskSupport};
pub use version::{
    DEFAULT_VERSION, META_PROTOCOL_VERSION, STATELESS_VERSION, SUPPORTED_VERSIONS, is_stateless,
    supported, unsupported,
};

use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// A tool as `tools/list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolDefinition {
    /// Unique name, e.g. `lightning.train`.
    pub name: &'static str,
    /// Human-readable title.
    pub title: &'static str,
    /// What the tool does, for the agent choosing it.
    pub description: &'static str,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
}

/// The outcome of a tool call: structured figures (and perhaps images), or an error an agent
/// can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct CallToolResult {
    /// The result object (`structuredContent`).
    pub structured: Value,
    /// Images after the text content.
    pub images: Vec<Image>,
    /// Whether the call failed.
    pub is_error: bool,
}

/// An image a tool returns (MCP `ImageContent`).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// The encoded image.
    pub data: Vec<u8>,
    /// Its MIME type, e.g. `image/png`.
    pub mime_type: &'static str,
}

impl CallToolResult {
    /// A successful result.
    pub fn success(structured: Value) -> Self {
        Self {
            structured,
            images: Vec::new(),
            is_error: false,
        }
    }

    /// The message of a failed call (its `error`), if it has one.
    pub fn error_message(&self) -> Option<&str> {
        self.structured.get("error").and_then(Value::as_str)
    }

    /// A successful result of plain text, without structured content.
    pub fn text(text: impl Into<String>) -> Self {
        Self::success(Value::String(text.into()))
    }

    /// A failed call: `{"status": "failed", "error": message}`.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            structured: json!({ "status": "failed", "error": message.into() }),
            images: Vec::new(),
            is_error: true,
        }
    }

    /// This result with `image` after its text.
    pub fn with_image(mut self, image: Image) -> Self {
        self.images.push(image);
        self
    }

    /// The result whose MCP `CallToolResult` object is `json` (as [`Self::to_json`] wrote
    /// it); `None` when it is not one.
    pub fn from_json(json: &Value) -> Option<Self> {
        use base64::Engine as _;
        let structured = match json.get("structuredContent") {
            Some(structured) => structured.clone(),
            None => json.pointer("/content/0/text")?.clone(),
        };
        let is_error = json
            .get("isError")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let images = json
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c["type"] == "image" && c["mimeType"] == "image/png")
            .filter_map(|c| c["data"].as_str())
            .filter_map(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
            .map(|data| Image {
                data,
                mime_type: "image/png",
            })
            .collect();
        Some(Self {
            structured,
            images,
            is_error,
        })
    }

    /// The MCP `CallToolResult` object: the structured content as JSON text, then the
    /// images, base64-encoded.
    pub fn to_json(&self) -> Value {
        use base64::Engine as _;
        // Plain text (see [`Self::text`]) has no structured content.
        if let Value::String(text) = &self.structured {
            return json!({
                "content": [{ "type": "text", "text": text }],
                "isError": self.is_error,
            });
        }
        let text = serde_json::to_string_pretty(&self.structured).unwrap_or_default();
        let mut content = vec![json!({ "type": "text", "text": text })];
        content.extend(self.images.iter().map(|image| {
            json!({
                "type": "image",
                "data": base64::engine::general_purpose::STANDARD.encode(&image.data),
                "mimeType": image.mime_type,
            })
        }));
        json!({
            "content": content,
            "structuredContent": self.structured,
            "isError": self.is_error,
        })
    }
}

/// The tools a server offers.
pub trait ToolProvider: Send + Sync {
    /// Every tool, in the order `tools/list` shows them.
    fn tools(&self) -> Vec<ToolDefinition>;
    /// Every tool's name, in the same order; a provider whose schemas take time to build
    /// answers this without building them.
    fn names(&self) -> Vec<&'static str> {
        self.tools().iter().map(|t| t.name).collect()
    }
    /// Runs tool `name` with `arguments`, reporting through `ctx`; `None` when there is no
    /// such tool.
    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult>;
    /// Why tool `name`, which this server has but does not offer as configured, is off, and
    /// how to turn it on; `None` for every other name.
    fn off_because(&self, _name: &str) -> Option<&'static str> {
        None
    }
    /// Whether tool `name` may, must or must not run as a task (`execution.taskSupport`).
    fn task_support(&self, _name: &str) -> TaskSupport {
        TaskSupport::Forbidden
    }
    /// Starts tool call `name` as a task kept for `ttl` (at most): the task once durably
    /// created, or the result of a call refused before it became one (bad arguments, a full
    /// queue). Only for tools whose definition has task support.
    fn start_task(
        &self,
        name: &str,
        _arguments: Value,
        _ttl: Option<std::time::Duration>,
    ) -> Result<TaskInfo, CallToolResult> {
        Err(CallToolResult::error(format!(
            "{name} does not run as a task"
        )))
    }
    /// Where the tasks it starts are kept; `None` for a provider without tasks.
    fn task_store(&self) -> Option<&dyn TaskStore> {
        None
    }
}

/// Name and version reported to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server name.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Guidance for the agent using the server.
    pub instructions: &'static str,
}

/// The transport-independent MCP server: what every session shares.
#[derive(Clone)]
pub struct Server {
    info: ServerInfo,
    tools: Arc<dyn ToolProvider>,
    names: Arc<[&'static str]>,
    /// The `tools/list` result of the stateful and of the stateless era, built and written
    /// on the first `tools/list` (not at start-up: building the schemas takes milliseconds
    /// that `initialize` need not wait for), then served as is: the tools never change while
    /// the server runs.
    tool_lists: Arc<OnceLock<[Arc<str>; 2]>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server offering `tools`.
    pub fn new(info: ServerInfo, tools: Arc<dyn ToolProvider>) -> Self {
        Self {
            info,
            names: tools.names().into(),
            tools,
            tool_lists: Arc::new(OnceLock::new()),
        }
    }

    /// A new session, speaking [`DEFAULT_VERSION`] until `initialize` negotiates another.
    pub fn session(&self) -> Arc<Session> {
        Session::new(self.clone(), DEFAULT_VERSION)
    }

    /// Name, version and instructions.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// Why a tool this server has is off as configured (see [`ToolProvider::off_because`]).
    fn off_because(&self, name: &str) -> Option<&'static str> {
        self.tools.off_because(name)
    }

    fn instructions(&self) -> &'static str {
        self.info.instructions
    }

    /// The tool names, in `tools/list` order.
    pub fn tool_names(&self) -> Vec<&'static str> {
        self.names.to_vec()
    }

    /// The tool a legacy-form method names: its name (`lightning.train`) or the Python
    /// project's spelling with a slash (`lightning/train`).
    pub(crate) fn tool_for_method(&self, method: &str) -> Option<&'static str> {
        self.names.iter().copied().find(|name| {
            name.len() == method.len()
                && name
                    .bytes()
                    .zip(method.bytes())
                    .all(|(n, m)| n == m || (n == b'.' && m == b'/'))
        })
    }

    fn call(&self, name: &str, arguments: Value, ctx: &CallContext) -> Option<CallToolResult> {
        self.tools.call(name, arguments, ctx)
    }

    /// Whether tool `name` may, must or must not run as a task.
    fn task_support(&self, name: &str) -> TaskSupport {
        self.tools.task_support(name)
    }

    fn start_task(
        &self,
        name: &str,
        arguments: Value,
        ttl: Option<std::time::Duration>,
    ) -> Result<TaskInfo, CallToolResult> {
        self.tools.start_task(name, arguments, ttl)
    }

    /// Where the tasks are kept (a store with none when the tools start no tasks).
    fn task_store(&self) -> &dyn TaskStore {
        self.tools.task_store().unwrap_or(&tasks::NoTasks)
    }

    fn tool_list(&self, stateless: bool) -> Arc<str> {
        let [stateful, stateless_list] = self.tool_lists.get_or_init(|| {
            let list = tool_list(&self.tools.tools(), |name| self.tools.task_support(name));
            let stateless = dispatch::finish(
                dispatch::cached(list.clone(), true),
                STATELESS_VERSION,
                &self.info,
            );
            [&list, &stateless].map(|v| Arc::from(v.to_string()))
        });
        if stateless {
            stateless_list.clone()
        } else {
            stateful.clone()
        }
    }
}

/// The `tools/list` result for `definitions`, with each one's `execution.taskSupport` as
/// `tasks` says (left out when forbidden, the default).
fn tool_list(definitions: &[ToolDefinition], tasks: impl Fn(&str) -> TaskSupport) -> Value {
    let tools: Vec<Value> = definitions
        .iter()
        .map(|t| {
            let mut tool = json!({
                "name": t.name,
                "title": t.title,
                "description": t.description,
                "inputSchema": t.input_schema,
            });
            if let (Some(support), Value::Object(fields)) = (tasks(t.name).listed(), &mut tool) {
                fields.insert("execution".into(), json!({ "taskSupport": support }));
            }
            tool
        })
        .collect();
    json!({ "tools": tools })
}
