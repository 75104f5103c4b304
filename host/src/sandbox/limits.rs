//! Hard limits of one sandboxed run, and the error that names the limit a guest hit.
//!
//! Every limit has a name — the key a request's `limits` object uses to lower it, and (with
//! `--max-` in front, `_` as `-`) the server flag that sets it; `timeout_seconds` is set by
//! `--call-timeout` and `--train-timeout` — and every error names the limit and its value.

use crate::tensor;
use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Most tables and memories one component may create (a Rust guest uses one of each per core
/// module).
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 32;

/// What one model run may use. Every field has a safe default.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Largest guest linear memory, in bytes (`guest_memory_mib`).
    pub max_guest_memory: usize,
    /// Most elements of one guest table (`table_elements`).
    pub max_table_elements: usize,
    /// Most core instances one component may create (`instances`).
    pub max_instances: usize,
    /// Largest sum of the bytes of the tensors a guest holds on the host: its live tensors,
    /// its datasets and its training step's autodiff graph (`tensor_memory_mib`).
    pub max_tensor_bytes: usize,
    /// Most tensor handles a guest may hold at once (`tensor_handles`).
    pub max_handles: usize,
    /// Highest tensor rank (`tensor_rank`), at most [`tensor::MAX_RANK`].
    pub max_tensor_rank: usize,
    /// Most elements of one tensor (`tensor_elements`), at most [`tensor::MAX_ELEMENTS`].
    pub max_tensor_elements: usize,
    /// Most parameters and buffers a model may declare, together.
    pub max_parameters: usize,
    /// Most metrics a guest may log in one step (the rest are dropped).
    pub max_logged_per_step: usize,
    /// Wall-clock budget of building a model to inspect it, or to describe it at registration
    /// (`timeout_seconds`).
    pub call_timeout: Duration,
    /// Wall-clock budget of a whole training, validation, test or prediction run
    /// (`timeout_seconds`).
    pub train_timeout: Duration,
    /// Most optimizer steps one training run may plan (`total_steps`).
    pub max_total_steps: u64,
    /// Largest batch (`batch_size`).
    pub max_batch_size: usize,
    /// Most samples in one dataset (`dataset_samples`).
    pub max_dataset_samples: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_guest_memory: 256 << 20,
            max_table_elements: 100_000,
            max_instances: 32,
            max_tensor_bytes: 2 << 30,
            max_handles: 65_536,
            max_tensor_rank: tensor::MAX_RANK,
            max_tensor_elements: tensor::MAX_ELEMENTS,
            max_parameters: 4_096,
            max_logged_per_step: 256,
            call_timeout: Duration::from_secs(60),
            train_timeout: Duration::from_secs(6 * 3600),
            max_total_steps: 10_000_000,
            max_batch_size: 65_536,
            max_dataset_samples: 10_000_000,
        }
    }
}

/// Bytes in a MiB, the unit of the limits named `*_mib`.
const MIB: u64 = 1 << 20;

/// A limit a request may lower, under the name every view of the limits uses: a request's
/// `limits`, `lightning.inspect` environment, the server flag (`--max-` and the name, `_` as
/// `-`) and the errors.
#[derive(Clone, Copy, Debug)]
pub struct NamedLimit {
    /// The name; the `*_mib` ones count MiB.
    pub name: &'static str,
    /// The field's units (bytes, or things) per unit of the name.
    pub unit: u64,
    /// The limit, in the field's units.
    pub get: fn(&Limits) -> u64,
    /// Sets the limit, in the field's units.
    pub set: fn(&mut Limits, u64),
}

impl NamedLimit {
    /// The limit in `limits`, in the unit of its name.
    pub fn value(&self, limits: &Limits) -> u64 {
        (self.get)(limits) / self.unit
    }
}

/// Every limit but the two time budgets (`timeout_seconds`), in the order they are shown and
/// checked.
pub const NAMED_LIMITS: [NamedLimit; 10] = [
    NamedLimit {
        name: "guest_memory_mib",
        unit: MIB,
        get: |l| wide(l.max_guest_memory),
        set: |l, v| l.max_guest_memory = narrow(v),
    },
    NamedLimit {
        name: "tensor_memory_mib",
        unit: MIB,
        get: |l| wide(l.max_tensor_bytes),
        set: |l, v| l.max_tensor_bytes = narrow(v),
    },
    NamedLimit {
        name: "tensor_handles",
        unit: 1,
        get: |l| wide(l.max_handles),
        set: |l, v| l.max_handles = narrow(v),
    },
    NamedLimit {
        name: "tensor_rank",
        unit: 1,
        get: |l| wide(l.max_tensor_rank),
        set: |l, v| l.max_tensor_rank = narrow(v),
    },
    NamedLimit {
        name: "tensor_elements",
        unit: 1,
        get: |l| wide(l.max_tensor_elements),
        set: |l, v| l.max_tensor_elements = narrow(v),
    },
    NamedLimit {
        name: "table_elements",
        unit: 1,
        get: |l| wide(l.max_table_elements),
        set: |l, v| l.max_table_elements = narrow(v),
    },
    NamedLimit {
        name: "instances",
        unit: 1,
        get: |l| wide(l.max_instances),
        set: |l, v| l.max_instances = narrow(v),
    },
    NamedLimit {
        name: "total_steps",
        unit: 1,
        get: |l| l.max_total_steps,
        set: |l, v| l.max_total_steps = v,
    },
    NamedLimit {
        name: "batch_size",
        unit: 1,
        get: |l| wide(l.max_batch_size),
        set: |l, v| l.max_batch_size = narrow(v),
    },
    NamedLimit {
        name: "dataset_samples",
        unit: 1,
        get: |l| wide(l.max_dataset_samples),
        set: |l, v| l.max_dataset_samples = narrow(v),
    },
];

/// A `usize` limit as a `u64`.
fn wide(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A `u64` limit as a `usize`, saturating.
fn narrow(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

impl Limits {
    /// Checks that every limit is at least 1 and within what this build can do.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(limit) = NAMED_LIMITS.iter().find(|l| (l.get)(self) == 0) {
            let flag = limit.name.replace('_', "-");
            return Err(format!("--max-{flag} must be at least 1"));
        }
        const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);
        for timeout in [self.call_timeout, self.train_timeout] {
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err("timeouts must be between 1 s and a year".into());
            }
        }
        if self.max_tensor_rank > tensor::MAX_RANK {
            return Err(format!(
                "the tensor rank limit is at most {} in this build",
                tensor::MAX_RANK
            ));
        }
        if self.max_tensor_elements > tensor::MAX_ELEMENTS {
            return Err(format!(
                "the tensor elements limit is at most {} in this build",
                tensor::MAX_ELEMENTS
            ));
        }
        Ok(())
    }
}

/// wasmtime's limiter for guest memories, tables and instances: growing past a limit traps
/// with a [`LimitExceeded`] that names it.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimiter {
    max_memory: usize,
    max_table_elements: usize,
    max_instances: usize,
}

impl GuestLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            max_memory: limits.max_guest_memory,
            max_table_elements: limits.max_table_elements,
            max_instances: limits.max_instances,
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
        if desired > self.max_table_elements {
            return Err(LimitExceeded::TableElements {
                limit: self.max_table_elements,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// A limit a run ran into; the request that hit it fails with this message, which names the
/// limit (as a request's `limits` key) and its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The guest's linear memory would exceed [`Limits::max_guest_memory`].
    #[error("the model exceeded the guest memory limit of {} MiB (guest_memory_mib)", limit >> 20)]
    GuestMemory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A guest table would exceed [`Limits::max_table_elements`].
    #[error("the model exceeded the limit of {limit} table elements (table_elements)")]
    TableElements {
        /// The limit.
        limit: usize,
    },
    /// The component would create more than [`Limits::max_instances`] core instances.
    #[error("the model needs more than the limit of {limit} core instances (instances)")]
    Instances {
        /// The limit.
        limit: usize,
    },
    /// The guest's host tensors would exceed [`Limits::max_tensor_bytes`].
    #[error(
        "the model exceeded the host tensor memory limit of {} MiB (tensor_memory_mib)",
        limit >> 20
    )]
    TensorMemory {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The guest holds [`Limits::max_handles`] tensor handles already.
    #[error("the model exceeded the limit of {limit} live tensor handles (tensor_handles)")]
    Handles {
        /// The limit.
        limit: usize,
    },
    /// The request ran past its wall-clock budget.
    #[error(
        "the model ran past the time limit of {} s (timeout_seconds)",
        budget.as_secs_f64()
    )]
    Deadline {
        /// The budget.
        budget: Duration,
    },
    /// A training run plans more optimizer steps than [`Limits::max_total_steps`].
    #[error(
        "the run plans {planned} optimizer steps (epochs × batches, capped by max_steps), \
         above the limit of {limit} (total_steps): lower trainer.max_epochs or set \
         trainer.max_steps"
    )]
    TotalSteps {
        /// Steps the run would take.
        planned: u64,
        /// The limit.
        limit: u64,
    },
    /// A data loader asks for batches larger than [`Limits::max_batch_size`].
    #[error("a batch size of {size} is above the limit of {limit} (batch_size)")]
    BatchSize {
        /// The batch size asked for.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A dataset has more samples than [`Limits::max_dataset_samples`].
    #[error("a dataset of {samples} samples is above the limit of {limit} (dataset_samples)")]
    DatasetSamples {
        /// The dataset's samples.
        samples: usize,
        /// The limit.
        limit: usize,
    },
}
