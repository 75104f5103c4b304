//! Runs: every `lightning.train`, `validate`, `test` and `predict` call is a run, recorded in
//! a durable [`RunStore`] from the moment it is accepted to its result.
//!
//! A run is `queued` until it gets a run slot, then `working`, then `completed`, `failed`
//! or `cancelled`, and never changes once ended. [`Runs`] keeps the store and what only this
//! process knows: the cancellation tokens of the runs it executes, and a condition variable
//! that wakes whoever waits for a run to end. MCP Tasks and the `lightning.runs` tool are two
//! views of the same runs: a task id is a run id.

mod sqlite;
mod store;

pub use sqlite::{MAX_HISTORY_POINTS, SqliteStore};
pub use store::{Filter, KeptUpload, Origin, Page, Run, RunStore, Status, StoreError, Update};

use crate::cancel::CancelToken;
use crate::protocol::{CallObserver, CallToolResult, TaskError, TaskInfo, TaskStatus, TaskStore};
use crate::sync::lock;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long ended runs are kept by default: 30 days.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Most ended runs kept by default; past it the oldest go.
pub const DEFAULT_MAX_RUNS: usize = 10_000;

/// The shortest time between two progress writes of one run (epochs are always written).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// The most bytes of arguments an ended run keeps: past it, inline data is replaced by a
/// note of its size (a training keeps it all while it may still resume).
pub const MAX_KEPT_ARGUMENTS: usize = 16 * 1024;

/// The tool whose unfinished runs resume, and so keep their whole arguments until they end.
const RESUMED_TOOL: &str = "lightning.train";

/// How often a waiter re-reads a run (another server sharing the store may end it).
const WAIT_POLL: Duration = Duration::from_millis(250);

/// The shortest time between two purges of expired and excess runs.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// How long runs are kept and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long after its creation an ended run is kept; `None`: until deleted.
    pub ttl: Option<Duration>,
    /// Most ended runs kept.
    pub max_runs: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            ttl: Some(DEFAULT_TTL),
            max_runs: DEFAULT_MAX_RUNS,
        }
    }
}

/// A run to create.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The tool called.
    pub tool: String,
    /// The model's `_target_`.
    pub target: String,
    /// The call's arguments.
    pub arguments: Value,
    /// How it was started.
    pub origin: Origin,
    /// The time to live the caller asked for (a task's `ttl`), at most the server's.
    pub ttl: Option<Duration>,
}

/// The runs of this server: the store, and the runs this process executes.
pub struct Runs {
    store: Box<dyn RunStore>,
    /// Where the store is, as `inspect environment` shows it.
    location: String,
    retention: Retention,
    /// The cancellation tokens of the runs executing here, by id.
    live: Mutex<HashMap<String, CancelToken>>,
    /// Signalled whenever a run ends.
    ended: Condvar,
    /// When runs were last purged.
    last_purge: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("retention", &self.retention)
            .field("live", &lock(&self.live).len())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Runs {
    /// The runs kept in `store` (at `location`, as shown), for `retention`.
    pub fn new(store: Box<dyn RunStore>, location: String, retention: Retention) -> Self {
        Self {
            store,
            location,
            retention,
            live: Mutex::new(HashMap::new()),
            ended: Condvar::new(),
            // The first purge is the recovery's, off the first request's path.
            last_purge: Mutex::new(Some(std::time::Instant::now())),
        }
    }

    /// Runs kept in memory only (a GPU worker's, a test's).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self::new(
            Box::new(SqliteStore::in_memory()?),
            "memory".into(),
            Retention::default(),
        ))
    }

    /// The store's location, retention and how many runs it holds and runs here now.
    pub fn describe(&self) -> Value {
        let total = self
            .store
            .list(&Filter::default(), None, 1)
            .map_or(Value::Null, |page| json!(page.total));
        json!({
            "location": self.location,
            "runs": total,
            "executing_here": lock(&self.live).len(),
            "ttl_hours": self.retention.ttl.map(|t| t.as_secs() / 3600),
            "max_runs": self.retention.max_runs,
        })
    }

    /// The time to live of a run that asked for `asked`: the server's when it asked for none
    /// or for more.
    pub fn ttl(&self, asked: Option<Duration>) -> Option<Duration> {
        match (asked, self.retention.ttl) {
            (Some(asked), Some(most)) => Some(asked.min(most)),
            (asked, most) => asked.or(most),
        }
    }

    /// Creates run `new`, `queued`, executed here with `cancel`; durable once this returns.
    pub fn create(&self, new: NewRun, cancel: &CancelToken) -> Result<Run, StoreError> {
        self.purge_now_and_then();
        let now = now_ms();
        let arguments = if new.tool == RESUMED_TOOL {
            new.arguments
        } else {
            compact(new.arguments)
        };
        let run = Run {
            id: uuid::Uuid::new_v4().to_string(),
            tool: new.tool,
            target: new.target,
            arguments,
            origin: new.origin,
            status: Status::Queued,
            message: Some("waiting for a run slot".into()),
            created_ms: now,
            updated_ms: now,
            started_ms: None,
            finished_ms: None,
            ttl_ms: self.ttl(new.ttl).map(millis),
            progress: None,
            metrics: None,
            checkpoint: None,
            result: None,
            resumes: 0,
        };
        self.store.insert(&run)?;
        lock(&self.live).insert(run.id.clone(), cancel.clone());
        Ok(run)
    }

    /// Takes run `id` (left unfinished by a server that stopped) to execute here again with
    /// `cancel`: back to `queued`.
    pub fn adopt(&self, id: &str, cancel: &CancelToken) -> Result<(), StoreError> {
        self.store.resumed(id, now_ms())?;
        lock(&self.live).insert(id.to_string(), cancel.clone());
        Ok(())
    }

    /// Ends run `id` with `result`: `completed`, or `failed` (`cancelled` when its token
    /// fired) with the error as message. A run cancelled meanwhile stays cancelled.
    pub fn finish(&self, id: &str, result: &CallToolResult) {
        let token = lock(&self.live).remove(id);
        let cancelled = token.is_some_and(|t| t.is_cancelled());
        let (status, message) = match (result.is_error, cancelled) {
            (false, _) => (Status::Completed, None),
            (true, true) => (Status::Cancelled, Some("cancelled".to_string())),
            (true, false) => (Status::Failed, result.error_message().map(str::to_string)),
        };
        self.end(id, status, message.as_deref(), Some(&result.to_json()));
    }

    /// Ends run `id` with `status` (terminal), `message` and `result`, and wakes its waiters;
    /// a training's arguments are compacted now that it will not resume.
    pub fn end(&self, id: &str, status: Status, message: Option<&str>, result: Option<&Value>) {
        if let Ok(Some(run)) = self.store.get(id)
            && run.tool == RESUMED_TOOL
            && json_len(&run.arguments) > MAX_KEPT_ARGUMENTS
        {
            let update = Update {
                arguments: Some(compact(run.arguments)),
                ..Update::default()
            };
            self.update(id, &update);
        }
        if let Err(e) = self.store.finish(id, status, message, result, now_ms()) {
            tracing::error!(run = id, "cannot record the end of the run: {e}");
        }
        self.ended.notify_all();
    }

    /// Cancels run `id`: its execution is told to stop, and it is `cancelled` at once.
    /// Errors when there is no such run or it has ended.
    pub fn cancel(&self, id: &str) -> Result<Run, RunError> {
        let run = self.get(id)?;
        if run.status.is_terminal() {
            return Err(RunError::Ended(id.to_string(), run.status));
        }
        if let Some(token) = lock(&self.live).get(id) {
            token.cancel();
        }
        self.end(id, Status::Cancelled, Some("cancelled by request"), None);
        self.get(id)
    }

    /// Run `id`, with its result.
    pub fn get(&self, id: &str) -> Result<Run, RunError> {
        self.store
            .get(id)?
            .ok_or_else(|| RunError::NotFound(crate::sandbox::text::shown(id)))
    }

    /// A page of runs matching `filter`, newest first.
    pub fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, RunError> {
        Ok(self.store.list(filter, cursor, limit)?)
    }

    /// Run `id`'s history points, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Value>, RunError> {
        Ok(self.store.history(id)?)
    }

    /// Deletes ended run `id`; a run that has not ended must be cancelled first.
    pub fn delete(&self, id: &str) -> Result<(), RunError> {
        let run = self.get(id)?;
        if !run.status.is_terminal() {
            return Err(RunError::Active(id.to_string(), run.status));
        }
        self.store.delete(id)?;
        Ok(())
    }

    /// Blocks until run `id` has ended (or `cancel` fires), and returns it.
    pub fn wait(&self, id: &str, cancel: &CancelToken) -> Result<Run, RunError> {
        loop {
            let run = self.get(id)?;
            if run.status.is_terminal() {
                return Ok(run);
            }
            if cancel.is_cancelled() {
                return Err(RunError::WaitCancelled);
            }
            let live = lock(&self.live);
            drop(
                self.ended
                    .wait_timeout(live, WAIT_POLL)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard),
            );
        }
    }

    /// Keeps `upload` for the next server start.
    pub fn keep_upload(&self, upload: &KeptUpload<'_>) -> Result<(), StoreError> {
        self.store.put_upload(upload, now_ms())
    }

    /// The SHA-256 of the kept upload that was built from `built_from`, if one is.
    pub fn built_upload(&self, built_from: &str) -> Result<Option<String>, StoreError> {
        self.store.built_upload(built_from)
    }

    /// The uploaded components kept, oldest first.
    pub fn kept_uploads(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.store.uploads()
    }

    /// What a starting server has to do in the background, read before it records any run:
    /// `None` when nothing (no unfinished run, no kept upload, nothing to purge).
    pub fn recovery(&self) -> Result<Option<Recovery>, StoreError> {
        let recovery = Recovery {
            leftover: self.store.unfinished()?,
            uploads: self.store.has_uploads()?,
            purge: self.store.needs_purge(now_ms(), self.retention.max_runs)?,
        };
        let idle = recovery.leftover.is_empty() && !recovery.uploads && !recovery.purge;
        Ok((!idle).then_some(recovery))
    }

    /// The observer that records run `id`'s progress.
    pub fn observer(&self, id: &str) -> Recorder<'_> {
        Recorder {
            runs: self,
            id: id.to_string(),
            progress: Mutex::new((serde_json::Map::new(), None)),
        }
    }

    fn update(&self, id: &str, update: &Update) {
        if let Err(e) = self.store.update(id, update, now_ms()) {
            tracing::warn!(run = id, "cannot record the run's progress: {e}");
        }
    }

    /// Deletes expired and excess ended runs, at most once per [`PURGE_INTERVAL`].
    fn purge_now_and_then(&self) {
        {
            let mut last = lock(&self.last_purge);
            if last.is_some_and(|at| at.elapsed() < PURGE_INTERVAL) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        self.purge();
    }

    /// Deletes the ended runs past their time to live, and the oldest past the most kept.
    pub fn purge(&self) {
        match self.store.purge(now_ms(), self.retention.max_runs) {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} ended run(s) past their time to live or the cap deleted"),
            Err(e) => tracing::warn!("cannot purge old runs: {e}"),
        }
    }
}

/// The size of `value` as compact JSON.
fn json_len(value: &Value) -> usize {
    value.to_string().len()
}

/// `arguments` within [`MAX_KEPT_ARGUMENTS`]: inline data arrays (`data.train`, `val`,
/// `test`, `predict`), then the whole `data`, then everything but the model and trainer,
/// replaced by a note of their size, as far as needed.
fn compact(mut arguments: Value) -> Value {
    let omitted = |value: &Value| json!({ "omitted": format!("{} bytes", json_len(value)) });
    if json_len(&arguments) <= MAX_KEPT_ARGUMENTS {
        return arguments;
    }
    if let Some(Value::Object(data)) = arguments.get_mut("data") {
        for split in ["train", "val", "test", "predict"] {
            if let Some(inline) = data.get_mut(split) {
                *inline = omitted(inline);
            }
        }
    }
    let Value::Object(fields) = &mut arguments else {
        return omitted(&arguments);
    };
    for key in fields.keys().cloned().collect::<Vec<_>>() {
        if json_len(&Value::Object(fields.clone())) <= MAX_KEPT_ARGUMENTS {
            break;
        }
        if let Some(value) = fields.get_mut(&key)
            && (key != "model" && key != "trainer" || json_len(value) > MAX_KEPT_ARGUMENTS / 2)
        {
            *value = omitted(value);
        }
    }
    arguments
}

/// The ISO 8601 (RFC 3339) UTC time of `ms` (milliseconds since the Unix epoch), to the
/// millisecond: `2026-12-06T01:44:35.119Z`.
pub fn timestamp(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => String::new(),
    }
}

/// The runs as MCP Tasks: a task id is a run id.
impl TaskStore for Runs {
    fn task(&self, id: &str) -> Result<TaskInfo, TaskError> {
        Ok(task_info(&self.get(id)?))
    }

    fn wait_task(&self, id: &str, cancel: &CancelToken) -> Result<TaskInfo, TaskError> {
        Ok(task_info(&self.wait(id, cancel)?))
    }

    fn tasks(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TaskInfo>, Option<String>), TaskError> {
        let page = self.list(&Filter::default(), cursor, limit)?;
        Ok((page.runs.iter().map(task_info).collect(), page.next))
    }

    fn cancel_task(&self, id: &str) -> Result<TaskInfo, TaskError> {
        Ok(task_info(&self.cancel(id)?))
    }
}

/// Run `run` as a task (queued and working are both `working`).
fn task_info(run: &Run) -> TaskInfo {
    TaskInfo {
        id: run.id.clone(),
        status: match run.status {
            Status::Queued | Status::Working => TaskStatus::Working,
            Status::Completed => TaskStatus::Completed,
            Status::Failed => TaskStatus::Failed,
            Status::Cancelled => TaskStatus::Cancelled,
        },
        message: run.message.clone(),
        created_at: timestamp(run.created_ms),
        updated_at: timestamp(run.updated_ms),
        ttl_ms: run.ttl_ms,
        result: run.result.clone(),
    }
}

impl From<RunError> for TaskError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound(id) => Self::NotFound(id),
            RunError::Ended(id, status) => Self::Ended(id, status.as_str()),
            RunError::WaitCancelled => Self::Cancelled,
            RunError::Store(StoreError::Cursor(cursor)) => Self::Cursor(cursor),
            e @ (RunError::Active(..) | RunError::Store(_)) => Self::Internal(e.to_string()),
        }
    }
}

/// What a starting server does in the background (see [`Runs::recovery`]).
#[derive(Debug)]
pub struct Recovery {
    /// The runs the server before this one left unfinished, oldest first.
    pub leftover: Vec<Run>,
    /// Whether uploads were kept, to register again.
    pub uploads: bool,
    /// Whether ended runs wait to be purged.
    pub purge: bool,
}

/// Why a run operation failed, as the agent reads it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No run has that id.
    #[error("no run {0:?}: lightning.runs {{\"action\": \"list\"}} lists the runs")]
    NotFound(String),
    /// The run has ended already.
    #[error("run {0} has ended ({status})", status = .1.as_str())]
    Ended(String, Status),
    /// The run has not ended.
    #[error("run {0} is {status}: cancel it first", status = .1.as_str())]
    Active(String, Status),
    /// The wait was cancelled.
    #[error("cancelled while waiting for the run")]
    WaitCancelled,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records one run's progress, history and newest checkpoint as its call reports them.
pub struct Recorder<'a> {
    runs: &'a Runs,
    id: String,
    /// The progress so far (`global_step`, `total_steps`, `epochs_done`), and when it was
    /// last written.
    progress: Mutex<(serde_json::Map<String, Value>, Option<std::time::Instant>)>,
}

impl Recorder<'_> {
    /// Merges `figures` into the progress; returns it when it is to be written now (always
    /// with `force`, else at most every [`PROGRESS_INTERVAL`]).
    fn advance(&self, figures: &[(&str, Value)], force: bool) -> Option<Value> {
        let mut progress = lock(&self.progress);
        let (known, last) = &mut *progress;
        for (key, value) in figures {
            known.insert((*key).to_string(), value.clone());
        }
        if !force && last.is_some_and(|at| at.elapsed() < PROGRESS_INTERVAL) {
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(Value::Object(known.clone()))
    }
}

impl CallObserver for Recorder<'_> {
    fn started(&self) {
        let update = Update {
            status: Some(Status::Working),
            message: Some("running".into()),
            started_ms: Some(now_ms()),
            ..Update::default()
        };
        self.runs.update(&self.id, &update);
    }

    fn progress(&self, progress: f64, total: Option<f64>, message: &str) {
        let mut figures = vec![("global_step", json!(progress))];
        if let Some(total) = total {
            figures.push(("total_steps", json!(total)));
        }
        if let Some(progress) = self.advance(&figures, false) {
            let update = Update {
                message: Some(crate::sandbox::text::shown(message)),
                progress: Some(progress),
                ..Update::default()
            };
            self.runs.update(&self.id, &update);
        }
    }

    fn point(&self, record: &Value) {
        let mut figures = Vec::new();
        if let Some(step) = record.get("global_step") {
            figures.push(("global_step", step.clone()));
        }
        if let Some(epoch) = record.get("epoch").and_then(Value::as_u64) {
            figures.push(("epochs_done", json!(epoch + 1)));
        }
        let update = Update {
            progress: self.advance(&figures, true),
            metrics: record.get("metrics").cloned(),
            checkpoint: record
                .get("checkpoint")
                .and_then(Value::as_str)
                .map(str::to_string),
            history: Some(record.clone()),
            ..Update::default()
        };
        self.runs.update(&self.id, &update);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arguments_keep_the_model_and_trainer_and_note_the_rest() {
        let small = json!({"model": {"_target_": "m"}, "data": {"train": {"inputs": [[1.0]]}}});
        assert_eq!(compact(small.clone()), small);
        let rows: Vec<Vec<f64>> = vec![vec![0.5; 64]; 1_000];
        let large = json!({
            "model": {"_target_": "m", "hidden_dims": [64]},
            "trainer": {"max_epochs": 3},
            "data": {"train": {"inputs": rows, "targets": [0]}, "batch_size": 8},
        });
        let kept = compact(large);
        assert!(json_len(&kept) <= MAX_KEPT_ARGUMENTS, "{}", json_len(&kept));
        let at = |pointer: &str| kept.pointer(pointer).cloned().unwrap_or_default();
        assert_eq!(at("/model"), json!({"_target_": "m", "hidden_dims": [64]}));
        assert_eq!(at("/trainer"), json!({"max_epochs": 3}));
        assert_eq!(at("/data/batch_size"), json!(8));
        let note = at("/data/train/omitted");
        assert!(
            note.as_str().is_some_and(|n| n.ends_with(" bytes")),
            "{note}"
        );
    }
}
