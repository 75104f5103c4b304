"""PyTorch eager twins of the networks `benches/vs_pytorch.rs` trains, stepped on request.

The Rust bench starts this script and drives it over stdin/stdout, one line each way, so that
ours and PyTorch's steps alternate in rounds of one run and never share the CPU:

    load NAME        ->  ready TORCH_VERSION THREADS
    run N            ->  the N step times in seconds, space-separated
    (end of input)   ->  exit

Each network is the same as ours: layers, PyTorch's own initialisation, Adam with the same
learning rate, cross-entropy, the same batch (normal or uniform inputs of the same shape, labels
i % classes), and the loss and accuracy read back as Python floats every step, as our models'
logging does.

Run it with a Python that has PyTorch (`VENV/bin/python`); the bench finds it through
`LIGHTNING_MCP_TORCH_PYTHON`.
"""

import math
import sys
import time

import torch
from torch import nn


def mlp():
    """MLP 784-256-10, ReLU; batch 64 of normal inputs; Adam 1e-3."""
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return model, torch.randn(64, 784), labels(64, 10), 1e-3


def cnn():
    """conv 1->8 3x3, ReLU, max-pool 2, conv 8->16 3x3, ReLU, max-pool 2, linear 400->10 on
    1x28x28; batch 64 of normal inputs; Adam 1e-3."""
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 10),
    )
    return model, torch.randn(64, 1, 28, 28), labels(64, 10), 1e-3


def convnet():
    """The built-in ConvNet at its defaults on digits: two blocks of 3x3 convolution (padding
    1), batch norm, ReLU and 2x2 max-pooling (16 and 32 channels), a hidden layer of 64 with
    ReLU, 10 classes; batch 32 of uniform 1x8x8 images; Adam 1e-2."""
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    return model, torch.rand(32, 1, 8, 8), labels(32, 10), 1e-2


class Attention(nn.Module):
    """Causal multi-head self-attention with separate query, key, value and out projections."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x, mask):
        b, t, d = x.shape
        split = lambda proj: proj(x).reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query), split(self.key), split(self.value)
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // self.heads))
        weights = scores.masked_fill(mask, float("-inf")).softmax(-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention, then a GELU feed-forward network."""

    def __init__(self, d_model, heads, ff):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model, heads)
        self.fc, self.proj = nn.Linear(d_model, ff), nn.Linear(ff, d_model)

    def forward(self, x, mask):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.proj(nn.functional.gelu(self.fc(self.ln2(x))))


class CharTransformer(nn.Module):
    """The built-in CharTransformer: token and position embeddings, blocks, final layer norm,
    linear head over the vocabulary."""

    def __init__(self, vocab, context, d_model, heads, layers):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, 4 * d_model) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, vocab)
        self.register_buffer("mask", torch.triu(torch.ones(context, context, dtype=torch.bool), 1))

    def forward(self, tokens):
        t = tokens.shape[1]
        h = self.token_embedding(tokens) + self.position_embedding.weight[:t]
        for block in self.blocks:
            h = block(h, self.mask[:t, :t])
        return self.head(self.ln_f(h)).reshape(-1, self.head.out_features)


def transformer():
    """The CharTransformer at its defaults (context 32, d_model 64, 4 heads, 2 layers) on a
    batch of 32 windows of a 16-character vocabulary; Adam 3e-3."""
    batch, context, vocab = 32, 32, 16
    tokens = torch.arange(batch * context).reshape(batch, context) % vocab
    targets = ((torch.arange(batch * context) + 1) % vocab)
    return CharTransformer(vocab, context, 64, 4, 2), tokens, targets, 3e-3


def labels(batch, classes):
    return torch.arange(batch) % classes


NETWORKS = {"mlp": mlp, "cnn": cnn, "convnet": convnet, "transformer": transformer}


def stepper(name):
    """One training step of network `name`, as a function."""
    torch.manual_seed(1)
    model, x, y, lr = NETWORKS[name]()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        loss.item(), accuracy.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def timed(step, count):
    times = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


def main():
    step = None
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "load":
            step = stepper(argument)
            reply = f"ready {torch.__version__} {torch.get_num_threads()}"
        elif command == "run" and step is not None:
            reply = " ".join(f"{t:.9f}" for t in timed(step, int(argument)))
        else:
            reply = f"error: unknown command {line.strip()!r}"
        print(reply, flush=True)


if __name__ == "__main__":
    main()
