//! The models a server can run, by `_target_`: each compiled once, kept as an `InstancePre`.
//! Nothing is ever loaded by a name a request invents: a target that is not registered here is
//! an error.

use super::bindings::ModelPre;
use super::cache::ComponentCache;
use super::instance::ModelInstance;
use super::limits::Limits;
use super::state::HostState;
use super::{Sandbox, SandboxError};
use crate::cancel::CancelToken;
use crate::tensor::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where a registered model came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// Compiled into the binary.
    BuiltIn,
    /// A `.wasm` file from the models directory.
    File(PathBuf),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built-in"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a model says about itself (its `describe` export).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDescription {
    /// The `_target_` clients use.
    pub target: String,
    /// The class name reported as `model.class`.
    pub class_name: String,
    /// One paragraph for `inspect models`.
    pub summary: String,
    /// Default hyperparameters (a JSON object).
    pub hyperparameters: serde_json::Value,
}

/// Longest target or class name a model may declare.
const MAX_NAME: usize = 200;
/// Longest summary a model may declare.
const MAX_SUMMARY: usize = 4096;

impl ModelDescription {
    /// Checks what a (possibly hostile) guest says about itself: a target of
    /// `[A-Za-z0-9_.]`, bounded names and summary, default hyperparameters as a JSON object.
    fn checked(raw: super::bindings::module::Description) -> Result<Self, SandboxError> {
        let bad = |m: String| Err(SandboxError::Component(format!("describe: {m}")));
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= MAX_NAME
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if !name_ok(&raw.target) {
            return bad(format!(
                "the target must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.], got {:?}",
                truncated(&raw.target)
            ));
        }
        if !name_ok(&raw.class_name) {
            return bad(format!(
                "the class name must be 1 to {MAX_NAME} characters of [A-Za-z0-9_.], got {:?}",
                truncated(&raw.class_name)
            ));
        }
        if raw.summary.len() > MAX_SUMMARY {
            return bad(format!("the summary is longer than {MAX_SUMMARY} bytes"));
        }
        let hyperparameters: serde_json::Value = match serde_json::from_str(&raw.hyperparameters) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => return bad("default hyperparameters must be a JSON object".into()),
            Err(e) => return bad(format!("default hyperparameters are not JSON: {e}")),
        };
        Ok(Self {
            target: raw.target,
            class_name: raw.class_name,
            summary: raw.summary,
            hyperparameters,
        })
    }
}

/// The first characters of `s`, for an error message.
fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A compiled, described model, ready to instantiate.
pub struct RegisteredModel {
    /// What the model says about itself.
    pub description: ModelDescription,
    /// Where it came from.
    pub source: ModelSource,
    /// Hex SHA-256 of its component bytes.
    pub sha256: String,
    pre: ModelPre<HostState>,
}

impl std::fmt::Debug for RegisteredModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredModel")
            .field("description", &self.description)
            .field("source", &self.source)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl RegisteredModel {
    /// A fresh instance in its own store, with a wall-clock `budget`, stopped when `cancel`
    /// is.
    pub fn instantiate(
        &self,
        device: Device,
        limits: &Limits,
        seed: u64,
        budget: Duration,
        cancel: CancelToken,
    ) -> Result<ModelInstance, SandboxError> {
        ModelInstance::new(&self.pre, device, limits, seed, budget, cancel)
    }
}

/// Every model a server can run, by target.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<RegisteredModel>>,
}

impl ModelRegistry {
    /// The models compiled into the binary.
    pub fn built_in(
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
    ) -> Result<Self, SandboxError> {
        let mut registry = Self::default();
        for wasm in lightning_mcp_guests::BUILT_IN {
            registry.register(sandbox, cache, limits, wasm, ModelSource::BuiltIn)?;
        }
        Ok(registry)
    }

    /// Registers every `*.wasm` in `dir` (sorted by name); a file that is not a valid model
    /// is an error naming the file.
    pub fn register_dir(
        &mut self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
        dir: &Path,
    ) -> Result<(), SandboxError> {
        let read = |e: std::io::Error| {
            SandboxError::Component(format!("cannot read models dir {}: {e}", dir.display()))
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let wasm = std::fs::read(&path).map_err(read)?;
            self.register(
                sandbox,
                cache,
                limits,
                &wasm,
                ModelSource::File(path.clone()),
            )
            .map_err(|e| SandboxError::Component(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Compiles (or loads from `cache`), links and describes one component (within `limits`),
    /// and registers it under the target it declares. A target that is already registered, or
    /// a description out of bounds, is refused.
    pub fn register(
        &mut self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
        wasm: &[u8],
        source: ModelSource,
    ) -> Result<Arc<RegisteredModel>, SandboxError> {
        let compiled = cache.load_or_compile(sandbox.engine(), wasm)?;
        let link = |e: wasmtime::Error| {
            SandboxError::Component(format!("not a lightning:model component: {e:#}"))
        };
        let pre = ModelPre::new(
            sandbox
                .linker()
                .instantiate_pre(&compiled.component)
                .map_err(link)?,
        )
        .map_err(link)?;
        let mut probe = ModelInstance::new(
            &pre,
            crate::tensor::cpu_device(),
            limits,
            0,
            limits.call_timeout,
            CancelToken::new(),
        )?;
        let description = ModelDescription::checked(probe.describe()?)?;
        if let Some(existing) = self.models.get(&description.target) {
            return Err(SandboxError::Component(format!(
                "target {} is already registered ({})",
                description.target, existing.source
            )));
        }
        let model = Arc::new(RegisteredModel {
            description,
            source,
            sha256: compiled.sha256,
            pre,
        });
        self.models
            .insert(model.description.target.clone(), model.clone());
        Ok(model)
    }

    /// The model registered under `target`.
    pub fn get(&self, target: &str) -> Option<&Arc<RegisteredModel>> {
        self.models.get(target)
    }

    /// Every registered model, by target.
    pub fn models(&self) -> impl Iterator<Item = &Arc<RegisteredModel>> {
        self.models.values()
    }
}
