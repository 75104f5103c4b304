"""`Tensor`: a handle to a tensor that lives on the host, with PyTorch's names and operators.

Every op runs on the host, in Burn, with autodiff; an op the host refuses raises
`TensorError` naming the op and the shapes. Dims may be negative (counted from the end).
"""

from componentize_py_types import Err
from wit_world.imports import tensors as _raw


class TensorError(Exception):
    """An op the host refused: `op: message`, e.g. `matmul: inner dimensions differ`."""

    def __init__(self, op, message):
        super().__init__(f"{op}: {message}")
        self.op = op
        self.message = message


def _host(call, *args):
    """`call(*args)` on the host; a refusal becomes a `TensorError`."""
    try:
        return call(*args)
    except Err as refused:
        error = refused.value
        raise TensorError(error.op, error.message) from None


def _wrap(call, *args):
    """The tensor `call(*args)` makes on the host."""
    return Tensor(_host(call, *args))


def _raw_of(value):
    """The host handle of a tensor argument."""
    if not isinstance(value, Tensor):
        raise TypeError(f"expected a Tensor, got {type(value).__name__}")
    return value.raw


def _shape(shape):
    return [int(d) for d in shape]


def _flat(values):
    """Nested lists as a flat list and their shape."""
    if not isinstance(values, (list, tuple)):
        return [values], []
    if not values:
        return [], [0]
    rows = [_flat(v) for v in values]
    inner = rows[0][1]
    if any(shape != inner for _, shape in rows):
        raise ValueError("ragged nested lists: every row must have the same shape")
    return [x for row, _ in rows for x in row], [len(values)] + inner


def tensor(values, dtype=None):
    """A tensor from (nested) lists of numbers: `i64` when every value is an `int` (labels),
    else `f32`; `dtype` (`"f32"` or `"i64"`) forces one."""
    flat, shape = _flat(values)
    shape = shape or [1]
    integral = all(isinstance(x, int) and not isinstance(x, bool) for x in flat)
    if (dtype or ("i64" if integral else "f32")) == "i64":
        return _wrap(_raw.Tensor.from_i64, [int(x) for x in flat], shape)
    return _wrap(_raw.Tensor.from_f32, [float(x) for x in flat], shape)


def zeros(*shape):
    """An f32 tensor of zeros."""
    return _wrap(_raw.Tensor.zeros, _shape(shape))


def ones(*shape):
    """An f32 tensor of ones."""
    return _wrap(_raw.Tensor.ones, _shape(shape))


def randn(*shape, seed=0):
    """Standard normal samples; the same seed gives the same values."""
    return _wrap(_raw.Tensor.randn, _shape(shape), seed)


def uniform(*shape, low=0.0, high=1.0, seed=0):
    """Uniform samples in `[low, high)`; the same seed gives the same values."""
    return _wrap(_raw.Tensor.uniform, _shape(shape), low, high, seed)


def cat(tensors, dim=0):
    """`torch.cat`: tensors joined along `dim`."""
    return _wrap(_raw.Tensor.cat, [_raw_of(t) for t in tensors], dim)


def causal_mask(size):
    """`[size, size]`, 1.0 above the diagonal: `masked_fill` it with `-inf` before a softmax."""
    return _wrap(_raw.Tensor.causal_mask, size)


class Tensor:
    """A tensor on the host. Python's operators (`+ - * / @`, unary `-`, `**`) work with
    tensors and numbers; copying a `Tensor` copies the handle, not the values."""

    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

    # Facts and values.
    @property
    def shape(self):
        """Dimension sizes, as a tuple."""
        return tuple(self.raw.shape())

    @property
    def dtype(self):
        """`"f32"` or `"i64"`."""
        return "i64" if self.raw.dtype() == _raw.Dtype.I64 else "f32"

    def tolist(self):
        """The values as flat Python numbers (row-major)."""
        read = self.raw.to_i64 if self.dtype == "i64" else self.raw.to_f32
        return _host(read)

    def item(self):
        """The value of a one-element tensor."""
        values = _host(self.raw.to_f32)
        if len(values) != 1:
            raise ValueError(f"item: expected one element, got {len(values)}")
        return values[0]

    def cast(self, dtype):
        """The values as `"f32"` or `"i64"`, on the host (i64 truncates toward zero)."""
        target = _raw.Dtype.I64 if dtype == "i64" else _raw.Dtype.F32
        return _wrap(self.raw.cast, target)

    def long(self):
        """`cast("i64")`."""
        return self.cast("i64")

    def float(self):
        """`cast("f32")`."""
        return self.cast("f32")

    # Arithmetic, with NumPy broadcasting; a number is a scalar operand.
    def _binary(self, other, tensor_op, scalar_op):
        if isinstance(other, Tensor):
            return _wrap(tensor_op, _raw_of(other))
        return _wrap(scalar_op, float(other))

    def __add__(self, other):
        return self._binary(other, self.raw.add, self.raw.add_scalar)

    def __sub__(self, other):
        return self._binary(other, self.raw.sub, self.raw.sub_scalar)

    def __mul__(self, other):
        return self._binary(other, self.raw.mul, self.raw.mul_scalar)

    def __truediv__(self, other):
        return self._binary(other, self.raw.div, self.raw.div_scalar)

    def __pow__(self, other):
        return self._binary(other, self.raw.pow, self.raw.pow_scalar)

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return (-self) + other

    def __neg__(self):
        return _wrap(self.raw.neg)

    def __matmul__(self, other):
        return _wrap(self.raw.matmul, _raw_of(other))

    def matmul(self, other):
        """Matrix product over the last two dims; leading dims broadcast."""
        return self @ other

    # Elementwise functions.
    def exp(self):
        return _wrap(self.raw.exp)

    def log(self):
        return _wrap(self.raw.log)

    def sqrt(self):
        return _wrap(self.raw.sqrt)

    def relu(self):
        return _wrap(self.raw.relu)

    def sigmoid(self):
        return _wrap(self.raw.sigmoid)

    def tanh(self):
        return _wrap(self.raw.tanh)

    def gelu(self):
        return _wrap(self.raw.gelu)

    def softmax(self, dim):
        return _wrap(self.raw.softmax, dim)

    def log_softmax(self, dim):
        return _wrap(self.raw.log_softmax, dim)

    def dropout(self, p):
        """Dropout with probability `p` in training steps; the identity otherwise."""
        return _wrap(self.raw.dropout, float(p))

    def detach(self):
        """The same values without gradient tracking."""
        return Tensor(self.raw.detach())

    # Shapes.
    def linear(self, weight, bias=None):
        """`torch.nn.functional.linear`: `self [.., in] @ weight [out, in]`ᵀ `+ bias [out]`, in
        one host call."""
        return _wrap(self.raw.linear, _raw_of(weight), None if bias is None else _raw_of(bias))

    def transpose(self, dim0, dim1):
        return _wrap(self.raw.transpose, dim0, dim1)

    @property
    def T(self):
        """The last two dims swapped."""
        return self.transpose(-2, -1)

    def reshape(self, *shape):
        """A new shape with the same values; one dim may be -1."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        return _wrap(self.raw.reshape, [int(d) for d in shape])

    def flatten(self, start_dim=0, end_dim=-1):
        return _wrap(self.raw.flatten, start_dim, end_dim)

    def slice(self, dim, start, end):
        """`x[..., start:end]` along `dim`."""
        return _wrap(self.raw.slice, dim, start, end)

    # Reductions.
    def sum(self, dim=None, keepdim=False):
        if dim is None:
            return _wrap(self.raw.sum)
        return _wrap(self.raw.sum_dim, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        if dim is None:
            return _wrap(self.raw.mean)
        return _wrap(self.raw.mean_dim, dim, keepdim)

    def max(self, dim, keepdim=False):
        return _wrap(self.raw.max_dim, dim, keepdim)

    def argmax(self, dim, keepdim=False):
        return _wrap(self.raw.argmax, dim, keepdim)

    def eq(self, other):
        """1.0 where equal, else 0.0 (f32)."""
        return _wrap(self.raw.equal, _raw_of(other))

    # Indexing.
    def index_select(self, dim, indices):
        return _wrap(self.raw.index_select, dim, _raw_of(indices))

    def gather(self, dim, indices):
        return _wrap(self.raw.gather, dim, _raw_of(indices))

    def masked_fill(self, mask, value):
        return _wrap(self.raw.masked_fill, _raw_of(mask), float(value))

    # Losses and metrics.
    def cross_entropy(self, targets):
        """Mean cross-entropy of logits `[n, classes]` against i64 class indices `[n]`."""
        return _wrap(self.raw.cross_entropy, _raw_of(targets))

    def mse(self, target):
        """Mean squared error against `target` of the same shape."""
        return _wrap(self.raw.mse, _raw_of(target))

    def accuracy(self, labels):
        """Fraction of rows whose argmax over the last dim equals `labels`, shape `[1]`."""
        return _wrap(self.raw.accuracy, _raw_of(labels))

    def __repr__(self):
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype})"
