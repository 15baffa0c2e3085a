//! The embedded store's file: its tables, how an entry is kept, and a
//! namespace's usage (what the store's reads and its writer share).

use super::{KvFailure, NamespaceUsage};
use redb::{ReadableTable, TableDefinition};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `(namespace, key)` -> expiry in ms since the epoch (0: never), little
/// endian, then the value.
pub(super) const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// `(namespace, expiry, key)` for every entry that expires: each
/// namespace's due entries are swept apart from the others'.
pub(super) const EXPIRY: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("expiry_by_namespace");
/// `namespace` -> (keys, bytes).
pub(super) const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    /// Ms since the epoch; 0: never.
    pub(super) expires_at: u64,
    pub(super) value: Vec<u8>,
}

impl Record {
    pub(super) fn decode(raw: &[u8]) -> Record {
        let (expires_at, value) = Record::split(raw);
        Record {
            expires_at,
            value: value.to_vec(),
        }
    }

    /// A stored entry's expiry and value, not copied.
    pub(super) fn split(raw: &[u8]) -> (u64, &[u8]) {
        let (expiry, value) = raw.split_at(raw.len().min(8));
        let mut bytes = [0u8; 8];
        bytes[..expiry.len()].copy_from_slice(expiry);
        (u64::from_le_bytes(bytes), value)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(8 + self.value.len());
        raw.extend_from_slice(&self.expires_at.to_le_bytes());
        raw.extend_from_slice(&self.value);
        raw
    }

    pub(super) fn live(&self, now: u64) -> bool {
        unexpired(self.expires_at, now)
    }
}

/// Whether an entry expiring at `expires_at` (0: never) is still there at `now`.
pub(super) fn unexpired(expires_at: u64, now: u64) -> bool {
    expires_at == 0 || expires_at > now
}

/// The store's idea of now, in ms since the epoch: the system's, or (for
/// tests of expiry) one that moves only when told.
#[derive(Clone, Default)]
pub(super) struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub(super) fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// A clock at the system's now that moves only by [`Clock::advance`].
    #[cfg(test)]
    pub(super) fn manual() -> Clock {
        let now = Clock::default().now_ms();
        Clock {
            manual: Some(Arc::new(AtomicU64::new(now))),
        }
    }

    /// Move a manual clock on by `by`.
    #[cfg(test)]
    pub(super) fn advance(&self, by: std::time::Duration) {
        if let Some(at) = &self.manual {
            at.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }
}

pub(super) fn unavailable(err: impl std::fmt::Display) -> KvFailure {
    KvFailure::Unavailable(err.to_string())
}

/// What `namespace` holds, from the usage table.
pub(super) fn usage_in(
    usage: &impl ReadableTable<&'static str, (u64, u64)>,
    namespace: &str,
) -> Result<NamespaceUsage, KvFailure> {
    let found = usage.get(namespace).map_err(unavailable)?;
    Ok(found
        .map(|row| {
            let (keys, bytes) = row.value();
            NamespaceUsage { keys, bytes }
        })
        .unwrap_or_default())
}
