//! Instances shared by requests in flight (`reuse.concurrent` above 1, for
//! squall-sdk apps and WASI 0.3 components): a request goes to an instance
//! of its app with room (fewer than `concurrent` requests in flight and
//! fewer than `requests` given), else a new instance is started for it.
//! Each instance is driven by a task of its own (the executor's), which
//! takes its requests from a channel; the pool only decides which instance
//! a request goes to and when an instance stops taking more.

use crate::config::Reuse;
use crate::error::HostError;
use crate::guest_call::GuestCall;
use futures::channel::{mpsc, oneshot};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;

/// What a shared instance did with a request of kind `C`.
pub(crate) enum Served<C: GuestCall> {
    /// The guest's answer, before its body is done.
    Answered(C::Answer),
    /// Not served: the instance it was sent to holds back (its guest
    /// turned on backpressure). The request and its place, for another.
    HeldBack(C::Request, OwnedSemaphorePermit),
}

/// One request given to a shared instance.
pub(crate) struct Job<C: GuestCall> {
    pub(crate) request: C::Request,
    /// Where its answer (or why there is none) goes.
    pub(crate) answer: oneshot::Sender<Result<Served<C>, HostError>>,
    /// Its place among the app's requests in flight, held until the guest
    /// is done with it.
    pub(crate) admitted: OwnedSemaphorePermit,
    /// Its number on the lane, given by the pool.
    pub(crate) id: u64,
    /// Whether an instance that holds back may send it back while another
    /// instance could start (else it waits inside).
    pub(crate) may_go_back: bool,
}

/// One shared instance as the pool sees it.
pub(crate) struct Lane<C: GuestCall> {
    jobs: mpsc::UnboundedSender<Job<C>>,
    /// The task driving it, to stop it from outside.
    driver: Option<AbortHandle>,
    /// Requests given to it in all (at most `requests`).
    given: u32,
    /// By when each request given to it and not yet done (at most
    /// `concurrent`) must be done, or the instance counts as wedged.
    deadlines: BTreeMap<u64, Instant>,
    /// Once it takes no more requests: by when its guest's remaining work
    /// must be done.
    closed_by: Option<Instant>,
    /// Its guest holds back new calls (backpressure): no requests for now.
    held_back: bool,
}

impl<C: GuestCall> Lane<C> {
    /// Requests given to it and not yet done.
    fn in_flight(&self) -> usize {
        self.deadlines.len()
    }
}

/// Past a request's timeout, how long its instance may take to be done
/// with it before it counts as wedged (a guest holding the store, where
/// the instance's own timers cannot fire) and is stopped from outside.
pub(crate) const WEDGED_GRACE: Duration = Duration::from_secs(1);

/// The shared instances of one app version, serving requests of kind `C`.
pub(crate) struct ConcurrentInstances<C: GuestCall> {
    reuse: Reuse,
    /// How long a request may hold its lane: its timeout and the grace.
    hold: Duration,
    lanes: Mutex<Lanes<C>>,
}

/// The lanes, and the numbers last given to a lane and to a request.
struct Lanes<C: GuestCall> {
    lanes: Vec<(LaneId, Lane<C>)>,
    last_lane: u64,
    last_job: u64,
}

/// Which lane, for the task driving it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LaneId(u64);

/// A new lane's first request and the channel its next ones come by: the
/// caller starts an instance and drives it.
pub(crate) struct NewLane<C: GuestCall> {
    pub(crate) id: LaneId,
    pub(crate) first: Job<C>,
    pub(crate) jobs: mpsc::UnboundedReceiver<Job<C>>,
}

impl<C: GuestCall> ConcurrentInstances<C> {
    /// Share instances as `reuse` says, for requests with `timeout`.
    pub(crate) fn new(reuse: &Reuse, timeout: Duration) -> Arc<ConcurrentInstances<C>> {
        Arc::new(ConcurrentInstances {
            reuse: reuse.clone(),
            hold: timeout.saturating_add(WEDGED_GRACE),
            lanes: Mutex::new(Lanes {
                lanes: Vec::new(),
                last_lane: 0,
                last_job: 0,
            }),
        })
    }

    /// How many requests one instance serves at once.
    pub(crate) fn reuse(&self) -> &Reuse {
        &self.reuse
    }

    /// Give `job` to an instance with room, passing over those that hold
    /// back while the job may go back and `instance_room` says another
    /// instance could start (asked only then); if none has room, a new lane
    /// for it, which the caller must drive. Returns the lane it went to.
    pub(crate) fn submit(
        &self,
        job: Job<C>,
        instance_room: impl Fn() -> bool,
    ) -> (LaneId, Option<NewLane<C>>) {
        let mut pool = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut job = job;
        let mut pass_over_held: Option<bool> = None;
        pool.last_job += 1;
        job.id = pool.last_job;
        let deadline = Instant::now() + self.hold;
        let concurrent = usize::try_from(self.reuse.concurrent).unwrap_or(usize::MAX);
        let lanes = &mut pool.lanes;
        let mut at = 0;
        while at < lanes.len() {
            let (id, lane) = &mut lanes[at];
            if lane.closed_by.is_some()
                || (lane.held_back
                    && *pass_over_held.get_or_insert_with(|| job.may_go_back && instance_room()))
                || lane.in_flight() >= concurrent
                || lane.given >= self.reuse.requests
            {
                at += 1;
                continue;
            }
            let number = job.id;
            match lane.jobs.unbounded_send(job) {
                Ok(()) => {
                    lane.given += 1;
                    lane.deadlines.insert(number, deadline);
                    return (*id, None);
                }
                // Its task has gone: it takes no more.
                Err(refused) => {
                    job = refused.into_inner();
                    lanes.swap_remove(at);
                }
            }
        }
        pool.last_lane += 1;
        let id = LaneId(pool.last_lane);
        let (sender, receiver) = mpsc::unbounded();
        pool.lanes.push((
            id,
            Lane {
                jobs: sender,
                driver: None,
                given: 1,
                deadlines: BTreeMap::from([(job.id, deadline)]),
                closed_by: None,
                held_back: false,
            },
        ));
        let lane = NewLane {
            id,
            first: job,
            jobs: receiver,
        };
        (id, Some(lane))
    }

    /// `change` the lane `id`, if it is still in the pool.
    fn with_lane<R>(&self, id: LaneId, change: impl FnOnce(&mut Lane<C>) -> R) -> Option<R> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, lane) = lanes.lanes.iter_mut().find(|(lane, _)| *lane == id)?;
        Some(change(lane))
    }

    /// The task driving the lane `id`, once it is started.
    pub(crate) fn set_driver(&self, id: LaneId, driver: AbortHandle) {
        self.with_lane(id, |lane| lane.driver = Some(driver));
    }

    /// Stop the lane `id` from outside (its instance is wedged): out of the
    /// pool, its task aborted, which drops the store and answers every
    /// request on it.
    pub(crate) fn stop(&self, id: LaneId) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = lanes.lanes.iter().position(|(lane, _)| *lane == id) {
            let (_, lane) = lanes.lanes.swap_remove(at);
            if let Some(driver) = lane.driver {
                driver.abort();
            }
        }
    }

    /// Whether the lane's guest holds back new calls: while it does, the
    /// pool sends it no requests.
    pub(crate) fn hold_back(&self, id: LaneId, held: bool) {
        self.with_lane(id, |lane| lane.held_back = held);
    }

    /// The lane sent its request `job` back unserved: it counts for
    /// nothing there.
    pub(crate) fn returned(&self, id: LaneId, job: u64) {
        self.with_lane(id, |lane| {
            lane.deadlines.remove(&job);
            lane.given = lane.given.saturating_sub(1);
        });
    }

    /// The lane's request `job` is done.
    pub(crate) fn done(&self, id: LaneId, job: u64) {
        self.with_lane(id, |lane| lane.deadlines.remove(&job));
    }

    /// Whether the lane is through: it has been given its `requests` and
    /// has none in flight, or (`idle_too`) it has none in flight at all.
    /// A lane that is through takes no more requests; its guest's
    /// remaining work has until its timeout and the grace.
    pub(crate) fn close_if_through(&self, id: LaneId, idle_too: bool) -> bool {
        self.with_lane(id, |lane| {
            let through = lane.in_flight() == 0 && (idle_too || lane.given >= self.reuse.requests);
            if through && lane.closed_by.is_none() {
                lane.closed_by = Some(Instant::now() + self.hold);
            }
            through
        })
        // A lane out of the pool is through.
        .unwrap_or(true)
    }

    /// Take the lane out of the pool whatever it holds (its instance
    /// stopped); the requests already sent to it are the caller's to answer.
    pub(crate) fn close(&self, id: LaneId) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        lanes.lanes.retain(|(lane, _)| *lane != id);
    }

    /// Watch the lane `id` until it is gone: stop it once one of its
    /// deadlines has passed (its instance cannot answer or finish).
    pub(crate) async fn watch(self: Arc<Self>, id: LaneId) {
        let period = (self.hold / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(period).await;
            let overdue = {
                let lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
                let Some((_, lane)) = lanes.lanes.iter().find(|(lane, _)| *lane == id) else {
                    return;
                };
                lane.deadlines
                    .values()
                    .chain(&lane.closed_by)
                    .min()
                    .is_some_and(|deadline| *deadline <= Instant::now())
            };
            if overdue {
                tracing::warn!(
                    "a shared instance is past a request's timeout and cannot end it: it is stopped"
                );
                self.stop(id);
                return;
            }
        }
    }
}
