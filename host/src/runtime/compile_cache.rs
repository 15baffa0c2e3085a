//! Compiled components kept on disk, so that a restart (or `squall
//! compile` ahead of it) skips Cranelift: an entry is named by the SHA-256
//! of the component's SHA-256 and of the engine's settings, and holds
//! wasmtime's precompiled artifact behind a SHA-256 of itself.
//!
//! Loading an artifact runs its machine code, so an entry is trusted only
//! if it is intact (its checksum matches) and nobody else could have
//! written it: the directory must be this user's alone (group or others
//! may not write it), it is opened once at start and every entry is
//! reached through that open directory, never by path, without following
//! a symbolic link, and must be a regular file of this user's. A moved or
//! swapped path after the start, or a link planted as an entry, leads
//! nowhere; a corrupt, truncated or incompatible entry is compiled again
//! and rewritten. Guests never see this directory.

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the checksum in front of each entry.
const CHECKSUM: usize = 32;

/// The compile cache in one directory.
#[derive(Debug)]
pub(crate) struct CompileCache {
    /// The directory, open since the start.
    dir: OwnedFd,
    /// Its path, for messages.
    path: PathBuf,
    /// The SHA-256 of everything in the engine's settings that an artifact
    /// depends on (wasmtime's compatibility hash), in hex.
    engine_key: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obtained {
    /// Read from the cache.
    Cached,
    /// Compiled, and written to the cache.
    Compiled,
}

impl CompileCache {
    /// The cache in `dir` for `engine`, creating the directory (mode 0700)
    /// if needed; an error if others may write to it.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<CompileCache> {
        create_private_dir(dir)?;
        let opened = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open the compile cache {}", dir.display()))?;
        // Checked on what was opened, which is what every entry is read from.
        let stat = rustix::fs::fstat(&opened)
            .with_context(|| format!("cannot read the compile cache {}", dir.display()))?;
        let mode = stat.st_mode & 0o777;
        if mode & 0o022 != 0 {
            bail!(
                "the compile cache {} may be written by other users (mode {mode:o}): \
                 `chmod go-w` it, or choose another cache_dir",
                dir.display(),
            );
        }
        if stat.st_uid != rustix::process::getuid().as_raw() {
            bail!(
                "the compile cache {} belongs to another user: choose another cache_dir",
                dir.display()
            );
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache {
            dir: opened,
            path: dir.to_path_buf(),
            engine_key: hex(&hasher.0.finalize()),
        })
    }

    /// The component `bytes` (whose SHA-256 in hex is `hash`) compiled for
    /// `engine`: from the cache if an intact entry is there, else compiled
    /// and stored.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> Result<(Component, Obtained)> {
        let entry = self.entry_for(hash);
        if let Some(component) = self.read(engine, &entry) {
            return Ok((component, Obtained::Cached));
        }
        let artifact = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)?;
        if let Err(err) = self.write(&entry, &artifact) {
            tracing::warn!(
                "cannot write the compile cache entry {}: {err:#}",
                self.path.join(&entry).display()
            );
        }
        // Loaded from the bytes just compiled, not from the file.
        let component = deserialize(engine, &artifact)?;
        Ok((component, Obtained::Compiled))
    }

    /// The entry's name in the directory.
    fn entry_for(&self, component_hash: &str) -> String {
        let mut key = Sha256::new();
        key.update(self.engine_key.as_bytes());
        key.update(component_hash.as_bytes());
        format!("{}.cwasm", hex(&key.finalize()))
    }

    /// The bytes of entry `name`: a regular file of this user's in the
    /// directory, reached without following a link; `None` if absent.
    fn stored(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&self.dir, name, flags, Mode::empty()) {
            Ok(file) => file,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(err) => bail!("cannot open it: {err}"),
        };
        let stat = rustix::fs::fstat(&file)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
            || stat.st_uid != rustix::process::getuid().as_raw()
        {
            bail!("it is not a file of this user's");
        }
        let mut bytes = Vec::new();
        std::fs::File::from(file).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// An entry's component, if the entry is there, intact and compatible;
    /// a bad one is removed (and said so).
    fn read(&self, engine: &Engine, name: &str) -> Option<Component> {
        let loaded = match self.stored(name) {
            Ok(None) => return None,
            Ok(Some(stored))
                if stored.len() > CHECKSUM
                    && Sha256::digest(&stored[CHECKSUM..]).as_slice() == &stored[..CHECKSUM] =>
            {
                deserialize(engine, &stored[CHECKSUM..])
            }
            Ok(Some(_)) => Err(anyhow::anyhow!(
                "its checksum does not match (corrupt or truncated)"
            )),
            Err(err) => Err(err),
        };
        match loaded {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    "compile cache entry {} refused, compiling again: {err:#}",
                    self.path.join(name).display()
                );
                let _ = rustix::fs::unlinkat(&self.dir, name, AtFlags::empty());
                None
            }
        }
    }

    /// Store `artifact` as entry `name` in one step (write a new file of
    /// mode 0600, then rename it into place), so a reader never sees half
    /// an entry.
    fn write(&self, name: &str, artifact: &[u8]) -> Result<()> {
        let staged = format!(".{name}.{}.staged", std::process::id());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = rustix::fs::openat(&self.dir, &staged, flags, Mode::from_raw_mode(0o600))?;
        let mut file = std::fs::File::from(file);
        let written = file
            .write_all(&Sha256::digest(artifact))
            .and_then(|()| file.write_all(artifact))
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                rustix::fs::renameat(&self.dir, &staged, &self.dir, name).map_err(Into::into)
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, &staged, AtFlags::empty());
        }
        written
    }
}

/// A precompiled artifact as a component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Component> {
    // SAFETY: wasmtime requires the bytes to come from
    // `Engine::precompile_component` of a compatible engine and to be
    // unaltered. They were either produced just now, or read from an entry
    // of a directory only this user can write, whose checksum matches; and
    // wasmtime itself checks the engine settings and version they were
    // compiled with.
    unsafe { Component::deserialize(engine, artifact) }.map_err(anyhow::Error::from)
}

/// `dir` and its parents, `dir` itself with mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the compile cache {}", dir.display()))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))
}

/// Feeds `Hash` into a SHA-256, so that the key is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only the digest is used.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// `digest` in lowercase hex.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of `bytes` in lowercase hex: how a component is named.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_never_a_link_nor_read_by_path() {
        let dir = tempfile::tempdir().expect("a directory");
        let engine = Engine::default();
        let cache = CompileCache::open(&dir.path().join("cache"), &engine).expect("opens");
        let name = cache.entry_for("a component");
        // A link planted as the entry is not followed, and is removed.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"not an artifact").expect("written");
        let planted = dir.path().join("cache").join(&name);
        std::os::unix::fs::symlink(&elsewhere, &planted).expect("linked");
        assert!(cache.stored(&name).is_err(), "a link is refused");
        assert!(cache.read(&engine, &name).is_none());
        assert!(std::fs::symlink_metadata(&planted).is_err(), "removed");
        // The directory moved away after the start: entries are still
        // read and written where it was opened, never at the old path.
        cache.write(&name, b"artifact").expect("written");
        std::fs::rename(dir.path().join("cache"), dir.path().join("moved")).expect("moved");
        std::fs::create_dir(dir.path().join("cache")).expect("a new directory");
        let stored = cache.stored(&name).expect("read").expect("there");
        assert_eq!(&stored[CHECKSUM..], b"artifact");
        assert!(!dir.path().join("cache").join(&name).exists());
    }
}
