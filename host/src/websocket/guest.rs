//! Delivering a connection's events to its guest, in order: in `live` mode
//! to one instance kept for the connection's lifetime, in `hibernate` mode
//! to a fresh instance per event.

use super::Connection;
use crate::bindings::App;
use crate::bindings::types as wit;
use crate::bindings::websocket_types::{self as ws, OpenResult};
use crate::runtime::{SharedApp, State};
use http::StatusCode;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::Accessor;

/// What the guest said to an upgrade request.
pub enum Opened {
    Accept { protocol: Option<String> },
    Reject(wit::Response),
}

enum Event {
    Open(ws::Connection, wit::Request),
    Message(ws::Connection, ws::WsMessage),
    Close(ws::Connection, u16, String),
}

enum Outcome {
    Opened(OpenResult),
    Done,
}

type Call = (Event, oneshot::Sender<wasmtime::Result<Outcome>>);

/// Where a connection's events go: a fresh instance each (hibernate), or
/// the calls queue of the connection's own instance (live). Cheap to clone.
#[derive(Clone)]
pub struct Events {
    app: SharedApp,
    live: Option<mpsc::Sender<Call>>,
}

/// An event the guest could not handle (trap, limit, timeout).
#[derive(Debug)]
pub struct Failed;

impl Events {
    pub fn hibernate(app: SharedApp) -> Self {
        Events { app, live: None }
    }

    /// Start the instance that will live as long as the connection.
    pub async fn live(app: SharedApp) -> Result<Self, StatusCode> {
        let (calls, receiver) = mpsc::channel(1);
        tokio::spawn(live_instance(app.clone(), receiver));
        Ok(Events {
            app,
            live: Some(calls),
        })
    }

    pub fn app(&self) -> &SharedApp {
        &self.app
    }

    pub async fn open(
        &self,
        connection: &Connection,
        request: wit::Request,
    ) -> Result<Opened, StatusCode> {
        match self
            .deliver(Event::Open(describe(connection), request))
            .await
        {
            Ok(Outcome::Opened(OpenResult::Accept(accept))) => Ok(Opened::Accept {
                protocol: accept.protocol,
            }),
            Ok(Outcome::Opened(OpenResult::Reject(response))) => Ok(Opened::Reject(response)),
            Ok(Outcome::Done) => Err(StatusCode::INTERNAL_SERVER_ERROR),
            Err(status) => Err(status),
        }
    }

    pub async fn message(
        self,
        connection: ws::Connection,
        message: ws::WsMessage,
    ) -> Result<(), Failed> {
        self.deliver(Event::Message(connection, message))
            .await
            .map(drop)
            .map_err(|_| Failed)
    }

    pub async fn close(&self, connection: &Connection, code: u16, reason: String) {
        let _ = self
            .deliver(Event::Close(describe(connection), code, reason))
            .await;
    }

    async fn deliver(&self, event: Event) -> Result<Outcome, StatusCode> {
        let timeout = self.app.limits().timeout;
        let outcome = match &self.live {
            None => tokio::time::timeout(timeout, once(self.app.clone(), event)).await,
            Some(calls) => {
                let (reply, answer) = oneshot::channel();
                if calls.send((event, reply)).await.is_err() {
                    return Err(StatusCode::INTERNAL_SERVER_ERROR);
                }
                tokio::time::timeout(timeout, async {
                    answer
                        .await
                        .unwrap_or_else(|_| Err(wasmtime::Error::msg("the live instance stopped")))
                })
                .await
            }
        };
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err(crate::dispatch::failure_status(&err)),
            Err(_) => {
                tracing::warn!("a websocket event hit the app's timeout");
                Err(StatusCode::GATEWAY_TIMEOUT)
            }
        }
    }
}

/// The connection as the guest sees it.
pub fn describe(connection: &Connection) -> ws::Connection {
    ws::Connection {
        id: connection.id(),
        path: connection.path().to_owned(),
    }
}

/// Hibernate mode: a fresh instance for one event.
async fn once(app: SharedApp, event: Event) -> wasmtime::Result<Outcome> {
    let mut store = app.new_store();
    let guest = app.squall_pre()?.instantiate_async(&mut store).await?;
    store
        .run_concurrent(async move |accessor| call(&guest, accessor, event).await)
        .await?
}

/// Live mode: one instance and one long `run_concurrent`, fed events one at
/// a time. Guest tasks spawned by a handler keep running between events.
async fn live_instance(app: SharedApp, mut calls: mpsc::Receiver<Call>) {
    let mut store = app.new_store();
    let instantiated = match app.squall_pre() {
        Ok(pre) => pre.instantiate_async(&mut store).await,
        Err(err) => Err(err),
    };
    let guest = match instantiated {
        Ok(guest) => guest,
        Err(err) => {
            let message = format!("{err:#}");
            while let Some((_, reply)) = calls.recv().await {
                let _ = reply.send(Err(wasmtime::Error::msg(message.clone())));
            }
            return;
        }
    };
    let finished = store
        .run_concurrent(async move |accessor| {
            while let Some((event, reply)) = calls.recv().await {
                accessor.with(|mut access| access.get().refill_cpu_budget());
                let _ = reply.send(call(&guest, accessor, event).await);
            }
        })
        .await;
    if let Err(err) = finished {
        // A trap ends the instance; the connection sees its calls fail.
        tracing::warn!("the live websocket instance stopped: {err:#}");
    }
}

async fn call(guest: &App, accessor: &Accessor<State>, event: Event) -> wasmtime::Result<Outcome> {
    let handler = guest.squall_app_websocket_handler();
    match event {
        Event::Open(connection, request) => Ok(Outcome::Opened(
            handler.call_on_open(accessor, connection, request).await?,
        )),
        Event::Message(connection, message) => {
            handler
                .call_on_message(accessor, connection, message)
                .await?;
            Ok(Outcome::Done)
        }
        Event::Close(connection, code, reason) => {
            handler
                .call_on_close(accessor, connection, code, reason)
                .await?;
            Ok(Outcome::Done)
        }
    }
}

/// How long a closing handshake may take before the socket is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
