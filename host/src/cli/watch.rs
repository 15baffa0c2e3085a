//! `squall serve --watch`: notice changes to the manifest, to component
//! files and to guest crates' sources, and apply them to the running host
//! (crates are rebuilt first). Changes are debounced, so an editor's burst
//! of writes is one reload.

use crate::config::Manifest;
use anyhow::{Context, Result};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long the files must be quiet before a reload.
const QUIET: Duration = Duration::from_millis(300);

/// Directories whose changes never call for a reload: build output,
/// version control, the host's own durable state.
const IGNORED: [&str; 5] = ["target", ".git", ".squall", ".venv", "__pycache__"];

/// What to watch for one manifest.
#[derive(Debug, Default, PartialEq, Eq)]
struct Watched {
    /// Files whose change calls for a reload: the manifest, components,
    /// TLS certificates and keys.
    files: BTreeSet<PathBuf>,
    /// Crate directories: any change under one but in [`IGNORED`].
    crates: BTreeSet<PathBuf>,
}

impl Watched {
    fn of(manifest_file: Option<&Path>, manifest: &Manifest) -> Watched {
        let mut watched = Watched::default();
        if let Some(file) = manifest_file {
            watched.files.insert(absolute(file));
        }
        for certificate in &manifest.server.certificates {
            watched.files.insert(absolute(&certificate.cert));
            watched.files.insert(absolute(&certificate.key));
        }
        for app in &manifest.apps {
            let source = absolute(&app.source);
            if source.is_dir() {
                watched.crates.insert(source);
            } else {
                watched.files.insert(source);
            }
        }
        watched
    }

    /// The directories to ask the OS about, and how: a file's directory
    /// alone (editors replace files by renaming), a crate's whole tree.
    fn roots(&self) -> BTreeSet<(PathBuf, bool)> {
        let files = self
            .files
            .iter()
            .filter_map(|file| file.parent())
            .filter(|dir| !self.crates.iter().any(|krate| dir.starts_with(krate)))
            .map(|dir| (dir.to_path_buf(), false));
        let crates = self.crates.iter().map(|krate| (krate.clone(), true));
        files.chain(crates).collect()
    }

    /// Whether a change to `path` calls for a reload.
    fn matters(&self, path: &Path) -> bool {
        if self.files.contains(path) {
            return true;
        }
        self.crates.iter().any(|krate| {
            path.strip_prefix(krate).is_ok_and(|inside| {
                !inside
                    .components()
                    .any(|part| IGNORED.iter().any(|ignored| part.as_os_str() == *ignored))
            })
        })
    }
}

/// `path` made absolute, resolving links where it exists.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Watch what `load` reads, and call `apply` with what it reads again
/// after each change, on a thread of its own, for as long as the process
/// runs. `manifest_file` is the manifest, if the host was started from one.
pub(super) fn start(
    manifest_file: Option<PathBuf>,
    first: &Manifest,
    load: impl Fn() -> Result<Manifest> + Send + 'static,
    apply: impl Fn(&Manifest) + Send + 'static,
) -> Result<()> {
    let (changes, changed) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer =
        new_debouncer(QUIET, None, changes).context("cannot watch files for --watch")?;
    let mut watched = Watched::of(manifest_file.as_deref(), first);
    let mut roots = BTreeSet::new();
    watch_roots(&mut debouncer, &mut roots, watched.roots());
    std::thread::Builder::new()
        .name("squall-watch".into())
        .spawn(move || {
            while let Ok(result) = changed.recv() {
                let events = match result {
                    Ok(events) => events,
                    Err(errors) => {
                        for error in errors {
                            tracing::warn!("watching files: {error}");
                        }
                        continue;
                    }
                };
                let relevant = events.iter().any(|event| {
                    !matches!(event.kind, EventKind::Access(_))
                        && event.paths.iter().any(|path| watched.matters(path))
                });
                if !relevant {
                    continue;
                }
                tracing::info!("files changed: reloading");
                match load() {
                    Ok(manifest) => {
                        apply(&manifest);
                        watched = Watched::of(manifest_file.as_deref(), &manifest);
                        watch_roots(&mut debouncer, &mut roots, watched.roots());
                    }
                    Err(err) => {
                        tracing::error!("the manifest was refused; the apps keep serving: {err:#}");
                    }
                }
            }
        })
        .context("cannot start the file watcher")?;
    Ok(())
}

/// Watch `wanted` and stop watching what is no longer in it.
fn watch_roots<W, C>(
    debouncer: &mut notify_debouncer_full::Debouncer<W, C>,
    roots: &mut BTreeSet<(PathBuf, bool)>,
    wanted: BTreeSet<(PathBuf, bool)>,
) where
    W: notify_debouncer_full::notify::Watcher,
    C: notify_debouncer_full::FileIdCache,
{
    for (dir, _) in roots.difference(&wanted) {
        let _ = debouncer.unwatch(dir);
    }
    for (dir, recursive) in wanted.difference(roots) {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(err) = debouncer.watch(dir, mode) {
            tracing::warn!("cannot watch {}: {err}", dir.display());
        }
    }
    *roots = wanted;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_sources_matter_and_build_output_does_not() {
        let watched = Watched {
            files: [PathBuf::from("/srv/squall.toml")].into(),
            crates: [PathBuf::from("/srv/hello")].into(),
        };
        assert!(watched.matters(Path::new("/srv/squall.toml")));
        assert!(watched.matters(Path::new("/srv/hello/src/lib.rs")));
        assert!(watched.matters(Path::new("/srv/hello/Cargo.toml")));
        assert!(!watched.matters(Path::new("/srv/hello/target/release/x.wasm")));
        assert!(!watched.matters(Path::new("/srv/hello/.squall/data/kv.redb")));
        assert!(watched.matters(Path::new("/srv/hello/app.py")));
        assert!(!watched.matters(Path::new("/srv/hello/.venv/lib/x.py")));
        assert!(!watched.matters(Path::new("/srv/hello/__pycache__/app.pyc")));
        assert!(!watched.matters(Path::new("/srv/other.toml")));
        assert_eq!(
            watched.roots(),
            [
                (PathBuf::from("/srv"), false),
                (PathBuf::from("/srv/hello"), true)
            ]
            .into()
        );
    }
}
