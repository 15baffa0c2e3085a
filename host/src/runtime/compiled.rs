//! Compiled components shared in memory: apps whose components have the
//! same bytes (one module deployed under many names, or a new version of
//! an app whose component did not change) share one compilation and its
//! code, and two apps loading the same bytes at once compile them once.

use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use wasmtime::component::Component;

/// A slot per component hash; the compilation lives as long as an app
/// holds it.
type Slot = Arc<Mutex<Weak<Component>>>;

#[derive(Default)]
pub(super) struct CompilationSlots {
    by_hash: Mutex<HashMap<String, Slot>>,
}

impl CompilationSlots {
    /// The component whose bytes hash to `hash`: the one an app holds
    /// already, else what `compile` makes of it (and how, for the log).
    /// Loads of the same bytes wait for each other; others do not.
    pub(super) fn get_or_compile(
        &self,
        hash: &str,
        compile: impl FnOnce() -> Result<(Component, &'static str)>,
    ) -> Result<(Arc<Component>, &'static str)> {
        let slot = {
            let mut by_hash = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget compilations no app holds any more (and no load waits on).
            by_hash.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |held| held.strong_count() > 0)
            });
            by_hash.entry(hash.to_owned()).or_default().clone()
        };
        let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(component) = held.upgrade() {
            return Ok((component, "shared with an app of the same bytes"));
        }
        let (component, how) = compile()?;
        let component = Arc::new(component);
        *held = Arc::downgrade(&component);
        Ok((component, how))
    }
}
