#!/usr/bin/env bash
# The GPU path's figures, for a machine with a real GPU (or lavapipe): the first and the second
# GPU call of one server (request to answer of a one-step training), and the MLP's training
# step through the sandbox on wgpu against the same math without the sandbox, at batch 64 and
# 1024 (the `devices` bench). Record the output in benches/README.md with the machine and date.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
cargo bench -p lightning-mcp --bench devices
