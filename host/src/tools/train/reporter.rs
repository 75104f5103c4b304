//! The progress of a training as MCP notifications, and its history points for the run store.

use super::NAME;
use crate::protocol::{CallContext, LogLevel};
use crate::sandbox::{GuestLine, ModelInstance};
use crate::tools::checkpoint::Checkpointer;
use crate::trainer::{EpochRecord, FitObserver, FitProgress, Metrics, TrainingState};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Turns the fit's progress into MCP notifications: progress after every epoch (and at most
/// every [`STEP_PROGRESS_INTERVAL`] within one), a log message per epoch, and the caller's
/// cancellation.
pub(super) struct Reporter<'a, 'b> {
    ctx: &'a CallContext<'b>,
    last_sent: Instant,
    pub(super) checkpointer: Option<Checkpointer<'a>>,
    /// The epoch record waiting for its checkpoint moment, to be recorded as a history
    /// point with the checkpoint written then.
    pending: Option<Value>,
}

/// The logger name of what the model prints.
const MODEL_LOGGER: &str = "model";

/// The shortest time between two progress notifications inside an epoch.
const STEP_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl<'a, 'b> Reporter<'a, 'b> {
    /// A reporter to `ctx`, writing checkpoints with `checkpointer` when there is one.
    pub(super) fn new(ctx: &'a CallContext<'b>, checkpointer: Option<Checkpointer<'a>>) -> Self {
        Self {
            ctx,
            last_sent: Instant::now(),
            checkpointer,
            pending: None,
        }
    }

    /// Records the pending epoch point, with `checkpoint` when one was written for it.
    pub(super) fn record_point(&mut self, checkpoint: Option<String>) {
        if let Some(mut point) = self.pending.take() {
            if let (Some(path), Value::Object(fields)) = (checkpoint, &mut point) {
                fields.insert("checkpoint".into(), json!(path));
            }
            self.ctx.point(&point);
        }
    }

    fn send(&mut self, progress: &FitProgress, message: String) {
        self.ctx.progress(
            progress.global_step as f64,
            Some(progress.total_steps as f64),
            &message,
        );
        self.last_sent = Instant::now();
    }
}

impl FitObserver for Reporter<'_, '_> {
    fn cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }

    fn checkpoint(
        &mut self,
        model: &ModelInstance,
        state: &TrainingState<'_>,
        record: &EpochRecord,
    ) -> Result<(), String> {
        let written = match &mut self.checkpointer {
            Some(checkpointer) => checkpointer.save_point(model, state, record)?,
            None => None,
        };
        self.record_point(written);
        Ok(())
    }

    fn step_end(&mut self, progress: &FitProgress) {
        // The epoch's last step is reported by `epoch_end`, with the epoch's metrics.
        let last_of_epoch = progress.batch >= progress.batches;
        if !last_of_epoch
            && self.ctx.wants_progress()
            && self.last_sent.elapsed() >= STEP_PROGRESS_INTERVAL
        {
            let message = format!(
                "epoch {}/{}: step {}/{}",
                progress.epoch + 1,
                progress.max_epochs,
                progress.global_step,
                progress.total_steps
            );
            self.send(progress, message);
        }
    }

    fn model_output(&mut self, lines: Vec<GuestLine>) {
        for line in lines {
            let level = match line.stream {
                "stderr" => LogLevel::Warning,
                _ => LogLevel::Info,
            };
            self.ctx.log(level, MODEL_LOGGER, json!(line.text));
        }
    }

    fn epoch_end(&mut self, progress: &FitProgress, metrics: &Metrics) {
        let figures: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        let message = format!(
            "epoch {}/{} done, step {}/{}: {}",
            progress.epoch + 1,
            progress.max_epochs,
            progress.global_step,
            progress.total_steps,
            figures.join(" ")
        );
        // To the server's stderr too, so that a one-line stdio run shows its progress.
        tracing::info!(target: "lightning_mcp::train", "{message}");
        let point = json!({
            "epoch": progress.epoch,
            "global_step": progress.global_step,
            "metrics": metrics,
        });
        self.ctx.log(LogLevel::Info, NAME, point.clone());
        // An epoch without a checkpoint moment is recorded at the next epoch's end.
        self.record_point(None);
        self.pending = Some(point);
        self.send(progress, message);
    }
}
