//! Protocol versions, and the per-request `_meta` fields of the stateless (2026-07-28) era.

use super::context::LogLevel;
use super::jsonrpc::{ErrorCode, RpcError};
use serde_json::{Map, Value, json};

/// Every protocol version this server speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    STATELESS_VERSION,
];

/// The versions `initialize` negotiates (the stateful era), oldest first.
pub const INITIALIZE_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The version a client that names none gets.
pub const DEFAULT_VERSION: &str = "2024-11-05";

/// The first stateless version: no `initialize`, every request carries its version and the
/// client's capabilities in `_meta`, results carry `resultType`.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// `_meta` key of the request's protocol version.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities for this request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the log level the client wants for this request.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key under which results name the server.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The supported version equal to `asked`, if any.
pub fn supported(asked: &str) -> Option<&'static str> {
    SUPPORTED_VERSIONS.iter().copied().find(|v| *v == asked)
}

/// Whether `version` is a stateless-era version this server speaks.
pub fn is_stateless(version: &str) -> bool {
    supported(version).is_some_and(|v| v >= STATELESS_VERSION)
}

/// Whether a request naming `version` in its `_meta` asks for the stateless era: any version
/// but the ones `initialize` negotiates (an unknown one is then refused as unsupported).
pub fn asks_stateless(version: &str) -> bool {
    !INITIALIZE_VERSIONS.contains(&version)
}

/// The version `initialize` answers: the client's when it is a stateful version this server
/// speaks, else the newest stateful one; [`DEFAULT_VERSION`] when the client names none.
pub fn negotiate(asked: Option<&str>) -> &'static str {
    match asked {
        None => DEFAULT_VERSION,
        Some(asked) => INITIALIZE_VERSIONS
            .iter()
            .copied()
            .find(|v| *v == asked)
            .or(INITIALIZE_VERSIONS.last().copied())
            .unwrap_or(DEFAULT_VERSION),
    }
}

/// The error for a request in a version this server does not speak (`-32022`).
pub fn unsupported(requested: &str) -> RpcError {
    RpcError::new(
        ErrorCode::UnsupportedProtocolVersion,
        format!(
            "unsupported protocol version {requested:?}; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        ),
    )
    .with_data(json!({ "supported": SUPPORTED_VERSIONS, "requested": requested }))
}

/// `_meta[key]` read by `pick`; absent is `None`, a value `pick` refuses is an
/// invalid-params error saying it must be `expected`.
fn meta_field<T>(
    meta: &Map<String, Value>,
    key: &str,
    expected: &str,
    pick: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, RpcError> {
    match meta.get(key) {
        None => Ok(None),
        Some(value) => pick(value).map(Some).ok_or_else(|| {
            RpcError::new(
                ErrorCode::InvalidParams,
                format!("params._meta[{key:?}] must be {expected}, got {value}"),
            )
        }),
    }
}

/// What a request's `params._meta` says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestMeta {
    /// `progressToken`: the caller wants progress notifications under this token.
    pub progress_token: Option<Value>,
    /// The stateless era's protocol version.
    pub protocol_version: Option<String>,
    /// The stateless era's client capabilities.
    pub client_capabilities: Option<Map<String, Value>>,
    /// The stateless era's per-request log level.
    pub log_level: Option<LogLevel>,
}

impl RequestMeta {
    /// Reads `params._meta`; a field of the wrong type is an invalid-params error.
    pub fn parse(params: &Value) -> Result<Self, RpcError> {
        let Some(meta) = params.get("_meta") else {
            return Ok(Self::default());
        };
        let invalid = |message: String| Err(RpcError::new(ErrorCode::InvalidParams, message));
        let Value::Object(meta) = meta else {
            return invalid(format!("params._meta must be an object, got {meta}"));
        };
        let progress_token =
            meta_field(meta, "progressToken", "a string or a number", |v| match v {
                Value::Null => Some(None),
                Value::String(_) | Value::Number(_) => Some(Some(v.clone())),
                _ => None,
            })?
            .flatten();
        let protocol_version = meta_field(meta, META_PROTOCOL_VERSION, "a string", |v| {
            v.as_str().map(String::from)
        })?;
        let client_capabilities = meta_field(meta, META_CLIENT_CAPABILITIES, "an object", |v| {
            v.as_object().cloned()
        })?;
        let log_level = match meta.get(META_LOG_LEVEL) {
            None => None,
            Some(level) => Some(LogLevel::parse(
                level,
                &format!("params._meta[{META_LOG_LEVEL:?}]"),
            )?),
        };
        Ok(Self {
            progress_token,
            protocol_version,
            client_capabilities,
            log_level,
        })
    }

    /// Checks a stateless-era request: its `_meta` must name a supported version and the
    /// client's capabilities. Returns the version.
    pub fn require_stateless(&self) -> Result<&'static str, RpcError> {
        let missing = |what: &str| {
            RpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "a {STATELESS_VERSION} request needs params._meta[{what:?}] (every request \
                     carries its protocol version and the client's capabilities)"
                ),
            )
        };
        let Some(asked) = &self.protocol_version else {
            return Err(missing(META_PROTOCOL_VERSION));
        };
        if self.client_capabilities.is_none() {
            return Err(missing(META_CLIENT_CAPABILITIES));
        }
        match supported(asked) {
            Some(v) if is_stateless(v) => Ok(v),
            _ => Err(unsupported(asked)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_negotiates_stateful_versions() {
        assert_eq!(negotiate(None), "2024-11-05");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2099-01-01")), "2025-11-25");
        assert_eq!(negotiate(Some("2026-07-28")), "2025-11-25");
    }

    #[test]
    fn stateless_meta_is_checked() {
        let meta = |m: Value| RequestMeta::parse(&json!({ "_meta": m }));
        let ok = meta(json!({
            META_PROTOCOL_VERSION: "2026-07-28",
            META_CLIENT_CAPABILITIES: {},
            META_LOG_LEVEL: "debug",
            "progressToken": 7,
        }))
        .and_then(|m| m.require_stateless().map(|v| (v, m.log_level)));
        assert_eq!(ok, Ok(("2026-07-28", Some(LogLevel::Debug))));
        let code = |m: Value| {
            meta(m)
                .and_then(|m| m.require_stateless())
                .err()
                .map(|e| e.code.code())
        };
        assert_eq!(code(json!({})), Some(-32602));
        assert_eq!(
            code(json!({ META_PROTOCOL_VERSION: "2026-07-28" })),
            Some(-32602)
        );
        let old = json!({ META_PROTOCOL_VERSION: "v9", META_CLIENT_CAPABILITIES: {} });
        assert_eq!(code(old), Some(-32022));
        assert!(meta(json!({ META_LOG_LEVEL: "loud" })).is_err());
    }
}
