//! `squall:app/log`: the app's own log lines, at their level, within the
//! request's log budget (shared with stdout and stderr).

use super::GuestState;
use crate::bindings::log::{Host, Level};
use crate::runtime::GuestLevel;

impl Host for GuestState {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => GuestLevel::Trace,
            Level::Debug => GuestLevel::Debug,
            Level::Info => GuestLevel::Info,
            Level::Warn => GuestLevel::Warn,
            Level::Error => GuestLevel::Error,
        };
        self.log(level, &message);
        Ok(())
    }
}
