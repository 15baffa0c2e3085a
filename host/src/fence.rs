//! A count of things in flight with a ceiling that can change while some
//! are held: an app's requests, WebSockets and fetches keep their count
//! across its versions, and a new version's limit applies to it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places under a ceiling; a place is held until its permit is dropped.
#[derive(Debug)]
pub(crate) struct Fence {
    places: Arc<Semaphore>,
    ceiling: AtomicU32,
    /// Places to take out of circulation as they come back, after the
    /// ceiling was lowered below what was held.
    owed: AtomicUsize,
}

impl Fence {
    /// A fence of `ceiling` places.
    pub(crate) fn new(ceiling: u32) -> Arc<Fence> {
        Arc::new(Fence {
            places: Arc::new(Semaphore::new(permits(ceiling))),
            ceiling: AtomicU32::new(ceiling),
            owed: AtomicUsize::new(0),
        })
    }

    /// Its ceiling now.
    pub(crate) fn ceiling(&self) -> u32 {
        self.ceiling.load(Ordering::Relaxed)
    }

    /// Places held now.
    pub(crate) fn held(&self) -> u32 {
        let free = self.places.available_permits();
        let owed = self.owed.load(Ordering::Relaxed);
        let ceiling = permits(self.ceiling());
        u32::try_from((ceiling + owed).saturating_sub(free)).unwrap_or(u32::MAX)
    }

    /// A place, if one is free.
    pub(crate) fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            let place = self.places.clone().try_acquire_owned().ok()?;
            let repaid = self
                .owed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
                    owed.checked_sub(1)
                });
            if repaid.is_err() {
                return Some(place);
            }
            place.forget();
        }
    }

    /// Move the ceiling to `ceiling`; places held above it stay held, and
    /// are not given out again when they come back.
    pub(crate) fn set_ceiling(&self, ceiling: u32) {
        let before = permits(self.ceiling.swap(ceiling, Ordering::Relaxed));
        let after = permits(ceiling);
        if after >= before {
            let mut raise = after - before;
            // Cancel what is still owed first.
            let repaid = self
                .owed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
                    Some(owed.saturating_sub(raise))
                })
                .unwrap_or(0);
            raise -= repaid.min(raise);
            self.places.add_permits(raise);
        } else {
            let lower = before - after;
            let forgotten = self.places.forget_permits(lower);
            self.owed.fetch_add(lower - forgotten, Ordering::Relaxed);
        }
    }
}

/// A semaphore's permits for a ceiling of `count`.
fn permits(count: u32) -> usize {
    usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS)
}

#[cfg(test)]
mod tests {
    use super::Fence;

    #[test]
    fn a_lower_ceiling_holds_back_places_as_they_come_back() {
        let fence = Fence::new(3);
        let held: Vec<_> = (0..3).map(|_| fence.try_enter().expect("free")).collect();
        fence.set_ceiling(1);
        assert!(fence.try_enter().is_none());
        drop(held);
        let one = fence.try_enter().expect("one place under the new ceiling");
        assert!(fence.try_enter().is_none(), "the ceiling is 1");
        drop(one);
        fence.set_ceiling(2);
        let two: Vec<_> = (0..2).map(|_| fence.try_enter().expect("raised")).collect();
        assert!(fence.try_enter().is_none());
        drop(two);
    }

    #[test]
    fn raising_while_places_are_owed_cancels_the_debt_first() {
        let fence = Fence::new(2);
        let held: Vec<_> = (0..2).map(|_| fence.try_enter().expect("free")).collect();
        fence.set_ceiling(0);
        fence.set_ceiling(2);
        drop(held);
        let again: Vec<_> = (0..2).map(|_| fence.try_enter().expect("free")).collect();
        assert!(fence.try_enter().is_none(), "still 2, not 4");
        drop(again);
    }
}
