#!/usr/bin/env python3
"""A model in Python against the same model in Rust, side by side on one server: the Python
component's size, its first compile and cached load, building an instance, and a training
step of the MLP at batch 64 (the Rust built-in and its exact Python port, interleaved).

    python3 benches/python_guest.py SERVER_BINARY COMPONENTIZE_PY [ROUNDS]

It builds `examples/python-model/mlp.py` with the Python SDK, then measures over stdio.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON_MLP = "my_project.models.MLP"
RUST_MLP = "lightning_mcp.models.mlp.MLP"


def build(componentize_py, out_dir):
    """The Python MLP component, built as examples/python-model/README.md says."""
    source = tempfile.mkdtemp()
    shutil.copytree(os.path.join(ROOT, "guest-sdk-python/lightning_mcp"),
                    os.path.join(source, "lightning_mcp"))
    shutil.copy(os.path.join(ROOT, "examples/python-model/mlp.py"), source)
    started = time.perf_counter()
    subprocess.run([componentize_py, "-d", os.path.join(ROOT, "wit"), "-w", "model",
                    "componentize", "-p", source, "mlp", "-o",
                    os.path.join(out_dir, "mlp.wasm")], check=True, capture_output=True)
    return time.perf_counter() - started


class Server:
    """The server over stdio, one request at a time."""

    def __init__(self, binary, models, cache):
        self.process = subprocess.Popen(
            [binary, "--log", "warn", "--models-dir", models, "--cache-dir", cache],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.next_id = 1
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "1"}})

    def request(self, method, params):
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        while True:
            reply = json.loads(self.process.stdout.readline())
            if reply.get("id") == self.next_id:
                return reply

    def call(self, name, arguments):
        result = self.request("tools/call", {"name": name, "arguments": arguments})["result"]
        if result.get("isError"):
            sys.exit(f"{name} failed: {result}")
        return result["structuredContent"]

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def timed(action):
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1e3


def main():
    binary, componentize_py = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    models, cache = tempfile.mkdtemp(), tempfile.mkdtemp()
    build_s = build(componentize_py, models)
    size = os.path.getsize(os.path.join(models, "mlp.wasm"))
    print(f"component: {size / 1e6:.1f} MB, built in {build_s:.1f} s")

    # The first start compiles it (into the empty cache); the next loads it from the cache.
    models_call = {"what": "models"}
    for label in ("first compile", "cached load"):
        started = time.perf_counter()
        server = Server(binary, models, cache)
        server.call("lightning.inspect", models_call)
        print(f"{label}: start to the models list {(time.perf_counter() - started) * 1e3:.0f} ms")
        server.close()

    server = Server(binary, models, cache)
    server.call("lightning.inspect", models_call)
    build_ms = {RUST_MLP: [], PYTHON_MLP: []}
    step_ms = {RUST_MLP: [], PYTHON_MLP: []}
    data = {"dataset": "digits", "input_shape": [64], "batch_size": 64}
    for _ in range(rounds):
        for target in (RUST_MLP, PYTHON_MLP):
            model = {"_target_": target, "input_dim": 64, "num_classes": 10}
            build_ms[target].append(timed(lambda: server.call(
                "lightning.inspect", {"what": "model", "model": model})))
            result = server.call("lightning.train", {
                "model": model, "data": data,
                "trainer": {"max_epochs": 3, "seed": 0, "accelerator": "cpu",
                            "enable_checkpointing": False, "logger": False,
                            "num_sanity_val_steps": 0, "limit_val_batches": 0}})
            steps = result["trainer"]["global_step"]
            step_ms[target].append(64e3 / result["samples_per_second"] if steps else 0.0)
    server.close()
    for label, values in (("build an instance (inspect model)", build_ms),
                          ("training step, batch 64", step_ms)):
        rust, python = statistics.median(values[RUST_MLP]), statistics.median(values[PYTHON_MLP])
        print(f"{label}: Rust {rust:.2f} ms, Python {python:.2f} ms, "
              f"Python/Rust {python / rust:.2f}x (medians of {rounds})")


if __name__ == "__main__":
    main()
