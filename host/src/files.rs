//! Files a request may name, confined to a root directory (`--data-dir`, `--checkpoint-dir`),
//! and atomic writes.
//!
//! A requested path is resolved lexically first: relative to the root, `.` dropped, `..`
//! refused where it would climb out of the root, an absolute path accepted only inside the
//! root. Then the file system decides: a path whose symbolic links lead out of the root is
//! refused, and writing never creates anything through such a link. Files are written to a
//! temporary file beside the target, synced, then renamed over it, so a crash leaves the old
//! file or the new one, never half of one.
//!
//! The threat is a client naming paths, not a local user racing the server on its own
//! directories: a root that others may write to is not confined against them.

use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a path was refused or a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is not allowed.
    #[error("path {path:?} is refused: {reason}")]
    Refused {
        /// The path as requested.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file system said no.
    #[error("{path}: {source}")]
    Io {
        /// The path as requested.
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A directory that requested paths are confined to.
#[derive(Clone, Debug)]
pub struct ConfinedDir {
    root: PathBuf,
    flag: &'static str,
}

impl ConfinedDir {
    /// Paths under `root`; `flag` names the option that set it, for error messages.
    pub fn new(root: impl Into<PathBuf>, flag: &'static str) -> Self {
        Self {
            root: root.into(),
            flag,
        }
    }

    /// The root, as configured.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of the existing file or directory `requested` names under the root.
    pub fn existing(&self, requested: &str) -> Result<PathBuf, FileError> {
        let relative = self.relative(requested)?;
        let root = self.real_root()?;
        let real = std::fs::canonicalize(root.join(&relative)).map_err(|source| FileError::Io {
            path: requested.to_string(),
            source,
        })?;
        if !real.starts_with(&root) {
            return Err(self.refused(requested, "a symbolic link leads out of"));
        }
        Ok(real)
    }

    /// Writes `bytes` to the file `requested` names under the root, atomically, creating the
    /// root and missing parent directories; returns the file's real path. A parent that is a
    /// symbolic link out of the root, or a target that is a symbolic link or a directory, is
    /// refused.
    pub fn write(&self, requested: &str, bytes: &[u8]) -> Result<PathBuf, FileError> {
        let relative = self.relative(requested)?;
        let io = |source| FileError::Io {
            path: requested.to_string(),
            source,
        };
        std::fs::create_dir_all(&self.root).map_err(io)?;
        let root = self.real_root()?;
        let mut dir = root.clone();
        let mut components: Vec<&std::ffi::OsStr> = relative.iter().collect();
        let file_name = components
            .pop()
            .ok_or_else(|| self.refused(requested, "names no file in"))?;
        for part in components {
            let next = dir.join(part);
            match std::fs::symlink_metadata(&next) {
                Ok(_) => {
                    let real = std::fs::canonicalize(&next).map_err(io)?;
                    if !real.starts_with(&root) {
                        return Err(self.refused(requested, "a symbolic link leads out of"));
                    }
                    dir = real;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&next).map_err(io)?;
                    dir = next;
                }
                Err(e) => return Err(io(e)),
            }
        }
        let target = dir.join(file_name);
        if let Ok(meta) = std::fs::symlink_metadata(&target)
            && !meta.is_file()
        {
            return Err(self.refused(requested, "it is not a regular file, in"));
        }
        write_atomic(&target, bytes, 0o644).map_err(io)?;
        Ok(target)
    }

    /// `requested` as a normal relative path under the root.
    fn relative(&self, requested: &str) -> Result<PathBuf, FileError> {
        if requested.is_empty() || requested.contains('\0') {
            return Err(self.refused(requested, "it is empty or has a NUL byte, under"));
        }
        let path = Path::new(requested);
        let inside = if path.is_absolute() {
            let root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
            let real_root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| root.clone());
            path.strip_prefix(&root)
                .or_else(|_| path.strip_prefix(&real_root))
                .map_err(|_| self.refused(requested, "an absolute path outside"))?
        } else {
            path
        };
        let mut relative = PathBuf::new();
        for component in inside.components() {
            match component {
                Component::Normal(part) => relative.push(part),
                Component::CurDir => {}
                Component::ParentDir if relative.pop() => {}
                Component::ParentDir => return Err(self.refused(requested, "`..` climbs out of")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.refused(requested, "an absolute path outside"));
                }
            }
        }
        if relative.as_os_str().is_empty() {
            return Err(self.refused(requested, "names no file in"));
        }
        Ok(relative)
    }

    fn real_root(&self) -> Result<PathBuf, FileError> {
        std::fs::canonicalize(&self.root).map_err(|source| FileError::Io {
            path: format!("{} ({})", self.root.display(), self.flag),
            source,
        })
    }

    fn refused(&self, requested: &str, why: &str) -> FileError {
        FileError::Refused {
            path: requested.to_string(),
            reason: format!("{why} {} ({})", self.flag, self.root.display()),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (created with
/// `mode` on Unix), synced, renamed over `path`, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?
        .to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    // The rename is durable once the directory is; not every platform can sync one.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ConfinedDir, FileError};

    fn refused(outcome: Result<std::path::PathBuf, FileError>) -> String {
        match outcome {
            Err(e @ FileError::Refused { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn paths_stay_under_the_root() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("data");
        let outside = tmp.path().join("secret.txt");
        std::fs::write(&outside, "secret").unwrap_or_else(|e| panic!("{e}"));
        let dir = ConfinedDir::new(&root, "--data-dir");

        let written = dir
            .write("runs/a/../b/model.bin", b"weights")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(written.ends_with("runs/b/model.bin"), "{written:?}");
        let found = dir
            .existing("./runs/b/model.bin")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&found).ok(), Some(b"weights".to_vec()));
        let absolute = written.to_string_lossy().to_string();
        assert_eq!(dir.existing(&absolute).ok(), Some(found));

        assert!(refused(dir.existing("../secret.txt")).contains("`..` climbs out of --data-dir"));
        assert!(refused(dir.write("runs/../../x", b"")).contains("climbs out"));
        let abs_outside = outside.to_string_lossy().to_string();
        assert!(refused(dir.existing(&abs_outside)).contains("absolute path outside"));
        assert!(refused(dir.write(&abs_outside, b"")).contains("absolute path outside"));
        assert!(refused(dir.existing("")).contains("empty"));
        assert!(refused(dir.write(".", b"")).contains("names no file"));
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_out_of_the_root_are_refused() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = tmp.path().join("ckpt");
        let elsewhere = tmp.path().join("elsewhere");
        for d in [&root, &elsewhere] {
            std::fs::create_dir(d).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(elsewhere.join("passwd"), "x").unwrap_or_else(|e| panic!("{e}"));
        let link = |from: &std::path::Path, to: &std::path::Path| {
            std::os::unix::fs::symlink(from, to).unwrap_or_else(|e| panic!("{e}"));
        };
        link(&elsewhere, &root.join("escape"));
        link(&elsewhere.join("passwd"), &root.join("passwd"));
        std::fs::create_dir(root.join("inner")).unwrap_or_else(|e| panic!("{e}"));
        link(&root.join("inner"), &root.join("alias"));
        let dir = ConfinedDir::new(&root, "--checkpoint-dir");

        assert!(refused(dir.existing("escape/passwd")).contains("symbolic link leads out"));
        assert!(refused(dir.existing("passwd")).contains("symbolic link leads out"));
        assert!(refused(dir.write("escape/new.ckpt", b"x")).contains("symbolic link"));
        assert!(!elsewhere.join("new.ckpt").exists());
        assert!(refused(dir.write("passwd", b"x")).contains("not a regular file"));
        assert_eq!(
            std::fs::read_to_string(elsewhere.join("passwd")).ok(),
            Some("x".into())
        );
        // A link that stays inside the root is fine.
        let written = dir
            .write("alias/ok.ckpt", b"y")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(written.starts_with(root.canonicalize().unwrap_or_default()));
        assert!(root.join("inner/ok.ckpt").is_file());
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = tmp.path().join("f.bin");
        super::write_atomic(&path, b"old contents", 0o600).unwrap_or_else(|e| panic!("{e}"));
        super::write_atomic(&path, b"new", 0o600).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).ok(), Some(b"new".to_vec()));
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
