//! The sessions `initialize` opened over HTTP, by `Mcp-Session-Id`.

use crate::protocol::Session;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
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

impl Sessions {
    /// A table of at most `max` sessions, each closed after `idle_timeout` unused.
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            max,
            idle_timeout,
        }
    }

    /// Registers `session` under a new random id; `None` when the table is full of sessions
    /// in use.
    pub fn open(&self, session: Arc<Session>) -> Option<String> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = self.idle_timeout;
        open.retain(|_, e| e.last_used.elapsed() < idle);
        if open.len() >= self.max {
            return None;
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
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = open.get_mut(id)?;
        if entry.last_used.elapsed() >= self.idle_timeout {
            open.remove(id);
            return None;
        }
        entry.last_used = Instant::now();
        Some(entry.session.clone())
    }

    /// Closes the session under `id`, cancelling its requests; whether it was open.
    pub fn close(&self, id: &str) -> bool {
        let removed = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        removed.map(|e| e.session.cancel_all()).is_some()
    }
}
