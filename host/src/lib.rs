//! lightning-mcp: an MCP server that trains and inspects neural networks defined as untrusted
//! WebAssembly components, with every tensor op executed on the host by Burn.
//!
//! The layers, from the wire inwards: [`transport`] (stdio, Streamable HTTP) feeds [`protocol`] (JSON-RPC and
//! the MCP lifecycle, knowing nothing of models), which calls [`tools`]; tools run on the
//! shared [`runtime`]: the [`sandbox`] (wasmtime, the model registry, limits), the
//! [`trainer`] loop over [`data`], and [`tensor`], the only module that sees Burn.

#![deny(unsafe_code)]

pub mod cancel;
pub mod checkpoint;
pub mod data;
pub mod files;
pub mod gpu;
pub mod plot;
pub mod protocol;
pub mod runtime;
pub mod sandbox;
pub mod sync;
pub mod tensor;
pub mod tools;
pub mod trainer;
pub mod transport;

use std::sync::Arc;

/// mimalloc keeps and reuses the large buffers a training step allocates and frees by the
/// dozen; glibc's allocator returns them to the kernel and takes page faults to get them back
/// (8 % of a transformer's step on the CPU; see `benches/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server's name and version, as `initialize` reports them.
pub const SERVER_INFO: protocol::ServerInfo = protocol::ServerInfo {
    name: "lightning-mcp",
    version: env!("CARGO_PKG_VERSION"),
    instructions: "Train, evaluate and inspect neural-network models that run sandboxed as \
        WebAssembly components. Start with lightning.inspect {\"what\": \"models\"} to see the \
        registered model targets.",
};

/// An MCP server with the lightning tools on a runtime built from `config`; a models
/// directory starts loading in the background, built-in models load on first use.
pub fn server(config: runtime::RuntimeConfig) -> protocol::Server {
    let runtime = runtime::Runtime::new(config);
    runtime.preload();
    protocol::Server::new(SERVER_INFO, Arc::new(tools::Tools::new(runtime)))
}
