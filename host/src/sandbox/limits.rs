//! Hard limits of one sandboxed run, and the error that names the limit a guest hit.

use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Most table elements, instances, tables and memories one component may create.
const MAX_TABLE_ELEMENTS: usize = 100_000;
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 4;

/// What one model instance may use. Every field has a safe default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest guest linear memory, in bytes.
    pub max_guest_memory: usize,
    /// Largest sum of the bytes of the tensors a guest holds on the host.
    pub max_tensor_bytes: usize,
    /// Most tensor handles a guest may hold at once.
    pub max_handles: usize,
    /// Most parameters a model may declare.
    pub max_parameters: usize,
    /// Most metrics a guest may log in one step (the rest are dropped).
    pub max_logged_per_step: usize,
    /// Wall-clock budget of a request that does not train (inspect, describe).
    pub call_timeout: Duration,
    /// Wall-clock budget of a whole training run.
    pub train_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_guest_memory: 256 << 20,
            max_tensor_bytes: 2 << 30,
            max_handles: 65_536,
            max_parameters: 4_096,
            max_logged_per_step: 256,
            call_timeout: Duration::from_secs(60),
            train_timeout: Duration::from_secs(6 * 3600),
        }
    }
}

/// wasmtime's limiter for guest memories, tables and instances: growing past a limit traps
/// with a [`LimitExceeded`] that names it.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimiter {
    max_memory: usize,
}

impl GuestLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_memory: limits.max_guest_memory,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(LimitExceeded::GuestMemory {
                limit: self.max_memory,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(LimitExceeded::TableElements {
                limit: MAX_TABLE_ELEMENTS,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// A limit a guest ran into; the request that hit it fails with this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The guest's linear memory would exceed [`Limits::max_guest_memory`].
    #[error("the model exceeded the guest memory limit of {} MiB", limit >> 20)]
    GuestMemory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A guest table would exceed its element limit.
    #[error("the model exceeded the limit of {limit} table elements")]
    TableElements {
        /// The limit.
        limit: usize,
    },
    /// The guest's host tensors would exceed [`Limits::max_tensor_bytes`].
    #[error("the model exceeded the host tensor memory limit of {} MiB", limit >> 20)]
    TensorMemory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The guest holds [`Limits::max_handles`] tensor handles already.
    #[error("the model exceeded the limit of {limit} live tensor handles")]
    Handles {
        /// The limit.
        limit: usize,
    },
    /// The request ran past its wall-clock budget.
    #[error("the model ran past the time limit of {seconds} s")]
    Deadline {
        /// The budget, in seconds.
        seconds: u64,
    },
}
