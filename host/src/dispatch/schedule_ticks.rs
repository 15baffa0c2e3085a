//! The executor for schedule ticks: a fresh instance of the app's current
//! version runs `on-schedule`, and the work it spawned, under the app's
//! `timeout` (its store carries `cpu_time` and `memory`).

use crate::app::AppRef;
use crate::error::HostError;
use crate::runtime::{GuestLevel, guest_tasks_done};

/// How a tick that did not succeed ended.
pub(crate) enum TickFailure {
    /// The handler returned an error (logged as the app's own line).
    Handler,
    /// The host stopped it, or it trapped.
    Host(HostError),
}

/// Run the tick of schedule `name` due at `scheduled_at` (ms since the
/// epoch) in a fresh instance of `app`.
pub(crate) async fn run_tick(
    app: &AppRef,
    name: String,
    payload: Vec<u8>,
    scheduled_at: u64,
) -> Result<(), TickFailure> {
    let timeout = app.limits().timeout;
    let run = async {
        let (mut store, guest) = app.instantiate().await?;
        store
            .run_concurrent(
                async move |accessor| -> wasmtime::Result<Result<(), String>> {
                    let handled = guest
                        .squall_app_background()
                        .call_on_schedule(accessor, name, payload, scheduled_at)
                        .await?;
                    if let Err(message) = &handled {
                        // Guest text: within the tick's log budget, secrets
                        // redacted, as the app's own lines are.
                        let line = format!("schedule handler failed: {message}");
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
        Ok(Ok(Err(_))) => Err(TickFailure::Handler),
        Ok(Err(err)) => Err(TickFailure::Host(HostError::from_guest(err))),
        Err(_) => Err(TickFailure::Host(HostError::Timeout)),
    }
}
