//! A session: the state one client builds up (negotiated version, log level, requests in
//! flight) and the two-step handling of its messages.
//!
//! [`Session::receive`] runs in arrival order and is cheap: it parses a message, answers what
//! needs no work, applies notifications at once (so `notifications/cancelled` finds a running
//! request) and registers each request as in flight. [`Received::run`] then does the work,
//! possibly on another thread, sending the requests' notifications before their replies.

use super::context::{CallContext, LogLevel, Notify};
use super::dispatch::Answer;
use super::jsonrpc::{ErrorCode, Reply, Request, RpcError};
use super::version::{self, RequestMeta};
use super::{Server, dispatch};
use crate::cancel::CancelToken;
use crate::sync::lock;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

/// Most messages in one batch.
pub const MAX_BATCH: usize = 128;

/// One client's state.
pub struct Session {
    server: Server,
    state: Mutex<State>,
    in_flight: Mutex<HashMap<String, CancelToken>>,
}

#[derive(Debug)]
struct State {
    version: &'static str,
    log_level: Option<LogLevel>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &*lock(&self.state))
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session of `server` that speaks `version` until `initialize` negotiates another.
    pub fn new(server: Server, version: &'static str) -> Arc<Self> {
        Arc::new(Self {
            server,
            state: Mutex::new(State {
                version,
                log_level: None,
            }),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The server this session belongs to.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The protocol version in use.
    pub fn version(&self) -> &'static str {
        lock(&self.state).version
    }

    pub(super) fn set_version(&self, version: &'static str) {
        lock(&self.state).version = version;
    }

    pub(super) fn set_log_level(&self, level: LogLevel) {
        lock(&self.state).log_level = Some(level);
    }

    fn log_level(&self) -> Option<LogLevel> {
        lock(&self.state).log_level
    }

    /// How many requests are running.
    pub fn requests_in_flight(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Cancels every request in flight (the client went away).
    pub fn cancel_all(&self) {
        for token in lock(&self.in_flight).values() {
            token.cancel();
        }
    }

    /// Parses `text` (one message or a batch) and registers its requests.
    pub fn receive_text(self: &Arc<Self>, text: &str) -> Received {
        match serde_json::from_str::<Value>(text) {
            Ok(message) => self.receive(message),
            Err(e) => Received::ready(Reply::error(
                Value::Null,
                &RpcError::new(ErrorCode::ParseError, format!("Parse error: {e}")),
            )),
        }
    }

    /// Takes one parsed message (or batch): applies notifications, registers requests.
    pub fn receive(self: &Arc<Self>, message: Value) -> Received {
        match message {
            Value::Array(batch) if batch.is_empty() => Received::ready(Reply::error(
                Value::Null,
                &RpcError::new(ErrorCode::InvalidRequest, "an empty batch is not a request"),
            )),
            Value::Array(batch) if batch.len() > MAX_BATCH => Received::ready(Reply::error(
                Value::Null,
                &RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "a batch holds at most {MAX_BATCH} messages, this one {}",
                        batch.len()
                    ),
                ),
            )),
            Value::Array(batch) => Received {
                items: batch.into_iter().filter_map(|m| self.item(m)).collect(),
                batch: true,
            },
            message => Received {
                items: self.item(message).into_iter().collect(),
                batch: false,
            },
        }
    }

    /// What one message asks for: a reply at once (an invalid request), a call to run, or
    /// nothing (a notification, a client's reply).
    fn item(self: &Arc<Self>, message: Value) -> Option<Item> {
        // A message with `result` or `error` and no `method` is a client's reply; this server
        // sends no requests, so there is nothing to match it to.
        if message.get("method").is_none()
            && (message.get("result").is_some() || message.get("error").is_some())
        {
            return None;
        }
        let request = match Request::parse(message) {
            Ok(request) => request,
            Err((id, e)) => return Some(Item::Ready(Reply::error(id, &e))),
        };
        let id = match (&request.id, request.is_jsonrpc) {
            (Some(id), _) => id.clone(),
            // The legacy form may leave out the id; it is still answered.
            (None, false) if !request.method.starts_with("notifications/") => Value::Null,
            (None, _) => {
                self.notification(&request);
                return None;
            }
        };
        match self.pending(request, id.clone()) {
            Ok(pending) => Some(Item::Call(Box::new(pending))),
            Err(e) => Some(Item::Ready(Reply::error(id, &e))),
        }
    }

    /// A request with `id` made ready to run: its `_meta` read, its protocol version settled
    /// (the session's, or a stateless request's own), its id registered as in flight.
    fn pending(self: &Arc<Self>, request: Request, id: Value) -> Result<Pending, RpcError> {
        if request.params.is_array() {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                "params must be an object; positional params are not supported",
            ));
        }
        let meta = RequestMeta::parse(&request.params)?;
        let session_version = self.version();
        let stateless = request.is_jsonrpc
            && (request.method == "server/discover"
                || meta
                    .protocol_version
                    .as_deref()
                    .is_some_and(version::asks_stateless)
                || version::is_stateless(session_version));
        let version = if stateless {
            meta.require_stateless()?
        } else {
            session_version
        };
        let token = CancelToken::new();
        let key = id.to_string();
        if !id.is_null() {
            self.register(&key, &token)?;
        }
        let log_level = if version::is_stateless(version) {
            meta.log_level
        } else {
            self.log_level()
        };
        Ok(Pending {
            guard: (!id.is_null()).then(|| InFlight {
                session: self.clone(),
                key,
            }),
            session: self.clone(),
            request,
            id,
            meta,
            version,
            log_level,
            token,
        })
    }

    /// Registers request `key` as in flight, cancelled by `token`; an id already in flight
    /// is refused.
    fn register(&self, key: &str, token: &CancelToken) -> Result<(), RpcError> {
        let mut in_flight = lock(&self.in_flight);
        if in_flight.contains_key(key) {
            return Err(RpcError::new(
                ErrorCode::InvalidRequest,
                format!("request id {key} is already in use by a request in progress"),
            ));
        }
        in_flight.insert(key.to_string(), token.clone());
        Ok(())
    }

    /// Applies a notification: `notifications/cancelled` stops the request it names; the
    /// others need nothing.
    fn notification(&self, request: &Request) {
        if request.method == "notifications/cancelled" {
            let Some(id) = request.params.get("requestId") else {
                tracing::debug!("notifications/cancelled without requestId ignored");
                return;
            };
            match lock(&self.in_flight).get(&id.to_string()) {
                Some(token) => {
                    tracing::info!(request = %id, "request cancelled by the client");
                    token.cancel();
                }
                None => tracing::debug!(request = %id, "cancelled request is not in flight"),
            }
        }
    }
}

/// A request registered as in flight until it is answered (or dropped unanswered).
struct InFlight {
    session: Arc<Session>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.session.in_flight).remove(&self.key);
    }
}

/// A request ready to run.
pub(super) struct Pending {
    guard: Option<InFlight>,
    pub(super) session: Arc<Session>,
    pub(super) request: Request,
    pub(super) id: Value,
    pub(super) meta: RequestMeta,
    /// The version this request is answered in.
    pub(super) version: &'static str,
    log_level: Option<LogLevel>,
    pub(super) token: CancelToken,
}

impl Pending {
    /// The context a tool call of this request gets.
    pub(super) fn context<'a>(&self, notify: Notify<'a>) -> CallContext<'a> {
        CallContext::new(
            self.token.clone(),
            self.meta.progress_token.clone(),
            self.log_level,
            notify,
        )
    }

    /// Whether this request runs a tool (`tools/call`, or a tool name as the method) or
    /// reads tasks (`tasks/*`, which read the run store and may wait for a run to end).
    fn calls_tool(&self) -> bool {
        let method = self.request.method.as_str();
        method == "tools/call"
            || method.starts_with("tasks/")
            || self.session.server().tool_for_method(method).is_some()
    }

    fn run(self, notify: Notify<'_>) -> Option<Reply> {
        // Cancelled while it waited for a thread: not started, not answered.
        if self.token.is_cancelled() {
            return None;
        }
        // A bug in a handler must not leave the client waiting for a reply that never comes.
        let outcome = catch_unwind(AssertUnwindSafe(|| dispatch::dispatch(&self, notify)))
            .unwrap_or_else(|_| {
                tracing::error!(method = %self.request.method, "request handler panicked");
                Err(RpcError::new(
                    ErrorCode::InternalError,
                    format!("internal error while handling {}", self.request.method),
                ))
            });
        // A cancelled request is not answered.
        if self.token.is_cancelled() {
            return None;
        }
        drop(self.guard);
        Some(match outcome {
            Ok(Answer::Fresh(result)) => {
                let info = self.session.server().info();
                Reply::success(&self.id, &dispatch::finish(result, self.version, info))
            }
            Ok(Answer::Shared(result)) => Reply::success_written(&self.id, &result),
            Err(e) => Reply::error(self.id, &e),
        })
    }
}

enum Item {
    /// The reply is known already (a malformed request).
    Ready(Reply),
    /// A request to run.
    Call(Box<Pending>),
}

/// A received message, its requests registered and waiting to run.
pub struct Received {
    items: Vec<Item>,
    batch: bool,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("items", &self.items.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl Received {
    fn ready(reply: Reply) -> Self {
        Self {
            items: vec![Item::Ready(reply)],
            batch: false,
        }
    }

    /// Whether the message needs a reply (it holds a request or a malformed message);
    /// notifications and client replies need none.
    pub fn expects_reply(&self) -> bool {
        !self.items.is_empty()
    }

    /// The requests to run.
    fn calls(&self) -> impl Iterator<Item = &Pending> {
        self.items.iter().filter_map(|item| match item {
            Item::Call(pending) => Some(&**pending),
            Item::Ready(_) => None,
        })
    }

    /// The ids of the requests to run.
    pub fn request_ids(&self) -> Vec<Value> {
        self.calls().map(|p| p.id.clone()).collect()
    }

    /// The tokens that cancel the requests (for a transport whose client went away).
    pub fn cancel_tokens(&self) -> Vec<CancelToken> {
        self.calls().map(|p| p.token.clone()).collect()
    }

    /// Whether running may take a while: it calls a tool. Everything else (lifecycle, lists,
    /// malformed messages) is answered in microseconds and may run on the caller's thread.
    pub fn calls_tools(&self) -> bool {
        self.calls().any(Pending::calls_tool)
    }

    /// Whether running may send notifications before the reply: a request asked for
    /// progress, or log messages are enabled for it.
    pub fn may_notify(&self) -> bool {
        self.calls()
            .any(|p| p.meta.progress_token.is_some() || p.log_level.is_some())
    }

    /// Runs the requests (blocking), sending their notifications to `notify`; returns the
    /// reply: one message, a batch of them, or nothing when every request was cancelled.
    pub fn run(self, notify: Notify<'_>) -> Option<Reply> {
        let replies: Vec<Reply> = self
            .items
            .into_iter()
            .filter_map(|item| match item {
                Item::Ready(reply) => Some(reply),
                Item::Call(pending) => pending.run(notify),
            })
            .collect();
        if self.batch {
            (!replies.is_empty()).then(|| Reply::batch(&replies))
        } else {
            replies.into_iter().next()
        }
    }
}
