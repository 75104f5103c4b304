//! The models a server loads from files or uploads, by `_target_`: each compiled once, kept as
//! an `InstancePre` (the built-in models are in [`super::BuiltInModels`]).
//! Nothing is ever loaded by a name a request invents: a target that is not registered here is
//! an error.

use super::bindings::ModelPre;
use super::built_in::BuiltInModels;
use super::cache::ComponentCache;
use super::instance::ModelInstance;
use super::limits::{LimitExceeded, Limits};
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
    /// Uploaded with `lightning.register`.
    Upload,
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BuiltIn => f.write_str("built-in"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Upload => f.write_str("upload"),
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

/// The world every model component must target.
pub const WORLD: &str = "lightning:model/model@0.5.0";

/// The interfaces of [`WORLD`] a model imports.
const MODEL_IMPORTS: [&str; 3] = [
    "lightning:model/tensors@0.5.0",
    "lightning:model/params@0.5.0",
    "lightning:model/log@0.5.0",
];

/// Whether the sandbox links import `name`.
fn granted(name: &str) -> bool {
    MODEL_IMPORTS.contains(&name)
        || super::wasi::GRANTED
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// Wall-clock budget of instantiating a component and asking it to `describe` itself, at
/// registration (a models directory, an upload, the first use of a built-in): describing is
/// returning constants, so a component that takes longer is refused quickly rather than
/// holding `inspect models` or an upload for the whole call budget.
pub const DESCRIBE_BUDGET: Duration = Duration::from_secs(2);

/// Longest target or class name a model may declare.
const MAX_NAME: usize = 200;
/// Longest summary a model may declare.
const MAX_SUMMARY: usize = 4096;
/// Longest default hyperparameters (JSON) a model may declare.
pub const MAX_DEFAULT_HYPERPARAMETERS: usize = 64 << 10;

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
        if raw.hyperparameters.len() > MAX_DEFAULT_HYPERPARAMETERS {
            return bad(format!(
                "the default hyperparameters are longer than {MAX_DEFAULT_HYPERPARAMETERS} bytes"
            ));
        }
        let hyperparameters: serde_json::Value = match serde_json::from_str(&raw.hyperparameters) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => return bad("default hyperparameters must be a JSON object".into()),
            Err(e) => return bad(format!("default hyperparameters are not JSON: {e}")),
        };
        Ok(Self {
            target: raw.target,
            class_name: raw.class_name,
            summary: super::text::shown(&raw.summary),
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
    /// An upload's component bytes, which a GPU worker process registers again (built-in
    /// models and the models directory it loads itself).
    pub upload: Option<Arc<[u8]>>,
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

/// A file of the models directory that could not be registered, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The file (or the directory, if it could not be read).
    pub path: PathBuf,
    /// Why it was refused.
    pub error: String,
}

/// What [`ModelRegistry::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insertion {
    /// A new target.
    Added,
    /// An uploaded model under the same target was replaced.
    Replaced,
    /// The same component was uploaded before; nothing changed.
    Unchanged,
}

/// Every model a server can run, by target, and the files that were refused.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<RegisteredModel>>,
    rejected: Vec<Rejected>,
}

impl ModelRegistry {
    /// Registers every `*.wasm` in `dir` (sorted by name). A file that is not a valid model,
    /// or whose target is taken, is logged and kept in [`Self::rejected`] with the reason; the
    /// other models are unaffected.
    pub fn register_dir(
        &mut self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
        dir: &Path,
    ) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.reject(dir, format!("cannot read the models directory: {e}"));
                return;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let registered = std::fs::read(&path)
                .map_err(|e| SandboxError::Component(format!("cannot read it: {e}")))
                .and_then(|wasm| {
                    self.register(
                        sandbox,
                        cache,
                        limits,
                        &wasm,
                        ModelSource::File(path.clone()),
                    )
                });
            match registered {
                Ok(model) => tracing::info!(
                    target = model.description.target,
                    path = %path.display(),
                    "registered a model from the models directory"
                ),
                Err(e) => self.reject(&path, e.to_string()),
            }
        }
    }

    fn reject(&mut self, path: &Path, error: String) {
        tracing::error!(path = %path.display(), "model refused: {error}");
        self.rejected.push(Rejected {
            path: path.to_path_buf(),
            error,
        });
    }

    /// Compiles, links, describes and registers one component; see [`Self::compile`] and
    /// [`Self::insert`].
    pub fn register(
        &mut self,
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
        wasm: &[u8],
        source: ModelSource,
    ) -> Result<Arc<RegisteredModel>, SandboxError> {
        let model = Self::compile(sandbox, cache, limits, wasm, source)?;
        self.insert(model, false).map(|(model, _)| model)
    }

    /// Compiles (or loads from `cache`) and links one component of world
    /// `lightning:model/model`, and asks it to describe itself (within `limits`). A component
    /// of another world is an error naming the import or export that does not match.
    pub fn compile(
        sandbox: &Sandbox,
        cache: &ComponentCache,
        limits: &Limits,
        wasm: &[u8],
        source: ModelSource,
    ) -> Result<RegisteredModel, SandboxError> {
        let compiled = cache.load_or_compile(sandbox.engine(), wasm)?;
        let link = |e: wasmtime::Error| {
            let component_type = compiled.component.component_type();
            let ungranted: Vec<&str> = component_type
                .imports(sandbox.engine())
                .map(|(name, _)| name)
                .filter(|name| !granted(name))
                .collect();
            SandboxError::Component(if ungranted.is_empty() {
                format!("not a component of world {WORLD}: {}", e.root_cause())
            } else {
                format!(
                    "not a component of world {WORLD}: it imports {}, which the sandbox does \
                     not grant (a model gets the model interfaces, wasi:cli, wasi:io, virtual \
                     clocks, seeded randomness, a filesystem without directories and sockets \
                     that refuse)",
                    ungranted.join(", ")
                )
            })
        };
        let pre = ModelPre::new(
            sandbox
                .linker()
                .instantiate_pre(&compiled.component)
                .map_err(link)?,
        )
        .map_err(link)?;
        let budget = limits.call_timeout.min(DESCRIBE_BUDGET);
        let described = ModelInstance::new(
            &pre,
            crate::tensor::cpu_device(),
            limits,
            0,
            budget,
            CancelToken::new(),
        )
        .and_then(|mut probe| probe.describe());
        let description = described
            .map_err(|e| {
                SandboxError::Component(match e {
                    SandboxError::Limit(LimitExceeded::Deadline { budget }) => format!(
                        "describe did not return within {} s (describing a model returns its \
                         constants; a component that takes longer is refused)",
                        budget.as_secs_f64()
                    ),
                    e => format!("describe failed: {e}"),
                })
            })
            .and_then(ModelDescription::checked)?;
        Ok(RegisteredModel {
            description,
            upload: (source == ModelSource::Upload).then(|| Arc::from(wasm)),
            source,
            sha256: compiled.sha256,
            pre,
        })
    }

    /// Registers `model` under the target it declares. A taken target, or a built-in model's,
    /// is refused, except that an upload may replace an upload when `replace` is set, and
    /// uploading the same component again changes nothing.
    pub fn insert(
        &mut self,
        model: RegisteredModel,
        replace: bool,
    ) -> Result<(Arc<RegisteredModel>, Insertion), SandboxError> {
        let target = model.description.target.clone();
        if model.source != ModelSource::BuiltIn && BuiltInModels::is_built_in(&target) {
            return Err(SandboxError::Component(format!(
                "target {target} is already registered (built-in)"
            )));
        }
        let insertion = match self.models.get(&target) {
            None => Insertion::Added,
            Some(existing) => {
                let uploads =
                    existing.source == ModelSource::Upload && model.source == ModelSource::Upload;
                if uploads && existing.sha256 == model.sha256 {
                    return Ok((existing.clone(), Insertion::Unchanged));
                }
                if !(uploads && replace) {
                    let hint = if uploads {
                        "; pass replace: true to replace it"
                    } else {
                        ""
                    };
                    return Err(SandboxError::Component(format!(
                        "target {target} is already registered ({}){hint}",
                        existing.source
                    )));
                }
                Insertion::Replaced
            }
        };
        let model = Arc::new(model);
        self.models.insert(target, model.clone());
        Ok((model, insertion))
    }

    /// Whether a new model could not take `target` without replacing one: it is registered
    /// here, or it is a built-in model's.
    pub fn is_taken(&self, target: &str) -> bool {
        self.models.contains_key(target) || BuiltInModels::is_built_in(target)
    }

    /// The model registered under `target`.
    pub fn get(&self, target: &str) -> Option<&Arc<RegisteredModel>> {
        self.models.get(target)
    }

    /// Every registered model, by target.
    pub fn models(&self) -> impl Iterator<Item = &Arc<RegisteredModel>> {
        self.models.values()
    }

    /// The uploaded model whose component has SHA-256 `sha256`.
    pub fn upload(&self, sha256: &str) -> Option<&Arc<RegisteredModel>> {
        self.models()
            .find(|m| m.source == ModelSource::Upload && m.sha256 == sha256)
    }

    /// The files of the models directory that were refused.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// How many registered models were uploaded.
    pub fn uploads(&self) -> usize {
        self.models
            .values()
            .filter(|m| m.source == ModelSource::Upload)
            .count()
    }
}
