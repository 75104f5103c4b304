//! The sessions `initialize` opened over HTTP, by `Mcp-Session-Id`.

use crate::protocol::Session;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open sessions; idle ones expire.
#[derive(Debug)]
pub struct Sessions {
    open: Mutex<HashMap<String, Entry>>,
    max: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Entry {
    session: Arc<Session>,
    last_used: Instant,
}

impl Entry {
    /// Whether a request of the session is running (it is then never expired or evicted).
    fn in_use(&self) -> bool {
        self.session.requests_in_flight() > 0
    }
}

impl Sessions {
    /// A table of at most `max` sessions, each closed after `idle_timeout` unused.
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            max,
            idle_timeout,
        }
    }

    /// Registers `session` under a new random id. Sessions idle past the timeout are closed
    /// first; when the table is still full, the least recently used session with no request
    /// running makes room. `None` when every session has a request running.
    pub fn open(&self, session: Arc<Session>) -> Option<String> {
        let mut open = lock(&self.open);
        let idle = self.idle_timeout;
        open.retain(|_, e| e.in_use() || e.last_used.elapsed() < idle);
        if open.len() >= self.max {
            let oldest_idle = open
                .iter()
                .filter(|(_, e)| !e.in_use())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| id.clone())?;
            tracing::info!(session = %oldest_idle, "session table full: closing the least recently used session");
            open.remove(&oldest_idle);
        }
        let id = format!("{:032x}", rand::random::<u128>());
        open.insert(
            id.clone(),
            Entry {
                session,
                last_used: Instant::now(),
            },
        );
        Some(id)
    }

    /// The session under `id`, if it is open.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut open = lock(&self.open);
        let entry = open.get_mut(id)?;
        if !entry.in_use() && entry.last_used.elapsed() >= self.idle_timeout {
            open.remove(id);
            return None;
        }
        entry.last_used = Instant::now();
        Some(entry.session.clone())
    }

    /// Closes the session under `id`, cancelling its requests; whether it was open.
    pub fn close(&self, id: &str) -> bool {
        let removed = lock(&self.open).remove(id);
        removed.map(|e| e.session.cancel_all()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        CallContext, CallToolResult, Server, ServerInfo, ToolDefinition, ToolProvider,
    };
    use serde_json::Value;

    struct NoTools;

    impl ToolProvider for NoTools {
        fn tools(&self) -> Vec<ToolDefinition> {
            Vec::new()
        }
        fn call(&self, _: &str, _: Value, _: &CallContext) -> Option<CallToolResult> {
            None
        }
    }

    #[test]
    fn a_full_table_closes_the_least_recently_used_session() {
        let info = ServerInfo {
            name: "t",
            version: "0",
            instructions: "",
        };
        let server = Server::new(info, Arc::new(NoTools));
        let sessions = Sessions::new(2, Duration::from_secs(3600));
        let first = sessions.open(server.session());
        let second = sessions.open(server.session());
        // Using the first makes the second the least recently used.
        assert!(first.as_deref().and_then(|id| sessions.get(id)).is_some());
        let third = sessions.open(server.session());
        assert!(third.is_some());
        assert!(second.as_deref().and_then(|id| sessions.get(id)).is_none());
        assert!(first.as_deref().is_some_and(|id| sessions.close(id)));
        assert!(first.as_deref().is_some_and(|id| !sessions.close(id)));
    }
}
