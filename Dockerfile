# lightning-mcp: the MCP server with its embedded models, on the CPU backend and — through
# Vulkan — any GPU the container is given (lavapipe, software Vulkan, is installed so the
# GPU path works everywhere; `accelerator: "auto"` never picks it over the CPU).
#
#   docker build -t lightning-mcp .
#   docker run -i --rm -v lightning-models:/models -v lightning-runs:/checkpoints lightning-mcp
#   docker run --rm -p 8000:8000 lightning-mcp --http --host 0.0.0.0 --auth-token "$TOKEN"

# --- build: the host and the guest models (compiled to wasm32-wasip2 and embedded) ---------
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p lightning-mcp \
    && install -m 0755 target/release/lightning-mcp /usr/local/bin/lightning-mcp

# --- runtime: the binary, the Vulkan loader and lavapipe, a non-root user --------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 lightning \
    && mkdir -p /models /data /checkpoints /cache \
    && chown lightning:lightning /models /data /checkpoints /cache
COPY --from=build /usr/local/bin/lightning-mcp /usr/local/bin/lightning-mcp
USER lightning
ENV LIGHTNING_MCP_MODELS_DIR=/models \
    LIGHTNING_MCP_DATA_DIR=/data \
    LIGHTNING_MCP_CHECKPOINT_DIR=/checkpoints \
    LIGHTNING_MCP_CACHE_DIR=/cache \
    XDG_RUNTIME_DIR=/tmp
# Models to register at start (*.wasm), CSV files, checkpoints and logs, compiled components.
VOLUME ["/models", "/data", "/checkpoints", "/cache"]
EXPOSE 8000
# stdio by default: `docker run -i`; add `--http --host 0.0.0.0` for Streamable HTTP.
ENTRYPOINT ["lightning-mcp"]
