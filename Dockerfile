# lightning-mcp: the MCP server with its embedded models, on the CPU backend and — through
# Vulkan — any GPU the container is given (lavapipe, software Vulkan, is installed so the
# GPU path works everywhere; `accelerator: "auto"` never picks it over the CPU).
#
#   docker build -t lightning-mcp .                    # the default: CPU and GPU (Vulkan)
#   docker build --target cpu -t lightning-mcp:cpu .   # CPU only, without Vulkan's 265 MB
#   docker run -i --rm -v lightning-checkpoints:/checkpoints -v lightning-cache:/cache lightning-mcp
#
# Layers, from the most to the least stable (each works with the legacy builder too):
# the toolchain rust-toolchain.toml pins; the dependencies, rebuilt only when a manifest or
# Cargo.lock changes (cargo-chef); the server; a runtime with or without Vulkan.
# scripts/docker-smoke.sh builds and tries both images.

# --- toolchain: Rust as rust-toolchain.toml pins it (the wasm target, rustfmt, clippy), and
# cargo-chef. Rebuilt only when rust-toolchain.toml changes. ---------------------------------
FROM rust:1.95-bookworm AS toolchain
WORKDIR /src
COPY rust-toolchain.toml ./
RUN rustup toolchain install \
    && cargo install --locked cargo-chef --version 0.1.78 \
    && rm -rf "$CARGO_HOME/registry"

# --- plan: what the dependencies are, from the manifests and Cargo.lock alone -----------------
FROM toolchain AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- build: the dependencies (cached while the plan stays the same), then the server with its
# guest models (compiled to wasm32-wasip2 and embedded); stripped by the release profile. ----
FROM toolchain AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p lightning-mcp --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p lightning-mcp \
    && install -m 0755 target/release/lightning-mcp /usr/local/bin/lightning-mcp

# --- runtime: a non-root user, its directories and the server's settings ----------------------
FROM debian:bookworm-slim AS runtime
RUN useradd --create-home --uid 10001 lightning \
    && mkdir -p /models /data /checkpoints /cache \
    && chown lightning:lightning /models /data /checkpoints /cache \
    && chmod 0700 /cache
ENV LIGHTNING_MCP_MODELS_DIR=/models \
    LIGHTNING_MCP_DATA_DIR=/data \
    LIGHTNING_MCP_CHECKPOINT_DIR=/checkpoints \
    LIGHTNING_MCP_CACHE_DIR=/cache \
    XDG_RUNTIME_DIR=/tmp
# Models to register at start (*.wasm), CSV files, checkpoints and runs, compiled components.
VOLUME ["/models", "/data", "/checkpoints", "/cache"]
EXPOSE 8000
# stdio by default: `docker run -i`; add `--http --host 0.0.0.0` for Streamable HTTP.
ENTRYPOINT ["lightning-mcp"]

# --- cpu: the server alone; `accelerator: gpu` is refused (no Vulkan) ---------------------------
FROM runtime AS cpu
COPY --from=build /usr/local/bin/lightning-mcp /usr/local/bin/lightning-mcp
USER lightning

# --- gpu, the default: the Vulkan loader and lavapipe (Mesa's software Vulkan), for any GPU the
# container is given and for the GPU path everywhere ------------------------------------------
FROM runtime AS gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/lightning-mcp /usr/local/bin/lightning-mcp
USER lightning
