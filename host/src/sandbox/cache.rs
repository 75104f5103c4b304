//! Compiled components cached on disk, keyed by the component's SHA-256 and the engine's
//! compatibility hash, so a restart deserializes (about 0.5 ms) instead of compiling
//! (about 60 ms per model).
//!
//! The cache holds native code, so it must be as trusted as the binary: the server creates
//! its directory with mode 0700 and its files with 0600, and uses an existing directory or
//! file only if it belongs to the server's user and no one else can write to it; otherwise it
//! compiles without the cache.

use super::SandboxError;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept, if anywhere.
#[derive(Clone, Debug, Default)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// A compiled component and the SHA-256 of its bytes.
#[derive(Clone)]
pub struct Compiled {
    /// The compiled component.
    pub component: Component,
    /// Lowercase hex SHA-256 of the component's `.wasm` bytes.
    pub sha256: String,
}

impl ComponentCache {
    /// A cache in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// No cache: every start compiles.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// `$XDG_CACHE_HOME/lightning-mcp/components`, else `$HOME/.cache/lightning-mcp/components`.
    pub fn user_default() -> Self {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        Self {
            dir: base.map(|b| b.join("lightning-mcp").join("components")),
        }
    }

    /// The cache directory, if caching is on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled form of `wasm`: from the cache when present and valid, else compiled now
    /// (and stored for next time).
    pub fn load_or_compile(&self, engine: &Engine, wasm: &[u8]) -> Result<Compiled, SandboxError> {
        let sha256 = sha256_hex(wasm);
        let path = self.dir.as_ref().map(|dir| {
            let mut engine_hash = DefaultHasher::new();
            engine
                .precompile_compatibility_hash()
                .hash(&mut engine_hash);
            dir.join(format!("{sha256}-{:016x}.cwasm", engine_hash.finish()))
        });
        let path = path.filter(|path| match path.parent().map(trusted) {
            Some(Ok(())) | None => true,
            Some(Err(why)) => {
                tracing::warn!("not using the compile cache {}: {why}", path.display());
                false
            }
        });
        if let Some(path) = &path
            && path.is_file()
        {
            match trusted(path)
                .map_err(wasmtime::Error::msg)
                .and_then(|()| deserialize(engine, path))
            {
                Ok(component) => return Ok(Compiled { component, sha256 }),
                Err(e) => tracing::warn!("recompiling {}: {e:#}", path.display()),
            }
        }
        let component = Component::new(engine, wasm)
            .map_err(|e| SandboxError::Component(format!("not a valid component: {e:#}")))?;
        if let Some(path) = &path
            && let Err(e) = store(&component, path)
        {
            tracing::warn!("cannot cache {}: {e}", path.display());
        }
        Ok(Compiled { component, sha256 })
    }
}

/// Loads a component this cache wrote.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the file was produced by `Component::serialize` of a
    // compatible engine and is not modified while mapped. Only this cache writes the
    // directory (mode 0700, atomic renames), the name carries the engine's compatibility
    // hash, and wasmtime checks the header before use.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Whether `path` (if it exists) belongs to this process's user and no one else may write to
/// it. Only checked on Linux, where `/proc/self` tells the user.
fn trusted(path: &Path) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        let me = std::fs::metadata("/proc/self")
            .map_err(|e| e.to_string())?
            .uid();
        if meta.uid() != me {
            return Err(format!("{} belongs to another user", path.display()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!("other users may write to {}", path.display()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
    Ok(())
}

/// Writes `component` to `path` atomically, readable by this user only.
fn store(component: &Component, path: &Path) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    create_private_dir(dir)?;
    crate::files::write_atomic(path, &bytes, 0o600)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Lowercase hex SHA-256 of `bytes`: how a component is known in the cache and the registry.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
