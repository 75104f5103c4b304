//! Locking that survives a panic elsewhere: the data a panicking thread left behind is still
//! the best there is (a counter, a map of open sessions), and one failed request must not
//! poison the server for every later one.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, whether or not a thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
