//! A queue's dead letters: the messages that failed on every attempt,
//! kept in the server's backend (namespace `APP:dead:QUEUE`, apart from
//! the app's store and its queue) until the app reads and forgets them.
//! Bounded like the queue itself: as many letters as it holds messages.

use crate::kv::{KvBackend, KvFailure, Quota, Write, WriteOutcome};
use std::sync::Arc;

/// The longest failure text kept with a letter.
const MAX_ERROR: usize = 1024;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    pub(crate) id: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) attempts: u32,
    pub(crate) error: String,
}

/// The dead letters of one queue of one app.
pub(crate) struct DeadLetters {
    backend: Arc<dyn KvBackend>,
    namespace: String,
    quota: Quota,
}

fn letter_key(id: &str) -> String {
    format!("m:{id}")
}

/// `attempts\nerror\npayload`; the error cut and kept on one line.
fn encode(letter: &DeadLetter) -> Vec<u8> {
    let mut error: String = letter
        .error
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    error.truncate(error.floor_char_boundary(MAX_ERROR));
    let mut bytes = format!("{}\n{error}\n", letter.attempts).into_bytes();
    bytes.extend_from_slice(&letter.payload);
    bytes
}

fn decode(id: &str, bytes: &[u8]) -> Option<DeadLetter> {
    let mut parts = bytes.splitn(3, |byte| *byte == b'\n');
    let attempts = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let error = String::from_utf8_lossy(parts.next()?).into_owned();
    Some(DeadLetter {
        id: id.to_owned(),
        attempts,
        error,
        payload: parts.next()?.to_vec(),
    })
}

impl DeadLetters {
    /// The dead letters of `app`'s `queue`: at most `max_letters`, each
    /// payload at most `max_payload` bytes.
    pub(crate) fn new(
        backend: Arc<dyn KvBackend>,
        app: &str,
        queue: &str,
        max_letters: u64,
        max_payload: u64,
    ) -> DeadLetters {
        let per_letter = max_payload.saturating_add(MAX_ERROR as u64 + 128);
        DeadLetters {
            backend,
            namespace: format!("{app}:dead:{queue}"),
            quota: Quota {
                max_keys: max_letters,
                max_bytes: max_letters.saturating_mul(per_letter),
            },
        }
    }

    /// The most one letter may take when read.
    pub(crate) fn letter_bound(max_payload: u64) -> u64 {
        max_payload.saturating_add(MAX_ERROR as u64 + 128)
    }

    /// Keep `letter`; `KvFailure::Quota` when the queue's letters are full.
    pub(crate) async fn add(&self, letter: &DeadLetter) -> Result<(), KvFailure> {
        let write = Write::Set {
            key: letter_key(&letter.id),
            value: encode(letter),
            ttl: None,
        };
        self.backend
            .apply(&self.namespace, vec![write], self.quota)
            .await
            .map(drop)
    }

    /// The oldest-named letters, at most `limit`, their values together at
    /// most `most` bytes (`KvFailure::TooLarge` past it).
    pub(crate) async fn list(&self, limit: u32, most: u64) -> Result<Vec<DeadLetter>, KvFailure> {
        let page = self
            .backend
            .list(&self.namespace, "m:".to_owned(), None, limit)
            .await?;
        let values = self
            .backend
            .get_many(&self.namespace, page.keys.clone(), most)
            .await?;
        Ok(page
            .keys
            .iter()
            .zip(values)
            .filter_map(|(key, value)| decode(key.strip_prefix("m:")?, &value?))
            .collect())
    }

    /// Forget the letter `id`: whether it was there.
    pub(crate) async fn forget(&self, id: &str) -> Result<bool, KvFailure> {
        let write = Write::Delete {
            key: letter_key(id),
        };
        let outcome = self
            .backend
            .apply(&self.namespace, vec![write], self.quota)
            .await?;
        Ok(outcome.first() == Some(&WriteOutcome::Deleted(true)))
    }

    /// Letters kept now.
    pub(crate) async fn count(&self) -> Result<u64, KvFailure> {
        Ok(self.backend.usage(&self.namespace).await?.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::embedded::Embedded;

    #[tokio::test]
    async fn letters_are_kept_listed_and_forgotten_within_their_bound() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let backend = Embedded::open(&dir.path().join("kv.redb")).expect("a store");
        let letters = DeadLetters::new(backend, "app", "emails", 2, 64);
        let letter = |id: &str| DeadLetter {
            id: id.to_owned(),
            payload: b"line\none".to_vec(),
            attempts: 4,
            error: format!("failed\n{}", "x".repeat(5000)),
        };
        letters.add(&letter("a")).await.expect("kept");
        letters.add(&letter("b")).await.expect("kept");
        let full = letters.add(&letter("c")).await;
        assert!(matches!(full, Err(KvFailure::Quota(_))), "{full:?}");
        let listed = letters.list(10, 1 << 20).await.expect("listed");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].payload, b"line\none");
        assert_eq!(listed[0].attempts, 4);
        assert!(listed[0].error.starts_with("failed x") && listed[0].error.len() <= MAX_ERROR);
        assert!(matches!(
            letters.list(10, 10).await,
            Err(KvFailure::TooLarge(_))
        ));
        assert!(letters.forget("a").await.expect("forgot"));
        assert!(!letters.forget("a").await.expect("asked"));
        assert_eq!(letters.count().await.expect("counted"), 1);
    }
}
