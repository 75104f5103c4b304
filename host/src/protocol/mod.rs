//! The MCP server over JSON-RPC 2.0, independent of transport and of what the tools do.
//!
//! [`Server::handle_text`] takes one message (a stdio line, an HTTP body) and returns the
//! reply, if any. It answers the lifecycle methods itself and hands `tools/call` — and the
//! legacy form, where the tool name is the method and there is no `jsonrpc` field — to a
//! [`ToolProvider`]. Three kinds of failure stay apart: a protocol error is a JSON-RPC
//! `error`; a tool's bad arguments or failed run is a result with `isError: true`.

mod jsonrpc;

pub use jsonrpc::{ErrorCode, Request, RpcError};

use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Protocol versions this server speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The version a client that names none gets.
pub const DEFAULT_VERSION: &str = "2024-11-05";

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

/// The outcome of a tool call: structured figures, or an error an agent can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct CallToolResult {
    /// The result object (`structuredContent`).
    pub structured: Value,
    /// Whether the call failed.
    pub is_error: bool,
}

impl CallToolResult {
    /// A successful result.
    pub fn success(structured: Value) -> Self {
        Self {
            structured,
            is_error: false,
        }
    }

    /// A failed call: `{"status": "failed", "error": message}`.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            structured: json!({ "status": "failed", "error": message.into() }),
            is_error: true,
        }
    }

    /// The MCP `CallToolResult` object; the text content is the structured content as JSON.
    pub fn to_json(&self) -> Value {
        let text = serde_json::to_string_pretty(&self.structured).unwrap_or_default();
        json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": self.structured,
            "isError": self.is_error,
        })
    }
}

/// The tools a server offers.
pub trait ToolProvider: Send + Sync {
    /// Every tool, in the order `tools/list` shows them.
    fn tools(&self) -> Vec<ToolDefinition>;
    /// Runs tool `name` with `arguments`; `None` when there is no such tool.
    fn call(&self, name: &str, arguments: Value) -> Option<CallToolResult>;
}

/// Name and version reported in `initialize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server name.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
}

/// The transport-independent MCP server.
#[derive(Clone)]
pub struct Server {
    info: ServerInfo,
    tools: Arc<dyn ToolProvider>,
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
        Self { info, tools }
    }

    /// Handles one message (a request, a notification or a batch of them) and returns the
    /// reply to send, if any.
    pub fn handle_text(&self, text: &str) -> Option<String> {
        let reply = match serde_json::from_str::<Value>(text) {
            Ok(message) => self.handle(message),
            Err(e) => Some(jsonrpc::error(
                Value::Null,
                &RpcError::new(ErrorCode::ParseError, format!("Parse error: {e}")),
            )),
        };
        reply.map(|r| r.to_string())
    }

    /// Handles one parsed message.
    pub fn handle(&self, message: Value) -> Option<Value> {
        match message {
            Value::Array(batch) if batch.is_empty() => Some(jsonrpc::error(
                Value::Null,
                &RpcError::new(ErrorCode::InvalidRequest, "an empty batch is not a request"),
            )),
            Value::Array(batch) => {
                let replies: Vec<Value> = batch
                    .into_iter()
                    .filter_map(|m| self.handle_one(m))
                    .collect();
                (!replies.is_empty()).then_some(Value::Array(replies))
            }
            message => self.handle_one(message),
        }
    }

    fn handle_one(&self, message: Value) -> Option<Value> {
        if is_response(&message) {
            return None;
        }
        let request = match Request::parse(message) {
            Ok(request) => request,
            Err((id, e)) => return Some(jsonrpc::error(id, &e)),
        };
        // A bug in a handler must not leave the client waiting for a reply that never comes.
        let outcome =
            catch_unwind(AssertUnwindSafe(|| self.dispatch(&request))).unwrap_or_else(|_| {
                tracing::error!(method = %request.method, "request handler panicked");
                Err(RpcError::new(
                    ErrorCode::InternalError,
                    format!("internal error while handling {}", request.method),
                ))
            });
        let id = request.id?;
        Some(match outcome {
            Ok(result) => jsonrpc::result(id, result),
            Err(e) => jsonrpc::error(id, &e),
        })
    }

    fn dispatch(&self, request: &Request) -> Result<Value, RpcError> {
        if request.params.is_array() {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                "params must be an object; positional params are not supported",
            ));
        }
        match request.method.as_str() {
            "initialize" => self.initialize(request),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(self.list_tools()),
            "tools/call" => self.call_tool(request),
            method if method.starts_with("notifications/") => Ok(Value::Null),
            // The legacy form: the tool name as the method, params as the arguments.
            method if !request.is_jsonrpc || self.has_tool(method) => {
                let arguments = if request.params.is_null() {
                    json!({})
                } else {
                    request.params.clone()
                };
                self.tools
                    .call(method, arguments)
                    .map(|r| r.to_json())
                    .ok_or_else(|| unknown_method(method))
            }
            method => Err(unknown_method(method)),
        }
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools.tools().iter().any(|t| t.name == name)
    }

    fn initialize(&self, request: &Request) -> Result<Value, RpcError> {
        let params = request.params_object();
        let version = match params.get("protocolVersion") {
            None | Some(Value::Null) => DEFAULT_VERSION,
            Some(Value::String(asked)) => SUPPORTED_VERSIONS
                .iter()
                .find(|v| *v == asked)
                .or(SUPPORTED_VERSIONS.last())
                .copied()
                .unwrap_or(DEFAULT_VERSION),
            Some(other) => {
                return Err(RpcError::new(
                    ErrorCode::InvalidParams,
                    format!("protocolVersion must be a string, got {other}"),
                ));
            }
        };
        Ok(json!({
            "protocolVersion": version,
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": self.info.name, "version": self.info.version },
            "instructions": "Train, evaluate and inspect neural-network models that run sandboxed \
                as WebAssembly components. Start with lightning.inspect {\"what\": \"models\"} to \
                see the registered model targets.",
        }))
    }

    fn list_tools(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .tools()
            .into_iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                })
            })
            .collect();
        json!({ "tools": tools })
    }

    fn call_tool(&self, request: &Request) -> Result<Value, RpcError> {
        let params = request.params_object();
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
        self.tools
            .call(name, arguments)
            .map(|r| r.to_json())
            .ok_or_else(|| {
                let names: Vec<&str> = self.tools.tools().iter().map(|t| t.name).collect();
                RpcError::new(
                    ErrorCode::InvalidParams,
                    format!(
                        "Unknown tool: {name}; available tools: {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// A message that carries `result` or `error` but no `method` is a client's reply; the server
/// sends no requests, so it is ignored.
fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

fn unknown_method(method: &str) -> RpcError {
    RpcError::new(
        ErrorCode::MethodNotFound,
        format!("Unknown method '{method}'"),
    )
}
