//! The accounting of a model instance's tensors: the handles it gives the guest and takes
//! back, and the memory they (and the step's autodiff graph) hold, against the run's limits.

use super::ops::OpError;
use super::{GuestTensor, HostState, Mode};
use crate::sandbox::limits::LimitExceeded;
use crate::tensor::{self, DType, Tensor, TensorError};
use wasmtime::component::Resource;

/// Ops a guest runs between two sweeps of the autodiff graph's records (see
/// [`tensor::sweep_graph`]): bounds what a guest that never trains can make the host keep.
const OPS_PER_GRAPH_SWEEP: u32 = 4096;

impl HostState {
    /// Hands a host tensor to the guest as an owned handle. In a training step, a result that
    /// is part of the autodiff graph is also remembered: the graph keeps it alive after the
    /// guest drops its handle, until backward (or [`Self::take_step_graph`]) releases it.
    pub fn give(&mut self, t: Tensor) -> wasmtime::Result<Resource<GuestTensor>> {
        self.charge(t.size_in_bytes())?;
        if self.mode == Mode::Train && tensor::is_tracked(&t) {
            self.step_graph.push(t.clone());
        }
        Ok(self.table.push(GuestTensor::Value(Box::new(t)))?)
    }

    /// Keeps counting `bytes` of tensors the host took from the guest and holds for the rest
    /// of the run (its datasets) against the tensor memory limit.
    pub fn hold(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.reserve_bytes(bytes)
    }

    /// Ends a training step: returns the tracked results it produced (for the caller to
    /// release if no backward pass consumed them) and stops counting their memory.
    pub fn take_step_graph(&mut self) -> Vec<Tensor> {
        self.graph_bytes = 0;
        std::mem::take(&mut self.step_graph)
    }

    /// Takes back a handle the guest returned, freeing its table slot.
    pub fn take(&mut self, handle: Resource<GuestTensor>) -> wasmtime::Result<Tensor> {
        let entry = self.table.delete(handle)?;
        self.tensor_of(entry)
    }

    /// The tensor behind a handle entry the guest gave back, no longer counted as live.
    fn tensor_of(&mut self, entry: GuestTensor) -> wasmtime::Result<Tensor> {
        self.live_handles = self.live_handles.saturating_sub(1);
        match entry {
            GuestTensor::Value(t) => {
                let bytes = t.size_in_bytes();
                self.live_bytes = self.live_bytes.saturating_sub(bytes);
                if self.mode == Mode::Train && tensor::is_tracked(&t) {
                    self.graph_bytes = self.graph_bytes.saturating_add(bytes);
                }
                Ok(*t)
            }
            GuestTensor::Param(i) => self.param_value(i),
        }
    }

    /// Parameter `index`'s value: tracked for autodiff in a training step only.
    fn param_value(&self, index: usize) -> wasmtime::Result<Tensor> {
        let p = self
            .params
            .get(index)
            .ok_or_else(|| wasmtime::Error::msg(format!("unknown parameter {index}")))?;
        Ok(match self.mode {
            Mode::Train => p.value.clone(),
            Mode::Init | Mode::Eval => tensor::detach(&p.value),
        })
    }

    /// The tensor behind a handle the guest lends.
    pub(super) fn get(&self, handle: &Resource<GuestTensor>) -> wasmtime::Result<Tensor> {
        match self.table.get(handle)? {
            GuestTensor::Value(t) => Ok(Tensor::clone(t)),
            GuestTensor::Param(i) => self.param_value(*i),
        }
    }

    /// Counts `bytes` more of live tensors (and one more handle) against the limits; memory the
    /// current step's autodiff graph holds counts too.
    pub(super) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        if self.live_handles >= self.limits.max_handles {
            return Err(wasmtime::Error::new(LimitExceeded::Handles {
                limit: self.limits.max_handles,
            }));
        }
        self.reserve_bytes(bytes)?;
        self.live_handles += 1;
        Ok(())
    }

    /// Counts `bytes` more of live tensor memory, refusing to pass the limit.
    fn reserve_bytes(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.check_room(bytes)?;
        self.live_bytes = self.live_bytes.saturating_add(bytes);
        Ok(())
    }

    /// Counts one op (whatever its outcome: Burn recorded it either way) and sweeps the
    /// autodiff records every [`OPS_PER_GRAPH_SWEEP`] ops.
    pub(super) fn count_op(&mut self) {
        self.ops_since_sweep += 1;
        if self.ops_since_sweep >= OPS_PER_GRAPH_SWEEP {
            self.ops_since_sweep = 0;
            if let Err(e) = tensor::sweep_graph(&self.device) {
                tracing::warn!("sweeping the autodiff graph: {e}");
            }
        }
    }

    /// Checks a shape against the run's rank and element limits; returns its element count.
    pub(super) fn check_size(
        &self,
        op: &'static str,
        shape: &[usize],
    ) -> Result<usize, TensorError> {
        let max_rank = self.limits.max_tensor_rank;
        if shape.len() > max_rank {
            return Err(TensorError::new(
                op,
                format!(
                    "shape {shape:?} has rank {}, above the limit of {max_rank} (tensor_rank)",
                    shape.len()
                ),
            ));
        }
        let max = self.limits.max_tensor_elements;
        shape
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d))
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                TensorError::new(
                    op,
                    format!(
                        "shape {shape:?} is above the limit of {max} elements per tensor \
                         (tensor_elements)"
                    ),
                )
            })
    }

    /// Checks a tensor the guest asks to create, before anything is allocated for it: its
    /// shape against the rank and element limits (an error the guest sees) and its bytes
    /// against the tensor memory left (a limit that ends the run).
    pub(super) fn check_new_tensor(
        &self,
        op: &'static str,
        shape: &[u32],
        dtype: DType,
    ) -> Result<Vec<usize>, OpError> {
        let dims = dims(op, shape)?;
        let elements = self.check_size(op, &dims)?;
        let width = match dtype {
            DType::F32 => 4,
            DType::I64 => 8,
        };
        self.check_room(elements.saturating_mul(width))?;
        Ok(dims)
    }

    /// Fails with the tensor memory limit if `bytes` more would not fit.
    pub(super) fn check_room(&self, bytes: usize) -> wasmtime::Result<()> {
        let total = self
            .live_bytes
            .saturating_add(self.graph_bytes)
            .saturating_add(bytes);
        if total > self.limits.max_tensor_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::TensorMemory {
                limit: self.limits.max_tensor_bytes,
            }));
        }
        Ok(())
    }
}

/// A guest's shape as host dims; a rank above [`tensor::MAX_RANK`] is refused before anything
/// is allocated for (or formatted from) a list the guest may have made huge.
fn dims(op: &'static str, shape: &[u32]) -> Result<Vec<usize>, TensorError> {
    if shape.len() > tensor::MAX_RANK {
        return Err(TensorError::new(
            op,
            format!(
                "the shape has rank {}, above the limit of {} (tensor_rank)",
                shape.len(),
                tensor::MAX_RANK
            ),
        ));
    }
    Ok(shape.iter().map(|d| *d as usize).collect())
}
