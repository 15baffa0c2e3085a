//! A request whose client waits for `100 Continue` before it sends its body
//! (`Expect: 100-continue`). hyper sends the 100 when the body is first
//! read, and never once the response head is out: a guest that answers
//! before it reads (a streaming echo) would leave such a client waiting
//! for the 100 while the guest waits for the body. So such a body is read
//! by a task of its own that starts at the guest's first read, or when the
//! guest's answer is ready and still streaming, whichever comes first: the
//! 100 goes out before the answer. One frame at most waits between them.

use super::InboundBody;
use crate::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// Tells the body's reader that the guest has answered.
pub(crate) struct ContinueBeforeAnswer {
    answered: oneshot::Sender<()>,
    /// Becomes true once the body has been read once.
    read_once: watch::Receiver<bool>,
}

/// `body`, read by its own task as said above, and the handle that starts
/// it when the guest's answer is ready.
pub(crate) fn expecting_continue(body: InboundBody) -> (InboundBody, ContinueBeforeAnswer) {
    let (frames_tx, frames) = mpsc::channel(1);
    let demand = Arc::new(Notify::new());
    let (answered, answer) = oneshot::channel::<()>();
    let (was_read, read_once) = watch::channel(false);
    let first_read = demand.clone();
    // What the body says of its length, for the limits checked up front.
    let size_hint = body.size_hint();
    tokio::spawn(async move {
        tokio::select! {
            () = first_read.notified() => {}
            answer = answer => {
                if answer.is_err() {
                    // The request ended without an answer that streams.
                    return;
                }
            }
        }
        let mut body = body;
        loop {
            let frame = std::future::poll_fn(|cx| {
                let polled = Pin::new(&mut body).poll_frame(cx);
                // hyper has queued its 100 by now (if it owes one).
                was_read.send_replace(true);
                polled
            })
            .await;
            let Some(frame) = frame else { return };
            if frames_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let fed = Fed {
        frames,
        demand: Some(demand),
        size_hint,
    };
    let before_answer = ContinueBeforeAnswer {
        answered,
        read_once,
    };
    (super::inbound(fed), before_answer)
}

impl ContinueBeforeAnswer {
    /// The guest's answer is ready and will stream: have the body read once
    /// (hyper then sends the 100) before the answer goes out.
    pub(crate) async fn answered(mut self) {
        // Refused when the guest's own first read started the reading.
        let _ = self.answered.send(());
        let _ = self.read_once.wait_for(|read| *read).await;
        // The read may have been noticed while hyper was polling this
        // answer: hyper reads before it writes in each of its turns, so one
        // more turn lets it queue the 100 before the head.
        tokio::task::yield_now().await;
    }
}

/// The guest's side: frames from the reading task.
struct Fed {
    frames: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    /// Notified at the guest's first read.
    demand: Option<Arc<Notify>>,
    /// The length the request declared.
    size_hint: SizeHint,
}

impl Body for Fed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(demand) = self.demand.take() {
            demand.notify_one();
        }
        self.frames.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}
