//! The executor for work no request asked for (a schedule's tick, a due
//! job): a fresh instance of the app's current version runs the
//! `background` export, and the work it spawned, under the app's
//! `timeout` (its store carries `cpu_time` and `memory`).

use crate::app::AppRef;
use crate::bindings::exports::squall::app::background::Guest as Background;
use crate::capabilities::GuestState;
use crate::error::HostError;
use crate::runtime::{GuestLevel, guest_tasks_done};
use wasmtime::component::Accessor;

/// How a run that did not succeed ended.
pub(crate) enum RunFailure {
    /// The handler returned an error (logged as the app's own line).
    Handler,
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
}

impl BackgroundCall {
    async fn call(
        self,
        guest: &Background,
        accessor: &Accessor<GuestState>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            BackgroundCall::Tick {
                name,
                payload,
                scheduled_at,
            } => {
                guest
                    .call_on_schedule(accessor, name, payload, scheduled_at)
                    .await
            }
            BackgroundCall::Job {
                id,
                name,
                payload,
                attempt,
            } => {
                guest
                    .call_on_job(accessor, id, name, payload, attempt)
                    .await
            }
        }
    }

    /// How the log names its handler's failure.
    fn what(&self) -> &'static str {
        match self {
            BackgroundCall::Tick { .. } => "schedule handler",
            BackgroundCall::Job { .. } => "job handler",
        }
    }
}

/// Run `call` in a fresh instance of `app`.
pub(crate) async fn run_background(app: &AppRef, call: BackgroundCall) -> Result<(), RunFailure> {
    let timeout = app.limits().timeout;
    let run = async {
        let (mut store, guest) = app.instantiate().await?;
        store
            .run_concurrent(
                async move |accessor| -> wasmtime::Result<Result<(), String>> {
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
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(_))) => Err(RunFailure::Handler),
        Ok(Err(err)) => Err(RunFailure::Host(HostError::from_guest(err))),
        Err(_) => Err(RunFailure::Host(HostError::Timeout)),
    }
}
