//! The interface every run store implements, and what it stores.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a run slot.
    Queued,
    /// Running.
    Working,
    /// Ended with a result.
    Completed,
    /// Ended with an error.
    Failed,
    /// Stopped by a cancellation.
    Cancelled,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Working,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the run has ended (its status never changes again).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The status as stored and shown: `queued`, `working`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Working => "working",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How a run was started, which decides what ends it besides itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A synchronous tool call: its caller waits, and closing the connection cancels it.
    Call,
    /// A tool call with `background: true`: tied to no connection.
    Background,
    /// A task-augmented tool call (MCP Tasks): tied to no connection.
    Task,
}

impl Origin {
    /// The origin as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Background => "background",
            Self::Task => "task",
        }
    }

    /// The origin stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Call, Self::Background, Self::Task]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// A run as stored: what was asked, where it stands, what it gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The run's id (a task id is a run id).
    pub id: String,
    /// The tool called: `lightning.train`, `lightning.validate`, ...
    pub tool: String,
    /// The model's `_target_`.
    pub target: String,
    /// The call's arguments, as given.
    pub arguments: Value,
    /// How the run was started.
    pub origin: Origin,
    /// Where it stands.
    pub status: Status,
    /// What the status means: the error of a failed run, why one was cancelled, the last
    /// progress of a working one.
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch when the run was created.
    pub created_ms: i64,
    /// ... when it last changed.
    pub updated_ms: i64,
    /// ... when it got a run slot.
    pub started_ms: Option<i64>,
    /// ... when it ended.
    pub finished_ms: Option<i64>,
    /// How long after its creation the run may be deleted; `None`: until deleted.
    pub ttl_ms: Option<i64>,
    /// Its progress: `{global_step, total_steps, epoch, max_epochs}` as far as known.
    pub progress: Option<Value>,
    /// Its latest metrics.
    pub metrics: Option<Value>,
    /// The newest checkpoint it wrote, relative to the checkpoint directory: where a training
    /// resumes after a crash.
    pub checkpoint: Option<String>,
    /// The tool result (MCP `CallToolResult` JSON) once it ended with one.
    pub result: Option<Value>,
    /// How many times the run was resumed after a server restart.
    pub resumes: u32,
}

/// Which runs a listing shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only runs in these statuses (all when empty).
    pub statuses: Vec<Status>,
    /// Only runs of this tool.
    pub tool: Option<String>,
    /// Only runs of this model target.
    pub target: Option<String>,
}

/// A page of runs, newest first.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The runs.
    pub runs: Vec<Run>,
    /// Where the next page starts, if there is one (an opaque cursor).
    pub next: Option<String>,
    /// How many runs match the filter in all.
    pub total: u64,
}

/// A change to a run that has not ended.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// The new status (never a terminal one: see [`RunStore::finish`]).
    pub status: Option<Status>,
    /// The new message.
    pub message: Option<String>,
    /// When it got its run slot.
    pub started_ms: Option<i64>,
    /// The new progress.
    pub progress: Option<Value>,
    /// The new latest metrics.
    pub metrics: Option<Value>,
    /// The new newest checkpoint.
    pub checkpoint: Option<String>,
    /// A point of the run's history (an epoch's record) to append.
    pub history: Option<Value>,
    /// The arguments to keep instead (shorter).
    pub arguments: Option<Value>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("the run store failed: {0}")]
    Database(String),
    /// A cursor this store did not make.
    #[error("invalid cursor {0:?}: pass the next_cursor a listing returned, or none")]
    Cursor(String),
}

/// An uploaded component to keep for the next server start.
#[derive(Clone, Copy, Debug)]
pub struct KeptUpload<'a> {
    /// Hex SHA-256 of the component.
    pub sha256: &'a str,
    /// The target it is registered under.
    pub target: &'a str,
    /// The component.
    pub wasm: &'a [u8],
    /// What the server built it from (a Python build's key), if it built it.
    pub built_from: Option<&'a str>,
}

/// A durable store of runs, shared by every connection (and, for a server-grade database,
/// by every server). Every method is one transaction.
pub trait RunStore: Send + Sync {
    /// Stores a new run.
    fn insert(&self, run: &Run) -> Result<(), StoreError>;
    /// The run `id`, if stored.
    fn get(&self, id: &str) -> Result<Option<Run>, StoreError>;
    /// A page of at most `limit` runs matching `filter`, newest first, from `cursor`.
    fn list(&self, filter: &Filter, cursor: Option<&str>, limit: usize)
    -> Result<Page, StoreError>;
    /// Applies `update` at `now_ms` to run `id` if it has not ended; `false` when it has
    /// (or is gone).
    fn update(&self, id: &str, update: &Update, now_ms: i64) -> Result<bool, StoreError>;
    /// Ends run `id` at `now_ms` with `status` (terminal), `message` and `result`, if it has
    /// not ended; `false` when it had (a cancelled run stays cancelled).
    fn finish(
        &self,
        id: &str,
        status: Status,
        message: Option<&str>,
        result: Option<&Value>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Marks run `id`, unfinished when a server stopped, as resumed: back to `queued`.
    fn resumed(&self, id: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Run `id`'s history points (epoch records), oldest first.
    fn history(&self, id: &str) -> Result<Vec<Value>, StoreError>;
    /// Deletes run `id` and its history; `false` when there was none.
    fn delete(&self, id: &str) -> Result<bool, StoreError>;
    /// The runs that had not ended, oldest first: after a restart, those its last server left.
    fn unfinished(&self) -> Result<Vec<Run>, StoreError>;
    /// Deletes ended runs whose time to live passed by `now_ms`, then the oldest ended runs
    /// past `max_runs`; returns how many went.
    fn purge(&self, now_ms: i64, max_runs: usize) -> Result<usize, StoreError>;
    /// Keeps `upload`, replacing the one kept for its target before.
    fn put_upload(&self, upload: &KeptUpload<'_>, now_ms: i64) -> Result<(), StoreError>;
    /// The SHA-256 of the kept upload that was built from `built_from`, if one is.
    fn built_upload(&self, built_from: &str) -> Result<Option<String>, StoreError>;
    /// Every kept upload's component, oldest first.
    fn uploads(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Whether any upload is kept.
    fn has_uploads(&self) -> Result<bool, StoreError>;
    /// Whether [`Self::purge`] at `now_ms` with `max_runs` would delete anything.
    fn needs_purge(&self, now_ms: i64, max_runs: usize) -> Result<bool, StoreError>;
}
