//! `squall:app/config`: the app's `[app.NAME.config]` values and secrets.

use super::GuestState;
use crate::bindings::config::Host;

impl Host for GuestState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.host().grants().settings.get(&key).map(str::to_owned))
    }
}
