//! Run slots: at most `--max-concurrent-runs` models run at once, within the server's total
//! tensor memory; the others wait their turn in a bounded FIFO queue.

use super::{Runtime, TOTAL_TENSOR_MEMORY_FLAG};
use crate::cancel::CancelToken;
use crate::sandbox::Limits;
use crate::sync::lock;
use std::collections::VecDeque;
use std::time::Duration;

/// How often a run waiting for a slot checks whether it was cancelled.
const QUEUE_POLL: Duration = Duration::from_millis(50);

/// Bytes in a MiB, the unit the errors speak in.
const MIB: usize = 1 << 20;

/// Why a run cannot take a run slot.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The tensor memory the run may use is reserved by the runs in progress.
    #[error(
        "the server's tensor memory is taken: {runs} run(s) in progress reserve {reserved_mib} \
         MiB of its {total_mib} MiB ({flag}), and this run may use {wanted_mib} MiB \
         (limits.tensor_memory_mib): give limits.tensor_memory_mib {free_mib} or less, or \
         retry when a run finishes",
        flag = TOTAL_TENSOR_MEMORY_FLAG
    )]
    MemoryTaken {
        /// Runs in progress.
        runs: usize,
        /// The tensor memory they reserve, in MiB.
        reserved_mib: usize,
        /// The server's tensor memory, in MiB.
        total_mib: usize,
        /// What this run may use, in MiB.
        wanted_mib: usize,
        /// What is free, in MiB.
        free_mib: usize,
    },
    /// The run would have to wait, and the queue is full.
    #[error(
        "the server is busy: {runs} model runs are in progress (at most {max_runs} at once, \
         --max-concurrent-runs; {reserved_mib} of {total_mib} MiB of tensor memory reserved, \
         {flag}, this run may use {wanted_mib} MiB) and {waiting} wait, the most it queues \
         (--max-queued-runs {max_queued}); retry when one finishes",
        flag = TOTAL_TENSOR_MEMORY_FLAG
    )]
    Busy {
        /// Runs in progress.
        runs: usize,
        /// Most runs at once.
        max_runs: usize,
        /// The tensor memory the runs in progress reserve, in MiB.
        reserved_mib: usize,
        /// The server's tensor memory, in MiB.
        total_mib: usize,
        /// What this run may use, in MiB.
        wanted_mib: usize,
        /// Runs waiting.
        waiting: usize,
        /// Most runs waiting.
        max_queued: usize,
    },
    /// The run was cancelled while it waited for its turn.
    #[error("cancelled while waiting for a run slot")]
    Cancelled,
}

/// The runs in progress, the tensor memory they reserve, and the runs waiting for a slot.
#[derive(Debug, Default)]
pub(super) struct Running {
    runs: usize,
    reserved_bytes: usize,
    /// The tickets of the waiting runs, first come first.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

/// A slot among [`RuntimeConfig::max_concurrent_runs`] and a reservation of tensor memory
/// against [`RuntimeConfig::max_total_tensor_bytes`], held while a model runs.
#[derive(Debug)]
pub struct RunSlot<'a> {
    runtime: &'a Runtime,
    reserved_bytes: usize,
}

impl Drop for RunSlot<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.runtime.running);
        running.runs = running.runs.saturating_sub(1);
        running.reserved_bytes = running.reserved_bytes.saturating_sub(self.reserved_bytes);
        drop(running);
        self.runtime.slot_freed.notify_all();
        release_freed_memory();
    }
}

/// Hands the memory a finished run freed back to the system. glibc keeps freed heap pages
/// (and raises its mmap threshold after a large free, so later large tensors come from the
/// heap too); without this, one run that came near its tensor limit would leave the process
/// that much larger for good.
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of glibc's heaps to the kernel; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Runtime {
    /// Takes a run slot for a run within `limits`, reserving its tensor memory. The tensor
    /// memory of all runs is at most [`RuntimeConfig::max_total_tensor_bytes`]: a run that
    /// does not fit what is free is refused. At most [`RuntimeConfig::max_concurrent_runs`]
    /// models run at once: a run past that waits its turn in a FIFO queue of at most
    /// [`RuntimeConfig::max_queued_runs`], and is refused when the queue is full or `cancel`
    /// fires while it waits.
    pub fn run_slot(
        &self,
        limits: &Limits,
        cancel: &CancelToken,
    ) -> Result<RunSlot<'_>, SlotError> {
        let wanted = self.wanted(limits);
        let mut running = lock(&self.running);
        if self.admission(&running, wanted)? {
            let ticket = running.next_ticket;
            running.next_ticket += 1;
            running.queue.push_back(ticket);
            loop {
                if running.queue.front() == Some(&ticket) && self.fits(&running, wanted) {
                    running.queue.pop_front();
                    break;
                }
                if cancel.is_cancelled() {
                    running.queue.retain(|t| *t != ticket);
                    drop(running);
                    self.slot_freed.notify_all();
                    return Err(SlotError::Cancelled);
                }
                running = self
                    .slot_freed
                    .wait_timeout(running, QUEUE_POLL)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            }
            // The next in line may fit beside this one.
            self.slot_freed.notify_all();
        }
        running.runs += 1;
        running.reserved_bytes += wanted;
        Ok(RunSlot {
            runtime: self,
            reserved_bytes: wanted,
        })
    }

    /// Whether a run within `limits` could take a slot or wait for one now: the error
    /// [`Self::run_slot`] would give when the queue is full or the tensor memory taken.
    pub fn check_room(&self, limits: &Limits) -> Result<(), SlotError> {
        let running = lock(&self.running);
        self.admission(&running, self.wanted(limits)).map(drop)
    }

    /// The tensor memory a run within `limits` reserves: its limit, within the total.
    fn wanted(&self, limits: &Limits) -> usize {
        limits
            .max_tensor_bytes
            .min(self.config.max_total_tensor_bytes)
    }

    /// Whether a run reserving `wanted` bytes must wait for its turn (`Ok(true)`) or runs at
    /// once; an error when the memory it may use is taken, or it would wait in a full queue.
    fn admission(&self, running: &Running, wanted: usize) -> Result<bool, SlotError> {
        let total = self.config.max_total_tensor_bytes;
        if running.reserved_bytes + wanted > total {
            return Err(SlotError::MemoryTaken {
                runs: running.runs,
                reserved_mib: running.reserved_bytes / MIB,
                total_mib: total / MIB,
                wanted_mib: wanted / MIB,
                free_mib: total.saturating_sub(running.reserved_bytes) / MIB,
            });
        }
        let waits = !(running.queue.is_empty() && self.fits(running, wanted));
        if waits && running.queue.len() >= self.config.max_queued_runs {
            return Err(SlotError::Busy {
                runs: running.runs,
                max_runs: self.max_runs(),
                reserved_mib: running.reserved_bytes / MIB,
                total_mib: total / MIB,
                wanted_mib: wanted / MIB,
                waiting: running.queue.len(),
                max_queued: self.config.max_queued_runs,
            });
        }
        Ok(waits)
    }

    /// Whether a run reserving `wanted` bytes fits beside the runs in progress.
    fn fits(&self, running: &Running, wanted: usize) -> bool {
        running.runs < self.max_runs()
            && running.reserved_bytes + wanted <= self.config.max_total_tensor_bytes
    }

    /// Most runs at once.
    fn max_runs(&self) -> usize {
        self.config.max_concurrent_runs.max(1)
    }

    /// How many model runs are in progress.
    pub fn runs_in_progress(&self) -> usize {
        lock(&self.running).runs
    }

    /// The tensor memory all runs together may use, and how much the runs in progress
    /// reserve, in bytes.
    pub fn tensor_memory(&self) -> (usize, usize) {
        (
            self.config.max_total_tensor_bytes,
            lock(&self.running).reserved_bytes,
        )
    }
}
