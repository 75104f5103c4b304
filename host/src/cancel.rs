//! Cancellation shared between a request and the work it started.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag set once when a request is cancelled (by the client, or because its connection
/// closed) and read by the work it started: the trainer between steps, the sandbox while the
/// guest runs.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the work; idempotent.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the work was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error work stops with once its token is cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request was cancelled")]
pub struct Cancelled;
