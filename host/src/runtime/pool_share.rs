//! How the instance pool is shared among apps. Each app may hold at most its
//! ceiling (`max_instances`), and its floor (`reserved_instances`) is kept
//! free for it whatever the others do: a request is refused only when its
//! app is at its ceiling, or over its floor while the unreserved rest of the
//! pool is taken. Refusal is immediate (no queue): a tenant over its share
//! gets 503 with `Retry-After` instead of holding connections and memory
//! while it waits.
//!
//! A slot is held by the store it was taken for and given back when the
//! store is dropped, so the count is exact and the pooling allocator (sized
//! to the same total) never runs out first.

use crate::error::HostError;
use std::sync::{Arc, Mutex, MutexGuard};

/// One app's share of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Share {
    /// Instances always available to the app.
    pub(crate) reserved: u32,
    /// Instances the app may hold at most.
    pub(crate) max: u32,
}

impl Share {
    /// No floor and no ceiling: an app that is not served.
    pub(crate) const NONE: Share = Share {
        reserved: 0,
        max: 0,
    };

    /// Its floor is under its ceiling, and its ceiling under the pool's
    /// `total`.
    fn check(self, total: u32) -> Result<(), String> {
        if self.reserved > self.max {
            return Err(format!(
                "reserved_instances ({}) is more than max_instances ({})",
                self.reserved, self.max
            ));
        }
        if self.max > total {
            return Err(format!(
                "max_instances ({}) is more than the server's max_instances ({total})",
                self.max
            ));
        }
        Ok(())
    }
}

/// The pool's instances, shared among apps by their [`Share`]s.
#[derive(Debug)]
pub(crate) struct InstancePool {
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    total: u32,
    /// Instances taken or promised: the sum over apps of
    /// `max(in_use, reserved)`.
    committed: u32,
    apps: Vec<AppCount>,
}

#[derive(Debug)]
struct AppCount {
    share: Share,
    in_use: u32,
}

impl InstancePool {
    /// A pool of `total` instances.
    pub(crate) fn new(total: u32) -> Arc<Self> {
        Arc::new(InstancePool {
            state: Mutex::new(PoolState {
                total,
                committed: 0,
                apps: Vec::new(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        // The counts are updated in one step each; a poisoned lock still
        // holds consistent numbers.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Add an app with `share`; an error if its floor no longer fits.
    pub(crate) fn join(self: &Arc<Self>, share: Share) -> Result<AppInstances, String> {
        let mut state = self.state();
        share.check(state.total)?;
        if state.committed + share.reserved > state.total {
            return Err(format!(
                "reserved_instances ({}) does not fit: {} of the server's {} are reserved already",
                share.reserved, state.committed, state.total
            ));
        }
        state.committed += share.reserved;
        state.apps.push(AppCount { share, in_use: 0 });
        Ok(AppInstances {
            pool: self.clone(),
            index: state.apps.len() - 1,
        })
    }
}

/// One app's access to the pool.
#[derive(Debug, Clone)]
pub(crate) struct AppInstances {
    pool: Arc<InstancePool>,
    index: usize,
}

impl AppInstances {
    /// Why the app can take no slot now, if it cannot.
    fn no_room(&self, state: &PoolState) -> Option<HostError> {
        let app = &state.apps[self.index];
        if app.in_use >= app.share.max {
            return Some(HostError::NoInstanceSlot(format!(
                "the app holds its max_instances ({})",
                app.share.max
            )));
        }
        if app.in_use >= app.share.reserved && state.committed >= state.total {
            return Some(HostError::NoInstanceSlot(format!(
                "the pool's {} instances are taken or reserved for other apps",
                state.total
            )));
        }
        None
    }

    /// Take a slot for one store, or say why there is none.
    pub(crate) fn acquire(&self) -> Result<InstanceSlot, HostError> {
        let mut state = self.pool.state();
        if let Some(why) = self.no_room(&state) {
            return Err(why);
        }
        let app = &mut state.apps[self.index];
        let beyond_reserved = app.in_use >= app.share.reserved;
        app.in_use += 1;
        if beyond_reserved {
            state.committed += 1;
        }
        Ok(InstanceSlot {
            instances: self.clone(),
        })
    }

    /// Whether a slot could be taken now (by the time one is, another
    /// request may have taken it).
    pub(crate) fn has_room(&self) -> bool {
        self.no_room(&self.pool.state()).is_none()
    }

    /// Instances the app holds now.
    pub(crate) fn in_use(&self) -> u32 {
        self.pool.state().apps[self.index].in_use
    }

    /// Give the app a new share (a new version of it, or none once it is
    /// removed); an error, changing nothing, if the new floor does not fit.
    /// Instances it holds stay held and count against the new ceiling.
    pub(crate) fn reshare(&self, share: Share) -> Result<(), String> {
        let mut state = self.pool.state();
        let PoolState {
            total,
            committed,
            apps,
        } = &mut *state;
        let app = &mut apps[self.index];
        share.check(*total)?;
        let before = app.in_use.max(app.share.reserved);
        let after = app.in_use.max(share.reserved);
        let others = *committed - before;
        if others + after > *total {
            return Err(format!(
                "reserved_instances ({}) does not fit: {others} of the server's {total} are \
                 reserved or taken by other apps",
                share.reserved
            ));
        }
        *committed = others + after;
        app.share = share;
        Ok(())
    }
}

/// A slot of the pool, held for one store and given back on drop.
#[derive(Debug)]
pub(crate) struct InstanceSlot {
    instances: AppInstances,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        let mut state = self.instances.pool.state();
        let PoolState {
            committed, apps, ..
        } = &mut *state;
        let app = &mut apps[self.instances.index];
        if app.in_use > app.share.reserved {
            *committed -= 1;
        }
        app.in_use -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(reserved: u32, max: u32) -> Share {
        Share { reserved, max }
    }

    #[test]
    fn an_app_stops_at_its_ceiling() {
        let pool = InstancePool::new(10);
        let app = pool.join(share(0, 3)).expect("fits");
        let held: Vec<_> = (0..3)
            .map(|_| app.acquire().expect("under the ceiling"))
            .collect();
        assert!(
            matches!(app.acquire(), Err(HostError::NoInstanceSlot(why)) if why.contains("max_instances"))
        );
        drop(held);
        assert_eq!(app.in_use(), 0);
        assert!(app.acquire().is_ok());
    }

    #[test]
    fn a_greedy_app_cannot_take_a_neighbours_floor() {
        let pool = InstancePool::new(10);
        let greedy = pool.join(share(2, 10)).expect("fits");
        let neighbour = pool.join(share(3, 10)).expect("fits");
        let mut held = Vec::new();
        while let Ok(slot) = greedy.acquire() {
            held.push(slot);
        }
        assert_eq!(held.len(), 7, "all but the neighbour's floor");
        let floor: Vec<_> = (0..3)
            .map(|_| neighbour.acquire().expect("the floor is kept"))
            .collect();
        assert!(
            neighbour.acquire().is_err(),
            "over its floor, the pool is full"
        );
        held.pop();
        let again = greedy.acquire();
        assert!(again.is_ok(), "a slot given back is shared again");
        assert!(greedy.acquire().is_err());
        drop(floor);
    }

    #[test]
    fn floors_and_ceilings_are_checked_when_apps_join() {
        let pool = InstancePool::new(10);
        assert!(pool.join(share(5, 4)).is_err(), "floor over ceiling");
        assert!(pool.join(share(0, 11)).is_err(), "ceiling over the pool");
        pool.join(share(6, 10)).expect("fits");
        let err = pool.join(share(5, 10)).expect_err("6 + 5 > 10");
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn a_new_share_moves_the_floor_and_keeps_what_is_held() {
        let pool = InstancePool::new(4);
        let a = pool.join(share(2, 4)).expect("fits");
        let b = pool.join(share(1, 4)).expect("fits");
        let held = a.acquire().expect("floor");
        assert!(a.reshare(share(4, 4)).is_err(), "b's floor is in the way");
        a.reshare(share(3, 4)).expect("3 + 1 fits");
        let b1 = b.acquire().expect("b's floor");
        assert!(b.acquire().is_err(), "a's floor of 3 is kept");
        a.reshare(share(0, 0))
            .expect("removed: no floor, no ceiling");
        assert!(a.acquire().is_err(), "no new instances once removed");
        let b2 = b.acquire().expect("a's floor is free again");
        drop((held, b1, b2));
        assert_eq!(a.in_use(), 0);
        assert_eq!(pool.state().committed, 1, "only b's floor is left");
    }

    #[test]
    fn releasing_inside_the_floor_keeps_the_reservation() {
        let pool = InstancePool::new(4);
        let a = pool.join(share(2, 4)).expect("fits");
        let b = pool.join(share(0, 4)).expect("fits");
        let a1 = a.acquire().expect("floor");
        let b_slots: Vec<_> = (0..2).map(|_| b.acquire().expect("shared")).collect();
        assert!(b.acquire().is_err(), "a's second floor slot stays free");
        drop(a1);
        assert!(b.acquire().is_err(), "still reserved for a");
        drop(b_slots);
        assert_eq!(b.in_use(), 0);
    }
}
