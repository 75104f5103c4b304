"""Reference values and gradients of the tensor ops, computed once by PyTorch in float64.

    VENV/bin/python host/tests/reference/generate.py > host/tests/reference/ops.json

Each case names an op of the WIT contract, its float inputs (f32-representable values), its
arguments, an optional i64 input (targets, indices), the op's output, and the gradient of
`sum(output * weights)` with respect to each float input. The tensor-op conformance suite
(`host/tests/tensor_ops.rs`) runs every case on every backend and compares both with a tight
tolerance: an approximation in a backward pass (as Burn's tanh-based GELU gradient was, off by
8.7e-4 at x = 2) fails it. Inputs include the places where approximations differ: |x| from 1
to 3 for the activations.
"""

import json
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
generator = torch.Generator().manual_seed(17)

ACTIVATION_POINTS = [-3.0, -2.5, -2.0, -1.5, -1.2, -1.0, -0.7, -0.3, 0.2, 0.5, 0.9, 1.0,
                     1.3, 1.7, 2.0, 2.2, 2.6, 3.0]


def f32(values):
    """`values` rounded to f32, as float64."""
    return torch.tensor(values, dtype=torch.float32).double()


def uniform(*shape, low=-2.0, high=2.0):
    return f32((torch.rand(*shape, generator=generator) * (high - low) + low).tolist())


def case(name, op, inputs, fn, args=None, indices=None, differentiable=True):
    """One case: `fn(*inputs)` in float64, its output and input gradients."""
    leaves = [x.clone().requires_grad_(differentiable) for x in inputs]
    out = fn(*leaves)
    weights = f32((torch.rand(out.shape, generator=generator) + 0.5).tolist())
    grads = None
    if differentiable:
        grads = torch.autograd.grad((out * weights).sum(), leaves, allow_unused=True)
        grads = [
            (g if g is not None else torch.zeros_like(x)).flatten().tolist()
            for g, x in zip(grads, leaves)
        ]
    return {
        "name": name,
        "op": op,
        "args": args or {},
        "inputs": [{"shape": list(x.shape), "values": x.flatten().tolist()} for x in inputs],
        "indices": None if indices is None
        else {"shape": list(indices.shape), "values": indices.flatten().tolist()},
        # A full reduction is [1] here, as the WIT contract returns it (PyTorch: []).
        "output": {"shape": list(out.shape) or [1], "values": out.detach().flatten().tolist()},
        "weights": weights.flatten().tolist(),
        "grads": grads,
    }


def elementwise():
    a, b, row, col = uniform(2, 3), uniform(2, 3), uniform(3), uniform(2, 1)
    positive, exponent = uniform(2, 3, low=0.3, high=3.0), uniform(2, 3, low=-1.5, high=2.5)
    points = f32(ACTIVATION_POINTS).reshape(3, 6)
    yield case("add_broadcast_row", "add", [a, row], torch.add)
    yield case("sub_broadcast_col", "sub", [col, a], torch.sub)
    yield case("mul", "mul", [a, b], torch.mul)
    yield case("div", "div", [a, positive], torch.div)
    yield case("pow", "pow", [positive, exponent], torch.pow)
    yield case("add_scalar", "add-scalar", [a], lambda x: x + 1.5, {"scalar": 1.5})
    yield case("sub_scalar", "sub-scalar", [a], lambda x: x - 0.75, {"scalar": 0.75})
    yield case("mul_scalar", "mul-scalar", [a], lambda x: x * -3.0, {"scalar": -3.0})
    yield case("div_scalar", "div-scalar", [a], lambda x: x / 4.0, {"scalar": 4.0})
    yield case("pow_scalar", "pow-scalar", [positive], lambda x: x ** 2.5, {"scalar": 2.5})
    yield case("clamp", "clamp", [points], lambda x: x.clamp(-1.1, 2.1),
               {"min": -1.1, "max": 2.1})
    yield case("neg", "neg", [a], torch.neg)
    yield case("exp", "exp", [points], torch.exp)
    yield case("log", "log", [positive], torch.log)
    yield case("sqrt", "sqrt", [positive], torch.sqrt)
    yield case("relu", "relu", [points], torch.relu)
    yield case("sigmoid", "sigmoid", [points], torch.sigmoid)
    yield case("tanh", "tanh", [points], torch.tanh)
    yield case("gelu", "gelu", [points], F.gelu)


def shapes_and_reductions():
    a, logits = uniform(2, 3), uniform(3, 4, low=-3.0, high=3.0)
    yield case("softmax", "softmax", [logits], lambda x: x.softmax(1), {"dim": 1})
    yield case("log_softmax", "log-softmax", [logits], lambda x: x.log_softmax(-1), {"dim": -1})
    yield case("matmul", "matmul", [uniform(2, 3), uniform(3, 4)], torch.matmul)
    yield case("matmul_batched_broadcast", "matmul", [uniform(3, 2, 4), uniform(4, 5)],
               torch.matmul)
    yield case("matmul_transposed_weight", "matmul-transposed", [uniform(2, 3, 4), uniform(5, 4)],
               lambda x, w: x @ w.T)
    yield case("transpose", "transpose", [uniform(2, 3, 4)], lambda x: x.transpose(0, 2),
               {"dim0": 0, "dim1": 2})
    yield case("reshape", "reshape", [a], lambda x: x.reshape(3, 2), {"shape": [3, -1]})
    yield case("flatten", "flatten", [uniform(2, 3, 2)], lambda x: x.flatten(1, 2),
               {"start": 1, "end": 2})
    yield case("sum", "sum", [a], torch.sum)
    yield case("mean", "mean", [a], torch.mean)
    yield case("sum_dim", "sum-dim", [a], lambda x: x.sum(0), {"dim": 0, "keepdim": False})
    yield case("mean_dim_keepdim", "mean-dim", [a], lambda x: x.mean(1, keepdim=True),
               {"dim": 1, "keepdim": True})
    yield case("max_dim", "max-dim", [a], lambda x: x.max(1).values, {"dim": 1, "keepdim": False})


def losses():
    logits, targets = uniform(4, 3, low=-3.0, high=3.0), torch.tensor([2, 0, 1, 2])
    yield case("cross_entropy", "cross-entropy", [logits], lambda x: F.cross_entropy(x, targets),
               indices=targets)
    yield case("mse", "mse", [uniform(2, 3), uniform(2, 3)], F.mse_loss)


def images():
    x = uniform(2, 4, 5, 5)
    yield case("conv2d", "conv2d", [x, uniform(3, 4, 3, 3), uniform(3)],
               lambda x, w, b: F.conv2d(x, w, b),
               {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1})
    yield case("conv2d_strided_padded_dilated", "conv2d", [x, uniform(6, 4, 2, 3), uniform(6)],
               lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
               {"stride": [2, 1], "padding": [1, 2], "dilation": [2, 1], "groups": 1})
    yield case("conv2d_grouped", "conv2d", [x, uniform(6, 2, 3, 3), uniform(6)],
               lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2),
               {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 2})
    yield case("conv2d_no_bias", "conv2d", [x, uniform(2, 4, 1, 1)],
               lambda x, w: F.conv2d(x, w),
               {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1})
    pool = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1]}
    yield case("max_pool2d", "max-pool2d", [x], lambda x: F.max_pool2d(x, 2), pool)
    padded = {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1]}
    yield case("max_pool2d_padded", "max-pool2d", [x],
               lambda x: F.max_pool2d(x, 3, stride=2, padding=1), padded)
    yield case("avg_pool2d_padded", "avg-pool2d", [x],
               lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), padded)
    yield case("adaptive_avg_pool2d", "adaptive-avg-pool2d", [x],
               lambda x: F.adaptive_avg_pool2d(x, (2, 3)), {"size": [2, 3]})


def indexing():
    a = uniform(3, 4)
    yield case("slice", "slice", [a], lambda x: x[:, 1:3], {"dim": 1, "start": 1, "end": 3})
    yield case("cat", "cat", [a, uniform(2, 4)], lambda x, y: torch.cat([x, y], 0), {"dim": 0})
    rows = torch.tensor([2, 0, 2])
    yield case("index_select", "index-select", [a], lambda x: x.index_select(0, rows),
               {"dim": 0}, indices=rows)
    picks = torch.tensor([[3, 0], [1, 1], [0, 2]])
    yield case("gather", "gather", [a], lambda x: x.gather(1, picks), {"dim": 1}, indices=picks)
    mask = f32([[1.0, 0.0, 0.0, 1.0]])
    yield case("masked_fill", "masked-fill", [a, mask],
               lambda x, m: x.masked_fill(m != 0, -0.5), {"value": -0.5})
    tokens = torch.tensor([[1, 4], [4, 0]])
    yield case("embedding", "embedding", [uniform(5, 3)], lambda w: F.embedding(tokens, w),
               indices=tokens)


def normalisation():
    x = uniform(2, 3, 4, low=-3.0, high=3.0)
    yield case("layer_norm", "layer-norm", [x, uniform(4, low=0.5, high=1.5), uniform(4)],
               lambda x, w, b: F.layer_norm(x, [4], w, b, 1e-5), {"eps": 1e-5})
    images = uniform(4, 3, 2, 2, low=-3.0, high=3.0)
    mean, var = uniform(3, low=-0.5, high=0.5), uniform(3, low=0.5, high=2.0)
    weight, bias = uniform(3, low=0.5, high=1.5), uniform(3)
    yield case("batch_norm_training", "batch-norm", [images, weight, bias],
               lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5),
               {"eps": 1e-5, "momentum": 0.1, "training": True})
    yield case("batch_norm_eval", "batch-norm", [images, weight, bias],
               lambda x, w, b: F.batch_norm(x, mean, var, w, b, False, 0.1, 1e-5),
               {"eps": 1e-5, "momentum": 0.1, "training": False,
                "running_mean": mean.tolist(), "running_var": var.tolist()})


def pooling():
    """Max pooling where the host's own CPU pooling runs (no padding, no dilation): uneven
    sizes, overlapping windows (gradients add up), ties (the first maximum takes the gradient)
    and several planes."""
    x = uniform(2, 3, 5, 7)
    ties = f32((torch.randint(0, 3, (1, 2, 6, 6), generator=generator) * 0.5).tolist())

    def pool(kernel, stride):
        return {"kernel": kernel, "stride": stride, "padding": [0, 0], "dilation": [1, 1]}
    yield case("max_pool2d_uneven", "max-pool2d", [x],
               lambda x: F.max_pool2d(x, 2), pool([2, 2], [2, 2]))
    yield case("max_pool2d_overlapping", "max-pool2d", [x],
               lambda x: F.max_pool2d(x, (3, 2), stride=(1, 2)), pool([3, 2], [1, 2]))
    yield case("max_pool2d_ties", "max-pool2d", [ties],
               lambda x: F.max_pool2d(x, 3, stride=1), pool([3, 3], [1, 1]))
    yield case("max_pool2d_ties_disjoint", "max-pool2d", [ties],
               lambda x: F.max_pool2d(x, 2), pool([2, 2], [2, 2]))


def rounded(value):
    """`value` with its floats to 10 significant digits (f32 inputs survive exactly)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def main():
    cases = [rounded(c) for group in (elementwise, shapes_and_reductions, losses, images,
                                      indexing, normalisation, pooling) for c in group()]
    json.dump({"generator": f"PyTorch {torch.__version__}, float64", "cases": cases},
              sys.stdout, indent=None, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
