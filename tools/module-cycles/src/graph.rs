//! A crate's modules, what each imports, and the cycles among them.

use crate::paths::{Written, written_paths};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Modules that must not import the ones listed (the host's layers): the
/// runtime knows no capability, executor or server.
const LAYER_RULES: &[(&str, &[&str])] = &[(
    "runtime",
    &[
        "app",
        "dispatch",
        "server",
        "capabilities",
        "hub",
        "broker",
        "outbound",
        "kv",
        "testing",
        "cli",
    ],
)];

/// How many re-exports a path is followed through at most.
const MOST_HOPS: usize = 8;

struct Module {
    path: Vec<String>,
    file: PathBuf,
    written: Vec<Written>,
}

/// One import from a module of another: where and what was written.
struct Import {
    line: usize,
    written: String,
}

pub(crate) struct Crate {
    modules: Vec<Module>,
    by_path: HashMap<Vec<String>, usize>,
    /// `imports[from][to]`: the first import seen.
    imports: Vec<BTreeMap<usize, Import>>,
}

impl Crate {
    /// The crate whose root is `source/lib.rs` (`main.rs` and `bin/` are
    /// other crates and are left out).
    pub(crate) fn read(source: &Path) -> Result<Crate, String> {
        let mut files = Vec::new();
        rust_files(source, &mut files)
            .map_err(|err| format!("cannot read {}: {err}", source.display()))?;
        let mut modules = Vec::new();
        for file in files {
            let Ok(relative) = file.strip_prefix(source) else {
                continue;
            };
            let mut path: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if path == ["main"] || path.first().is_some_and(|first| first == "bin") {
                continue;
            }
            if path == ["lib"] || path.last().is_some_and(|last| last == "mod") {
                path.pop();
            }
            modules.push(Module {
                path,
                file,
                written: Vec::new(),
            });
        }
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        if modules.first().is_none_or(|root| !root.path.is_empty()) {
            return Err("no lib.rs".to_owned());
        }
        let by_path: HashMap<Vec<String>, usize> = modules
            .iter()
            .enumerate()
            .map(|(index, module)| (module.path.clone(), index))
            .collect();
        for index in 0..modules.len() {
            let children: Vec<String> = modules
                .iter()
                .filter(|other| {
                    other.path.len() == modules[index].path.len() + 1
                        && other.path.starts_with(&modules[index].path)
                })
                .filter_map(|child| child.path.last().cloned())
                .collect();
            let text = std::fs::read_to_string(&modules[index].file)
                .map_err(|err| format!("cannot read {}: {err}", modules[index].file.display()))?;
            modules[index].written = written_paths(&text, &children);
        }
        let mut krate = Crate {
            imports: (0..modules.len()).map(|_| BTreeMap::new()).collect(),
            modules,
            by_path,
        };
        krate.find_imports();
        Ok(krate)
    }

    fn find_imports(&mut self) {
        for from in 0..self.modules.len() {
            for written in &self.modules[from].written {
                let Some(to) = self.resolve(from, &written.segments, 0) else {
                    continue;
                };
                let inside = self.modules[from].path.starts_with(&self.modules[to].path);
                if !inside {
                    self.imports[from].entry(to).or_insert(Import {
                        line: written.line,
                        written: written.segments.join("::"),
                    });
                }
            }
        }
    }

    /// The module that defines what `segments`, written in `from`, names
    /// (`None` for another crate's).
    fn resolve(&self, from: usize, segments: &[String], hops: usize) -> Option<usize> {
        let here = &self.modules[from].path;
        let (first, rest) = segments.split_first()?;
        let (mut absolute, mut rest): (Vec<String>, &[String]) = match first.as_str() {
            "crate" => (Vec::new(), rest),
            "self" => (here.clone(), rest),
            "super" => (here[..here.len().saturating_sub(1)].to_vec(), rest),
            child => {
                let mut child_path = here.clone();
                child_path.push(child.to_owned());
                if !self.by_path.contains_key(&child_path) {
                    return None;
                }
                (here.clone(), segments)
            }
        };
        // Further `super`s climb on.
        while let Some((segment, after)) = rest.split_first()
            && segment == "super"
        {
            absolute.pop();
            rest = after;
        }
        absolute.extend(rest.iter().cloned());
        self.resolve_absolute(&absolute, hops)
    }

    fn resolve_absolute(&self, absolute: &[String], hops: usize) -> Option<usize> {
        let mut length = absolute.len();
        let module = loop {
            if let Some(&module) = self.by_path.get(&absolute[..length]) {
                break module;
            }
            length = length.checked_sub(1)?;
        };
        // A name the module binds with a `use` is where that use points.
        if let Some(name) = absolute.get(length)
            && hops < MOST_HOPS
            && let Some(bound) = self.modules[module]
                .written
                .iter()
                .find(|written| written.bound_as.as_deref() == Some(name.as_str()))
        {
            let mut target = bound.segments.clone();
            target.extend(absolute[length + 1..].iter().cloned());
            return self.resolve(module, &target, hops + 1).or(Some(module));
        }
        Some(module)
    }

    fn name(&self, module: usize) -> String {
        match self.modules[module].path.as_slice() {
            [] => "crate".to_owned(),
            path => path.join("::"),
        }
    }

    fn evidence(&self, from: usize, to: usize) -> String {
        let import = &self.imports[from][&to];
        format!(
            "{} → {} ({}:{} `{}`)",
            self.name(from),
            self.name(to),
            self.modules[from].file.display(),
            import.line,
            import.written
        )
    }

    /// Each cycle and each broken layer rule, described.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for cycle in strongly_connected(&self.imports) {
            if cycle.len() < 2 {
                continue;
            }
            let names: Vec<String> = cycle.iter().map(|&module| self.name(module)).collect();
            let mut lines = vec![format!(
                "modules import each other in a cycle: {}",
                names.join(", ")
            )];
            for &from in &cycle {
                for &to in &cycle {
                    if self.imports[from].contains_key(&to) {
                        lines.push(format!("  {}", self.evidence(from, to)));
                    }
                }
            }
            problems.push(lines.join("\n"));
        }
        for (lower, above) in LAYER_RULES {
            for from in 0..self.modules.len() {
                if self.modules[from].path.first().map(String::as_str) != Some(*lower) {
                    continue;
                }
                for &to in self.imports[from].keys() {
                    if self.modules[to]
                        .path
                        .first()
                        .is_some_and(|top| above.contains(&top.as_str()))
                    {
                        problems.push(format!(
                            "a layer imports one above it: {}",
                            self.evidence(from, to)
                        ));
                    }
                }
            }
        }
        problems
    }
}

fn rust_files(directory: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Tarjan's strongly connected components of the import graph.
fn strongly_connected(imports: &[BTreeMap<usize, Import>]) -> Vec<Vec<usize>> {
    struct Search<'a> {
        imports: &'a [BTreeMap<usize, Import>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Search<'_> {
        fn visit(&mut self, module: usize) {
            self.index[module] = Some(self.next);
            self.low[module] = self.next;
            self.next += 1;
            self.stack.push(module);
            self.on_stack[module] = true;
            for &to in self.imports[module].keys() {
                match self.index[to] {
                    None => {
                        self.visit(to);
                        self.low[module] = self.low[module].min(self.low[to]);
                    }
                    Some(index) if self.on_stack[to] => {
                        self.low[module] = self.low[module].min(index)
                    }
                    Some(_) => {}
                }
            }
            if Some(self.low[module]) == self.index[module] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack[member] = false;
                    component.push(member);
                    if member == module {
                        break;
                    }
                }
                component.sort_unstable();
                self.found.push(component);
            }
        }
    }
    let count = imports.len();
    let mut search = Search {
        imports,
        index: vec![None; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for module in 0..count {
        if search.index[module].is_none() {
            search.visit(module);
        }
    }
    search.found
}
