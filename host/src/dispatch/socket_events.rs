//! The executor for WebSocket events: a connection's events reach its
//! guest in order, in `live` mode to one instance kept for the connection's
//! lifetime, in `hibernate` mode to a fresh instance per event (of the
//! app's current version: a swap does not disconnect them).

use crate::app::{AppHandle, AppRef};
use crate::bindings::App;
use crate::bindings::types as wit;
use crate::bindings::websocket_types::{self as ws, OpenResult};
use crate::capabilities::GuestState;
use crate::error::HostError;
use crate::hub::Connection;
use crate::runtime::{finish_in_background, guest_tasks_done, until_answer};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::Accessor;

/// What the guest said to an upgrade request.
pub(crate) enum Opened {
    /// Accepted, choosing this subprotocol if any.
    Accept { protocol: Option<String> },
    /// Refused with this response.
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

/// Where a connection's events go: a fresh instance each of the app's
/// current version (hibernate), or the calls queue of the connection's own
/// instance of the version it opened on (live). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Events {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Hibernate(Arc<AppHandle>),
    Live { app: AppRef, live: Live },
}

/// A connection's own instance: its calls queue, and the task that owns it.
#[derive(Clone)]
struct Live {
    calls: mpsc::Sender<Call>,
    task: Arc<tokio::task::AbortHandle>,
}

impl Events {
    /// A fresh instance per event, of whichever version of the app is
    /// current then.
    pub(crate) fn hibernate(app: Arc<AppHandle>) -> Self {
        Events {
            target: Target::Hibernate(app),
        }
    }

    /// Start the instance that will live as long as the connection.
    pub(crate) fn live(app: AppRef) -> Self {
        let (calls, receiver) = mpsc::channel(1);
        let task = tokio::spawn(live_instance(app.clone(), receiver)).abort_handle();
        Events {
            target: Target::Live {
                app,
                live: Live {
                    calls,
                    task: Arc::new(task),
                },
            },
        }
    }

    /// The version of the app the next event goes to.
    pub(crate) fn app(&self) -> AppRef {
        match &self.target {
            Target::Hibernate(handle) => handle.current(),
            Target::Live { app, .. } => app.clone(),
        }
    }

    /// Resolves when the connection should end because its app changed:
    /// a live one when its version has been replaced (or removed) and the
    /// grace period is over, a hibernate one when the app is removed.
    /// The close code and reason to send.
    pub(crate) async fn superseded(&self) -> (u16, &'static str) {
        match &self.target {
            Target::Hibernate(handle) => {
                handle.removed().await;
                (1001, "the app was removed")
            }
            Target::Live { app, .. } => {
                app.retired().await;
                (1012, "the app was updated: reconnect")
            }
        }
    }

    /// An upgrade request: let the guest accept or reject it.
    pub(crate) async fn open(
        &self,
        connection: &Connection,
        request: wit::Request,
    ) -> Result<Opened, HostError> {
        match self
            .deliver(Event::Open(describe(connection), request))
            .await
        {
            Ok(Outcome::Opened(OpenResult::Accept(accept))) => Ok(Opened::Accept {
                protocol: accept.protocol,
            }),
            Ok(Outcome::Opened(OpenResult::Reject(response))) => Ok(Opened::Reject(response)),
            Ok(Outcome::Done) => Err(HostError::NoAnswer),
            Err(failure) => Err(failure),
        }
    }

    /// A message from the client.
    pub(crate) async fn message(
        self,
        connection: ws::Connection,
        message: ws::WsMessage,
    ) -> Result<(), HostError> {
        self.deliver(Event::Message(connection, message))
            .await
            .map(drop)
    }

    /// The connection closed with `code`.
    pub(crate) async fn close(&self, connection: &Connection, code: u16, reason: String) {
        let _ = self
            .deliver(Event::Close(describe(connection), code, reason))
            .await;
    }

    async fn deliver(&self, event: Event) -> Result<Outcome, HostError> {
        let app = self.app();
        let timeout = app.limits().timeout;
        let outcome = match &self.target {
            Target::Hibernate(_) => {
                let (answer, running) =
                    until_answer(timeout, |answer| once(app.clone(), event, answer)).await;
                // What the handler spawned goes on; the next event does not wait.
                if let Some(running) = running {
                    finish_in_background(running);
                }
                let failure = match answer {
                    Ok(outcome) => return Ok(outcome),
                    Err(failure) => failure,
                };
                super::failed(app.name_label(), &failure);
                return Err(failure);
            }
            Target::Live { live, .. } => {
                let (reply, answer) = oneshot::channel();
                if live.calls.send((event, reply)).await.is_err() {
                    return Err(HostError::Trap(wasmtime::Error::msg(
                        "the live instance stopped",
                    )));
                }
                tokio::time::timeout(timeout, async {
                    answer
                        .await
                        .unwrap_or_else(|_| Err(wasmtime::Error::msg("the live instance stopped")))
                })
                .await
            }
        };
        let failure = match outcome {
            Ok(Ok(outcome)) => return Ok(outcome),
            Ok(Err(err)) => HostError::from_guest(err),
            Err(_) => HostError::Timeout,
        };
        super::failed(app.name_label(), &failure);
        // A live instance stuck past the deadline is stopped, which frees
        // it; the connection then closes (1011).
        if let Target::Live { live, .. } = &self.target {
            live.task.abort();
        }
        Err(failure)
    }
}

/// The connection as the guest sees it.
pub(crate) fn describe(connection: &Connection) -> ws::Connection {
    ws::Connection {
        id: connection.id(),
        path: connection.path().to_owned(),
    }
}

/// Hibernate mode: a fresh instance for one event, kept until the work its
/// handler spawned is done.
async fn once(
    app: AppRef,
    event: Event,
    answer: futures::channel::oneshot::Sender<Outcome>,
) -> wasmtime::Result<()> {
    let (mut store, guest) = app.instantiate().await?;
    store
        .run_concurrent(async move |accessor| {
            let outcome = call(&guest, accessor, event).await?;
            let _ = answer.send(outcome);
            guest_tasks_done(accessor).await;
            Ok(())
        })
        .await?
}

/// Live mode: one instance and one long `run_concurrent`, fed events one at
/// a time. Guest tasks spawned by a handler keep running between events.
async fn live_instance(app: AppRef, mut calls: mpsc::Receiver<Call>) {
    let (mut store, guest) = match app.instantiate().await {
        Ok(instance) => instance,
        Err(err) => {
            // Every event of the connection fails the same way: for want of
            // an instance slot (try again later), or as the error says.
            let failure = HostError::from_guest(err);
            while let Some((_, reply)) = calls.recv().await {
                let err = match &failure {
                    HostError::NoInstanceSlot(why) => HostError::NoInstanceSlot(why.clone()).into(),
                    other => wasmtime::Error::msg(other.to_string()),
                };
                let _ = reply.send(Err(err));
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

async fn call(
    guest: &App,
    accessor: &Accessor<GuestState>,
    event: Event,
) -> wasmtime::Result<Outcome> {
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
