//! Building guest crates into components with cargo, and finding the
//! component an app's `source` names.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

/// What kind of component to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A squall:app component (the default): every Squall capability.
    Squall,
    /// A standard wasi:http (WASI 0.3) component, through squall-sdk's
    /// `wasi-http` feature, for `wasmtime serve` and other standard hosts.
    WasiHttp,
}

/// Build the guest crate in `dir` (release, `wasm32-wasip2`) and return the
/// path of its `.wasm` component. Cargo's progress goes to stderr; the
/// target directory is cargo's usual one (`CARGO_TARGET_DIR` is honoured).
pub(crate) fn build_crate(dir: &Path) -> Result<PathBuf> {
    build_crate_as(dir, Flavor::Squall)
}

/// Like [`build_crate`], as `flavor`. A `WasiHttp` build is copied to
/// `NAME.wasi-http.wasm` beside the usual artifact, so both can be kept.
pub(crate) fn build_crate_as(dir: &Path, flavor: Flavor) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} is not a crate directory: it has no Cargo.toml",
            dir.display()
        );
    }
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", manifest.display()))?;
    ensure_target(dir)?;
    let mut cargo = Command::new(cargo());
    // Cargo runs in the crate's directory: anchor a relative target dir to
    // where squall was started, as the user meant it.
    if let Some(target_dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && target_dir.is_relative()
    {
        let current = std::env::current_dir().context("cannot read the current directory")?;
        cargo.env("CARGO_TARGET_DIR", current.join(target_dir));
    }
    let output = cargo
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(match flavor {
            Flavor::Squall => &[][..],
            Flavor::WasiHttp => &["--features", "squall-sdk/wasi-http"][..],
        })
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo: is Rust installed (https://rustup.rs)?")?;
    if !output.status.success() {
        bail!(
            "cargo could not build {} (its errors are above)",
            dir.display()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let wasm = find_component(&stdout, &manifest)
        .with_context(|| format!("building {}", dir.display()))?;
    match flavor {
        Flavor::Squall => Ok(wasm),
        Flavor::WasiHttp => {
            let standard = wasm.with_extension("wasi-http.wasm");
            std::fs::copy(&wasm, &standard)
                .with_context(|| format!("cannot copy the component to {}", standard.display()))?;
            Ok(standard)
        }
    }
}

/// A `.wasm` source as is; a crate directory, or a Python app's, built into one.
pub(crate) fn component_for(source: &Path) -> Result<PathBuf> {
    if source.is_dir() && crate::python_build::is_python_app(source) {
        crate::python_build::build_python_app(source)
    } else if source.is_dir() {
        build_crate(source)
    } else if source.extension().is_some_and(|ext| ext == "wasm") && source.is_file() {
        Ok(source.to_path_buf())
    } else if !source.exists() {
        bail!("source {} does not exist", source.display())
    } else {
        bail!(
            "source {} is neither a guest crate directory nor a .wasm component",
            source.display()
        )
    }
}

/// The cargo that runs us (when run by `cargo run`), else the one on PATH.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[derive(Deserialize)]
struct Artifact {
    reason: String,
    #[serde(default)]
    manifest_path: PathBuf,
    #[serde(default)]
    target: Option<ArtifactTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct ArtifactTarget {
    kind: Vec<String>,
}

/// The `.wasm` that cargo's JSON messages report for the crate at `manifest`.
fn find_component(messages: &str, manifest: &Path) -> Result<PathBuf> {
    let mut built_other_kinds = false;
    for line in messages.lines() {
        let Ok(artifact) = serde_json::from_str::<Artifact>(line) else {
            continue;
        };
        if artifact.reason != "compiler-artifact" || artifact.manifest_path != manifest {
            continue;
        }
        let is_cdylib = artifact
            .target
            .is_some_and(|target| target.kind.iter().any(|kind| kind == "cdylib"));
        if !is_cdylib {
            built_other_kinds = true;
            continue;
        }
        if let Some(wasm) = artifact
            .filenames
            .into_iter()
            .find(|file| file.extension().is_some_and(|ext| ext == "wasm"))
        {
            return Ok(wasm);
        }
    }
    if built_other_kinds {
        bail!(
            "the crate builds no component: add `[lib] crate-type = [\"cdylib\"]` to its Cargo.toml"
        );
    }
    bail!("cargo reported no .wasm for {}", manifest.display())
}

/// Install the `wasm32-wasip2` target with rustup when the toolchain used
/// in `dir` lacks it.
fn ensure_target(dir: &Path) -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .context("cannot run rustc: is Rust installed (https://rustup.rs)?")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir() {
        return Ok(());
    }
    eprintln!(
        "squall: the {WASM_TARGET} target is missing; installing it with `rustup target add {WASM_TARGET}`"
    );
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .current_dir(dir)
        .status()
        .with_context(|| {
            format!(
                "cannot run rustup: install the target yourself (`rustup target add {WASM_TARGET}`)"
            )
        })?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cdylib_of_the_right_crate() {
        let messages = r#"
{"reason":"compiler-artifact","manifest_path":"/dep/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libdep.rlib"]}
not json
{"reason":"compiler-artifact","manifest_path":"/app/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/app.wasm"]}
{"reason":"build-finished","success":true}
"#;
        let wasm = find_component(messages, Path::new("/app/Cargo.toml")).expect("found");
        assert_eq!(wasm, Path::new("/t/app.wasm"));
    }

    #[test]
    fn sources_that_are_not_components_are_explained() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = component_for(&dir.path().join("nope.wasm")).expect_err("missing");
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let text = dir.path().join("app.txt");
        std::fs::write(&text, "hi").expect("write");
        let wrong = component_for(&text).expect_err("not wasm");
        assert!(wrong.to_string().contains("neither"), "{wrong}");
        let wasm = dir.path().join("app.wasm");
        std::fs::write(&wasm, "\0asm").expect("write");
        assert_eq!(component_for(&wasm).expect("a .wasm file"), wasm);
        let not_a_crate = build_crate(dir.path()).expect_err("no Cargo.toml");
        assert!(
            not_a_crate.to_string().contains("Cargo.toml"),
            "{not_a_crate}"
        );
    }

    #[test]
    fn a_crate_without_cdylib_is_explained() {
        let messages = r#"{"reason":"compiler-artifact","manifest_path":"/app/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libapp.rlib"]}"#;
        let err = find_component(messages, Path::new("/app/Cargo.toml")).expect_err("no wasm");
        assert!(err.to_string().contains("cdylib"), "{err}");
    }
}
