//! What the admin API changed in the served apps, over the manifest: an
//! uploaded component for an app, or an app taken out of service. A
//! change lasts until the manifest changes that app's table (a reload or
//! `--watch` of an unchanged table keeps it), as docs/operations.md says.

use crate::config::{AppConfig, Manifest};
use std::collections::HashMap;
use std::path::PathBuf;

/// One change the admin API makes to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminChange {
    /// Serve this component as the app's next version.
    Deploy(PathBuf),
    /// Take the app out of service.
    Remove,
}

impl AdminChange {
    /// Make the change to the app `name` of `manifest`; false if it has no
    /// such app.
    pub(super) fn make(&self, manifest: &mut Manifest, name: &str) -> bool {
        match self {
            AdminChange::Deploy(source) => {
                let Some(app) = manifest.apps.iter_mut().find(|app| app.name == name) else {
                    return false;
                };
                app.source = source.clone();
                true
            }
            AdminChange::Remove => {
                let before = manifest.apps.len();
                manifest.apps.retain(|app| app.name != name);
                manifest.apps.len() < before
            }
        }
    }
}

/// The admin API's changes still standing, by app.
#[derive(Debug, Default)]
pub(super) struct Overrides {
    by_app: HashMap<String, Standing>,
}

/// A change, and the app's table in the manifest when it was made.
#[derive(Debug)]
struct Standing {
    table: Option<AppConfig>,
    change: AdminChange,
}

impl Overrides {
    /// Remember `change` to `app`, whose table in the manifest is `table`.
    pub(super) fn record(&mut self, app: &str, table: Option<AppConfig>, change: AdminChange) {
        self.by_app
            .insert(app.to_owned(), Standing { table, change });
    }

    /// `manifest` as it is to be served: its apps with the changes still
    /// standing. A change whose app's table the manifest changed is
    /// forgotten.
    pub(super) fn over(&mut self, manifest: &Manifest) -> Manifest {
        let table_of = |name: &str| manifest.apps.iter().find(|app| app.name == name);
        self.by_app
            .retain(|name, standing| standing.table.as_ref() == table_of(name));
        let mut served = manifest.clone();
        for (name, standing) in &self.by_app {
            standing.change.make(&mut served, name);
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(apps: &[(&str, &str)]) -> Manifest {
        let mut text = String::new();
        for (name, source) in apps {
            text.push_str(&format!(
                "[app.{name}]\nsource = \"{source}\"\nroutes = [\"/{name}\"]\n"
            ));
        }
        Manifest::parse(&text, "squall.toml", std::path::Path::new("/srv")).expect("manifest")
    }

    fn sources(manifest: &Manifest) -> Vec<(String, String)> {
        manifest
            .apps
            .iter()
            .map(|app| (app.name.clone(), app.source.display().to_string()))
            .collect()
    }

    #[test]
    fn a_change_lasts_until_the_manifest_changes_its_app() {
        let file = manifest(&[("a", "a.wasm"), ("b", "b.wasm")]);
        let mut overrides = Overrides::default();
        overrides.record(
            "a",
            file.apps.first().cloned(),
            AdminChange::Deploy("/up/a2.wasm".into()),
        );
        overrides.record("b", file.apps.get(1).cloned(), AdminChange::Remove);
        // The same manifest read again: both changes stand.
        assert_eq!(
            sources(&overrides.over(&file)),
            [("a".to_owned(), "/up/a2.wasm".to_owned())]
        );
        // The manifest changes b: b is back as the manifest says; a keeps
        // its upload.
        let changed = manifest(&[("a", "a.wasm"), ("b", "b3.wasm")]);
        assert_eq!(
            sources(&overrides.over(&changed)),
            [
                ("a".to_owned(), "/up/a2.wasm".to_owned()),
                ("b".to_owned(), "/srv/b3.wasm".to_owned())
            ]
        );
        // Now a changes too: the upload is forgotten for good.
        let both = manifest(&[("a", "a4.wasm"), ("b", "b3.wasm")]);
        overrides.over(&both);
        assert_eq!(
            sources(&overrides.over(&file)),
            [
                ("a".to_owned(), "/srv/a.wasm".to_owned()),
                ("b".to_owned(), "/srv/b.wasm".to_owned())
            ]
        );
    }
}
