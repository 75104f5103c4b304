"""PyTorch eager baseline for the MLP training step of `benches/training_step.rs`.

MLP 784-256-10, ReLU, cross-entropy, Adam (lr 1e-3), batch 64 of normal inputs with labels
i % 10; the loss and the accuracy read back as Python floats every step, as the guest's
logging does. Same method as the Rust bench: warm-up, then alternating rounds, median step.

Run with the virtualenv that has PyTorch:  VENV/bin/python benches/torch_mlp.py
"""

import statistics
import sys
import time

import torch

BATCH, INPUT, HIDDEN, CLASSES = 64, 784, 256, 10
WARMUP, ROUNDS, PER_ROUND = 30, 20, 25


def main() -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(INPUT, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, INPUT)
    y = torch.arange(BATCH) % CLASSES

    def step() -> None:
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        loss.item(), accuracy.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(ROUNDS * PER_ROUND):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(
        f"PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads: "
        f"median {median * 1e3:.3f} ms   min {min(times) * 1e3:.3f} ms   "
        f"{BATCH / median:.0f} samples/s",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
