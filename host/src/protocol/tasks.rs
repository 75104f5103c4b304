//! MCP Tasks: a tool call that answers at once with a task, polled until it ends.
//!
//! Two generations, chosen per request:
//! - **version 1** (spec 2025-11-25, negotiated by `initialize`): the server declares the
//!   `tasks` capability and `execution.taskSupport` per tool; the client asks with
//!   `params.task` (`ttl`) and gets a `CreateTaskResult` (`task`); `tasks/get`,
//!   `tasks/result` (blocks until the task ends), `tasks/list` and `tasks/cancel`.
//! - **the extension** `io.modelcontextprotocol/tasks` (2026-07-28, stateless): a client
//!   declares it in each request's capabilities and the server decides — here, every call
//!   that runs a model — answering `resultType: "task"`; `tasks/get` carries the result
//!   inline, `tasks/update` and `tasks/cancel` acknowledge; there is no `tasks/result` or
//!   `tasks/list`. A tool error ends `completed` with `isError`.
//!
//! The tasks themselves belong to the [`ToolProvider`](super::ToolProvider) (for these
//! tools, a task is a run), so they outlive the request, the connection and the server.

use super::CallToolResult;
use super::context::Notify;
use super::jsonrpc::{ErrorCode, RpcError};
use super::session::Pending;
use super::version::is_stateless;
use crate::cancel::CancelToken;
use serde_json::{Value, json};
use std::time::Duration;

/// The extension's identifier, in capabilities.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// `_meta` key that ties a message to its task (version 1).
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// `_meta` key of the text a host may show its model while a task runs (version 1).
const IMMEDIATE_RESPONSE: &str = "io.modelcontextprotocol/model-immediate-response";

/// The version whose `initialize` negotiates Tasks version 1.
pub const V1_VERSION: &str = "2025-11-25";

/// How often a client should poll a task, in milliseconds: a training's epochs take
/// seconds.
pub const POLL_INTERVAL_MS: u64 = 1_000;

/// Most tasks one `tasks/list` page shows.
const LIST_PAGE: usize = 50;

/// Whether a tool runs as a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSupport {
    /// Never (the default).
    Forbidden,
    /// When the client asks (version 1) or the server decides (the extension).
    Optional,
    /// Always: a call that cannot be a task is refused.
    Required,
}

impl TaskSupport {
    /// `execution.taskSupport` as `tools/list` shows it; `None` for the default.
    pub fn listed(self) -> Option<&'static str> {
        match self {
            Self::Forbidden => None,
            Self::Optional => Some("optional"),
            Self::Required => Some("required"),
        }
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Queued or running.
    Working,
    /// Ended with a result.
    Completed,
    /// Ended with an error (a tool error, or no result at all).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A task as its provider reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// The task's id.
    pub id: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// What the status means (progress, the error).
    pub message: Option<String>,
    /// ISO 8601 time of its creation.
    pub created_at: String,
    /// ISO 8601 time of its last change.
    pub updated_at: String,
    /// How long after its creation it is kept, in milliseconds; `None`: until deleted.
    pub ttl_ms: Option<i64>,
    /// The tool result (MCP `CallToolResult` JSON), once it ended with one.
    pub result: Option<Value>,
}

/// Where tasks are kept: beyond the request, the connection and the server.
pub trait TaskStore: Send + Sync {
    /// Task `id`.
    fn task(&self, id: &str) -> Result<TaskInfo, TaskError>;
    /// Task `id` once it has ended, waiting for it (until `cancel` fires).
    fn wait_task(&self, id: &str, cancel: &CancelToken) -> Result<TaskInfo, TaskError>;
    /// A page of at most `limit` tasks from `cursor`, newest first, and the next cursor.
    fn tasks(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TaskInfo>, Option<String>), TaskError>;
    /// Cancels task `id`: it is `cancelled` when this returns; an ended task is an error.
    fn cancel_task(&self, id: &str) -> Result<TaskInfo, TaskError>;
}

/// The store of a server whose tools start no tasks: it has none.
pub(super) struct NoTasks;

impl TaskStore for NoTasks {
    fn task(&self, id: &str) -> Result<TaskInfo, TaskError> {
        Err(TaskError::NotFound(id.to_string()))
    }

    fn wait_task(&self, id: &str, _cancel: &CancelToken) -> Result<TaskInfo, TaskError> {
        self.task(id)
    }

    fn tasks(
        &self,
        _: Option<&str>,
        _: usize,
    ) -> Result<(Vec<TaskInfo>, Option<String>), TaskError> {
        Ok((Vec::new(), None))
    }

    fn cancel_task(&self, id: &str) -> Result<TaskInfo, TaskError> {
        self.task(id)
    }
}

/// Why a task operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No task has that id, or it expired.
    #[error("Failed to retrieve task: no task {0:?} (it never existed, expired or was deleted)")]
    NotFound(String),
    /// The task has ended.
    #[error("task {0} has already ended ({1}); only a working task can be cancelled")]
    Ended(String, &'static str),
    /// A cursor the server did not make.
    #[error("invalid cursor: {0}")]
    Cursor(String),
    /// The wait was cancelled.
    #[error("cancelled while waiting for the task")]
    Cancelled,
    /// The task store failed.
    #[error("{0}")]
    Internal(String),
}

impl From<TaskError> for RpcError {
    fn from(e: TaskError) -> Self {
        let code = match e {
            TaskError::Internal(_) | TaskError::Cancelled => ErrorCode::InternalError,
            TaskError::NotFound(_) | TaskError::Ended(..) | TaskError::Cursor(_) => {
                ErrorCode::InvalidParams
            }
        };
        RpcError::new(code, e.to_string())
    }
}

/// Which generation of Tasks a request speaks, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Generation {
    /// Version 1: the session negotiated 2025-11-25.
    V1,
    /// The extension: a stateless request whose client declared it.
    Extension,
}

impl Generation {
    /// The generation `pending` speaks.
    pub(super) fn of(pending: &Pending) -> Option<Self> {
        if pending.version == V1_VERSION {
            return Some(Self::V1);
        }
        let declared = pending
            .meta
            .client_capabilities
            .as_ref()
            .and_then(|c| c.get("extensions"))
            .and_then(|e| e.get(EXTENSION))
            .is_some();
        (is_stateless(pending.version) && declared).then_some(Self::Extension)
    }
}

/// The server's `tasks` capability of version 1.
pub(super) fn v1_capability() -> Value {
    json!({ "list": {}, "cancel": {}, "requests": { "tools": { "call": {} } } })
}

/// A task as version 1 shows it.
fn v1_task(task: &TaskInfo) -> Value {
    let mut out = json!({
        "taskId": task.id,
        "status": task.status.as_str(),
        "createdAt": task.created_at,
        "lastUpdatedAt": task.updated_at,
        "ttl": task.ttl_ms,
        "pollInterval": POLL_INTERVAL_MS,
    });
    if let (Some(message), Value::Object(fields)) = (&task.message, &mut out) {
        fields.insert("statusMessage".into(), json!(message));
    }
    out
}

/// A task as the extension shows it, without its outcome.
fn extension_task(task: &TaskInfo, status: &str) -> Value {
    let mut out = json!({
        "taskId": task.id,
        "status": status,
        "createdAt": task.created_at,
        "lastUpdatedAt": task.updated_at,
        "ttlMs": task.ttl_ms,
        "pollIntervalMs": POLL_INTERVAL_MS,
    });
    if let (Some(message), Value::Object(fields)) = (&task.message, &mut out) {
        fields.insert("statusMessage".into(), json!(message));
    }
    out
}

/// A task as the extension's `tasks/get` shows it: a tool's result (an error one too) inline
/// once completed; a task that ended without one `failed` with a JSON-RPC error.
fn extension_detailed(task: &TaskInfo) -> Value {
    let (status, outcome) = match (task.status, &task.result) {
        (TaskStatus::Completed | TaskStatus::Failed, Some(result)) => {
            let mut result = result.clone();
            if let Value::Object(fields) = &mut result {
                fields.insert("resultType".into(), json!("complete"));
            }
            ("completed", Some(("result", result)))
        }
        (TaskStatus::Completed | TaskStatus::Failed, None) => (
            "failed",
            Some((
                "error",
                json!({
                    "code": ErrorCode::InternalError.code(),
                    "message": task.message.clone().unwrap_or_else(|| "the task failed".into()),
                }),
            )),
        ),
        (status, _) => (status.as_str(), None),
    };
    let mut out = extension_task(task, status);
    if let (Some((key, value)), Value::Object(fields)) = (outcome, &mut out) {
        fields.insert(key.into(), value);
    }
    out
}

/// Answers a task-augmented `tools/call` of `name` (for the extension, one the server chose
/// to run as a task): the task, created durably, or the immediate result of a call refused
/// before it became one.
pub(super) fn create(
    pending: &Pending,
    generation: Generation,
    name: &str,
    arguments: Value,
) -> Result<Value, RpcError> {
    let server = pending.session.server();
    let params = &pending.request.params;
    if server.task_support(name) == TaskSupport::Forbidden {
        return Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!(
                "{name} does not run as a task (its execution.taskSupport is forbidden): call \
                 it without params.task"
            ),
        ));
    }
    let ttl = match params.get("task").and_then(|t| t.get("ttl")) {
        None | Some(Value::Null) => None,
        Some(ttl) => Some(ttl.as_u64().map(Duration::from_millis).ok_or_else(|| {
            RpcError::new(
                ErrorCode::InvalidParams,
                format!("params.task.ttl must be a whole number of milliseconds, got {ttl}"),
            )
        })?),
    };
    match server.start_task(name, arguments, ttl) {
        Ok(task) => Ok(match generation {
            Generation::V1 => json!({
                "task": v1_task(&task),
                "_meta": { IMMEDIATE_RESPONSE: format!(
                    "{name} runs as task {}; its result comes with tasks/result",
                    task.id
                ) },
            }),
            Generation::Extension => {
                let mut created = extension_task(&task, "working");
                if let Value::Object(fields) = &mut created {
                    fields.insert("resultType".into(), json!("task"));
                }
                created
            }
        }),
        Err(refused) => match generation {
            Generation::Extension => Ok(refused.to_json()),
            Generation::V1 => Err(RpcError::new(
                ErrorCode::InvalidParams,
                refused
                    .error_message()
                    .unwrap_or("the call was refused")
                    .to_string(),
            )),
        },
    }
}

/// The `taskId` of a `tasks/*` request.
fn task_id(pending: &Pending) -> Result<&str, RpcError> {
    match pending.request.params.get("taskId") {
        Some(Value::String(id)) => Ok(id),
        Some(other) => Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("params.taskId must be a string, got {other}"),
        )),
        None => Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("{} needs params.taskId", pending.request.method),
        )),
    }
}

/// The error for a stateless request about a task (or a tool that must run as one) from a
/// client that did not declare the extension (`-32021`, naming the capability).
pub(super) fn undeclared(what: &str) -> RpcError {
    RpcError::new(
        ErrorCode::MissingRequiredClientCapability,
        format!(
            "{what} needs the Tasks extension: declare it in \
             params._meta[\"io.modelcontextprotocol/clientCapabilities\"].extensions"
        ),
    )
    .with_data(json!({ "requiredCapabilities": { "extensions": { EXTENSION: {} } } }))
}

/// How a `tools/call` of a tool with `support` goes in `generation` (`stateless`: a
/// stateless request): `Ok(true)` as a task, `Ok(false)` as a plain call, or refused.
pub(super) fn as_task(
    generation: Option<Generation>,
    support: TaskSupport,
    asked: bool,
    stateless: bool,
    name: &str,
) -> Result<bool, RpcError> {
    match (generation, support) {
        (Some(Generation::V1), TaskSupport::Required) if !asked => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("{name} runs only as a task: call it with params.task"),
        )),
        (Some(Generation::V1), _) => Ok(asked),
        (Some(Generation::Extension), support) => Ok(support != TaskSupport::Forbidden),
        (None, TaskSupport::Required) if stateless => Err(undeclared(name)),
        (None, TaskSupport::Required) => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("{name} runs only as a task, which this protocol version has not"),
        )),
        (None, _) => Ok(false),
    }
}

/// Answers a `tasks/*` method in `generation` (`None`: a request that speaks no Tasks), or
/// `None` when there is no such method for it.
pub(super) fn method(
    pending: &Pending,
    generation: Option<Generation>,
    notify: Notify<'_>,
) -> Option<Result<Value, RpcError>> {
    let method = pending.request.method.as_str();
    let Some(generation) = generation else {
        let stateless = is_stateless(pending.version);
        let task_method = matches!(method, "tasks/get" | "tasks/update" | "tasks/cancel");
        return (stateless && task_method).then(|| Err(undeclared(method)));
    };
    let store = pending.session.server().task_store();
    let answer = match (method, generation) {
        ("tasks/get", Generation::V1) => {
            task_id(pending).and_then(|id| Ok(v1_task(&store.task(id)?)))
        }
        ("tasks/get", Generation::Extension) => {
            task_id(pending).and_then(|id| Ok(extension_detailed(&store.task(id)?)))
        }
        ("tasks/result", Generation::V1) => task_id(pending).and_then(|id| {
            let before = store.task(id)?;
            let task = store.wait_task(id, &pending.token)?;
            // The end a waiting requestor saw happen, as the optional status notification.
            if before.status == TaskStatus::Working {
                notify(json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/tasks/status",
                    "params": v1_task(&task),
                }));
            }
            Ok(v1_result(&task))
        }),
        ("tasks/list", Generation::V1) => list(pending),
        ("tasks/cancel", Generation::V1) => {
            task_id(pending).and_then(|id| Ok(v1_task(&store.cancel_task(id)?)))
        }
        // The extension's cancel is an acknowledgement, for an ended task too.
        ("tasks/cancel", Generation::Extension) => {
            task_id(pending).and_then(|id| match store.cancel_task(id) {
                Ok(_) | Err(TaskError::Ended(..)) => Ok(json!({})),
                Err(e) => Err(e.into()),
            })
        }
        ("tasks/update", Generation::Extension) => task_id(pending).and_then(|id| {
            // Nothing here asks for input: the responses are acknowledged and ignored.
            store.task(id)?;
            Ok(json!({}))
        }),
        _ => return None,
    };
    Some(answer)
}

/// What `tasks/result` returns for an ended task: the tool's result, tied to its task.
fn v1_result(task: &TaskInfo) -> Value {
    let mut result = task.result.clone().unwrap_or_else(|| {
        CallToolResult::error(
            task.message
                .clone()
                .unwrap_or_else(|| format!("the task ended {}", task.status.as_str())),
        )
        .to_json()
    });
    if let Value::Object(fields) = &mut result {
        let meta = fields.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(RELATED_TASK.into(), json!({ "taskId": task.id }));
        }
    }
    result
}

fn list(pending: &Pending) -> Result<Value, RpcError> {
    let cursor = match pending.request.params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.as_str()),
        Some(other) => {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("params.cursor must be a string, got {other}"),
            ));
        }
    };
    let (tasks, next) = pending
        .session
        .server()
        .task_store()
        .tasks(cursor, LIST_PAGE)?;
    let mut out = json!({ "tasks": tasks.iter().map(v1_task).collect::<Vec<_>>() });
    if let (Some(next), Value::Object(fields)) = (next, &mut out) {
        fields.insert("nextCursor".into(), json!(next));
    }
    Ok(out)
}

/// Adds the extension to a `server/discover` capabilities object.
pub(super) fn advertise_extension(capabilities: &mut Value) {
    if let Value::Object(fields) = capabilities {
        fields.insert("extensions".into(), json!({ EXTENSION: {} }));
    }
}
