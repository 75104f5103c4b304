//! The parameter store (`lightning:model/params`): the parameters and buffers a guest
//! declares in `init`, each a named tensor the host owns and hands out by handle.

use super::names::check_name;
use super::ops::{OpError, OpReply};
use super::{GuestTensor, HostState, Mode, Parameter, leaf};
use crate::sandbox::bindings::params;
use crate::tensor::{self, DType, Init, TensorError};
use wasmtime::component::Resource;

/// Names that the files a model's parameters land in reserve: safetensors' header key.
const RESERVED_PARAMETER_NAMES: [&str; 1] = ["__metadata__"];

impl params::Host for HostState {
    fn parameter(&mut self, name: String, shape: Vec<u32>, init: params::Init) -> OpReply {
        self.declare("parameter", name, shape, init, true)
    }

    fn buffer(&mut self, name: String, shape: Vec<u32>, init: params::Init) -> OpReply {
        self.declare("buffer", name, shape, init, false)
    }
}

impl HostState {
    /// Declares a parameter (`trainable`) or a buffer, initialised by `init`.
    fn declare(
        &mut self,
        op: &'static str,
        name: String,
        shape: Vec<u32>,
        init: params::Init,
        trainable: bool,
    ) -> OpReply {
        let shape = self.check_new_tensor(op, &shape, DType::F32)?;
        let init = host_init(init);
        let value = self
            .check_parameter(op, &name, &shape, init)
            .and_then(|()| {
                let values = init.sample(&shape, &mut self.rng);
                tensor::from_f32(&self.device, values, &shape)
            })
            .and_then(|value| leaf(value, trainable))
            .map_err(|e| TensorError::new(op, e.message))?;
        self.charge(value.size_in_bytes())?;
        self.params.push(Parameter {
            name,
            value,
            trainable,
        });
        let index = self.params.len() - 1;
        Ok(self.table.push(GuestTensor::Param(index))?)
    }

    /// The index of the buffer behind `handle`, for an op that updates it in place.
    pub(super) fn buffer_index(
        &self,
        handle: &Resource<GuestTensor>,
        what: &str,
    ) -> Result<usize, OpError> {
        match self.table.get(handle)? {
            GuestTensor::Param(i) if self.params.get(*i).is_some_and(|p| !p.trainable) => Ok(*i),
            _ => Err(TensorError::new(
                "batch-norm",
                format!("the {what} must be a buffer declared with params.buffer"),
            )
            .into()),
        }
    }

    /// Whether a parameter `name` of `shape` may be declared now: in `init`, under a valid
    /// name not taken or reserved, within the run's parameter count.
    fn check_parameter(
        &self,
        op: &'static str,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<(), TensorError> {
        let refused = |message: String| Err(TensorError::new(op, message));
        if self.mode != Mode::Init {
            return refused(format!("{op}s can only be declared during init"));
        }
        check_name("name", name).or_else(refused)?;
        if RESERVED_PARAMETER_NAMES.contains(&name) {
            return refused(format!(
                "name {name} is reserved by the checkpoint format (safetensors): pick another"
            ));
        }
        if self.params.iter().any(|p| p.name == name) {
            return refused(format!("{name} is declared twice"));
        }
        if self.params.len() >= self.limits.max_parameters {
            return refused(format!(
                "a model may declare at most {} parameters and buffers",
                self.limits.max_parameters
            ));
        }
        tensor::check_shape(op, shape)?;
        init.validate()
            .map_err(|m| TensorError::new(op, format!("{name}: {m}")))
    }
}

/// A WIT initialisation as the tensor module takes it.
fn host_init(init: params::Init) -> Init {
    match init {
        params::Init::Zeros => Init::Zeros,
        params::Init::Ones => Init::Ones,
        params::Init::Normal(std) => Init::Normal(std),
        params::Init::Uniform((low, high)) => Init::Uniform(low, high),
        params::Init::KaimingUniform => Init::KaimingUniform,
        params::Init::XavierUniform => Init::XavierUniform,
    }
}
