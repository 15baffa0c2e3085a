//! Instances shared by requests in flight (`reuse.concurrent` above 1): a
//! request goes to an instance of its app with room (fewer than
//! `concurrent` requests in flight and fewer than `requests` given), else
//! a new instance is started for it. Each instance is driven by a task of
//! its own (the executor's), which takes its requests from a channel; the
//! pool only decides which instance a request goes to and when an
//! instance stops taking more.

use crate::bindings::types as wit;
use crate::body::IncomingBodyProducer;
use crate::config::Reuse;
use crate::error::HostError;
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;

/// What the guest answered, before its body is done.
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) headers: wit::Fields,
    pub(crate) body: HeadBody,
}

/// The body of an answer: whole, or still streaming.
pub(crate) enum HeadBody {
    Full(Vec<u8>),
    /// The chunks, and the word that the guest closed its stream.
    Stream(mpsc::Receiver<Bytes>, oneshot::Receiver<bool>),
}

/// The request as the guest will see it (its body still a producer),
/// waiting for a store to become a `wit::Request`.
pub(crate) struct GuestRequest {
    pub(crate) head: wit::Request,
    pub(crate) body: Option<IncomingBodyProducer>,
}

/// One request given to a shared instance.
pub(crate) struct Job {
    pub(crate) request: GuestRequest,
    /// Where its answer (or why there is none) goes.
    pub(crate) answer: oneshot::Sender<Result<Head, HostError>>,
    /// Its place among the app's requests in flight, held until the guest
    /// is done with it.
    pub(crate) admitted: OwnedSemaphorePermit,
}

/// One shared instance as the pool sees it.
pub(crate) struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    /// The task driving it, to stop it from outside.
    driver: Option<AbortHandle>,
    /// Requests given to it and not yet done (at most `concurrent`).
    in_flight: u32,
    /// Requests given to it in all (at most `requests`).
    given: u32,
}

/// The shared instances of one app version.
pub(crate) struct SharedInstances {
    reuse: Reuse,
    lanes: Mutex<Vec<(LaneId, Lane)>>,
    next_id: Mutex<u64>,
}

/// Which lane, for the task driving it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LaneId(u64);

/// A new lane's first request and the channel its next ones come by: the
/// caller starts an instance and drives it.
pub(crate) struct NewLane {
    pub(crate) id: LaneId,
    pub(crate) first: Job,
    pub(crate) jobs: mpsc::UnboundedReceiver<Job>,
}

impl SharedInstances {
    /// Share instances as `reuse` says.
    pub(crate) fn new(reuse: &Reuse) -> Arc<SharedInstances> {
        Arc::new(SharedInstances {
            reuse: reuse.clone(),
            lanes: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
        })
    }

    /// How many requests one instance serves at once.
    pub(crate) fn reuse(&self) -> &Reuse {
        &self.reuse
    }

    /// Give `job` to an instance with room; if none has room, a new lane
    /// for it, which the caller must drive. Returns the lane it went to.
    pub(crate) fn submit(&self, job: Job) -> (LaneId, Option<NewLane>) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut job = job;
        let mut at = 0;
        while at < lanes.len() {
            let (id, lane) = &mut lanes[at];
            if lane.in_flight >= self.reuse.concurrent || lane.given >= self.reuse.requests {
                at += 1;
                continue;
            }
            match lane.jobs.unbounded_send(job) {
                Ok(()) => {
                    lane.in_flight += 1;
                    lane.given += 1;
                    return (*id, None);
                }
                // Its task has gone: it takes no more.
                Err(refused) => {
                    job = refused.into_inner();
                    lanes.swap_remove(at);
                }
            }
        }
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            LaneId(*next)
        };
        let (sender, receiver) = mpsc::unbounded();
        lanes.push((
            id,
            Lane {
                jobs: sender,
                driver: None,
                in_flight: 1,
                given: 1,
            },
        ));
        let lane = NewLane {
            id,
            first: job,
            jobs: receiver,
        };
        (id, Some(lane))
    }

    /// The task driving the lane `id`, once it is started.
    pub(crate) fn set_driver(&self, id: LaneId, driver: AbortHandle) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, lane)) = lanes.iter_mut().find(|(lane, _)| *lane == id) {
            lane.driver = Some(driver);
        }
    }

    /// Stop the lane `id` from outside (its instance is wedged): out of the
    /// pool, its task aborted, which drops the store and answers every
    /// request on it.
    pub(crate) fn stop(&self, id: LaneId) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = lanes.iter().position(|(lane, _)| *lane == id) {
            let (_, lane) = lanes.swap_remove(at);
            if let Some(driver) = lane.driver {
                driver.abort();
            }
        }
    }

    /// One of the lane's requests is done.
    pub(crate) fn done(&self, id: LaneId) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, lane)) = lanes.iter_mut().find(|(lane, _)| *lane == id) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
    }

    /// Whether the lane is through: it has been given its `requests` and
    /// has none in flight, or (`idle_too`) it has none in flight at all.
    /// A lane that is through is taken out of the pool: it gets no more.
    pub(crate) fn close_if_through(&self, id: LaneId, idle_too: bool) -> bool {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(at) = lanes.iter().position(|(lane, _)| *lane == id) else {
            return true;
        };
        let lane = &lanes[at].1;
        let through = lane.in_flight == 0 && (idle_too || lane.given >= self.reuse.requests);
        if through {
            lanes.swap_remove(at);
        }
        through
    }

    /// Take the lane out of the pool whatever it holds (its instance
    /// stopped); the requests already sent to it are the caller's to answer.
    pub(crate) fn close(&self, id: LaneId) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        lanes.retain(|(lane, _)| *lane != id);
    }
}
