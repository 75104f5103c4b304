//! The embedded run store: one SQLite file (in the checkpoint directory by default), in WAL
//! mode, so that a committed change survives the server being killed.

use super::store::{Filter, KeptUpload, Origin, Page, Run, RunStore, Status, StoreError, Update};
use crate::sync::lock;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// Most history points kept per run: past it, every other point goes (the curve keeps its
/// shape at half the resolution).
pub const MAX_HISTORY_POINTS: i64 = 10_000;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tool TEXT NOT NULL,
    target TEXT NOT NULL,
    arguments TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    ttl_ms INTEGER,
    expires_ms INTEGER,
    progress TEXT,
    metrics TEXT,
    checkpoint TEXT,
    result TEXT,
    resumes INTEGER NOT NULL DEFAULT 0,
    history_points INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_by_target ON runs (target, seq);
CREATE INDEX IF NOT EXISTS runs_by_expiry ON runs (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
    run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    point INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_seq, point)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT PRIMARY KEY,
    target TEXT NOT NULL UNIQUE,
    wasm BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
-- Schema 2: the uploads the server built from Python source, by what they were built from.
CREATE TABLE IF NOT EXISTS builds (
    built_from TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES uploads (sha256) ON DELETE CASCADE
);
";

/// The columns of a listed run (no result: results can be large).
const SUMMARY: &str = "id, tool, target, arguments, origin, status, message, created_ms, \
    updated_ms, started_ms, finished_ms, ttl_ms, progress, metrics, checkpoint, resumes, \
    NULL AS result";

/// The columns of a run fetched alone.
const WHOLE: &str = "id, tool, target, arguments, origin, status, message, created_ms, \
    updated_ms, started_ms, finished_ms, ttl_ms, progress, metrics, checkpoint, resumes, result";

const ENDED: &str = "status IN ('completed', 'failed', 'cancelled')";

const UNFINISHED: &str = "status IN ('queued', 'working')";

/// A run store in one SQLite database.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    /// The lock that keeps a second server off this store while this one runs (held while
    /// the file is open): each would take the other's unfinished runs for its own.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn database(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if need be) the store at `path`, for this server alone: a store
    /// another server has open is refused.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Database(format!("{}: {e}", lock_path.display())))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StoreError::Database(format!(
                "{} is in use by another lightning-mcp server: give each server its own \
                 --run-store",
                path.display()
            )),
            std::fs::TryLockError::Error(e) => {
                StoreError::Database(format!("{}: {e}", lock_path.display()))
            }
        })?;
        Self::set_up(Connection::open(path).map_err(database)?, Some(lock))
    }

    /// A store in memory, gone with the process.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::set_up(Connection::open_in_memory().map_err(database)?, None)
    }

    fn set_up(connection: Connection, lock: Option<std::fs::File>) -> Result<Self, StoreError> {
        // WAL: a commit is durable once written to the log, and readers never wait for the
        // writer; NORMAL syncs at checkpoints, which a killed process cannot lose. The log is
        // kept when the server exits (no checkpoint, so no fsync, on the way out) and read
        // back by the next start, so it is checkpointed early: past 100 pages (400 KB).
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA wal_autocheckpoint = 100; PRAGMA foreign_keys = ON; \
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(database)?;
        connection
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(database)?;
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(database)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Database(format!(
                "the run store was written by a newer lightning-mcp (schema {version}, this \
                 one knows {SCHEMA_VERSION}): upgrade, or give another --run-store"
            )));
        }
        // Only a new (or older) store is written to at start: an open is a read.
        if version < SCHEMA_VERSION {
            connection
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(database)?;
        }
        Ok(Self {
            connection: Mutex::new(connection),
            _lock: lock,
        })
    }
}

fn text(value: &Value) -> String {
    value.to_string()
}

fn json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn read_run(row: &Row<'_>) -> rusqlite::Result<Run> {
    let status: String = row.get(5)?;
    let origin: String = row.get(4)?;
    Ok(Run {
        id: row.get(0)?,
        tool: row.get(1)?,
        target: row.get(2)?,
        arguments: json(row.get(3)?).unwrap_or(Value::Null),
        origin: Origin::parse(&origin).unwrap_or(Origin::Call),
        status: Status::parse(&status).unwrap_or(Status::Failed),
        message: row.get(6)?,
        created_ms: row.get(7)?,
        updated_ms: row.get(8)?,
        started_ms: row.get(9)?,
        finished_ms: row.get(10)?,
        ttl_ms: row.get(11)?,
        progress: json(row.get(12)?),
        metrics: json(row.get(13)?),
        checkpoint: row.get(14)?,
        resumes: row.get(15)?,
        result: json(row.get(16)?),
    })
}

/// The cursor of a page that starts after the run numbered `seq`.
fn cursor(seq: i64) -> String {
    format!("r{seq}")
}

fn parse_cursor(cursor: &str) -> Result<i64, StoreError> {
    cursor
        .strip_prefix('r')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::Cursor(crate::sandbox::text::shown(cursor)))
}

/// The `WHERE` clause and parameters of `filter`.
fn conditions(filter: &Filter) -> (String, Vec<Sql>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if !filter.statuses.is_empty() {
        let marks = vec!["?"; filter.statuses.len()].join(", ");
        clauses.push(format!("status IN ({marks})"));
        values.extend(filter.statuses.iter().map(|s| Sql::Text(s.as_str().into())));
    }
    if let Some(tool) = &filter.tool {
        clauses.push("tool = ?".to_string());
        values.push(Sql::Text(tool.clone()));
    }
    if let Some(target) = &filter.target {
        clauses.push("target = ?".to_string());
        values.push(Sql::Text(target.clone()));
    }
    (clauses.join(" AND "), values)
}

impl RunStore for SqliteStore {
    fn insert(&self, run: &Run) -> Result<(), StoreError> {
        lock(&self.connection)
            .execute(
                "INSERT INTO runs (id, tool, target, arguments, origin, status, message, \
                 created_ms, updated_ms, started_ms, finished_ms, ttl_ms, progress, metrics, \
                 checkpoint, result, resumes, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?8 + ?12)",
                params![
                    run.id,
                    run.tool,
                    run.target,
                    text(&run.arguments),
                    run.origin.as_str(),
                    run.status.as_str(),
                    run.message,
                    run.created_ms,
                    run.updated_ms,
                    run.started_ms,
                    run.finished_ms,
                    run.ttl_ms,
                    run.progress.as_ref().map(text),
                    run.metrics.as_ref().map(text),
                    run.checkpoint,
                    run.result.as_ref().map(text),
                    run.resumes,
                ],
            )
            .map(drop)
            .map_err(database)
    }

    fn get(&self, id: &str) -> Result<Option<Run>, StoreError> {
        lock(&self.connection)
            .query_row(
                &format!("SELECT {WHOLE} FROM runs WHERE id = ?1"),
                [id],
                read_run,
            )
            .optional()
            .map_err(database)
    }

    fn list(
        &self,
        filter: &Filter,
        cursor_text: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (filtered, mut values) = conditions(filter);
        let connection = lock(&self.connection);
        let total: i64 = connection
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM runs{}",
                    if filtered.is_empty() {
                        String::new()
                    } else {
                        format!(" WHERE {filtered}")
                    }
                ),
                params_from_iter(values.iter()),
                |row| row.get(0),
            )
            .map_err(database)?;
        let mut clauses: Vec<String> = (!filtered.is_empty())
            .then_some(filtered)
            .into_iter()
            .collect();
        if let Some(text) = cursor_text {
            clauses.push("seq < ?".into());
            values.push(Sql::Integer(parse_cursor(text)?));
        }
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let fetched = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        values.push(Sql::Integer(fetched));
        let mut statement = connection
            .prepare(&format!(
                "SELECT {SUMMARY}, seq FROM runs{condition} ORDER BY seq DESC LIMIT ?"
            ))
            .map_err(database)?;
        let mut rows = statement
            .query_map(params_from_iter(values.iter()), |row| {
                Ok((read_run(row)?, row.get::<_, i64>(17)?))
            })
            .map_err(database)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(database)?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(_, seq)| cursor(*seq))
        } else {
            None
        };
        Ok(Page {
            runs: rows.into_iter().map(|(run, _)| run).collect(),
            next,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    fn update(&self, id: &str, update: &Update, now_ms: i64) -> Result<bool, StoreError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction().map_err(database)?;
        let changed = transaction
            .execute(
                &format!(
                    "UPDATE runs SET status = COALESCE(?2, status), \
                     message = COALESCE(?3, message), started_ms = COALESCE(?4, started_ms), \
                     progress = COALESCE(?5, progress), metrics = COALESCE(?6, metrics), \
                     checkpoint = COALESCE(?7, checkpoint), updated_ms = ?8, \
                     history_points = history_points + ?9, \
                     arguments = COALESCE(?10, arguments) \
                     WHERE id = ?1 AND NOT {ENDED}"
                ),
                params![
                    id,
                    update.status.map(Status::as_str),
                    update.message,
                    update.started_ms,
                    update.progress.as_ref().map(text),
                    update.metrics.as_ref().map(text),
                    update.checkpoint,
                    now_ms,
                    i64::from(update.history.is_some()),
                    update.arguments.as_ref().map(text),
                ],
            )
            .map_err(database)?
            > 0;
        if changed && let Some(record) = &update.history {
            let (seq, points): (i64, i64) = transaction
                .query_row(
                    "SELECT seq, history_points FROM runs WHERE id = ?1",
                    [id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(database)?;
            let point: i64 = transaction
                .query_row(
                    "SELECT COALESCE(MAX(point) + 1, 0) FROM history WHERE run_seq = ?1",
                    [seq],
                    |row| row.get(0),
                )
                .map_err(database)?;
            transaction
                .execute(
                    "INSERT INTO history (run_seq, point, record) VALUES (?1, ?2, ?3)",
                    params![seq, point, text(record)],
                )
                .map_err(database)?;
            if points > MAX_HISTORY_POINTS {
                thin_history(&transaction, seq)?;
            }
        }
        transaction.commit().map_err(database)?;
        Ok(changed)
    }

    fn finish(
        &self,
        id: &str,
        status: Status,
        message: Option<&str>,
        result: Option<&Value>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        lock(&self.connection)
            .execute(
                &format!(
                    "UPDATE runs SET status = ?2, message = ?3, result = ?4, updated_ms = ?5, \
                     finished_ms = ?5 WHERE id = ?1 AND NOT {ENDED}"
                ),
                params![id, status.as_str(), message, result.map(text), now_ms],
            )
            .map(|n| n > 0)
            .map_err(database)
    }

    fn resumed(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        lock(&self.connection)
            .execute(
                &format!(
                    "UPDATE runs SET status = 'queued', resumes = resumes + 1, updated_ms = ?2, \
                     message = 'resumed after a server restart' WHERE id = ?1 AND NOT {ENDED}"
                ),
                params![id, now_ms],
            )
            .map(drop)
            .map_err(database)
    }

    fn history(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        let connection = lock(&self.connection);
        let mut statement = connection
            .prepare(
                "SELECT h.record FROM history h JOIN runs r ON r.seq = h.run_seq \
                 WHERE r.id = ?1 ORDER BY h.point",
            )
            .map_err(database)?;
        statement
            .query_map([id], |row| row.get::<_, String>(0))
            .map_err(database)?
            .map(|row| {
                row.map(|t| serde_json::from_str(&t).unwrap_or(Value::Null))
                    .map_err(database)
            })
            .collect()
    }

    fn delete(&self, id: &str) -> Result<bool, StoreError> {
        lock(&self.connection)
            .execute("DELETE FROM runs WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(database)
    }

    fn unfinished(&self) -> Result<Vec<Run>, StoreError> {
        let connection = lock(&self.connection);
        let mut statement = connection
            .prepare(&format!(
                "SELECT {WHOLE} FROM runs WHERE {UNFINISHED} ORDER BY seq"
            ))
            .map_err(database)?;
        statement
            .query_map([], read_run)
            .map_err(database)?
            .collect::<Result<_, _>>()
            .map_err(database)
    }

    fn purge(&self, now_ms: i64, max_runs: usize) -> Result<usize, StoreError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction().map_err(database)?;
        let expired = transaction
            .execute(
                &format!("DELETE FROM runs WHERE expires_ms <= ?1 AND {ENDED}"),
                [now_ms],
            )
            .map_err(database)?;
        let excess = transaction
            .execute(
                &format!(
                    "DELETE FROM runs WHERE seq IN (SELECT seq FROM runs WHERE {ENDED} \
                     ORDER BY seq DESC LIMIT -1 OFFSET ?1)"
                ),
                [i64::try_from(max_runs).unwrap_or(i64::MAX)],
            )
            .map_err(database)?;
        transaction.commit().map_err(database)?;
        Ok(expired + excess)
    }

    fn put_upload(&self, upload: &KeptUpload<'_>, now_ms: i64) -> Result<(), StoreError> {
        self.put_upload_now(upload, now_ms)
    }

    fn built_upload(&self, built_from: &str) -> Result<Option<String>, StoreError> {
        lock(&self.connection)
            .query_row(
                "SELECT sha256 FROM builds WHERE built_from = ?1",
                [built_from],
                |row| row.get(0),
            )
            .optional()
            .map_err(database)
    }

    fn has_uploads(&self) -> Result<bool, StoreError> {
        lock(&self.connection)
            .query_row("SELECT EXISTS (SELECT 1 FROM uploads)", [], |row| {
                row.get(0)
            })
            .map_err(database)
    }

    fn needs_purge(&self, now_ms: i64, max_runs: usize) -> Result<bool, StoreError> {
        lock(&self.connection)
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE expires_ms <= ?1 AND {ENDED}) \
                     OR EXISTS (SELECT 1 FROM runs WHERE {ENDED} LIMIT 1 OFFSET ?2)"
                ),
                params![now_ms, i64::try_from(max_runs).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )
            .map_err(database)
    }

    fn uploads(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let connection = lock(&self.connection);
        let mut statement = connection
            .prepare("SELECT wasm FROM uploads ORDER BY created_ms")
            .map_err(database)?;
        statement
            .query_map([], |row| row.get(0))
            .map_err(database)?
            .collect::<Result<_, _>>()
            .map_err(database)
    }
}

impl SqliteStore {
    fn put_upload_now(&self, upload: &KeptUpload<'_>, now_ms: i64) -> Result<(), StoreError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction().map_err(database)?;
        transaction
            .execute(
                "DELETE FROM uploads WHERE target = ?1 OR sha256 = ?2",
                params![upload.target, upload.sha256],
            )
            .map_err(database)?;
        transaction
            .execute(
                "INSERT INTO uploads (sha256, target, wasm, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![upload.sha256, upload.target, upload.wasm, now_ms],
            )
            .map_err(database)?;
        if let Some(built_from) = upload.built_from {
            transaction
                .execute(
                    "INSERT OR REPLACE INTO builds (built_from, sha256) VALUES (?1, ?2)",
                    params![built_from, upload.sha256],
                )
                .map_err(database)?;
        }
        transaction.commit().map_err(database)
    }
}

/// Halves run `seq`'s history: every other point goes, the first and the newest stay.
fn thin_history(transaction: &rusqlite::Transaction<'_>, seq: i64) -> Result<(), StoreError> {
    transaction
        .execute(
            "DELETE FROM history WHERE run_seq = ?1 AND point % 2 = 1 \
             AND point < (SELECT MAX(point) FROM history WHERE run_seq = ?1)",
            [seq],
        )
        .map_err(database)?;
    transaction
        .execute(
            "UPDATE runs SET history_points = (SELECT COUNT(*) FROM history WHERE run_seq = ?1) \
             WHERE seq = ?1",
            [seq],
        )
        .map(drop)
        .map_err(database)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, created_ms: i64) -> Run {
        Run {
            id: id.into(),
            tool: "lightning.train".into(),
            target: "m".into(),
            arguments: json!({"model": {"_target_": "m"}}),
            origin: Origin::Background,
            status: Status::Queued,
            message: None,
            created_ms,
            updated_ms: created_ms,
            started_ms: None,
            finished_ms: None,
            ttl_ms: Some(1_000),
            progress: None,
            metrics: None,
            checkpoint: None,
            result: None,
            resumes: 0,
        }
    }

    fn store() -> SqliteStore {
        SqliteStore::in_memory().expect("an in-memory run store")
    }

    fn upload<'a>(sha256: &'a str, built_from: Option<&'a str>) -> KeptUpload<'a> {
        KeptUpload {
            sha256,
            target: "my.Model",
            wasm: b"\0asm",
            built_from,
        }
    }

    #[test]
    fn a_build_is_known_by_its_key_until_its_upload_is_replaced() {
        let store = store();
        store
            .put_upload(&upload("aa", Some("key")), 1)
            .expect("the upload is kept");
        let built = store.built_upload("key").expect("the store reads");
        assert_eq!(built.as_deref(), Some("aa"));
        assert_eq!(store.built_upload("other").expect("the store reads"), None);
        // Another upload for the target replaces the build, and its key goes with it.
        store
            .put_upload(&upload("bb", None), 2)
            .expect("the upload is kept");
        assert_eq!(store.built_upload("key").expect("the store reads"), None);
        assert_eq!(store.uploads().expect("the store reads").len(), 1);
    }

    #[test]
    fn a_store_of_schema_1_gains_the_builds_and_keeps_its_uploads() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("runs.sqlite");
        {
            let store = SqliteStore::open(&path).expect("a new store");
            store
                .put_upload(&upload("aa", None), 1)
                .expect("the upload is kept");
            // What schema 1 was: this schema without its builds.
            lock(&store.connection)
                .execute_batch("DROP TABLE builds; PRAGMA user_version = 1;")
                .expect("the store goes back to schema 1");
        }
        let store = SqliteStore::open(&path).expect("the store opens");
        assert_eq!(store.uploads().expect("the store reads").len(), 1);
        store
            .put_upload(&upload("bb", Some("key")), 2)
            .expect("the upload is kept");
        let built = store.built_upload("key").expect("the store reads");
        assert_eq!(built.as_deref(), Some("bb"));
    }

    #[test]
    fn a_run_moves_through_its_lifecycle_and_stays_ended() {
        let store = store();
        store.insert(&run("a", 1)).expect("the run is recorded");
        let working = Update {
            status: Some(Status::Working),
            started_ms: Some(2),
            history: Some(json!({"epoch": 0})),
            ..Update::default()
        };
        assert!(store.update("a", &working, 2).unwrap_or_default());
        let result = json!({"isError": false});
        assert!(
            store
                .finish("a", Status::Cancelled, Some("by request"), None, 3)
                .unwrap_or_default()
        );
        // Ended: neither a late result nor an update changes it.
        assert!(
            !store
                .finish("a", Status::Completed, None, Some(&result), 4)
                .unwrap_or(true)
        );
        assert!(!store.update("a", &working, 4).unwrap_or(true));
        let got = store
            .get("a")
            .ok()
            .flatten()
            .expect("the run is still there");
        assert_eq!(got.status, Status::Cancelled);
        assert_eq!(got.started_ms, Some(2));
        assert_eq!(got.finished_ms, Some(3));
        assert_eq!(
            store.history("a").unwrap_or_default(),
            [json!({"epoch": 0})]
        );
    }

    #[test]
    fn pages_go_newest_first_and_filters_apply() {
        let store = store();
        for i in 0..5 {
            store
                .insert(&run(&format!("r{i}"), i))
                .expect("the run is recorded");
        }
        store
            .finish("r1", Status::Completed, None, None, 9)
            .expect("the run is finished");
        let first = store
            .list(&Filter::default(), None, 2)
            .expect("a first page");
        let ids: Vec<&str> = first.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r4", "r3"]);
        assert_eq!(first.total, 5);
        let second = store
            .list(&Filter::default(), first.next.as_deref(), 10)
            .expect("a second page");
        let ids: Vec<&str> = second.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r2", "r1", "r0"]);
        assert_eq!(second.next, None);
        let completed = Filter {
            statuses: vec![Status::Completed],
            ..Filter::default()
        };
        let page = store.list(&completed, None, 10).unwrap_or_default();
        assert_eq!(page.runs.len(), 1);
        assert!(matches!(
            store.list(&Filter::default(), Some("nonsense"), 1),
            Err(StoreError::Cursor(_))
        ));
    }

    #[test]
    fn purging_drops_expired_and_excess_ended_runs_only() {
        let store = store();
        for i in 0..4 {
            store
                .insert(&run(&format!("r{i}"), i))
                .expect("the run is recorded");
        }
        for id in ["r0", "r1", "r2"] {
            store
                .finish(id, Status::Completed, None, None, 5)
                .expect("the run is finished");
        }
        // r0 expires at 1000; of the others ended, one is kept.
        assert_eq!(store.purge(1_000, 1).unwrap_or_default(), 2);
        let left: Vec<String> = store
            .list(&Filter::default(), None, 10)
            .unwrap_or_default()
            .runs
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, ["r3", "r2"]);
    }

    #[test]
    fn history_is_thinned_past_its_bound() {
        let store = store();
        store.insert(&run("a", 1)).expect("the run is recorded");
        for epoch in 0..=MAX_HISTORY_POINTS + 1 {
            let point = Update {
                history: Some(json!(epoch)),
                ..Update::default()
            };
            store.update("a", &point, 2).expect("the run is updated");
        }
        let history = store.history("a").unwrap_or_default();
        assert!(
            history.len() <= (MAX_HISTORY_POINTS / 2 + 2) as usize,
            "{}",
            history.len()
        );
        assert_eq!(history.first(), Some(&json!(0)));
        assert_eq!(history.last(), Some(&json!(MAX_HISTORY_POINTS + 1)));
    }
}
