//! One HTTP request to the MCP endpoint: checks, session, JSON or SSE reply.

use super::HttpConfig;
use super::access::{self, Accepts};
use super::sessions::Sessions;
use crate::cancel::CancelToken;
use crate::protocol::{
    self, ErrorCode, META_PROTOCOL_VERSION, Received, Reply, RpcError, Server, Session,
};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use futures_util::stream;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

type Body = UnsyncBoxBody<Bytes, Infallible>;
type Response = http::Response<Body>;
/// A request refused before it runs: the response that says why (boxed: it is large).
type Refusal = Box<Response>;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// Notifications an event stream holds for a client that reads slowly.
const EVENT_BUFFER: usize = 256;

/// What every request shares.
pub(super) struct Service {
    pub(super) server: Server,
    pub(super) sessions: Sessions,
    pub(super) config: HttpConfig,
    /// Turns true when the server shuts down.
    pub(super) stopping: watch::Receiver<bool>,
}

impl Service {
    /// Answers one request; never fails (every problem is an HTTP status with a reason).
    pub(super) async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> Response {
        let path = request.uri().path();
        if path == "/healthz" && request.method() == Method::GET {
            return json_response(StatusCode::OK, json!({ "status": "ok" }).to_string());
        }
        if path != "/mcp" {
            return plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
        }
        if let Err(reason) = self.config.allowed_hosts.check(request.headers()) {
            tracing::warn!("refused: {reason}");
            return plain(StatusCode::FORBIDDEN, &reason);
        }
        if let Some(token) = &self.config.auth_token
            && !access::authorized(request.headers(), token)
        {
            let mut response = plain(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send Authorization: Bearer <token>",
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        match *request.method() {
            Method::POST => self.post(request).await,
            Method::DELETE => self.delete(request.headers()),
            _ => {
                let mut response = plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed: POST /mcp sends messages, DELETE /mcp ends a session; \
                     this server opens no server-initiated stream",
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
                response
            }
        }
    }

    fn delete(&self, headers: &HeaderMap) -> Response {
        match header(headers, SESSION_HEADER) {
            None => plain(
                StatusCode::BAD_REQUEST,
                "DELETE /mcp needs an Mcp-Session-Id",
            ),
            Some(id) if self.sessions.close(id) => empty(StatusCode::NO_CONTENT),
            Some(_) => plain(StatusCode::NOT_FOUND, "no such session"),
        }
    }

    async fn post(self: Arc<Self>, request: http::Request<Incoming>) -> Response {
        match self.exchange(request).await {
            Ok(response) => response,
            Err(refusal) => *refusal,
        }
    }

    /// A POSTed message through every check to its answer; `Err` is a refusal.
    async fn exchange(
        self: Arc<Self>,
        request: http::Request<Incoming>,
    ) -> Result<Response, Refusal> {
        let (parts, body) = request.into_parts();
        let headers = &parts.headers;
        let accepts = negotiate(headers)?;
        let body = self.read_body(body).await?;
        let message = parse_message(&body)?;
        let refused =
            |e: RpcError| Box::new(rpc_error(StatusCode::BAD_REQUEST, request_id(&message), &e));
        let version = check_version(headers, &message).map_err(refused)?;
        let stateless = version.is_some_and(protocol::is_stateless)
            || body_version(&message).is_some_and(protocol::is_stateless);
        if stateless {
            check_stateless_headers(headers, &message).map_err(refused)?;
        }
        let initialize = message.get("method").and_then(Value::as_str) == Some("initialize");
        let session = self.session_for(headers, &message, initialize, version)?;
        let received = session.receive(message);
        if !received.expects_reply() {
            return Ok(empty(StatusCode::ACCEPTED));
        }
        if !received.calls_tools() {
            let opens = initialize.then_some(session);
            return self.answer_at_once(received, opens, accepts, stateless);
        }
        Ok(if accepts.sse && (received.may_notify() || !accepts.json) {
            self.stream(received)
        } else {
            self.answer(received, stateless).await
        })
    }

    /// The request's body, within the size and time limits.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Refusal> {
        let limit = self.config.max_body_bytes;
        let read_timeout = self.config.read_timeout;
        let Ok(body) =
            tokio::time::timeout(read_timeout, Limited::new(body, limit).collect()).await
        else {
            let message = format!(
                "request timeout: the body took over {} s",
                read_timeout.as_secs()
            );
            return Err(Box::new(plain(StatusCode::REQUEST_TIMEOUT, &message)));
        };
        body.map(|body| body.to_bytes()).map_err(|e| {
            Box::new(if e.is::<http_body_util::LengthLimitError>() {
                plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("payload too large: the limit is {limit} bytes"),
                )
            } else {
                plain(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}"))
            })
        })
    }

    /// The session `message` belongs to: a new one for `initialize` or a request without a
    /// session (at the version it asks for), else the one its header names.
    fn session_for(
        &self,
        headers: &HeaderMap,
        message: &Value,
        initialize: bool,
        version: Option<&'static str>,
    ) -> Result<Arc<Session>, Refusal> {
        match (header(headers, SESSION_HEADER), initialize) {
            (_, true) => Ok(Session::new(self.server.clone(), protocol::DEFAULT_VERSION)),
            (Some(id), false) => self.sessions.get(id).ok_or_else(|| {
                Box::new(rpc_error(
                    StatusCode::NOT_FOUND,
                    request_id(message),
                    &RpcError::new(
                        ErrorCode::InvalidRequest,
                        "session not found: it ended or never existed; initialize again",
                    ),
                ))
            }),
            (None, false) => Ok(Session::new(
                self.server.clone(),
                version.unwrap_or(protocol::DEFAULT_VERSION),
            )),
        }
    }

    /// Answers a lifecycle or list request, which takes microseconds, without the blocking
    /// pool; a successful `initialize` opens its session (`opens`).
    fn answer_at_once(
        &self,
        received: Received,
        opens: Option<Arc<Session>>,
        accepts: Accepts,
        stateless: bool,
    ) -> Result<Response, Refusal> {
        let Some(reply) = received.run(&|_| {}) else {
            return Ok(empty(StatusCode::ACCEPTED));
        };
        let session_id = match opens.filter(|_| reply.error_code().is_none()) {
            Some(session) => Some(self.sessions.open(session).ok_or_else(|| {
                Box::new(plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sessions in use; close one (DELETE /mcp) or retry later",
                ))
            })?),
            None => None,
        };
        let mut response = if accepts.json {
            reply_response(&reply, stateless)
        } else {
            event_stream(stream::iter([Ok(Frame::data(sse_event(reply.text())))]))
        };
        if let Some(id) = session_id
            && let Ok(value) = HeaderValue::from_str(&id)
        {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        Ok(response)
    }

    /// Runs `received` and answers with one JSON body.
    async fn answer(&self, received: Received, stateless: bool) -> Response {
        let ids = received.request_ids();
        let tokens = received.cancel_tokens();
        // Cancels the requests if the client goes away and this future is dropped.
        let _cancel_on_drop = CancelOnDrop(tokens.clone());
        let worker = tokio::task::spawn_blocking(move || received.run(&|_| {}));
        let reply = match self.supervise(worker, &tokens).await {
            Ok(Some(reply)) => Some(reply),
            // Every request was cancelled by the client; a JSON response must still say so.
            Ok(None) => cancelled_reply(&ids, "cancelled by the client"),
            Err(e) => cancelled_reply(&ids, &e),
        };
        match reply {
            Some(reply) => reply_response(&reply, stateless),
            None => empty(StatusCode::ACCEPTED),
        }
    }

    /// Runs `received` and answers with an event stream: its notifications, then its reply.
    /// A client that reads slower than a training notifies loses notifications (the stream
    /// holds at most [`EVENT_BUFFER`]), never the reply.
    fn stream(self: &Arc<Self>, received: Received) -> Response {
        let ids = received.request_ids();
        let tokens = received.cancel_tokens();
        let (events, outbox) = mpsc::channel::<Bytes>(EVENT_BUFFER);
        let notifications = events.clone();
        let worker = tokio::task::spawn_blocking(move || {
            received.run(&|message: Value| {
                if let Ok(text) = serde_json::to_string(&message) {
                    let _ = notifications.try_send(sse_event(&text));
                }
            })
        });
        let service = self.clone();
        let supervised = tokens.clone();
        tokio::spawn(async move {
            let reply = service.supervise(worker, &supervised).await;
            if let Some(reply) = reply.unwrap_or_else(|e| cancelled_reply(&ids, &e)) {
                let _ = events.send(sse_event(reply.text())).await;
            }
        });
        // The body owns the guard: dropping the stream (the client closed it) cancels.
        event_stream(stream::unfold(
            (outbox, CancelOnDrop(tokens)),
            |(mut outbox, guard)| async move {
                let event = outbox.recv().await?;
                Some((Ok(Frame::data(event)), (outbox, guard)))
            },
        ))
    }

    /// Waits for `worker`, cancelling its requests past the time limit or at shutdown.
    async fn supervise(
        &self,
        mut worker: tokio::task::JoinHandle<Option<Reply>>,
        tokens: &[CancelToken],
    ) -> Result<Option<Reply>, String> {
        let mut stopping = self.stopping.clone();
        let limit = self.config.request_timeout;
        let stopped = tokio::select! {
            done = &mut worker => return done.map_err(|e| format!("internal error: {e}")),
            () = tokio::time::sleep(limit) => {
                format!("the request exceeded the server's time limit of {} s", limit.as_secs())
            }
            _ = stopping.wait_for(|stop| *stop) => "the server is shutting down".to_string(),
        };
        tokens.iter().for_each(CancelToken::cancel);
        match worker.await {
            Ok(Some(reply)) => Ok(Some(reply)),
            Ok(None) => Err(stopped),
            Err(e) => Err(format!("internal error: {e}")),
        }
    }
}

/// A `text/event-stream` response whose events come from `events`.
fn event_stream(
    events: impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
) -> Response {
    let mut response = http::Response::new(UnsyncBoxBody::new(StreamBody::new(events)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Cancels requests when dropped (harmless once they have finished).
struct CancelOnDrop(Vec<CancelToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(CancelToken::cancel);
    }
}

/// The reply to requests that were stopped (`why`) before they answered: `None` when the
/// message held no request with an id.
fn cancelled_reply(ids: &[Value], why: &str) -> Option<Reply> {
    let error = RpcError::new(
        ErrorCode::RequestCancelled,
        format!("request cancelled: {why}"),
    );
    let replies: Vec<Reply> = ids
        .iter()
        .map(|id| Reply::error(id.clone(), &error))
        .collect();
    match replies.len() {
        0 => None,
        1 => replies.into_iter().next(),
        _ => Some(Reply::batch(&replies)),
    }
}

/// What the client accepts, if the server can answer it, and a JSON body.
fn negotiate(headers: &HeaderMap) -> Result<Accepts, Refusal> {
    let accepts = Accepts::from(headers);
    if !accepts.json && !accepts.sse {
        return Err(Box::new(plain(
            StatusCode::NOT_ACCEPTABLE,
            "not acceptable: accept application/json or text/event-stream",
        )));
    }
    if let Some(kind) = header(headers, CONTENT_TYPE.as_str())
        && !kind.to_ascii_lowercase().starts_with("application/json")
    {
        return Err(Box::new(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type: send Content-Type: application/json",
        )));
    }
    Ok(accepts)
}

/// The body as one JSON-RPC message, or the parse error as JSON-RPC says.
fn parse_message(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            &RpcError::new(ErrorCode::ParseError, format!("Parse error: {e}")),
        ))
    })
}

/// The `MCP-Protocol-Version` header checked against the body: a version this server speaks,
/// and the same as the body's `_meta` version when both are given.
fn check_version(headers: &HeaderMap, message: &Value) -> Result<Option<&'static str>, RpcError> {
    let Some(asked) = header(headers, VERSION_HEADER) else {
        return match body_version(message) {
            Some(in_body) if protocol::is_stateless(in_body) => Err(RpcError::new(
                ErrorCode::HeaderMismatch,
                format!("a {in_body} request needs the MCP-Protocol-Version: {in_body} header"),
            )),
            _ => Ok(None),
        };
    };
    if let Some(in_body) = body_version(message)
        && in_body != asked
    {
        return Err(RpcError::new(
            ErrorCode::HeaderMismatch,
            format!(
                "the MCP-Protocol-Version header says {asked:?} but params._meta[\
                 {META_PROTOCOL_VERSION:?}] says {in_body:?}"
            ),
        ));
    }
    protocol::supported(asked)
        .map(Some)
        .ok_or_else(|| protocol::unsupported(asked))
}

/// The stateless era's routing headers: `Mcp-Method` equal to the body's method and, for
/// `tools/call`, `Mcp-Name` equal to the tool name (for `tasks/get`, `tasks/update` and
/// `tasks/cancel`, to the task id).
fn check_stateless_headers(headers: &HeaderMap, message: &Value) -> Result<(), RpcError> {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return Ok(());
    };
    let mismatch = |m: String| Err(RpcError::new(ErrorCode::HeaderMismatch, m));
    match header(headers, METHOD_HEADER).map(str::trim) {
        None => return mismatch(format!("the request needs an Mcp-Method: {method} header")),
        Some(given) if given != method => {
            return mismatch(format!(
                "the Mcp-Method header {given:?} does not match the body's method {method:?}"
            ));
        }
        Some(_) => {}
    }
    let field = match method {
        "tools/call" => "name",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => return Ok(()),
    };
    let named = message
        .get("params")
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default();
    match header(headers, NAME_HEADER).map(decode_header_value) {
        None => mismatch(format!("{method} needs an Mcp-Name: {named} header")),
        Some(None) => mismatch("the Mcp-Name header is not valid base64".to_string()),
        Some(Some(given)) if given != named => mismatch(format!(
            "the Mcp-Name header {given:?} does not match params.{field} {named:?}"
        )),
        Some(_) => Ok(()),
    }
}

/// A routing header's value: trimmed, and decoded when written as `=?base64?...?=`; `None`
/// when that encoding is broken.
fn decode_header_value(value: &str) -> Option<String> {
    let value = value.trim();
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => BASE64_STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_string()),
    }
}

/// The version a single message names in `params._meta`.
fn body_version(message: &Value) -> Option<&str> {
    message
        .get("params")?
        .get("_meta")?
        .get(META_PROTOCOL_VERSION)?
        .as_str()
}

/// The id of a single request, for an error reply.
fn request_id(message: &Value) -> Value {
    message.get("id").map_or(Value::Null, protocol::echo_id)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The HTTP status of a reply: 200, except that the stateless era maps errors to statuses
/// (unknown method 404, invalid request or params 400) and a parse error is always 400.
fn status_of(reply: &Reply, stateless: bool) -> StatusCode {
    use ErrorCode::*;
    match reply.error_code() {
        Some(ParseError) => StatusCode::BAD_REQUEST,
        Some(MethodNotFound) if stateless => StatusCode::NOT_FOUND,
        Some(
            InvalidRequest
            | InvalidParams
            | HeaderMismatch
            | MissingRequiredClientCapability
            | UnsupportedProtocolVersion,
        ) if stateless => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

fn sse_event(message: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn rpc_error(status: StatusCode, id: Value, error: &RpcError) -> Response {
    json_response(status, Reply::error(id, error).into_text())
}

fn reply_response(reply: &Reply, stateless: bool) -> Response {
    json_response(status_of(reply, stateless), reply.text().to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = http::Response::new(
        Full::new(Bytes::from(format!("{text}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response =
        http::Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::decode_header_value;

    #[test]
    fn routing_headers_may_be_base64() {
        assert_eq!(
            decode_header_value("  lightning.train "),
            Some("lightning.train".into())
        );
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=?="),
            Some("Hello".into())
        );
        assert_eq!(decode_header_value("=?base64?SGk=?="), Some("Hi".into()));
        assert_eq!(decode_header_value("=?base64?SGVsbG8?="), None);
        assert_eq!(decode_header_value("=?base64?SGVs!!!bG8=?="), None);
    }
}
