//! What every tool call shares: the sandbox, the model registry, the limits, the directories
//! files may live in.
//!
//! Nothing is loaded at start-up. Compiling a model component takes tens of milliseconds (about
//! a millisecond from the on-disk cache): each built-in model loads the first time a request
//! names it, and a models directory loads in the background when the server starts, the first
//! tool call that needs it waiting for it; `initialize` never does. Uploaded models join the
//! registry while the server runs: compiled outside its lock, inserted under it.

use crate::files::ConfinedDir;
use crate::python_build::PythonBuild;
use crate::sandbox::{
    BuiltInModels, ComponentCache, Insertion, Limits, ModelRegistry, ModelSource, RegisteredModel,
    Rejected, Sandbox, SandboxError, sha256_hex,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};

mod slots;

use slots::Running;
pub use slots::{RunSlot, SlotError};

/// How to set up a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached.
    pub cache: ComponentCache,
    /// A directory of extra model components (`*.wasm`).
    pub models_dir: Option<PathBuf>,
    /// Limits of every run.
    pub limits: Limits,
    /// Most model runs at once; further runs wait in a queue.
    pub max_concurrent_runs: usize,
    /// Most runs waiting for a slot; further runs are refused as busy.
    pub max_queued_runs: usize,
    /// Largest tool result, in bytes of JSON: predictions past it go to a file.
    pub max_result_bytes: usize,
    /// The tensor memory all runs together may use: each run reserves its own limit
    /// ([`Limits::max_tensor_bytes`], perhaps lowered by its request) while it runs.
    pub max_total_tensor_bytes: usize,
    /// Whether and how clients may upload models (`lightning.register`); off when `None`.
    pub uploads: Option<UploadLimits>,
    /// How uploaded Python models are built.
    pub python_build: PythonBuild,
    /// Where data files are read from.
    pub data_dir: ConfinedDir,
    /// Where checkpoints are written.
    pub checkpoint_dir: ConfinedDir,
    /// This server's executable, which probes GPU adapters in a child process; `None`: no
    /// probing (adapters are reported unavailable).
    pub executable: Option<PathBuf>,
    /// The server's log filter (`--log`), which its GPU workers log with too.
    pub log_filter: Option<String>,
}

/// What a GPU worker process needs of its server's [`RuntimeConfig`] to run calls as the
/// server would (see [`crate::tools::worker`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerConfig {
    max_concurrent_runs: usize,
    max_queued_runs: usize,
    max_result_bytes: usize,
    max_total_tensor_bytes: usize,
    cache_dir: Option<PathBuf>,
    models_dir: Option<PathBuf>,
    limits: Limits,
    uploads: Option<UploadLimits>,
    data_dir: PathBuf,
    checkpoint_dir: PathBuf,
}

impl From<WorkerConfig> for RuntimeConfig {
    fn from(worker: WorkerConfig) -> Self {
        Self {
            cache: worker
                .cache_dir
                .map_or_else(ComponentCache::disabled, ComponentCache::at),
            models_dir: worker.models_dir,
            limits: worker.limits,
            max_concurrent_runs: worker.max_concurrent_runs,
            max_queued_runs: worker.max_queued_runs,
            max_result_bytes: worker.max_result_bytes,
            max_total_tensor_bytes: worker.max_total_tensor_bytes,
            uploads: worker.uploads,
            // A worker runs what its server built: it builds nothing itself.
            python_build: PythonBuild::default(),
            data_dir: ConfinedDir::new(worker.data_dir, DATA_DIR_FLAG),
            checkpoint_dir: ConfinedDir::new(worker.checkpoint_dir, CHECKPOINT_DIR_FLAG),
            executable: None,
            log_filter: None,
        }
    }
}

/// The default [`RuntimeConfig::max_result_bytes`]: 100 KB, about 25,000 tokens.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 100_000;

/// The option that sets [`RuntimeConfig::max_result_bytes`], as errors name it.
pub const MAX_RESULT_FLAG: &str = "--max-result-kb";

/// The option that sets [`RuntimeConfig::max_total_tensor_bytes`], as errors name it.
pub const TOTAL_TENSOR_MEMORY_FLAG: &str = "--max-total-tensor-memory-mib";

/// The default [`RuntimeConfig::max_total_tensor_bytes`]: half the machine's memory (8 GiB
/// when it cannot be read), so that runs together leave the rest to the system.
pub fn default_total_tensor_bytes() -> usize {
    physical_memory().map_or(8 << 30, |bytes| bytes / 2)
}

/// The machine's physical memory, in bytes.
#[allow(unsafe_code)]
fn physical_memory() -> Option<usize> {
    // SAFETY: `sysconf` only reads system configuration; it has no preconditions.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let pages = usize::try_from(pages).ok()?;
    let page_size = usize::try_from(page_size).ok()?;
    pages.checked_mul(page_size).filter(|b| *b > 0)
}

/// The option that sets [`RuntimeConfig::data_dir`], as errors name it.
pub const DATA_DIR_FLAG: &str = "--data-dir";

/// The option that sets [`RuntimeConfig::checkpoint_dir`], as errors name it.
pub const CHECKPOINT_DIR_FLAG: &str = "--checkpoint-dir";

/// How much clients may upload with `lightning.register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadLimits {
    /// Largest component, in bytes.
    pub max_bytes: usize,
    /// Most uploaded models registered at once.
    pub max_models: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 20,
            max_models: 64,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache: ComponentCache::default(),
            models_dir: None,
            limits: Limits::default(),
            max_concurrent_runs: std::thread::available_parallelism().map_or(2, usize::from),
            max_queued_runs: 64,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_total_tensor_bytes: default_total_tensor_bytes(),
            uploads: None,
            python_build: PythonBuild::default(),
            data_dir: ConfinedDir::new("data", DATA_DIR_FLAG),
            checkpoint_dir: ConfinedDir::new("checkpoints", CHECKPOINT_DIR_FLAG),
            executable: None,
            log_filter: None,
        }
    }
}

/// The shared state of the tools.
pub struct Runtime {
    config: RuntimeConfig,
    sandbox: OnceLock<Result<Sandbox, String>>,
    built_in: BuiltInModels,
    registry: OnceLock<Result<RwLock<ModelRegistry>, String>>,
    running: Mutex<Running>,
    /// Signalled when a run ends or leaves the queue.
    slot_freed: Condvar,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime that loads its models on first use. A per-run tensor limit above the
    /// server-wide budget is lowered to it.
    pub fn new(mut config: RuntimeConfig) -> Arc<Self> {
        let total = config.max_total_tensor_bytes;
        if config.limits.max_tensor_bytes > total {
            tracing::warn!(
                "the tensor memory of one run ({} MiB) is above the server's total ({} MiB, \
                 {TOTAL_TENSOR_MEMORY_FLAG}): runs get the total at most",
                config.limits.max_tensor_bytes >> 20,
                total >> 20
            );
            config.limits.max_tensor_bytes = total;
        }
        Arc::new(Self {
            config,
            sandbox: OnceLock::new(),
            built_in: BuiltInModels::default(),
            registry: OnceLock::new(),
            running: Mutex::new(Running::default()),
            slot_freed: Condvar::new(),
        })
    }

    /// Starts loading the models directory, if there is one, on a background thread.
    pub fn preload(self: &Arc<Self>) {
        if self.config.models_dir.is_none() {
            return;
        }
        let runtime = self.clone();
        let spawned = std::thread::Builder::new()
            .name("model-loader".into())
            .spawn(move || {
                if let Err(e) = runtime.loaded_registry() {
                    tracing::error!("loading models failed: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot load models in the background: {e}");
        }
    }

    /// The limits of every run.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// This server's executable (which runs the adapter probe and GPU workers), if known.
    pub fn executable(&self) -> Option<&std::path::Path> {
        self.config.executable.as_deref()
    }

    /// The server's log filter, if it has one.
    pub fn log_filter(&self) -> Option<&str> {
        self.config.log_filter.as_deref()
    }

    /// What a GPU worker needs to run a call as this server would.
    pub fn worker_config(&self) -> WorkerConfig {
        let config = &self.config;
        WorkerConfig {
            max_concurrent_runs: config.max_concurrent_runs,
            max_queued_runs: config.max_queued_runs,
            max_result_bytes: config.max_result_bytes,
            max_total_tensor_bytes: config.max_total_tensor_bytes,
            cache_dir: config.cache.dir().map(std::path::Path::to_path_buf),
            models_dir: config.models_dir.clone(),
            limits: config.limits.clone(),
            uploads: config.uploads,
            data_dir: config.data_dir.root().to_path_buf(),
            checkpoint_dir: config.checkpoint_dir.root().to_path_buf(),
        }
    }

    /// This machine's GPU adapters, probed on first use (see [`crate::gpu`]).
    pub fn gpu_adapters(&self) -> &'static crate::gpu::Adapters {
        crate::gpu::adapters(self.config.executable.as_deref())
    }

    /// Where compiled components are cached, if anywhere.
    pub fn cache(&self) -> &ComponentCache {
        &self.config.cache
    }

    /// What clients may upload, if uploads are on.
    pub fn uploads(&self) -> Option<UploadLimits> {
        self.config.uploads
    }

    /// How uploaded Python models are built.
    pub fn python_build(&self) -> &PythonBuild {
        &self.config.python_build
    }

    /// The largest tool result, in bytes of JSON.
    pub fn max_result_bytes(&self) -> usize {
        self.config.max_result_bytes
    }

    /// Where data files are read from.
    pub fn data_dir(&self) -> &ConfinedDir {
        &self.config.data_dir
    }

    /// Where checkpoints are written.
    pub fn checkpoint_dir(&self) -> &ConfinedDir {
        &self.config.checkpoint_dir
    }

    fn sandbox(&self) -> Result<&Sandbox, String> {
        self.sandbox
            .get_or_init(|| Sandbox::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every model this server can run, by target (loading the built-in ones not loaded yet,
    /// and waiting for the models directory), and the models directory's refused files.
    pub fn models(&self) -> Result<(Vec<Arc<RegisteredModel>>, Vec<Rejected>), String> {
        let sandbox = self.sandbox()?;
        let mut models = self
            .built_in
            .all(sandbox, &self.config.cache, &self.config.limits)
            .map_err(|e| e.to_string())?;
        let registry = self.read_registry()?;
        models.extend(registry.models().cloned());
        models.sort_by(|a, b| a.description.target.cmp(&b.description.target));
        Ok((models, registry.rejected().to_vec()))
    }

    /// The models directory's and the uploaded models (waits for the directory to load).
    fn read_registry(&self) -> Result<RwLockReadGuard<'_, ModelRegistry>, String> {
        Ok(self
            .loaded_registry()?
            .read()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn loaded_registry(&self) -> Result<&RwLock<ModelRegistry>, String> {
        self.registry
            .get_or_init(|| {
                self.load_registry()
                    .map(RwLock::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| format!("the model registry failed to load: {e}"))
    }

    /// Compiles an uploaded component and registers it under the target it declares (see
    /// [`ModelRegistry::insert`] for taken targets). Its size was bounded where it came in:
    /// by the upload limit, or by the build that made it.
    pub fn register_upload(
        &self,
        wasm: &[u8],
        replace: bool,
    ) -> Result<(Arc<RegisteredModel>, Insertion), String> {
        let uploads = self
            .config
            .uploads
            .ok_or("uploading models is off: start the server with --allow-register")?;
        let registry = self.loaded_registry()?;
        let full = || {
            format!(
                "{} uploaded models are registered, the most this server keeps \
                 (--max-uploaded-models); to replace one, pass replace: true",
                uploads.max_models
            )
        };
        let is_full = |r: &ModelRegistry| r.uploads() >= uploads.max_models;
        {
            let current = registry.read().unwrap_or_else(PoisonError::into_inner);
            let sha256 = sha256_hex(wasm);
            if let Some(same) = current.upload(&sha256) {
                return Ok((same.clone(), Insertion::Unchanged));
            }
            // Only a replacement can succeed on a full server: refuse the rest unread.
            if !replace && is_full(&current) {
                return Err(full());
            }
        }
        // Compiled in memory only: strangers' uploads never fill the on-disk cache.
        let model = ModelRegistry::compile(
            self.sandbox()?,
            &ComponentCache::disabled(),
            &self.config.limits,
            wasm,
            ModelSource::Upload,
        )
        .map_err(|e| e.to_string())?;
        let mut registry = registry.write().unwrap_or_else(PoisonError::into_inner);
        if !registry.is_taken(&model.description.target) && is_full(&registry) {
            return Err(full());
        }
        registry.insert(model, replace).map_err(|e| e.to_string())
    }

    /// The uploaded model whose component has SHA-256 `sha256`, if it is registered.
    pub fn registered_upload(&self, sha256: &str) -> Result<Option<Arc<RegisteredModel>>, String> {
        Ok(self.read_registry()?.upload(sha256).cloned())
    }

    fn load_registry(&self) -> Result<ModelRegistry, SandboxError> {
        let started = std::time::Instant::now();
        let sandbox = self.sandbox().map_err(SandboxError::Component)?;
        let (cache, limits) = (&self.config.cache, &self.config.limits);
        let mut registry = ModelRegistry::default();
        if let Some(dir) = &self.config.models_dir {
            registry.register_dir(sandbox, cache, limits, dir);
        }
        tracing::info!(
            models = registry.models().count(),
            refused = registry.rejected().len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "models directory loaded"
        );
        Ok(registry)
    }

    /// The model registered under `target` (a built-in one loads on its first use), or an
    /// error listing the registered targets.
    pub fn model(&self, target: &str) -> Result<Arc<RegisteredModel>, String> {
        let sandbox = self.sandbox()?;
        if let Some(model) =
            self.built_in
                .get(target, sandbox, &self.config.cache, &self.config.limits)
        {
            return model.map_err(|e| e.to_string());
        }
        let registry = self.read_registry()?;
        registry.get(target).cloned().ok_or_else(|| {
            let known: Vec<&str> = self
                .built_in
                .targets()
                .chain(registry.models().map(|m| m.description.target.as_str()))
                .collect();
            let refused = match registry.rejected().len() {
                0 => String::new(),
                n => format!(
                    " ({n} file(s) of the models directory were refused: lightning.inspect \
                     `what: models` lists them with the reason)"
                ),
            };
            format!(
                "model._target_ {target:?} is not a registered model; registered models: \
                 {}{refused}",
                known.join(", ")
            )
        })
    }
}
