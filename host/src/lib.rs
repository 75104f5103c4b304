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
pub mod python_build;
pub mod runs;
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

/// How an agent should use the server, as `initialize` and `server/discover` report it: the
/// workflow and where the help lives (under 1 KB: every client pays for it).
pub const INSTRUCTIONS: &str = "Trains, evaluates and inspects neural networks (PyTorch \
    Lightning's API) whose models run sandboxed as WebAssembly components. Workflow: 1. \
    lightning.inspect {\"what\": \"models\"} lists the model targets with their \
    hyperparameters. 2. lightning.train {\"model\": {\"_target_\": ..., hyperparameters}, \
    \"trainer\": {\"max_epochs\": ...}, \"data\": ...} fits one; without data it uses the \
    model's own, or give inline arrays, a CSV under the data directory or a built-in dataset \
    (iris, digits); sizes such as input_dim and num_classes left out come from the data. It \
    returns metrics and checkpoint_path. 3. Pass that path as ckpt_path to \
    lightning.validate, test or predict (hyperparameters left out come from the checkpoint), \
    or to train to resume. The tool list shows the common \
    options only: lightning.inspect {\"what\": \"help\"} gives every option by topic \
    (trainer, callbacks, data, limits, schedulers, checkpoints, results). Long trainings: pass \
    \"background\": true and follow the run with lightning.runs (runs survive restarts).";

/// The server's name and version, as `initialize` reports them.
pub const SERVER_INFO: protocol::ServerInfo = protocol::ServerInfo {
    name: "lightning-mcp",
    version: env!("CARGO_PKG_VERSION"),
    instructions: INSTRUCTIONS,
};

/// An MCP server with the lightning tools on a runtime built from `config`, recording its
/// runs in `runs`; a models directory starts loading in the background, built-in models load
/// on first use, and in the background the kept uploads register again and the runs a
/// stopped server left unfinished resume (or fail).
pub fn server(config: runtime::RuntimeConfig, runs: runs::Runs) -> protocol::Server {
    let runtime = runtime::Runtime::new(config);
    runtime.preload();
    // Read before this server records any run; done in the background, if there is anything.
    let recovery = runs.recovery().unwrap_or_else(|e| {
        tracing::error!("cannot read the runs left unfinished: {e}");
        None
    });
    let tools = tools::Tools::new(runtime, Arc::new(runs));
    if let Some(recovery) = recovery {
        // Compiling kept uploads takes a while: `initialize` does not wait for it.
        let recovering = tools.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("recover-runs".into())
            .spawn(move || recovering.recover(recovery))
        {
            tracing::error!("cannot start recovering the unfinished runs: {e}");
        }
    }
    protocol::Server::new(SERVER_INFO, Arc::new(tools))
}
