//! Model calls as runs: each is recorded in the run store, and runs in its call (the caller
//! waits), in the background (the call returns its run id at once), or again after a
//! restart (a training resumes from its newest checkpoint).

use super::{ParsedCall, Tools, failed, results, train};
use crate::cancel::CancelToken;
use crate::protocol::{CallContext, CallToolResult};
use crate::runs::{NewRun, Origin, Recovery, Run, Status};
use serde_json::{Value, json};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

impl Tools {
    /// The record of a new run of `call` (tool `name` with `arguments`).
    fn new_run(
        name: &str,
        arguments: &Value,
        target: &str,
        origin: Origin,
        ttl: Option<Duration>,
    ) -> NewRun {
        NewRun {
            tool: name.to_string(),
            target: target.to_string(),
            arguments: arguments.clone(),
            origin,
            ttl,
        }
    }

    /// Runs model call `call` within its tool call, recorded as a run: the caller waits for
    /// the result, which names the run; cancelling the call (or closing its connection)
    /// cancels the run.
    pub(super) fn run_in_call(
        &self,
        name: &str,
        arguments: Value,
        call: ParsedCall,
        target: &str,
        ctx: &CallContext,
    ) -> CallToolResult {
        let new = Self::new_run(name, &arguments, target, Origin::Call, None);
        let run = match self.runs.create(new, ctx.cancel_token()) {
            Ok(run) => run,
            Err(e) => return failed(name, format!("cannot record the run: {e}")),
        };
        let recorder = self.runs.observer(&run.id);
        let observed = ctx.observed_by(&recorder);
        let result = self
            .place_and_run(name, arguments, call, &observed)
            .unwrap_or_else(|message| failed(name, message));
        self.end_run(name, &run.id, result)
    }

    /// Starts model call `call` as a run tied to no connection (`origin` background or
    /// task, kept for `ttl` when given): returns the run once it is durably created,
    /// `queued`; it runs on a thread of its own, waiting for a run slot like any other.
    pub fn start_run(
        &self,
        name: &str,
        arguments: Value,
        call: ParsedCall,
        origin: Origin,
        ttl: Option<Duration>,
    ) -> Result<Run, String> {
        let (target, limits) = match (call.run_of(), call.model_run()) {
            (Some((target, _)), Some((_, _, limits))) => (target.to_string(), limits.clone()),
            _ => return Err(format!("{name} does not start runs")),
        };
        // Refused at once rather than as a failed run: an unknown model, a full queue.
        self.runtime.model(&target)?;
        self.runtime
            .check_room(&limits)
            .map_err(|e| e.to_string())?;
        let cancel = CancelToken::new();
        let new = Self::new_run(name, &arguments, &target, origin, ttl);
        let run = self
            .runs
            .create(new, &cancel)
            .map_err(|e| format!("cannot record the run: {e}"))?;
        self.spawn_run(&run.id, name, arguments, call, cancel);
        Ok(run)
    }

    /// Executes run `id` on a thread of its own; a thread that cannot start fails the run.
    fn spawn_run(
        &self,
        id: &str,
        name: &str,
        arguments: Value,
        call: ParsedCall,
        cancel: CancelToken,
    ) {
        let tools = self.clone();
        let (thread_id, thread_name) = (id.to_string(), name.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("run-{}", id.get(..8).unwrap_or(id)))
            .spawn(move || {
                tools.execute_detached(&thread_id, &thread_name, arguments, call, cancel)
            });
        if let Err(e) = spawned {
            let message = format!("cannot start a thread for the run: {e}");
            self.runs.end(id, Status::Failed, Some(&message), None);
        }
    }

    /// Executes run `id` with no caller waiting: its progress goes to the run store only.
    fn execute_detached(
        &self,
        id: &str,
        name: &str,
        arguments: Value,
        call: ParsedCall,
        cancel: CancelToken,
    ) {
        let recorder = self.runs.observer(id);
        let quiet = |_: Value| {};
        let detached = CallContext::new(cancel, None, None, &quiet);
        let ctx = detached.observed_by(&recorder);
        // A bug in a tool must not leave the run working forever.
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.place_and_run(name, arguments, call, &ctx)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(run = id, "a run panicked");
            Err("internal error while running".to_string())
        })
        .unwrap_or_else(|message| failed(name, message));
        self.end_run(name, id, result);
    }

    /// Bounds `result`, names run `id` in it and records it as the run's end.
    fn end_run(&self, name: &str, id: &str, result: CallToolResult) -> CallToolResult {
        let mut result = results::bounded(name, result, self.runtime.max_result_bytes());
        if let Value::Object(fields) = &mut result.structured {
            fields.insert("run_id".into(), json!(id));
        }
        self.runs.finish(id, &result);
        result
    }

    /// At start-up, in the background: registers the uploaded models the run store kept,
    /// takes up the runs the server before this one left unfinished (see
    /// [`Self::resume_unfinished`]), and deletes the ended runs past their retention.
    pub fn recover(&self, recovery: Recovery) {
        if recovery.uploads {
            self.restore_uploads();
        }
        self.resume_unfinished(recovery.leftover);
        if recovery.purge {
            self.runs.purge();
        }
    }

    /// Registers the uploaded models the run store kept, as their uploads did.
    fn restore_uploads(&self) {
        let kept = match self.runs.kept_uploads() {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!("cannot read the kept uploads: {e}");
                return;
            }
        };
        if kept.is_empty() {
            return;
        }
        if self.runtime.uploads().is_none() {
            tracing::warn!(
                "{} uploaded model(s) kept from earlier runs stay unregistered: uploads are off \
                 (--allow-register)",
                kept.len()
            );
            return;
        }
        for wasm in kept {
            match self.runtime.register_upload(&wasm, true) {
                Ok((model, _)) => tracing::info!(
                    target = model.description.target,
                    "uploaded model registered again"
                ),
                Err(e) => tracing::warn!("a kept upload no longer registers: {e}"),
            }
        }
    }

    /// Takes up `leftover`, runs a server that stopped left unfinished. A training that
    /// wrote a checkpoint resumes from its newest one (weights, optimizer state, epoch,
    /// early-stopping state); every other run is marked failed, "server restarted".
    fn resume_unfinished(&self, unfinished: Vec<Run>) {
        for run in unfinished {
            match self.resumable(&run) {
                Ok((arguments, call)) => {
                    let cancel = CancelToken::new();
                    if let Err(e) = self.runs.adopt(&run.id, &cancel) {
                        tracing::error!(run = %run.id, "cannot resume the run: {e}");
                        continue;
                    }
                    tracing::info!(
                        run = %run.id,
                        checkpoint = run.checkpoint.as_deref().unwrap_or_default(),
                        "resuming a training the server left unfinished"
                    );
                    self.spawn_run(&run.id, &run.tool, arguments, call, cancel);
                }
                Err(why) => {
                    let message = format!("server restarted: {why}");
                    tracing::info!(run = %run.id, "{message}");
                    self.runs.end(&run.id, Status::Failed, Some(&message), None);
                }
            }
        }
    }

    /// The newest checkpoint beside `recorded` (the last one a run recorded): a server killed
    /// between writing a checkpoint and recording it has already removed the one before.
    fn newest_checkpoint(&self, recorded: &str) -> Result<String, String> {
        let dir = self.runtime.checkpoint_dir();
        let folder = recorded.rsplit_once('/').map_or(".", |(folder, _)| folder);
        let written = |path: &str| {
            dir.existing(path)
                .ok()
                .and_then(|real| real.metadata().ok()?.modified().ok())
        };
        dir.list(folder, crate::checkpoint::EXTENSION, 1_000)
            .map_err(|e| format!("its checkpoints are gone: {e}"))?
            .into_iter()
            .filter_map(|(path, _)| Some((written(&path)?, path)))
            .max()
            .map(|(_, path)| path)
            .ok_or_else(|| format!("its checkpoints are gone ({recorded} was the newest)"))
    }

    /// The arguments and call that resume unfinished run `run` from its newest checkpoint;
    /// why it cannot resume otherwise.
    fn resumable(&self, run: &Run) -> Result<(Value, ParsedCall), String> {
        if run.tool != train::NAME {
            return Err(format!("{} runs do not resume", run.tool));
        }
        let recorded = run
            .checkpoint
            .as_ref()
            .ok_or("the training had written no checkpoint to resume from")?;
        let checkpoint = self.newest_checkpoint(recorded)?;
        let mut arguments = run.arguments.clone();
        let Value::Object(fields) = &mut arguments else {
            return Err("its stored arguments are not an object".into());
        };
        fields.insert("ckpt_path".into(), json!(checkpoint));
        fields.shift_remove("background");
        let call = self
            .parse(&run.tool, &arguments)
            .ok_or_else(|| format!("{} is not a tool of this server", run.tool))?
            .map_err(|e| format!("its arguments no longer parse: {e}"))?;
        Ok((arguments, call))
    }
}

/// What a call that started a run in the background returns: the run, and how to follow it.
pub(super) fn started(run: &Run) -> CallToolResult {
    CallToolResult::success(json!({
        "status": run.status.as_str(),
        "run_id": run.id,
        "tool": run.tool,
        "target": run.target,
        "next": format!(
            "lightning.runs {{\"action\": \"get\", \"run_id\": \"{}\"}} shows its progress; \
             action result returns its result once it has ended",
            run.id
        ),
    }))
}
