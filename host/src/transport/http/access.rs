//! Who may talk to the HTTP server: `Host` and `Origin` against the allowed host names (DNS
//! rebinding protection), the optional bearer token, and what the client `Accept`s.

use http::HeaderMap;
use http::header::{ACCEPT, AUTHORIZATION, HOST, ORIGIN};

/// The host names a request may address: loopback names always, plus configured ones.
#[derive(Clone, Debug)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Loopback names plus `extra` (e.g. the bind address, a DNS name behind a proxy).
    pub fn new(extra: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .chain(extra.into_iter().map(|h| h.to_ascii_lowercase()))
            .filter(|h| h != "0.0.0.0" && h != "::")
            .collect();
        names.sort();
        names.dedup();
        Self(names)
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.contains(&host)
    }

    /// Checks `Host` (required by HTTP/1.1) and `Origin` (sent by browsers); the error names
    /// the refused value.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or("the request has no valid Host header")?;
        if !self.allows(host_name(host)) {
            return Err(format!("Host {host:?} is not allowed"));
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let allowed = origin
                .split_once("://")
                .is_some_and(|(_, authority)| self.allows(host_name(authority)));
            if !allowed {
                return Err(format!("Origin {origin:?} is not allowed"));
            }
        }
        Ok(())
    }
}

/// The host part of an authority (`host:port`, `[v6]:port`).
fn host_name(authority: &str) -> &str {
    let authority = authority.trim().trim_end_matches('/');
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

/// Whether the request carries `Authorization: Bearer <token>`.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, t)| t.trim());
    given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The response formats a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepts {
    /// `application/json`.
    pub json: bool,
    /// `text/event-stream`.
    pub sse: bool,
}

impl Accepts {
    /// Reads `Accept`; a request without one (curl, the Python project's examples) gets JSON.
    pub fn from(headers: &HeaderMap) -> Self {
        let values: Vec<&str> = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Self {
                json: true,
                sse: false,
            };
        }
        let types: Vec<String> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        let has = |t: &str| types.iter().any(|x| x == t);
        Self {
            json: has("application/json") || has("application/*") || has("*/*"),
            sse: has("text/event-stream") || has("text/*") || has("*/*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(name.clone(), value);
            }
        }
        map
    }

    #[test]
    fn hosts_and_origins_must_be_allowed() {
        let allowed = AllowedHosts::new(["models.internal".to_string()]);
        let ok =
            |pairs: &[(http::header::HeaderName, &str)]| allowed.check(&headers(pairs)).is_ok();
        assert!(ok(&[(HOST, "127.0.0.1:3333")]));
        assert!(ok(&[
            (HOST, "localhost:3333"),
            (ORIGIN, "http://localhost:3333")
        ]));
        assert!(ok(&[(HOST, "[::1]:3333"), (ORIGIN, "http://[::1]:3333")]));
        assert!(ok(&[(HOST, "Models.Internal")]));
        assert!(!ok(&[(HOST, "evil.example.com")]));
        assert!(!ok(&[
            (HOST, "127.0.0.1:3333"),
            (ORIGIN, "http://evil.example.com")
        ]));
        assert!(!ok(&[(HOST, "127.0.0.1:3333"), (ORIGIN, "null")]));
        assert!(!ok(&[]));
    }

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let h = |v: &str| headers(&[(AUTHORIZATION, v)]);
        assert!(authorized(&h("Bearer s3cret"), "s3cret"));
        assert!(authorized(&h("bearer s3cret"), "s3cret"));
        assert!(!authorized(&h("Bearer s3cre"), "s3cret"));
        assert!(!authorized(&h("Basic s3cret"), "s3cret"));
        assert!(!authorized(&HeaderMap::new(), "s3cret"));
    }

    #[test]
    fn accept_decides_the_format() {
        let a = |v: &str| Accepts::from(&headers(&[(ACCEPT, v)]));
        assert_eq!(
            Accepts::from(&HeaderMap::new()),
            Accepts {
                json: true,
                sse: false
            }
        );
        assert_eq!(
            a("*/*"),
            Accepts {
                json: true,
                sse: true
            }
        );
        assert_eq!(
            a("application/json, text/event-stream"),
            Accepts {
                json: true,
                sse: true
            }
        );
        assert_eq!(
            a("text/event-stream"),
            Accepts {
                json: false,
                sse: true
            }
        );
        assert_eq!(
            a("text/html"),
            Accepts {
                json: false,
                sse: false
            }
        );
    }
}
