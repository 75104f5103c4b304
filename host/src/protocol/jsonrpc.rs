//! JSON-RPC 2.0 messages: what a request looks like, how replies and errors are written.

use serde::Serialize;
use serde_json::{Value, json};

/// JSON-RPC error codes used by this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The message is not JSON.
    ParseError,
    /// The message is JSON but not a request.
    InvalidRequest,
    /// No such method.
    MethodNotFound,
    /// The method's params are wrong (including an unknown tool).
    InvalidParams,
    /// The server failed (a bug): the request could not be answered.
    InternalError,
    /// An HTTP header disagrees with the body, or a required header is missing (2026-07-28).
    HeaderMismatch,
    /// The request needs a client capability the client did not declare (2026-07-28).
    MissingRequiredClientCapability,
    /// The request's protocol version is not one this server speaks (2026-07-28).
    UnsupportedProtocolVersion,
    /// The client cancelled the request (answered only where a reply must be sent anyway,
    /// e.g. an HTTP response already under way).
    RequestCancelled,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::InternalError => -32603,
            Self::HeaderMismatch => -32020,
            Self::MissingRequiredClientCapability => -32021,
            Self::UnsupportedProtocolVersion => -32022,
            Self::RequestCancelled => -32800,
        }
    }
}

/// A protocol-level failure, answered as a JSON-RPC `error`.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: ErrorCode,
    /// A message naming the problem.
    pub message: String,
    /// Details for the client to act on, e.g. the supported versions.
    pub data: Option<Box<Value>>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(Box::new(data));
        self
    }
}

/// A request or notification, parsed leniently enough for the legacy form (no `jsonrpc`).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id; `None` for a notification.
    pub id: Option<Value>,
    /// The method name.
    pub method: String,
    /// The params: an object, an array (positional params, which no method here takes), or
    /// `Null` when absent.
    pub params: Value,
    /// Whether the message carried `"jsonrpc": "2.0"`.
    pub is_jsonrpc: bool,
}

impl Request {
    /// Reads a request out of one JSON value. On failure, returns the id (if any could be
    /// read) with the error, so the error reply can name the request.
    pub fn parse(message: Value) -> Result<Self, (Value, RpcError)> {
        let Value::Object(mut object) = message else {
            return Err((
                Value::Null,
                RpcError::new(ErrorCode::InvalidRequest, "a request must be a JSON object"),
            ));
        };
        let id = object.remove("id");
        let reply_id = id.as_ref().map_or(Value::Null, echo_id);
        let fail = |message: String| {
            Err((
                reply_id.clone(),
                RpcError::new(ErrorCode::InvalidRequest, message),
            ))
        };
        if let Some(id) = &id
            && reply_id.is_null()
        {
            return fail(format!("id must be a string or an integer, got {id}"));
        }
        let is_jsonrpc = match object.remove("jsonrpc") {
            None => false,
            Some(Value::String(v)) if v == "2.0" => true,
            Some(other) => return fail(format!("jsonrpc must be \"2.0\", got {other}")),
        };
        let method = match object.remove("method") {
            Some(Value::String(m)) => m,
            Some(other) => return fail(format!("method must be a string, got {other}")),
            None => return fail("the request has no method".to_string()),
        };
        let params = match object.remove("params") {
            None | Some(Value::Null) => Value::Null,
            Some(p @ (Value::Object(_) | Value::Array(_))) => p,
            Some(other) => return fail(format!("params must be an object, got {other}")),
        };
        Ok(Self {
            id,
            method,
            params,
            is_jsonrpc,
        })
    }
}

/// The id to echo in a reply to a request whose id is `id`: a string, or an integer that
/// round-trips exactly; anything else cannot be echoed, and the reply says null.
pub fn echo_id(id: &Value) -> Value {
    match id {
        Value::String(_) => id.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => id.clone(),
        _ => Value::Null,
    }
}

/// A reply, serialized and ready to send: one message or a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    text: String,
    error: Option<ErrorCode>,
}

/// A success reply, borrowing its parts so that a shared result is written without a copy.
#[derive(Serialize)]
struct Success<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: &'a Value,
}

impl Reply {
    /// The success reply to request `id`.
    pub fn success(id: &Value, result: &Value) -> Self {
        match serde_json::to_string(&Success {
            jsonrpc: "2.0",
            id,
            result,
        }) {
            Ok(text) => Self { text, error: None },
            Err(e) => Self::error(
                id.clone(),
                &RpcError::new(
                    ErrorCode::InternalError,
                    format!("cannot write the result: {e}"),
                ),
            ),
        }
    }

    /// The success reply to request `id` with a result already written as JSON.
    pub fn success_written(id: &Value, result: &str) -> Self {
        // An id (a string or an integer) always serialises.
        let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
        Self {
            text: format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
            error: None,
        }
    }

    /// The error reply to request `id`.
    pub fn error(id: Value, e: &RpcError) -> Self {
        Self {
            text: error(id, e).to_string(),
            error: Some(e.code),
        }
    }

    /// The replies of a batch, as one JSON array.
    pub fn batch(replies: &[Reply]) -> Self {
        let parts: Vec<&str> = replies.iter().map(|r| r.text.as_str()).collect();
        Self {
            text: format!("[{}]", parts.join(",")),
            error: None,
        }
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The JSON text, owned.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The error code of a single error reply.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error
    }
}

/// An error reply.
fn error(id: Value, error: &RpcError) -> Value {
    let mut body = json!({ "code": error.code.code(), "message": error.message });
    if let (Some(data), Value::Object(body)) = (&error.data, &mut body) {
        body.insert("data".into(), Value::clone(data));
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": body })
}
