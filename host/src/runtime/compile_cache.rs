//! Compiled components kept on disk, so that a restart (or `squall
//! compile` ahead of it) skips Cranelift: an entry is named by the SHA-256
//! of the component's SHA-256 and of the engine's settings, and holds
//! wasmtime's precompiled artifact behind a SHA-256 of itself.
//!
//! Loading an artifact runs its machine code, so an entry is trusted only
//! if it is intact (its checksum matches) and the directory is this user's
//! alone: a directory that group or others may write is refused, and a
//! corrupt, truncated or incompatible entry is compiled again and
//! rewritten. Guests never see this directory.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bytes of the checksum in front of each entry.
const CHECKSUM: usize = 32;

/// The compile cache in one directory.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
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
        let metadata = std::fs::metadata(dir)
            .with_context(|| format!("cannot read the compile cache {}", dir.display()))?;
        // SAFETY of what is read from here rests on nobody else writing it.
        if metadata.permissions().mode() & 0o022 != 0 {
            bail!(
                "the compile cache {} may be written by other users (mode {:o}): \
                 `chmod go-w` it, or choose another cache_dir",
                dir.display(),
                metadata.permissions().mode() & 0o777
            );
        }
        if metadata.uid() != rustix::process::getuid().as_raw() {
            bail!(
                "the compile cache {} belongs to another user: choose another cache_dir",
                dir.display()
            );
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
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
                entry.display()
            );
        }
        // Loaded from the bytes just compiled, not from the file.
        let component = deserialize(engine, &artifact)?;
        Ok((component, Obtained::Compiled))
    }

    fn entry_for(&self, component_hash: &str) -> PathBuf {
        let mut key = Sha256::new();
        key.update(self.engine_key.as_bytes());
        key.update(component_hash.as_bytes());
        self.dir.join(format!("{}.cwasm", hex(&key.finalize())))
    }

    /// An entry's component, if the entry is there, intact and compatible;
    /// a bad one is removed (and said so).
    fn read(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        let stored = std::fs::read(entry).ok()?;
        let intact = stored.len() > CHECKSUM
            && Sha256::digest(&stored[CHECKSUM..]).as_slice() == &stored[..CHECKSUM];
        let loaded = if intact {
            deserialize(engine, &stored[CHECKSUM..])
        } else {
            Err(anyhow::anyhow!(
                "its checksum does not match (corrupt or truncated)"
            ))
        };
        match loaded {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    "compile cache entry {} refused, compiling again: {err:#}",
                    entry.display()
                );
                let _ = std::fs::remove_file(entry);
                None
            }
        }
    }

    /// Store `artifact` at `entry` in one step (write a temporary file, then
    /// rename), so a reader never sees half an entry.
    fn write(&self, entry: &Path, artifact: &[u8]) -> Result<()> {
        let mut staged = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut staged, &Sha256::digest(artifact))?;
        std::io::Write::write_all(&mut staged, artifact)?;
        staged.persist(entry)?;
        Ok(())
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
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
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
