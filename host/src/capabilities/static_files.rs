//! `squall:app/static-files`: the versions of the app's static files, for
//! URLs that change when the files do.

use super::GuestState;
use crate::bindings::static_files::{Host, HostWithStore};
use wasmtime::component::{Accessor, HasSelf};

/// The longest path looked up: no file path is longer.
const MAX_PATH: usize = 4096;

impl Host for GuestState {}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn version(
        accessor: &Accessor<GuestState, Self>,
        path: String,
    ) -> wasmtime::Result<Option<String>> {
        if path.len() > MAX_PATH {
            return Ok(None);
        }
        let grants = accessor.with(|mut access| access.get().host().grants().clone());
        Ok(grants.static_version(&path).await)
    }
}
