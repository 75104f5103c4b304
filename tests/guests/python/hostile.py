"""A Python model that misbehaves on request (`mode`), for the sandbox tests: the Python
guest can do no more harm than a Rust one. Each mode acts in the training step."""

import os
import socket
import sys

import lightning_mcp as L
from lightning_mcp import nn


def _recurse(depth):
    return _recurse(depth + 1) + 1


class Hostile(L.LightningModule):
    target = "lightning_mcp.testing.PythonHostile"
    summary = "Test model: a Python guest that misbehaves in its training step (mode)."
    hyperparameters = {"mode": L.hparam("ok")}

    def __init__(self, hparams):
        super().__init__(hparams)
        self.layer = nn.Linear(4, 3, name="layer")

    def forward(self, x):
        return self.layer(x)

    def training_step(self, inputs, targets, batch_index):
        mode = self.hparams.mode
        if mode == "infinite_loop":
            while True:
                pass
        if mode == "memory_bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "deep_recursion":
            sys.setrecursionlimit(1_000_000)
            _recurse(0)
        if mode == "read_file":
            with open("/etc/passwd") as passwd:
                raise RuntimeError(f"read {len(passwd.read())} bytes of /etc/passwd")
        if mode == "open_socket":
            connection = socket.create_connection(("127.0.0.1", 22), timeout=1)
            raise RuntimeError(f"connected: {connection}")
        if mode == "read_environ":
            raise RuntimeError(f"{len(os.environ)} environment variables: {dict(os.environ)}")
        if mode == "huge_error":
            raise ValueError("x" * 10_000_000)
        if mode == "print_flood":
            for i in range(20_000):
                print(f"flood line {i}")
        return super().training_step(inputs, targets, batch_index)


LightningModule = L.export(Hostile)
