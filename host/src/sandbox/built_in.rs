//! The models compiled into the binary, each loaded (compiled, or read from the compile
//! cache, then described) the first time a request needs it: a server that only ever trains
//! one model never loads the others, and nothing is loaded at start-up.

use super::cache::ComponentCache;
use super::limits::Limits;
use super::registry::{ModelRegistry, ModelSource, RegisteredModel};
use super::{Sandbox, SandboxError};
use lightning_mcp_guests::BuiltIn;
use std::sync::{Arc, OnceLock};

/// One built-in model, loaded at most once.
struct LazyModel {
    built_in: &'static BuiltIn,
    loaded: OnceLock<Result<Arc<RegisteredModel>, String>>,
}

/// Every built-in model, by the target it declares.
pub struct BuiltInModels {
    models: Vec<LazyModel>,
}

impl std::fmt::Debug for BuiltInModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.targets()).finish()
    }
}

impl Default for BuiltInModels {
    fn default() -> Self {
        Self {
            models: lightning_mcp_guests::BUILT_IN
                .iter()
                .map(|built_in| LazyModel {
                    built_in,
                    loaded: OnceLock::new(),
                })
                .collect(),
        }
    }
}

impl BuiltInModels {
    /// Whether `target` is a built-in model's (which no other model may take).
    pub fn is_built_in(target: &str) -> bool {
        lightning_mcp_guests::BUILT_IN
            .iter()
            .any(|b| b.target == target)
    }

    /// The built-in targets, loaded or not.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| m.built_in.target)
    }

    /// The built-in model `target`, loaded now if this is its first use; `None` when no
    /// built-in model has that target. A failed load is remembered and reported again.
    pub fn get(
        &self,
        target: &str,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
    ) -> Option<Result<Arc<RegisteredModel>, SandboxError>> {
        let model = self.models.iter().find(|m| m.built_in.target == target)?;
        Some(model.load(sandbox, cache, limits))
    }

    /// Every built-in model, loading those not loaded yet.
    pub fn all(
        &self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
    ) -> Result<Vec<Arc<RegisteredModel>>, SandboxError> {
        self.models
            .iter()
            .map(|m| m.load(sandbox, cache, limits))
            .collect()
    }
}

impl LazyModel {
    fn load(
        &self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
    ) -> Result<Arc<RegisteredModel>, SandboxError> {
        let BuiltIn { target, wasm } = *self.built_in;
        self.loaded
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let model =
                    ModelRegistry::compile(sandbox, cache, limits, wasm, ModelSource::BuiltIn)
                        .map_err(|e| format!("the built-in model {target}: {e}"))?;
                if model.description.target != target {
                    return Err(format!(
                        "the built-in component for {target} describes itself as {}",
                        model.description.target
                    ));
                }
                tracing::debug!(
                    target,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "built-in model loaded"
                );
                Ok(Arc::new(model))
            })
            .clone()
            .map_err(SandboxError::Component)
    }
}
