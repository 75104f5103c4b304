//! The wasmtime sandbox that model components run in.
//!
//! One [`Sandbox`] owns the engine (with epoch interruption for wall-clock deadlines) and the
//! linker that gives guests the `lightning:model` imports plus a WASI that grants nothing (no
//! clocks, randomness, files or network; stdout and stderr go to the log). A
//! [`ModelRegistry`] compiles each component once and keeps its `InstancePre` ([`BuiltInModels`]
//! does the same for the embedded models, each on first use); every request
//! gets a fresh [`ModelInstance`] in its own store with its own [`Limits`], so a guest that
//! traps or breaks a limit never affects another request.

mod bindings;
mod built_in;
mod cache;
mod clocks;
mod instance;
mod limits;
mod registry;
mod state;
pub mod text;
mod wasi;

pub use built_in::BuiltInModels;
pub use cache::{ComponentCache, sha256_hex};
pub use instance::{ModelData, ModelInstance, Split};
pub use limits::{LimitExceeded, Limits, NAMED_LIMITS, NamedLimit};
pub use registry::{
    Insertion, MAX_DEFAULT_HYPERPARAMETERS, ModelDescription, ModelRegistry, ModelSource,
    RegisteredModel, Rejected, WORLD,
};
pub use state::{Parameter, live_instances};
pub use wasi::GuestLine;

use crate::cancel::Cancelled;
use state::HostState;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the engine's epoch advances: the granularity of wall-clock deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a sandboxed call failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The model returned an error (bad hyperparameters, a failed tensor op, ...).
    #[error("{0}")]
    Model(String),
    /// The model broke a sandbox limit.
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    /// The model trapped (a panic, an invalid handle, ...); the instance is unusable.
    #[error("{0}")]
    Trap(String),
    /// The component could not be compiled, linked or described.
    #[error("{0}")]
    Component(String),
    /// The run was cancelled while the guest ran.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

impl SandboxError {
    /// An error a guest returned, bounded and escaped as [`text::shown`] does.
    pub fn from_guest(message: String) -> Self {
        Self::Model(text::shown(&message))
    }
}

/// The engine and linker shared by every model.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    /// An engine with epoch interruption and a linker with the model imports and an empty WASI.
    pub fn new() -> Result<Self, SandboxError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| component_error("engine", &e))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| component_error("linker", &e))?;
        bindings::Model::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| component_error("linker", &e))?;
        let ticker = Arc::new(AtomicBool::new(true));
        spawn_epoch_ticker(engine.clone(), ticker.clone());
        Ok(Self {
            engine,
            linker,
            ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `running` turns false.
fn spawn_epoch_ticker(engine: Engine, running: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, deadlines will not fire: {e}");
    }
}

fn component_error(what: &str, e: &wasmtime::Error) -> SandboxError {
    SandboxError::Component(format!("{what}: {e:#}"))
}
