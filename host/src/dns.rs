//! Name lookups for guests' outbound connections (fetch, TCP, `wasi:sockets`
//! checks), bounded. The system resolver blocks a thread of tokio's
//! blocking pool, the pool key-value reads and static files also use, and
//! a lookup cannot be cancelled: a nameserver that never answers would hold
//! its thread long after the guest stopped waiting. So each lookup holds a
//! place among [`HOST_LOOKUPS`] (and, for an app, among its own) until its
//! thread is free again, and the caller waits at most [`LOOKUP_TIMEOUT`]
//! (for a place and the answer). At most [`HOST_LOOKUPS`] threads are ever
//! stuck on names, [`APP_LOOKUPS`] of them for one app.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// Lookups on blocking threads at once, for the whole host.
pub(crate) const HOST_LOOKUPS: usize = 32;
/// Lookups on blocking threads at once, for one app.
pub(crate) const APP_LOOKUPS: usize = 4;
/// How long a caller waits for a lookup.
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

static HOST: Semaphore = Semaphore::const_new(HOST_LOOKUPS);

/// Why a name could not be looked up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupFailure {
    /// No answer (or no free place to ask) within [`LOOKUP_TIMEOUT`].
    #[error("the name lookup of {0} took over {LOOKUP_TIMEOUT:?}")]
    Timeout(String),
    /// The resolver failed.
    #[error("cannot resolve {0}: {1}")]
    Failed(String, std::io::Error),
}

/// An app's places for lookups.
pub(crate) fn app_lookups() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(APP_LOOKUPS))
}

/// The addresses of `host:port`, looked up within the app's places
/// (`app`) and the host's, waiting at most [`LOOKUP_TIMEOUT`] in all.
pub(crate) async fn lookup(
    app: &Arc<Semaphore>,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, LookupFailure> {
    let system = |name: &str, port: u16| {
        (name, port)
            .to_socket_addrs()
            .map(Iterator::collect::<Vec<_>>)
    };
    lookup_with(system, &HOST, app, LOOKUP_TIMEOUT, host, port).await
}

/// [`lookup`] through `resolve`, within `host_places` and `app`.
async fn lookup_with(
    resolve: fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
    host_places: &'static Semaphore,
    app: &Arc<Semaphore>,
    timeout: Duration,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, LookupFailure> {
    let looking = async {
        let places: (OwnedSemaphorePermit, SemaphorePermit<'static>) = match (
            app.clone().acquire_owned().await,
            host_places.acquire().await,
        ) {
            (Ok(app), Ok(host)) => (app, host),
            _ => return Err(std::io::Error::other("name lookups have stopped")),
        };
        let name = host.to_owned();
        tokio::task::spawn_blocking(move || {
            // Held until the resolver gives the thread back.
            let _places = places;
            resolve(&name, port)
        })
        .await
        .map_err(std::io::Error::other)?
    };
    match tokio::time::timeout(timeout, looking).await {
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(err)) => Err(LookupFailure::Failed(host.to_owned(), err)),
        Err(_) => Err(LookupFailure::Timeout(host.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Names under `stuck.` never answer until the test lets them go.
    static RELEASE: Mutex<bool> = Mutex::new(false);
    static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

    fn slow_for_stuck_names(name: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if name.starts_with("stuck.") {
            let mut released = RELEASE.lock().unwrap_or_else(|p| p.into_inner());
            while !*released {
                released = RELEASED.wait(released).unwrap_or_else(|p| p.into_inner());
            }
        }
        Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_nameserver_that_never_answers_holds_only_the_apps_places() {
        static HOST_PLACES: Semaphore = Semaphore::const_new(HOST_LOOKUPS);
        let (hostile, neighbour) = (app_lookups(), app_lookups());
        let wait = Duration::from_millis(200);
        let lookups = (0..APP_LOOKUPS * 3).map(|n| {
            let hostile = hostile.clone();
            async move {
                let name = format!("stuck.{n}.example");
                lookup_with(
                    slow_for_stuck_names,
                    &HOST_PLACES,
                    &hostile,
                    wait,
                    &name,
                    80,
                )
                .await
            }
        });
        for failed in futures::future::join_all(lookups).await {
            assert!(
                matches!(failed, Err(LookupFailure::Timeout(_))),
                "{failed:?}"
            );
        }
        // Only the app's own places are stuck on threads.
        assert_eq!(hostile.available_permits(), 0);
        assert_eq!(HOST_PLACES.available_permits(), HOST_LOOKUPS - APP_LOOKUPS);
        // A neighbour's lookups go on.
        let answered = lookup_with(
            slow_for_stuck_names,
            &HOST_PLACES,
            &neighbour,
            wait,
            "api.example",
            443,
        )
        .await
        .expect("answered");
        assert_eq!(answered, [SocketAddr::from(([192, 0, 2, 1], 443))]);
        *RELEASE.lock().unwrap_or_else(|p| p.into_inner()) = true;
        RELEASED.notify_all();
    }
}
