//! What a Python app's build reads from the app's directory: its files (for
//! the stamp that says whether a build is current) and its requirements.
//! The directory is the tenant's: only regular files are read, never
//! through a link, and every read is bounded.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use super::tools::COMPONENTIZE_PY_VERSION;

/// Most bytes of app files a build hashes (and so bundles or reads).
const MAX_APP_BYTES: u64 = 256 << 20;
/// Largest `requirements.txt`.
const MAX_REQUIREMENTS: u64 = 64 << 10;

/// A digest of everything a build reads: the app's files (its Python, and
/// the templates and static files it reads when built), the SDK, the WIT
/// and the tool's version.
pub(super) fn stamp(dir: &Path, sdk: &[(&str, &str)], wit: &str) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(COMPONENTIZE_PY_VERSION);
    for (relative, text) in sdk {
        hasher.update(relative);
        hasher.update(text);
    }
    hasher.update(wit);
    let mut files = Vec::new();
    app_files(dir, &mut files)?;
    files.sort();
    let mut total = 0u64;
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        let content = std::fs::File::open(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // Streamed, and at most what is left of the app's allowance.
        let mut bounded = std::io::Read::take(content, MAX_APP_BYTES - total + 1);
        let length = std::io::copy(&mut bounded, &mut hasher)
            .with_context(|| format!("cannot read {}", file.display()))?;
        total += length;
        if total > MAX_APP_BYTES {
            bail!(
                "{} holds more than {} MiB of files: a Python app's build reads at most that",
                dir.display(),
                MAX_APP_BYTES >> 20
            );
        }
        hasher.update(length.to_le_bytes());
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// A copy of the app's files (those [`app_files`] lists) in `to`, emptied
/// first: the build reads the copy, so it writes nothing beside the app's
/// sources and builds what it hashed.
pub(super) fn copy_app(dir: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("cannot clear {}", to.display()))?;
    }
    let mut files = Vec::new();
    app_files(dir, &mut files)?;
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        let target = to.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&file, &target).with_context(|| format!("cannot copy {}", file.display()))?;
    }
    Ok(())
}

/// The app's regular files, not those of hidden directories (`.venv`,
/// `.squall`) or caches; links are not followed.
pub(super) fn app_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" {
                app_files(&entry.path(), found)?;
            }
        } else if kind.is_file() && !name.starts_with('.') {
            found.push(entry.path());
        }
    }
    Ok(())
}

/// The packages `requirements.txt` names, componentize-py (the build tool)
/// aside. Each line must be a plain requirement — a name, extras, version
/// specifiers: no pip options, URLs or paths, which would fetch or read
/// what the app's author chooses on the building host.
pub(super) fn requirements(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("requirements.txt");
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(Vec::new());
    };
    if !meta.is_file() {
        bail!("{} must be a regular file", path.display());
    }
    if meta.len() > MAX_REQUIREMENTS {
        bail!(
            "{} is larger than {} KiB",
            path.display(),
            MAX_REQUIREMENTS >> 10
        );
    }
    let listed = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut wanted = Vec::new();
    for line in listed.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if !is_plain_requirement(line) {
            bail!(
                "{}: {line:?} is not a plain requirement (a name, extras and versions, \
                 as `six==1.17.0`): options, URLs and paths are refused",
                path.display()
            );
        }
        let name = line.to_ascii_lowercase().replace('_', "-");
        if !name.starts_with("componentize-py") {
            wanted.push(line.to_owned());
        }
    }
    Ok(wanted)
}

/// `name[extra,...] <op>version, ...`, with nothing else in it.
fn is_plain_requirement(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return false;
    }
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(extras) => match extras.split_once(']') {
            Some((extras, after))
                if extras.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, ',' | ' ' | '.' | '_' | '-')
                }) =>
            {
                after
            }
            _ => return false,
        },
        None => rest,
    };
    rest.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '=' | '<' | '>' | '!' | '~' | '.' | '*' | ',' | ' ' | '+')
    })
}

/// The first compiled extension module under `dir`, if any.
pub(super) fn native_extension(dir: &Path) -> Result<Option<PathBuf>> {
    let mut files = Vec::new();
    app_files(dir, &mut files)?;
    Ok(files.into_iter().find(|file| {
        file.extension()
            .is_some_and(|ext| ext == "so" || ext == "pyd" || ext == "dylib")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_names_and_versions_only() {
        for fine in [
            "six",
            "six==1.17.0",
            "requests[socks]>=2,<3",
            "Foo_Bar ~= 1.4.2",
            "a.b!=1.*",
        ] {
            assert!(is_plain_requirement(fine), "{fine}");
        }
        for refused in [
            "-r /etc/passwd",
            "--index-url http://evil",
            "x @ https://evil/x.tar.gz",
            "git+https://evil/x",
            "./local",
            ".",
            "/abs/path",
            "pkg @ file:///home/op/secret.whl",
            "x; os_name == 'posix'",
        ] {
            assert!(!is_plain_requirement(refused), "{refused}");
        }
    }

    #[test]
    fn a_requirements_file_that_is_a_link_or_names_a_url_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("requirements.txt")).expect("link");
        let refused = requirements(dir.path()).expect_err("a link");
        assert!(refused.to_string().contains("regular file"), "{refused}");
        std::fs::remove_file(dir.path().join("requirements.txt")).expect("remove");
        std::fs::write(
            dir.path().join("requirements.txt"),
            "componentize-py==0.25.1\nsix==1.17.0  # pure\n",
        )
        .expect("write");
        assert_eq!(requirements(dir.path()).expect("plain"), ["six==1.17.0"]);
        std::fs::write(
            dir.path().join("requirements.txt"),
            "x @ https://evil/x.whl\n",
        )
        .expect("write");
        assert!(requirements(dir.path()).is_err());
    }

    #[test]
    fn a_link_in_the_app_is_not_followed_when_its_files_are_hashed() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.py"), "a = 1").expect("write");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("endless")).expect("link");
        let mut files = Vec::new();
        app_files(dir.path(), &mut files).expect("listed");
        assert_eq!(files, [dir.path().join("app.py")]);
    }

    #[test]
    fn the_stamp_changes_with_the_apps_files_and_not_with_hidden_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.py"), "a = 1").expect("write");
        let first = stamp(dir.path(), &[], "wit").expect("stamp");
        std::fs::create_dir_all(dir.path().join(".venv/lib")).expect("mkdir");
        std::fs::write(dir.path().join(".venv/lib/x.py"), "b = 2").expect("write");
        assert_eq!(stamp(dir.path(), &[], "wit").expect("stamp"), first);
        std::fs::create_dir_all(dir.path().join("templates")).expect("mkdir");
        std::fs::write(dir.path().join("templates/a.html"), "c").expect("write");
        assert_ne!(stamp(dir.path(), &[], "wit").expect("stamp"), first);
    }
}
