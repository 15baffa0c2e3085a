//! The executor for work no request asked for (a schedule's tick, a due
//! job, a batch of a queue's messages): a fresh instance of the app's
//! current version runs the `background` export, and the work it spawned,
//! under the app's `timeout` (its store carries `cpu_time` and `memory`).

use crate::app::AppRef;
use crate::bindings::exports::squall::app::background::{Guest as Background, QueuedMessage};
use crate::capabilities::GuestState;
use crate::error::HostError;
use crate::runtime::{GuestLevel, guest_tasks_done};
use wasmtime::component::Accessor;

/// The most of a handler's error text the host keeps (a dead letter's).
pub(crate) const MAX_HANDLER_ERROR: usize = 1024;

/// What a run answered: for a batch of messages, whether each is done.
pub(crate) type Acks = Vec<bool>;

/// How a run that did not succeed ended.
pub(crate) enum RunFailure {
    /// The handler returned an error (logged as the app's own line), its
    /// text cut to [`MAX_HANDLER_ERROR`] bytes.
    Handler(String),
    /// The host stopped it, or it trapped.
    Host(HostError),
}

/// What a background run calls.
pub(crate) enum BackgroundCall {
    /// The tick of schedule `name` due at `scheduled_at` (ms since the epoch).
    Tick {
        name: String,
        payload: Vec<u8>,
        scheduled_at: u64,
    },
    /// Attempt `attempt` of job `id`.
    Job {
        id: String,
        name: String,
        payload: Vec<u8>,
        attempt: u32,
    },
    /// A batch of `queue`'s messages.
    Messages {
        queue: String,
        messages: Vec<QueuedMessage>,
    },
}

impl BackgroundCall {
    async fn call(
        self,
        guest: &Background,
        accessor: &Accessor<GuestState>,
    ) -> wasmtime::Result<Result<Acks, String>> {
        Ok(match self {
            BackgroundCall::Tick {
                name,
                payload,
                scheduled_at,
            } => guest
                .call_on_schedule(accessor, name, payload, scheduled_at)
                .await?
                .map(|()| Acks::new()),
            BackgroundCall::Job {
                id,
                name,
                payload,
                attempt,
            } => guest
                .call_on_job(accessor, id, name, payload, attempt)
                .await?
                .map(|()| Acks::new()),
            BackgroundCall::Messages { queue, messages } => {
                guest.call_on_messages(accessor, queue, messages).await?
            }
        })
    }

    /// How the log names its handler's failure.
    fn what(&self) -> &'static str {
        match self {
            BackgroundCall::Tick { .. } => "schedule handler",
            BackgroundCall::Job { .. } => "job handler",
            BackgroundCall::Messages { .. } => "queue consumer",
        }
    }
}

/// Run `call` in a fresh instance of `app`.
pub(crate) async fn run_background(app: &AppRef, call: BackgroundCall) -> Result<Acks, RunFailure> {
    let timeout = app.limits().timeout;
    let run = async {
        let (mut store, guest) = app.instantiate().await?;
        store
            .run_concurrent(
                async move |accessor| -> wasmtime::Result<Result<Acks, String>> {
                    let what = call.what();
                    let handled = call.call(guest.squall_app_background(), accessor).await?;
                    if let Err(message) = &handled {
                        // Guest text: within the run's log budget, secrets
                        // redacted, as the app's own lines are.
                        let line = format!("{what} failed: {message}");
                        accessor.with(|mut access| access.get().log(GuestLevel::Warn, &line));
                    }
                    guest_tasks_done(accessor).await;
                    Ok(handled)
                },
            )
            .await
            .and_then(|handled| handled)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(Ok(acks))) => Ok(acks),
        Ok(Ok(Err(mut message))) => {
            message.truncate(message.floor_char_boundary(MAX_HANDLER_ERROR));
            Err(RunFailure::Handler(message))
        }
        Ok(Err(err)) => Err(RunFailure::Host(HostError::from_guest(err))),
        Err(_) => Err(RunFailure::Host(HostError::Timeout)),
    }
}
