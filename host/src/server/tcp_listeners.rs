//! The apps' own TCP listeners (`[[app.NAME.tcp]]`): each accepted
//! connection, within the listener's `max_connections`, the app's and the
//! server's, goes to the app's current version: for its whole life in live
//! mode (`dispatch::tcp`), event by event in hibernate mode
//! (`tcp_hibernate`).

use super::AcceptFailures;
use crate::app::AppHandle;
use crate::config::{TcpListenerConfig, TcpMode};
use crate::dispatch::tcp_connections::ConnectionLimits;
use crate::hub::Hub;
use crate::limit_log::Limit;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// One bound listener and the app it serves.
pub(crate) struct TcpListen {
    listener: TcpListener,
    app: Arc<AppHandle>,
    config: TcpListenerConfig,
}

impl TcpListen {
    /// The address it accepts on (its port chosen if the manifest said 0).
    pub(crate) fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The name the guest sees for it.
    pub(crate) fn name(&self) -> String {
        self.config.display_name()
    }

    /// The app it serves.
    pub(crate) fn app_name(&self) -> String {
        self.app.current().name().to_owned()
    }
}

/// Bind every TCP listener of `apps`.
pub(crate) fn bind_tcp(apps: &[Arc<AppHandle>]) -> anyhow::Result<Vec<TcpListen>> {
    let mut bound = Vec::new();
    for handle in apps {
        let app = handle.current();
        for config in &app.config().tcp {
            let listener = super::bind(config.listen).map_err(|err| {
                anyhow::anyhow!(
                    "app {:?}: cannot listen on {} (tcp): {err}",
                    app.name(),
                    config.listen
                )
            })?;
            bound.push(TcpListen {
                listener,
                app: handle.clone(),
                config: config.clone(),
            });
        }
    }
    Ok(bound)
}

/// Accept connections on `listen` until its app is removed or the server
/// stops, each holding a place of `places` (the server's
/// `max_connections`) and one of the listener's own.
pub(crate) async fn accept(
    listen: TcpListen,
    places: Arc<Semaphore>,
    hub: Arc<Hub>,
    stop_signal: watch::Receiver<bool>,
) {
    let TcpListen {
        listener,
        app,
        config,
    } = listen;
    let open = Arc::new(Semaphore::new(
        usize::try_from(config.max_connections)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS),
    ));
    let name = config.display_name();
    let mut failures = AcceptFailures::new(format!("tcp listener {name}: "));
    let accepting = async {
        loop {
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            let (socket, peer) = failures.accept(&listener).await;
            let current = app.current();
            let Ok(slot) = open.clone().try_acquire_owned() else {
                // Over the listener's limit: the client sees the connection
                // close at once; the app's neighbours see nothing.
                current.hits().hit(
                    Limit::Connections,
                    &format!(
                        "tcp listener {name} has {} connections open (max_connections)",
                        config.max_connections
                    ),
                );
                drop(socket);
                continue;
            };
            // The app's own max_connections counts its TCP connections
            // with its WebSockets (it logs and counts the refusal).
            let Ok(admitted) = current.admit_connection() else {
                drop(socket);
                continue;
            };
            let held = (slot, place, admitted);
            let stopping = stop_signal.clone();
            if config.mode == TcpMode::Hibernate {
                let (app, hub, config) = (app.clone(), hub.clone(), config.clone());
                tokio::spawn(async move {
                    super::tcp_hibernate::serve(app, hub, socket, peer, config, stopping).await;
                    drop(held);
                });
                continue;
            }
            let limits = ConnectionLimits {
                idle_timeout: config.idle_timeout,
                cpu_time: config.cpu_time.unwrap_or(current.limits().cpu_time),
            };
            let listener_name = name.clone();
            let id = hub.new_id();
            tokio::spawn(async move {
                let mut stopping = stopping;
                let stop = async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                };
                crate::dispatch::tcp_connections::serve(
                    current,
                    id,
                    socket,
                    peer,
                    listener_name,
                    limits,
                    stop,
                )
                .await;
                drop(held);
            });
        }
    };
    let mut stopping = stop_signal.clone();
    tokio::select! {
        () = accepting => {}
        () = app.removed() => tracing::info!("tcp listener {name}: its app was removed"),
        _ = stopping.wait_for(|stop| *stop) => {}
    }
}
