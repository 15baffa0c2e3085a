//! `squall:app/config`: the app's `[app.NAME.config]` values and secrets.

use super::GuestState;
use crate::bindings::config::Host;

impl Host for GuestState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.host().grants().settings.get(&key).map(str::to_owned))
    }
}

impl super::Grants {
    /// The version of the static file at `path` (as the app sees it), for
    /// its URL: a short hash of its content.
    pub(crate) async fn static_version(&self, path: &str) -> Option<String> {
        self.static_files.version(path).await
    }
}
