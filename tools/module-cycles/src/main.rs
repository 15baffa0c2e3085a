//! `module-cycles SRC...`: fails if the modules of the crate under each
//! `SRC` (a `src/` directory with a `lib.rs`) import each other in a
//! cycle, other than a module and its own children (a child using what
//! its parent declares is how Rust modules work). Also checks the host's
//! layering rule: nothing under `runtime/` uses a layer above it.
//!
//! It reads `use` declarations and paths written out in code (`crate::…`,
//! `super::…`, `self::…`), resolves each to the file that defines the
//! module it names (through re-exports of a child's items), and looks
//! for strongly connected components. Unit-test modules (`#[cfg(test)]
//! mod tests`) are left out: a test may reach anywhere.

mod graph;
mod paths;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let sources: Vec<String> = std::env::args().skip(1).collect();
    if sources.is_empty() {
        eprintln!("usage: module-cycles SRC_DIR...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for source in &sources {
        match graph::Crate::read(Path::new(source)) {
            Ok(krate) => {
                let problems = krate.problems();
                for problem in &problems {
                    eprintln!("{source}: {problem}");
                }
                failed |= !problems.is_empty();
            }
            Err(err) => {
                eprintln!("{source}: {err}");
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("see ARCHITECTURE.md, \"Invariants\"");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::graph::Crate;
    use std::path::Path;

    fn crate_problems(relative: &str) -> Vec<String> {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(relative);
        match Crate::read(&source) {
            Ok(krate) => krate.problems(),
            Err(err) => vec![err],
        }
    }

    /// A crate of `files` (path, text) in a directory of its own.
    fn problems_of(name: &str, files: &[(&str, &str)]) -> Vec<String> {
        let root =
            std::env::temp_dir().join(format!("module-cycles-{}-{name}", std::process::id()));
        for (path, text) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("a directory");
            std::fs::write(file, text).expect("written");
        }
        let problems = match Crate::read(&root) {
            Ok(krate) => krate.problems(),
            Err(err) => vec![err],
        };
        let _ = std::fs::remove_dir_all(&root);
        problems
    }

    #[test]
    fn siblings_importing_each_other_are_a_cycle_a_child_using_its_parent_is_not() {
        let problems = problems_of(
            "cycle",
            &[
                ("lib.rs", "mod kv; mod other;"),
                (
                    "kv/mod.rs",
                    "mod a; mod b; pub(crate) use b::Thing; pub(crate) struct Quota;",
                ),
                ("kv/a.rs", "use super::{Quota, Thing};"),
                (
                    "kv/b.rs",
                    "pub(crate) struct Thing; fn f() { super::a::g(); }",
                ),
                ("other.rs", "use crate::kv::Quota;"),
            ],
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("kv::a, kv::b"), "{}", problems[0]);
    }

    #[test]
    fn the_runtime_importing_a_layer_above_it_is_refused() {
        let problems = problems_of(
            "layers",
            &[
                ("lib.rs", "mod runtime; mod dispatch;"),
                ("runtime/mod.rs", "fn f() { crate::dispatch::run(); }"),
                ("dispatch.rs", "use crate::runtime;"),
            ],
        );
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("a layer imports one above it")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_host_has_no_cycle_between_modules() {
        assert_eq!(crate_problems("host/src"), Vec::<String>::new());
    }
}
