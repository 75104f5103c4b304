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
        let file_name = relative
            .file_name()
            .ok_or_else(|| self.refused(requested, "names no file in"))?;
        let dir = self.make_dirs(relative.parent().unwrap_or(Path::new("")), requested)?;
        let target = dir.join(file_name);
        if let Ok(meta) = std::fs::symlink_metadata(&target)
            && !meta.is_file()
        {
            return Err(self.refused(requested, "it is not a regular file, in"));
        }
        write_atomic(&target, bytes, 0o644).map_err(|source| FileError::Io {
            path: requested.to_string(),
            source,
        })?;
        Ok(target)
    }

    /// Reads the regular file `requested` names under the root, refusing one larger than
    /// `max_bytes`; returns its real path and contents.
    pub fn read(&self, requested: &str, max_bytes: u64) -> Result<(PathBuf, Vec<u8>), FileError> {
        let path = self.existing(requested)?;
        let io = |source| FileError::Io {
            path: requested.to_string(),
            source,
        };
        let meta = std::fs::metadata(&path).map_err(io)?;
        if !meta.is_file() {
            return Err(self.refused(requested, "it is not a regular file, in"));
        }
        if meta.len() > max_bytes {
            return Err(self.refused(
                requested,
                &format!(
                    "it is {} bytes, above the limit of {max_bytes}, in",
                    meta.len()
                ),
            ));
        }
        // The file may have grown since: read no more than the limit allows.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(&path).map_err(io)?, max_bytes),
            &mut bytes,
        )
        .map_err(io)?;
        Ok((path, bytes))
    }

    /// Deletes the regular file `requested` names under the root.
    pub fn remove(&self, requested: &str) -> Result<(), FileError> {
        let path = self.existing(requested)?;
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(self.refused(requested, "it is not a regular file, in"));
        }
        std::fs::remove_file(&path).map_err(|source| FileError::Io {
            path: requested.to_string(),
            source,
        })
    }

    /// Removes the directory `requested` names if it holds nothing but empty directories
    /// (symbolic links are not followed); whether it did.
    pub fn remove_if_empty(&self, requested: &str) -> Result<bool, FileError> {
        let path = self.existing(requested)?;
        Ok(remove_empty_tree(&path, MAX_LIST_DEPTH))
    }

    /// Creates a new directory `{prefix}{n}` under the directory `parent` names (created if
    /// missing), with the lowest `n` above those taken, atomically even against another
    /// process; returns its path relative to the root, e.g. `lightning_logs/version_3`.
    pub fn claim_dir(&self, parent: &str, prefix: &str) -> Result<String, FileError> {
        let relative = match self.relative(parent) {
            Ok(relative) => relative,
            Err(_)
                if Path::new(parent)
                    .components()
                    .all(|c| c == Component::CurDir) =>
            {
                PathBuf::new()
            }
            Err(e) => return Err(e),
        };
        let dir = self.make_dirs(&relative, parent)?;
        let io = |source| FileError::Io {
            path: parent.to_string(),
            source,
        };
        let taken = std::fs::read_dir(&dir)
            .map_err(io)?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix(prefix)?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let mut n = taken.map_or(0, |t| t.saturating_add(1));
        loop {
            let name = format!("{prefix}{n}");
            match std::fs::create_dir(dir.join(&name)) {
                Ok(()) => return Ok(to_slashes(&relative.join(name))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    n = n.checked_add(1).ok_or_else(|| {
                        self.refused(parent, &format!("no {prefix}N name is left in"))
                    })?;
                }
                Err(e) => return Err(io(e)),
            }
        }
    }

    /// Every regular file whose name ends in `.{extension}` under the directory `requested`
    /// names (`.` for the root), depth first, at most `max` of them; symbolic links are not
    /// followed. Paths are relative to the root.
    pub fn list(
        &self,
        requested: &str,
        extension: &str,
        max: usize,
    ) -> Result<Vec<(String, u64)>, FileError> {
        let whole = Path::new(requested)
            .components()
            .all(|c| c == Component::CurDir);
        if whole && !self.root.exists() {
            // Nothing has been written yet.
            return Ok(Vec::new());
        }
        let start = if whole {
            self.real_root()?
        } else {
            self.existing(requested)?
        };
        let root = self.real_root()?;
        let mut found = Vec::new();
        let mut pending = vec![(start, 0usize)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() && depth < MAX_LIST_DEPTH {
                    pending.push((path, depth + 1));
                } else if kind.is_file()
                    && path.extension().is_some_and(|e| e == extension)
                    && found.len() < max
                {
                    let size = entry.metadata().map_or(0, |m| m.len());
                    let relative = path.strip_prefix(&root).unwrap_or(&path);
                    found.push((to_slashes(relative), size));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Creates the directories of `relative` under the root one by one, never through a
    /// symbolic link that leads out; returns the last one's real path.
    fn make_dirs(&self, relative: &Path, requested: &str) -> Result<PathBuf, FileError> {
        let io = |source| FileError::Io {
            path: requested.to_string(),
            source,
        };
        std::fs::create_dir_all(&self.root).map_err(io)?;
        let root = self.real_root()?;
        let mut dir = root.clone();
        for part in relative.iter() {
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
                    match std::fs::create_dir(&next) {
                        Ok(()) => dir = next,
                        // Created meanwhile by a concurrent run: check it like any other.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            let real = std::fs::canonicalize(&next).map_err(io)?;
                            if !real.starts_with(&root) {
                                return Err(self.refused(requested, "a symbolic link leads out of"));
                            }
                            dir = real;
                        }
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(dir)
    }

    /// A real path under the root as clients name it: relative to the root, `/`-separated.
    pub fn display(&self, real: &Path) -> String {
        let root = self.real_root().unwrap_or_else(|_| self.root.clone());
        to_slashes(real.strip_prefix(&root).unwrap_or(real))
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

    /// The root with links resolved; an error naming its absolute path and the flag that sets
    /// it when it cannot be opened (it does not exist, say).
    fn real_root(&self) -> Result<PathBuf, FileError> {
        std::fs::canonicalize(&self.root).map_err(|source| {
            let absolute = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
            FileError::Io {
                path: format!(
                    "{} (the directory of {flag}: create it, or start the server with {flag} \
                     naming another)",
                    absolute.display(),
                    flag = self.flag
                ),
                source,
            }
        })
    }

    fn refused(&self, requested: &str, why: &str) -> FileError {
        FileError::Refused {
            path: requested.to_string(),
            reason: format!("{why} {} ({})", self.flag, self.root.display()),
        }
    }
}

/// How deep [`ConfinedDir::list`] descends.
const MAX_LIST_DEPTH: usize = 16;

/// Removes `dir` if it and its subdirectories, `depth` levels down at most, hold no files;
/// whether it did. What cannot be removed stays.
fn remove_empty_tree(dir: &Path, depth: usize) -> bool {
    if depth > 0
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_tree(&entry.path(), depth - 1);
            }
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// A relative path with `/` between its parts, as clients see it.
fn to_slashes(path: &Path) -> String {
    path.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
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
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path().join("data");
        let outside = tmp.path().join("secret.txt");
        std::fs::write(&outside, "secret").expect("the outside file is written");
        let dir = ConfinedDir::new(&root, "--data-dir");

        let written = dir
            .write("runs/a/../b/model.bin", b"weights")
            .expect("a write inside the root");
        assert!(written.ends_with("runs/b/model.bin"), "{written:?}");
        let found = dir
            .existing("./runs/b/model.bin")
            .expect("the written file is found");
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
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path().join("ckpt");
        let elsewhere = tmp.path().join("elsewhere");
        for d in [&root, &elsewhere] {
            std::fs::create_dir(d).expect("a directory is created");
        }
        std::fs::write(elsewhere.join("passwd"), "x").expect("the outside file is written");
        let link = |from: &std::path::Path, to: &std::path::Path| {
            std::os::unix::fs::symlink(from, to).expect("a symbolic link");
        };
        link(&elsewhere, &root.join("escape"));
        link(&elsewhere.join("passwd"), &root.join("passwd"));
        std::fs::create_dir(root.join("inner")).expect("a directory is created");
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
            .expect("a write through an inner link");
        assert!(written.starts_with(root.canonicalize().unwrap_or_default()));
        assert!(root.join("inner/ok.ckpt").is_file());
    }

    #[test]
    fn directories_are_claimed_listed_and_files_read_within_bounds() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = ConfinedDir::new(tmp.path().join("ckpt"), "--checkpoint-dir");
        let claim = |d: &ConfinedDir| {
            d.claim_dir("runs/lightning_logs", "version_")
                .expect("a version directory is claimed")
        };
        assert_eq!(claim(&dir), "runs/lightning_logs/version_0");
        assert_eq!(claim(&dir), "runs/lightning_logs/version_1");
        assert_eq!(
            dir.claim_dir(".", "version_").unwrap_or_default(),
            "version_0"
        );
        // A name at the end of the numbers is an error, not an endless search.
        dir.write(&format!("full/version_{}/x", u64::MAX), b"")
            .expect("a write inside the root");
        assert!(
            refused(dir.claim_dir("full", "version_").map(|p| p.into()))
                .contains("no version_N name is left")
        );
        for (path, bytes) in [
            ("runs/lightning_logs/version_1/a.safetensors", &b"12345"[..]),
            ("b.safetensors", b"1"),
            ("notes.txt", b"not listed"),
        ] {
            dir.write(path, bytes).expect("a write inside the root");
        }
        let listed = dir.list(".", "safetensors", 10).unwrap_or_default();
        assert_eq!(
            listed,
            [
                ("b.safetensors".to_string(), 1),
                ("runs/lightning_logs/version_1/a.safetensors".to_string(), 5)
            ]
        );
        assert_eq!(
            dir.list("runs", "safetensors", 10)
                .unwrap_or_default()
                .len(),
            1
        );
        assert_eq!(dir.list(".", "safetensors", 1).unwrap_or_default().len(), 1);
        assert!(
            refused(dir.list("..", "safetensors", 10).map(|_| tmp.path().into()))
                .contains("climbs out")
        );

        let (_, bytes) = dir
            .read("b.safetensors", 10)
            .expect("a file within the limit is read");
        assert_eq!(bytes, b"1");
        let e = refused(
            dir.read("runs/lightning_logs/version_1/a.safetensors", 4)
                .map(|(p, _)| p),
        );
        assert!(e.contains("5 bytes, above the limit of 4"), "{e}");
        assert!(refused(dir.read("runs", 100).map(|(p, _)| p)).contains("not a regular file"));
    }

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let path = tmp.path().join("f.bin");
        super::write_atomic(&path, b"old contents", 0o600).expect("the first atomic write");
        super::write_atomic(&path, b"new", 0o600).expect("the second atomic write");
        assert_eq!(std::fs::read(&path).ok(), Some(b"new".to_vec()));
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
