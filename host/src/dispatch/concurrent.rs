//! The executor for apps that share an instance between requests in
//! flight (`reuse.concurrent` above 1): squall-sdk apps and WASI 0.3
//! components, whose `handle` exports are async. A task owns each
//! instance and, inside one long `run_concurrent`, calls `handle` for every
//! request the pool gives it, each under its own `timeout`. A failure
//! stops the instance: a request past its `timeout` gets its own 504; a
//! trap or a limit raised inside the store, which no one request can be
//! blamed for, is logged once; every other request in flight on that
//! instance gets a 503 saying why (never a silent loss).

use crate::app::AppRef;
use crate::capabilities::GuestState;
use crate::error::HostError;
use crate::guest_call::GuestCall;
use crate::reuse::Handler;
use crate::reuse::concurrent::{ConcurrentInstances, Job, LaneId, NewLane, Served, WEDGED_GRACE};
use crate::runtime::guest_tasks_done;
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::stream::FuturesUnordered;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use wasmtime::component::{Accessor, Func};

/// A kind of guest that can serve requests on a shared instance.
pub(super) trait ServeConcurrently: GuestCall {
    /// Call the guest's handler for `request` inside the instance's
    /// `run_concurrent`, give its answer (or the error that is this
    /// request's alone) to `give` as soon as there is one, and return once
    /// its body has ended. An error returned stops the instance.
    fn serve<'a>(
        accessor: &'a Accessor<GuestState>,
        guest: &'a Handler,
        request: Self::Request,
        give: impl FnOnce(Result<Self::Answer, HostError>) + Send + 'a,
    ) -> impl Future<Output = wasmtime::Result<()>> + Send + 'a;
}

/// Where a request's answer goes.
type AnswerTo<C> = oneshot::Sender<Result<Served<C>, HostError>>;

/// The answers not yet given, by request, kept outside the instance so
/// that each is answered even when the instance stops.
type Answers<C> = Mutex<HashMap<u64, AnswerTo<C>>>;

/// How many times a request may be sent back by instances that hold back
/// (backpressure); after that it waits inside the next one.
const MAX_RETURNS: usize = 7;

/// Run `request` on an instance `app` shares between requests in flight:
/// one with room, or a new one. Returns the guest's answer, or why there
/// is none.
pub(super) async fn run<C: ServeConcurrently>(
    app: AppRef,
    shared: Arc<ConcurrentInstances<C>>,
    request: C::Request,
    admitted: OwnedSemaphorePermit,
) -> Result<C::Answer, HostError> {
    let (mut request, mut admitted) = (request, admitted);
    let mut returns = 0;
    loop {
        let may_go_back = returns < MAX_RETURNS;
        match run_once(&app, &shared, request, admitted, may_go_back).await? {
            // Its instance holds back: another one, or a new one.
            Served::HeldBack(back, place) => {
                returns += 1;
                (request, admitted) = (back, place);
            }
            Served::Answered(answer) => return Ok(answer),
        }
    }
}

/// Send `request` to one instance and wait for what it says.
async fn run_once<C: ServeConcurrently>(
    app: &AppRef,
    shared: &Arc<ConcurrentInstances<C>>,
    request: C::Request,
    admitted: OwnedSemaphorePermit,
    may_go_back: bool,
) -> Result<Served<C>, HostError> {
    let (answer, answered) = oneshot::channel();
    let job = Job {
        request,
        answer,
        admitted,
        id: 0,
        may_go_back,
    };
    let (lane, new) = shared.submit(job, || app.has_instance_room());
    if let Some(new) = new {
        let span = tracing::info_span!(parent: None, "instance", app = app.name());
        let driver = tokio::spawn(drive(app.clone(), shared.clone(), new).instrument(span.clone()));
        shared.set_driver(lane, driver.abort_handle());
        // Whatever becomes of the requests (a client gone, a body streaming),
        // the instance is stopped if it cannot end one by its deadline.
        tokio::spawn(shared.clone().watch(lane).instrument(span));
    }
    // The instance answers a request past its timeout itself; it cannot
    // while a guest holds it (a store-blocking call): then it is stopped.
    let deadline = app.limits().timeout + WEDGED_GRACE;
    match tokio::time::timeout(deadline, answered).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(HostError::InstanceStopped(
            "its instance was stopped".to_owned(),
        )),
        Err(_) => {
            tracing::warn!(
                "a shared instance gave no answer within the request's timeout: it is stopped"
            );
            shared.stop(lane);
            Err(HostError::Timeout)
        }
    }
}

/// Takes a lane out of the pool however its task ends (a panic too).
struct CloseOnDrop<'a, C: GuestCall>(&'a ConcurrentInstances<C>, LaneId);

impl<C: GuestCall> Drop for CloseOnDrop<'_, C> {
    fn drop(&mut self) {
        self.0.close(self.1);
    }
}

/// Start an instance for `lane` and serve its requests until the pool
/// stops giving it more (it served its `requests`, or sat idle for `idle`)
/// or one of them fails.
async fn drive<C: ServeConcurrently>(
    app: AppRef,
    shared: Arc<ConcurrentInstances<C>>,
    lane: NewLane<C>,
) {
    let NewLane {
        id,
        first,
        mut jobs,
    } = lane;
    let _closing = CloseOnDrop(&shared, id);
    let answers: Answers<C> = Mutex::new(HashMap::new());
    let stopped = match app.instance_for_request().await {
        Ok(mut instance) => {
            let guest = &instance.guest;
            let served = instance
                .store
                .run_concurrent(async |accessor| {
                    serve(
                        accessor, &app, guest, &shared, id, first, &mut jobs, &answers,
                    )
                    .await
                })
                .await;
            match served {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(failure),
                // A trap (or a limit raised inside the store) cannot be
                // traced to one of the requests in flight: counted and
                // logged once here, and every one of them is told.
                Err(err) => {
                    let failure = HostError::from_guest(err);
                    super::failed(app.name_label(), &failure);
                    Some(failure)
                }
            }
        }
        Err(err) => {
            let _ = first.answer.send(Err(HostError::from_guest(err)));
            Some(HostError::InstanceStopped(
                "its instance could not start".to_owned(),
            ))
        }
    };
    shared.close(id);
    jobs.close();
    let why = match &stopped {
        Some(failure) => failure.to_string(),
        None => "it stopped".to_owned(),
    };
    // Requests sent before the lane closed, then those in flight.
    while let Ok(job) = jobs.try_recv() {
        let _ = job
            .answer
            .send(Err(HostError::InstanceStopped(why.clone())));
    }
    let pending: Vec<_> = answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .collect();
    if !pending.is_empty() {
        tracing::warn!(
            "a shared instance stopped ({why}) with {} other requests in flight",
            pending.len()
        );
    }
    for (_, answer) in pending {
        let _ = answer.send(Err(HostError::InstanceStopped(why.clone())));
    }
}

/// Inside the instance's `run_concurrent`: serve `first`, then each
/// request that comes by `jobs`, concurrently, until the lane is through.
/// The first failure ends it (its request answered with it).
#[allow(clippy::too_many_arguments)]
async fn serve<C: ServeConcurrently>(
    accessor: &Accessor<GuestState>,
    app: &AppRef,
    guest: &Handler,
    shared: &ConcurrentInstances<C>,
    lane: LaneId,
    first: Job<C>,
    jobs: &mut mpsc::UnboundedReceiver<Job<C>>,
    answers: &Answers<C>,
) -> Result<(), HostError> {
    let timeout = app.limits().timeout;
    let idle = shared.reuse().idle;
    let handle = guest.handle_func();
    let mut running = FuturesUnordered::new();
    running.push(begin(accessor, guest, answers, timeout, first));
    let mut more_may_come = true;
    let mut held_back = false;
    loop {
        tokio::select! {
            Some((job, finished)) = running.next(), if !running.is_empty() => {
                shared.done(lane, job);
                if finished.is_err() {
                    // No more requests for a failed instance.
                    shared.close(lane);
                }
                finished?;
                if running.is_empty() && shared.close_if_through(lane, false) {
                    break;
                }
            }
            job = jobs.next(), if more_may_come => match job {
                // The guest holds back new calls and another instance could
                // start: the request goes back, to be sent to another, and
                // no more come here.
                Some(job) if job.may_go_back
                    && holds_back(accessor, handle)
                    && app.has_instance_room() => {
                    held_back = true;
                    shared.hold_back(lane, true);
                    shared.returned(lane, job.id);
                    let _ = job.answer.send(Ok(Served::HeldBack(job.request, job.admitted)));
                }
                Some(job) => running.push(begin(accessor, guest, answers, timeout, job)),
                // The lane is out of the pool: nothing more will come.
                None if running.is_empty() => break,
                None => more_may_come = false,
            },
            () = ready_for_calls(accessor, handle), if held_back => {
                held_back = false;
                shared.hold_back(lane, false);
            }
            () = tokio::time::sleep(idle), if running.is_empty() => {
                if shared.close_if_through(lane, true) {
                    break;
                }
            }
        }
    }
    // Work the guest spawned to run after its answers, under one timeout.
    tokio::time::timeout(timeout, guest_tasks_done(accessor))
        .await
        .map_err(|_| HostError::Timeout)
}

/// Whether the guest holds back new calls to `handle` (backpressure): a
/// call now would wait inside the instance.
fn holds_back(accessor: &Accessor<GuestState>, handle: Option<Func>) -> bool {
    let Some(handle) = handle else {
        return false;
    };
    let mut cx = Context::from_waker(Waker::noop());
    accessor
        .poll_ready_for_concurrent_call(handle, &mut cx)
        .is_pending()
}

/// Done once the guest takes new calls to `handle` again.
async fn ready_for_calls(accessor: &Accessor<GuestState>, handle: Option<Func>) {
    if let Some(handle) = handle {
        std::future::poll_fn(|cx| accessor.poll_ready_for_concurrent_call(handle, cx)).await;
    }
}

/// Start serving `job` under its own `timeout`: the future ends when the
/// guest is done with it, with the job's number and the failure that must
/// stop the instance if it failed (its own request answered with it).
fn begin<'a, C: ServeConcurrently>(
    accessor: &'a Accessor<GuestState>,
    guest: &'a Handler,
    answers: &'a Answers<C>,
    timeout: Duration,
    job: Job<C>,
) -> impl Future<Output = (u64, Result<(), HostError>)> + 'a {
    let Job {
        request,
        answer,
        admitted,
        id,
        may_go_back: _,
    } = job;
    answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, answer);
    // Each request gets the instance's CPU and log budgets afresh.
    accessor.with(|mut store| store.data_mut().start_request());
    async move {
        let give = move |answer: Result<C::Answer, HostError>| {
            give_answer(answers, id, answer.map(Served::Answered));
        };
        let outcome = tokio::time::timeout(timeout, C::serve(accessor, guest, request, give)).await;
        drop(admitted);
        let failure = match outcome {
            Ok(Ok(())) => return (id, Ok(())),
            Ok(Err(err)) => HostError::from_guest(err),
            Err(_) => HostError::Timeout,
        };
        (id, stopping(answers, id, failure))
    }
}

/// The request `id` failed: answer it with `failure` if it is still
/// waiting, and say what stops the instance (nothing, if its streamed body
/// merely ran past its timeout).
fn stopping<C: GuestCall>(
    answers: &Answers<C>,
    id: u64,
    failure: HostError,
) -> Result<(), HostError> {
    let answer = answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    match answer {
        // The request that failed gets its own error; the others are told
        // it stopped their instance.
        Some(answer) => {
            let why = HostError::InstanceStopped(format!("another request: {failure}"));
            let _ = answer.send(Err(failure));
            Err(why)
        }
        // Answered, its streamed body past the timeout: the body is cut
        // (its client sees it broken off), the instance serves on.
        None if matches!(failure, HostError::Timeout) => {
            tracing::warn!("the request's timeout cut its streamed body");
            Ok(())
        }
        None => Err(failure),
    }
}

/// Give the request `id` its answer, if it still waits for one.
fn give_answer<C: GuestCall>(answers: &Answers<C>, id: u64, answer: Result<Served<C>, HostError>) {
    let waiting = answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    if let Some(waiting) = waiting {
        let _ = waiting.send(answer);
    }
}
