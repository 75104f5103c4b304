//! The tensor ops the guest imports (`lightning:model/tensors`): each takes the tensors
//! behind the guest's handles, runs the op on the host and hands the result back as a new
//! handle. An op fails in one of two ways ([`OpError`]): with a `tensor-error` the guest sees
//! and may handle, or with a trap that ends the run (a limit, a bad handle).

use super::{GuestTensor, HostState, Mode};
use crate::sandbox::bindings::tensors;
use crate::tensor::{self, DType, Device, Tensor, TensorError};
use wasmtime::component::{Resource, ResourceTableError};

/// Why an import failed.
#[derive(Debug)]
pub enum OpError {
    /// An invalid op: the guest receives it as a `tensor-error`.
    Guest(TensorError),
    /// A limit or a host fault: the run ends with it.
    Trap(wasmtime::Error),
}

impl From<TensorError> for OpError {
    fn from(e: TensorError) -> Self {
        Self::Guest(e)
    }
}

impl From<wasmtime::Error> for OpError {
    fn from(e: wasmtime::Error) -> Self {
        Self::Trap(e)
    }
}

impl From<ResourceTableError> for OpError {
    fn from(e: ResourceTableError) -> Self {
        Self::Trap(e.into())
    }
}

/// What an op that makes a tensor returns.
pub(super) type OpReply = Result<Resource<GuestTensor>, OpError>;

impl HostState {
    /// Turns an op's outcome into what the guest receives: a result above the run's rank or
    /// element limit is refused (and freed) like any invalid op.
    pub(super) fn reply(&mut self, outcome: Result<Tensor, TensorError>) -> OpReply {
        self.count_op();
        let t = outcome?;
        self.check_size("result", &t.shape())?;
        Ok(self.give(t)?)
    }

    /// A new tensor of `shape` made by `make`, once the shape and its bytes are checked.
    fn create(
        &mut self,
        op: &'static str,
        shape: &[u32],
        dtype: DType,
        make: impl FnOnce(&Device, &[usize]) -> Result<Tensor, TensorError>,
    ) -> OpReply {
        let outcome = match self.check_new_tensor(op, shape, dtype) {
            Ok(dims) => make(&self.device, &dims),
            Err(OpError::Guest(e)) => Err(e),
            Err(trap) => return Err(trap),
        };
        self.reply(outcome)
    }

    /// `op` on the tensor behind `handle`.
    fn unary(
        &mut self,
        handle: Resource<GuestTensor>,
        op: impl FnOnce(&Tensor) -> Result<Tensor, TensorError>,
    ) -> OpReply {
        let t = self.get(&handle)?;
        self.reply(op(&t))
    }

    /// `op` on the tensors behind `a` and `b`.
    fn binary(
        &mut self,
        a: Resource<GuestTensor>,
        b: Resource<GuestTensor>,
        op: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor, TensorError>,
    ) -> OpReply {
        let (x, y) = (self.get(&a)?, self.get(&b)?);
        self.reply(op(&x, &y))
    }
}

/// A WIT `(height, width)` as the tensor module takes it.
fn pair((h, w): (u32, u32)) -> tensor::Pair {
    [h as usize, w as usize]
}

/// WIT pooling options as the tensor module takes them.
fn pool_options(o: tensors::Pool2dOptions) -> tensor::Pool2dOptions {
    tensor::Pool2dOptions {
        kernel: pair(o.kernel),
        stride: pair(o.stride),
        padding: pair(o.padding),
        dilation: pair(o.dilation),
    }
}

impl tensors::Host for HostState {
    fn convert_tensor_error(&mut self, err: OpError) -> wasmtime::Result<tensors::TensorError> {
        match err {
            OpError::Guest(e) => Ok(tensors::TensorError {
                op: e.op.to_string(),
                message: e.message,
            }),
            OpError::Trap(trap) => Err(trap),
        }
    }
}

impl tensors::HostTensor for HostState {
    fn from_f32(&mut self, data: Vec<f32>, shape: Vec<u32>) -> OpReply {
        self.create("from-f32", &shape, DType::F32, |device, shape| {
            tensor::from_f32(device, data, shape)
        })
    }

    fn from_i64(&mut self, data: Vec<i64>, shape: Vec<u32>) -> OpReply {
        self.create("from-i64", &shape, DType::I64, |device, shape| {
            tensor::from_i64(device, data, shape)
        })
    }

    fn zeros(&mut self, shape: Vec<u32>) -> OpReply {
        self.create("zeros", &shape, DType::F32, |device, shape| {
            tensor::zeros(device, shape)
        })
    }

    fn ones(&mut self, shape: Vec<u32>) -> OpReply {
        self.create("ones", &shape, DType::F32, |device, shape| {
            tensor::ones(device, shape)
        })
    }

    fn randn(&mut self, shape: Vec<u32>, seed: u64) -> OpReply {
        self.create("randn", &shape, DType::F32, |device, shape| {
            tensor::randn(device, shape, seed)
        })
    }

    fn uniform(&mut self, shape: Vec<u32>, low: f32, high: f32, seed: u64) -> OpReply {
        self.create("uniform", &shape, DType::F32, |device, shape| {
            tensor::uniform(device, shape, low, high, seed)
        })
    }

    fn shape(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self
            .get(&t)?
            .shape()
            .into_iter()
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
            .collect())
    }

    fn dtype(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<tensors::Dtype> {
        Ok(match self.get(&t)?.dtype() {
            DType::F32 => tensors::Dtype::F32,
            DType::I64 => tensors::Dtype::I64,
        })
    }

    fn to_f32(&mut self, t: Resource<GuestTensor>) -> Result<Vec<f32>, OpError> {
        Ok(tensor::to_f32(&self.get(&t)?)?)
    }

    fn to_i64(&mut self, t: Resource<GuestTensor>) -> Result<Vec<i64>, OpError> {
        Ok(tensor::to_i64(&self.get(&t)?)?)
    }

    fn cast(&mut self, t: Resource<GuestTensor>, dtype: tensors::Dtype) -> OpReply {
        let dtype = match dtype {
            tensors::Dtype::F32 => DType::F32,
            tensors::Dtype::I64 => DType::I64,
        };
        self.unary(t, |x| tensor::cast(x, dtype))
    }

    fn add(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::add)
    }

    fn sub(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::sub)
    }

    fn mul(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::mul)
    }

    fn div(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::div)
    }

    fn pow(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::pow)
    }

    fn add_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::add_scalar(x, value))
    }

    fn sub_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::sub_scalar(x, value))
    }

    fn mul_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::mul_scalar(x, value))
    }

    fn div_scalar(&mut self, t: Resource<GuestTensor>, value: f32) -> OpReply {
        self.unary(t, |x| tensor::div_scalar(x, value))
    }

    fn pow_scalar(&mut self, t: Resource<GuestTensor>, exponent: f32) -> OpReply {
        self.unary(t, |x| tensor::pow_scalar(x, exponent))
    }

    fn neg(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::neg)
    }

    fn exp(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::exp)
    }

    fn log(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::log)
    }

    fn sqrt(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sqrt)
    }

    fn matmul(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::matmul)
    }

    fn linear(
        &mut self,
        x: Resource<GuestTensor>,
        weight: Resource<GuestTensor>,
        bias: Option<Resource<GuestTensor>>,
    ) -> OpReply {
        let (x, weight) = (self.get(&x)?, self.get(&weight)?);
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        self.reply(tensor::linear(&x, &weight, bias.as_ref()))
    }

    fn transpose(&mut self, t: Resource<GuestTensor>, dim0: i32, dim1: i32) -> OpReply {
        self.unary(t, |x| tensor::transpose(x, dim0, dim1))
    }

    fn reshape(&mut self, t: Resource<GuestTensor>, shape: Vec<i64>) -> OpReply {
        self.unary(t, |x| tensor::reshape(x, &shape))
    }

    fn flatten(&mut self, t: Resource<GuestTensor>, start: i32, end: i32) -> OpReply {
        self.unary(t, |x| tensor::flatten(x, start, end))
    }

    fn relu(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::relu)
    }

    fn sigmoid(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sigmoid)
    }

    fn tanh(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::tanh)
    }

    fn gelu(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::gelu)
    }

    fn softmax(&mut self, t: Resource<GuestTensor>, dim: i32) -> OpReply {
        self.unary(t, |x| tensor::softmax(x, dim))
    }

    fn log_softmax(&mut self, t: Resource<GuestTensor>, dim: i32) -> OpReply {
        self.unary(t, |x| tensor::log_softmax(x, dim))
    }

    fn sum(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::sum)
    }

    fn sum_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::sum_dim(x, dim, keepdim))
    }

    fn mean(&mut self, t: Resource<GuestTensor>) -> OpReply {
        self.unary(t, tensor::mean)
    }

    fn mean_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::mean_dim(x, dim, keepdim))
    }

    fn max_dim(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::max_dim(x, dim, keepdim))
    }

    fn argmax(&mut self, t: Resource<GuestTensor>, dim: i32, keepdim: bool) -> OpReply {
        self.unary(t, |x| tensor::argmax(x, dim, keepdim))
    }

    fn equal(&mut self, a: Resource<GuestTensor>, b: Resource<GuestTensor>) -> OpReply {
        self.binary(a, b, tensor::equal)
    }

    fn accuracy(
        &mut self,
        logits: Resource<GuestTensor>,
        labels: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(logits, labels, tensor::accuracy)
    }

    fn cross_entropy(
        &mut self,
        logits: Resource<GuestTensor>,
        targets: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(logits, targets, tensor::cross_entropy)
    }

    fn mse(&mut self, prediction: Resource<GuestTensor>, target: Resource<GuestTensor>) -> OpReply {
        self.binary(prediction, target, tensor::mse)
    }

    fn conv2d(
        &mut self,
        x: Resource<GuestTensor>,
        weight: Resource<GuestTensor>,
        bias: Option<Resource<GuestTensor>>,
        options: tensors::Conv2dOptions,
    ) -> OpReply {
        let (x, weight) = (self.get(&x)?, self.get(&weight)?);
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        let options = tensor::Conv2dOptions {
            stride: pair(options.stride),
            padding: pair(options.padding),
            dilation: pair(options.dilation),
            groups: options.groups as usize,
        };
        self.reply(tensor::conv2d(&x, &weight, bias.as_ref(), &options))
    }

    fn max_pool2d(&mut self, t: Resource<GuestTensor>, options: tensors::Pool2dOptions) -> OpReply {
        self.unary(t, |x| tensor::max_pool2d(x, &pool_options(options)))
    }

    fn avg_pool2d(&mut self, t: Resource<GuestTensor>, options: tensors::Pool2dOptions) -> OpReply {
        self.unary(t, |x| tensor::avg_pool2d(x, &pool_options(options)))
    }

    fn adaptive_avg_pool2d(
        &mut self,
        t: Resource<GuestTensor>,
        height: u32,
        width: u32,
    ) -> OpReply {
        self.unary(t, |x| tensor::adaptive_avg_pool2d(x, pair((height, width))))
    }

    fn slice(&mut self, t: Resource<GuestTensor>, dim: i32, start: i64, end: i64) -> OpReply {
        self.unary(t, |x| tensor::slice(x, dim, start, end))
    }

    fn cat(&mut self, tensors: Vec<Resource<GuestTensor>>, dim: i32) -> OpReply {
        if let Err(e) = tensor::check_cat_count(tensors.len()) {
            return self.reply(Err(e));
        }
        let tensors = tensors
            .iter()
            .map(|t| self.get(t))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        self.reply(tensor::cat(&tensors, dim))
    }

    fn index_select(
        &mut self,
        t: Resource<GuestTensor>,
        dim: i32,
        indices: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(t, indices, |x, i| tensor::index_select(x, dim, i))
    }

    fn gather(
        &mut self,
        t: Resource<GuestTensor>,
        dim: i32,
        indices: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(t, indices, |x, i| tensor::gather(x, dim, i))
    }

    fn masked_fill(
        &mut self,
        t: Resource<GuestTensor>,
        mask: Resource<GuestTensor>,
        value: f32,
    ) -> OpReply {
        self.binary(t, mask, |x, m| tensor::masked_fill(x, m, value))
    }

    fn embedding(
        &mut self,
        indices: Resource<GuestTensor>,
        weight: Resource<GuestTensor>,
    ) -> OpReply {
        self.binary(indices, weight, tensor::embedding)
    }

    fn layer_norm(
        &mut self,
        x: Resource<GuestTensor>,
        weight: Option<Resource<GuestTensor>>,
        bias: Option<Resource<GuestTensor>>,
        eps: f32,
    ) -> OpReply {
        let x = self.get(&x)?;
        let weight = weight.map(|w| self.get(&w)).transpose()?;
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        self.reply(tensor::layer_norm(&x, weight.as_ref(), bias.as_ref(), eps))
    }

    fn batch_norm(
        &mut self,
        x: Resource<GuestTensor>,
        running_mean: Resource<GuestTensor>,
        running_var: Resource<GuestTensor>,
        weight: Option<Resource<GuestTensor>>,
        bias: Option<Resource<GuestTensor>>,
        momentum: f32,
        eps: f32,
    ) -> OpReply {
        let mean_index = self.buffer_index(&running_mean, "running mean")?;
        let var_index = self.buffer_index(&running_var, "running variance")?;
        if mean_index == var_index {
            return Err(TensorError::new(
                "batch-norm",
                "the running mean and variance must be two different buffers",
            )
            .into());
        }
        let x = self.get(&x)?;
        let (mean, var) = (self.get(&running_mean)?, self.get(&running_var)?);
        let weight = weight.map(|w| self.get(&w)).transpose()?;
        let bias = bias.map(|b| self.get(&b)).transpose()?;
        let stats = tensor::RunningStats {
            mean: &mean,
            var: &var,
        };
        let training = self.mode == Mode::Train;
        let outcome = tensor::batch_norm(
            &x,
            stats,
            weight.as_ref(),
            bias.as_ref(),
            momentum,
            eps,
            training,
        )
        .map(|tensor::BatchNorm { output, running }| {
            if let Some((mean, var)) = running {
                for (index, value) in [(mean_index, mean), (var_index, var)] {
                    if let Some(buffer) = self.params.get_mut(index) {
                        buffer.value = value;
                    }
                }
            }
            output
        });
        self.reply(outcome)
    }

    fn causal_mask(&mut self, size: u32) -> OpReply {
        self.create("causal-mask", &[size, size], DType::F32, |device, _| {
            tensor::causal_mask(device, size as usize)
        })
    }

    fn dropout(&mut self, t: Resource<GuestTensor>, p: f32) -> OpReply {
        let x = self.get(&t)?;
        let training = (self.mode == Mode::Train).then_some(&mut self.rng);
        let outcome = tensor::dropout(&self.device, &x, p, training);
        self.reply(outcome)
    }

    fn detach(&mut self, t: Resource<GuestTensor>) -> wasmtime::Result<Resource<GuestTensor>> {
        let x = self.get(&t)?;
        self.give(tensor::detach(&x))
    }

    fn drop(&mut self, handle: Resource<GuestTensor>) -> wasmtime::Result<()> {
        self.take(handle).map(|_| ())
    }
}
