"""Layers with PyTorch's parameter names and initialisation, the same as the Rust SDK's: the
same model declares the same parameters, in the same order, and so draws the same initial
values from the run's seed.

Each layer takes `name=` (its parameters are `{name}.weight`, ...); without one it is named
after its kind and place (`linear_0`), inside any `scope`.
"""

import math
import struct

from wit_world.imports import params as _params
from wit_world.imports import tensors as _raw

from .naming import next_name, qualified, scope
from .tensor import Tensor, _host, _raw_of, _wrap

__all__ = [
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Embedding",
    "LayerNorm",
    "Linear",
    "buffer",
    "parameter",
    "scope",
]


def _f32(value):
    """`value` rounded to f32, as the Rust SDK computes its bounds."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _uniform_bound(fan_in):
    """`1/sqrt(fan_in)` computed in f32, bit for bit the Rust SDK's."""
    return _f32(1.0 / _f32(math.sqrt(fan_in)))


def _init(kind, *values):
    """The host's initialisation named `kind`, with its `values`."""
    if kind == "normal":
        return _params.Init_Normal(*values)
    if kind == "uniform":
        return _params.Init_Uniform(tuple(values))
    named = {
        "zeros": _params.Init_Zeros,
        "ones": _params.Init_Ones,
        "kaiming_uniform": _params.Init_KaimingUniform,
        "xavier_uniform": _params.Init_XavierUniform,
    }
    if kind not in named:
        raise ValueError(f"unknown initialisation {kind!r}")
    return named[kind]()


def parameter(name, shape, init="zeros", *values):
    """Declares a trainable parameter `name` (inside the current scope) of `shape`, drawn as
    `init` says: `"zeros"`, `"ones"`, `"normal"` (std), `"uniform"` (low, high),
    `"kaiming_uniform"` or `"xavier_uniform"`. Only while the model's `__init__` runs."""
    return Tensor(
        _host(_params.parameter, qualified(name), [int(d) for d in shape], _init(init, *values))
    )


def buffer(name, shape, init="zeros", *values):
    """Declares a buffer (saved in checkpoints, never trained), as `parameter` does."""
    return Tensor(
        _host(_params.buffer, qualified(name), [int(d) for d in shape], _init(init, *values))
    )


class Linear:
    """`torch.nn.Linear`: `y = x Wᵀ + b`, weight `[out, in]` and bias uniform in
    `±1/sqrt(in)`."""

    def __init__(self, in_features, out_features, bias=True, name=None):
        name = name or next_name("linear")
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"{name}: a linear layer needs at least one input and one output feature, "
                f"got {in_features} -> {out_features}"
            )
        bound = _uniform_bound(in_features)
        shape = [out_features, in_features]
        self.weight = parameter(f"{name}.weight", shape, "uniform", -bound, bound)
        self.bias = (
            parameter(f"{name}.bias", [out_features], "uniform", -bound, bound) if bias else None
        )

    def __call__(self, x):
        return x.linear(self.weight, self.bias)


class Dropout:
    """`torch.nn.Dropout`: zeroes elements with probability `p` in training steps."""

    def __init__(self, p=0.5):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def __call__(self, x):
        return x.dropout(self.p) if self.p > 0.0 else x


class LayerNorm:
    """`torch.nn.LayerNorm` over the last dim: weight 1, bias 0."""

    def __init__(self, d_model, eps=1e-5, name=None):
        name = name or next_name("layer_norm")
        self.weight = parameter(f"{name}.weight", [d_model], "ones")
        self.bias = parameter(f"{name}.bias", [d_model], "zeros")
        self.eps = eps

    def __call__(self, x):
        return _wrap(x.raw.layer_norm, self.weight.raw, self.bias.raw, self.eps)


class Embedding:
    """`torch.nn.Embedding`: rows of a `[num_embeddings, embedding_dim]` table, N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, name=None):
        name = name or next_name("embedding")
        shape = [num_embeddings, embedding_dim]
        self.weight = parameter(f"{name}.weight", shape, "normal", 1.0)

    def __call__(self, indices):
        return _wrap(indices.raw.embedding, _raw_of(self.weight))


def _pair(value):
    """A side given as one int or as `(height, width)`, as a pair."""
    return (value, value) if isinstance(value, int) else tuple(value)


class Conv2d:
    """`torch.nn.Conv2d` over `[n, c, h, w]`: weight and bias uniform in `±1/sqrt(fan_in)`."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
        groups=1, bias=True, name=None,
    ):
        name = name or next_name("conv2d")
        kh, kw = _pair(kernel_size)
        fan_in = (in_channels // groups) * kh * kw
        bound = _uniform_bound(fan_in)
        shape = [out_channels, in_channels // groups, kh, kw]
        self.weight = parameter(f"{name}.weight", shape, "uniform", -bound, bound)
        self.bias = (
            parameter(f"{name}.bias", [out_channels], "uniform", -bound, bound) if bias else None
        )
        self.options = _raw.Conv2dOptions(_pair(stride), _pair(padding), _pair(dilation), groups)

    def __call__(self, x):
        bias = self.bias.raw if self.bias is not None else None
        return _wrap(x.raw.conv2d, self.weight.raw, bias, self.options)


class BatchNorm:
    """`torch.nn.BatchNorm1d`/`2d` over dim 1: weight 1, bias 0, and the running mean and
    variance as buffers (updated in training steps)."""

    def __init__(self, num_features, momentum=0.1, eps=1e-5, name=None):
        name = name or next_name("batch_norm")
        c = [num_features]
        self.weight = parameter(f"{name}.weight", c, "ones")
        self.bias = parameter(f"{name}.bias", c, "zeros")
        self.running_mean = buffer(f"{name}.running_mean", c, "zeros")
        self.running_var = buffer(f"{name}.running_var", c, "ones")
        self.momentum = momentum
        self.eps = eps

    def __call__(self, x):
        return _wrap(
            x.raw.batch_norm,
            self.running_mean.raw,
            self.running_var.raw,
            self.weight.raw,
            self.bias.raw,
            self.momentum,
            self.eps,
        )
