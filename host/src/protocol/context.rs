//! What a tool call gets besides its arguments: cancellation, progress and log notifications
//! for the client that made the call.

use super::jsonrpc::{ErrorCode, RpcError};
use crate::cancel::CancelToken;
use crate::sync::lock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Mutex;

/// Where a call's notifications go: the transport sends them to the caller, before the reply.
pub type Notify<'a> = &'a (dyn Fn(Value) + Send + Sync);

/// MCP log levels (syslog's), least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detailed debugging information.
    Debug,
    /// Normal operation: a training started, an epoch finished.
    Info,
    /// Normal but significant.
    Notice,
    /// Something went wrong but the work goes on.
    Warning,
    /// The work failed.
    Error,
    /// Critical conditions.
    Critical,
    /// Action must be taken immediately.
    Alert,
    /// The system is unusable.
    Emergency,
}

impl LogLevel {
    /// Reads a level from `value`; the error, for `field`, lists the levels.
    pub fn parse(value: &Value, field: &str) -> Result<Self, RpcError> {
        serde_json::from_value(value.clone()).map_err(|_| {
            RpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "{field} must be one of debug, info, notice, warning, error, critical, \
                     alert, emergency; got {value}"
                ),
            )
        })
    }
}

/// Who follows a call besides its caller: the run store records a run's progress whether or
/// not the caller asked for notifications.
pub trait CallObserver: Send + Sync {
    /// The call got its run slot and starts running.
    fn started(&self);
    /// The call's progress: `progress` of `total`, as `message` says.
    fn progress(&self, progress: f64, total: Option<f64>, message: &str);
    /// A point of the call's history: an epoch's record (`epoch`, `global_step`, `metrics`,
    /// and `checkpoint` when one was written).
    fn point(&self, record: &Value);
}

/// The method of a history point that a GPU worker forwards to its server (never sent to a
/// client).
pub const POINT_METHOD: &str = "lightning/point";

/// The context of one tool call.
pub struct CallContext<'a> {
    cancel: CancelToken,
    progress_token: Option<Value>,
    last_progress: Mutex<Option<f64>>,
    log_level: Option<LogLevel>,
    notify: Notify<'a>,
    observer: Option<&'a dyn CallObserver>,
}

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("progress_token", &self.progress_token)
            .field("log_level", &self.log_level)
            .finish_non_exhaustive()
    }
}

impl<'a> CallContext<'a> {
    /// A context whose notifications go to `notify`: progress when the caller gave a
    /// `progress_token`, log messages at `log_level` and above when it set one.
    pub fn new(
        cancel: CancelToken,
        progress_token: Option<Value>,
        log_level: Option<LogLevel>,
        notify: Notify<'a>,
    ) -> Self {
        Self {
            cancel,
            progress_token,
            last_progress: Mutex::new(None),
            log_level,
            notify,
            observer: None,
        }
    }

    /// A context for the same call and caller, its call followed by `observer` too.
    pub fn observed_by<'b>(&'b self, observer: &'b dyn CallObserver) -> CallContext<'b> {
        CallContext {
            cancel: self.cancel.clone(),
            progress_token: self.progress_token.clone(),
            last_progress: Mutex::new(*lock(&self.last_progress)),
            log_level: self.log_level,
            notify: self.notify,
            observer: Some(observer),
        }
    }

    /// The call got its run slot: its run starts.
    pub fn started(&self) {
        if let Some(observer) = self.observer {
            observer.started();
        }
    }

    /// Records a point of the call's history (see [`CallObserver::point`]).
    pub fn point(&self, record: &Value) {
        if let Some(observer) = self.observer {
            observer.point(record);
        }
    }

    /// The call's cancellation token.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether the caller cancelled the call.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether anyone follows the call's progress: the caller asked for it, or an observer
    /// records it.
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some() || self.observer.is_some()
    }

    /// Sends `notifications/progress` if the caller asked for progress and `progress` is
    /// above the last value sent (MCP requires it to increase).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: &str) {
        if let Some(observer) = self.observer {
            observer.progress(progress, total, message);
        }
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut last = lock(&self.last_progress);
        if last.is_some_and(|last| progress <= last) || !progress.is_finite() {
            return;
        }
        *last = Some(progress);
        let mut params =
            json!({ "progressToken": token, "progress": progress, "message": message });
        if let (Some(total), Value::Object(params)) = (total, &mut params) {
            params.insert("total".into(), json!(total));
        }
        (self.notify)(json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": params,
        }));
    }

    /// Whether a message at `level` would be sent.
    pub fn logs(&self, level: LogLevel) -> bool {
        self.log_level.is_some_and(|min| level >= min)
    }

    /// Sends `notifications/message` from `logger` if the caller's log level lets `level`
    /// through.
    pub fn log(&self, level: LogLevel, logger: &str, data: Value) {
        if self.logs(level) {
            (self.notify)(json!({
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": { "level": level, "logger": logger, "data": data },
            }));
        }
    }

    /// Sends a notification that another process made for this call (a GPU worker's
    /// `notifications/progress` or `notifications/message`), through this call's filters:
    /// progress only when asked for and increasing, messages at the caller's log level.
    pub fn forward(&self, notification: &Value) {
        let params = &notification["params"];
        match notification["method"].as_str() {
            Some("notifications/progress") => {
                if let Some(progress) = params["progress"].as_f64() {
                    self.progress(
                        progress,
                        params["total"].as_f64(),
                        params["message"].as_str().unwrap_or_default(),
                    );
                }
            }
            Some("notifications/message") => {
                if let Ok(level) = serde_json::from_value(params["level"].clone()) {
                    let logger = params["logger"].as_str().unwrap_or_default();
                    self.log(level, logger, params["data"].clone());
                }
            }
            Some(POINT_METHOD) => self.point(params),
            _ => tracing::debug!("dropped a forwarded notification: {notification}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_increases_and_needs_a_token() {
        let sent = Mutex::new(Vec::new());
        let notify = |m: Value| sent.lock().unwrap_or_else(|e| e.into_inner()).push(m);
        let ctx = CallContext::new(CancelToken::new(), Some(json!("t")), None, &notify);
        for p in [1.0, 1.0, 0.5, 2.0, f64::NAN] {
            ctx.progress(p, Some(2.0), "m");
        }
        let quiet = CallContext::new(CancelToken::new(), None, None, &notify);
        quiet.progress(3.0, None, "m");
        let sent = sent.into_inner().unwrap_or_default();
        let values: Vec<&Value> = sent
            .iter()
            .filter_map(|m| m.pointer("/params/progress"))
            .collect();
        assert_eq!(values, [&json!(1.0), &json!(2.0)]);
        let first = sent.first().map(|m| &m["params"]);
        assert_eq!(first.map(|p| &p["progressToken"]), Some(&json!("t")));
        assert_eq!(first.map(|p| &p["total"]), Some(&json!(2.0)));
    }

    #[test]
    fn log_level_filters_messages() {
        let sent = Mutex::new(0);
        let notify = |_: Value| *sent.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let ctx = CallContext::new(CancelToken::new(), None, Some(LogLevel::Info), &notify);
        ctx.log(LogLevel::Debug, "t", json!("no"));
        ctx.log(LogLevel::Info, "t", json!("yes"));
        ctx.log(LogLevel::Error, "t", json!("yes"));
        CallContext::new(CancelToken::new(), None, None, &notify).log(
            LogLevel::Emergency,
            "t",
            json!("no level set: nothing"),
        );
        assert_eq!(sent.into_inner().unwrap_or_default(), 2);
    }

    #[test]
    fn forwarded_notifications_pass_this_calls_filters() {
        let sent = Mutex::new(Vec::new());
        let notify = |m: Value| sent.lock().unwrap_or_else(|e| e.into_inner()).push(m);
        let ctx = CallContext::new(
            CancelToken::new(),
            Some(json!("mine")),
            Some(LogLevel::Info),
            &notify,
        );
        let progress = |p: f64| {
            json!({"method": "notifications/progress",
                   "params": {"progressToken": "theirs", "progress": p, "total": 4.0,
                              "message": "epoch"}})
        };
        let message = |level: &str| {
            json!({"method": "notifications/message",
                   "params": {"level": level, "logger": "w", "data": "d"}})
        };
        for n in [
            progress(1.0),
            progress(1.0),
            message("debug"),
            message("warning"),
            json!({"method": "sampling/createMessage"}),
        ] {
            ctx.forward(&n);
        }
        let sent = sent.into_inner().unwrap_or_default();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent.first()
                .and_then(|m| m.pointer("/params/progressToken")),
            Some(&json!("mine"))
        );
        assert_eq!(
            sent.get(1).and_then(|m| m.pointer("/params/level")),
            Some(&json!("warning"))
        );
    }
}
