//! Running a guest until it answers: a guest is started with the sender of
//! its answer and driven, within its wall-clock deadline, until it answers
//! or stops. What it does after answering (a streamed body, work after the
//! response) is handed back to the caller still running. Dropping a running
//! guest drops its store, which cancels the guest and its pending host calls.

use crate::error::HostError;
use futures::FutureExt;
use futures::channel::oneshot;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;
use tokio::time::error::Elapsed;
use tracing::Instrument;
use wasmtime::component::Accessor;

/// A guest under its deadline, still running after it answered.
pub(crate) type Running<F> = Pin<Box<tokio::time::Timeout<F>>>;

/// Start a guest with the sender of its answer and drive it, within
/// `timeout`, until it answers or stops. Returns the answer (or why there
/// is none) and the guest if it is still running, for its body.
pub(crate) async fn until_answer<T, F>(
    timeout: Duration,
    start: impl FnOnce(oneshot::Sender<T>) -> F,
) -> (Result<T, HostError>, Option<Running<F>>)
where
    F: Future<Output = wasmtime::Result<()>>,
{
    let (sender, mut receiver) = oneshot::channel();
    let mut guest = Box::pin(tokio::time::timeout(timeout, start(sender)));
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(stopped) = guest.as_mut().poll(cx) {
            return Poll::Ready(Err(stopped));
        }
        match pin!(&mut receiver).poll(cx) {
            Poll::Ready(Ok(answer)) => Poll::Ready(Ok(answer)),
            // The guest dropped the sender only by finishing; poll it again.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match outcome {
        Ok(answer) => (Ok(answer), Some(guest)),
        // It answered in the step it finished in: good if it finished well.
        Err(stopped) => match (receiver.try_recv(), finished(stopped)) {
            (Ok(Some(answer)), Ok(())) => (Ok(answer), None),
            (_, Ok(())) => (Err(HostError::NoAnswer), None),
            (_, Err(err)) => (Err(err), None),
        },
    }
}

/// Wait, inside a store's `run_concurrent`, until none of its guest tasks
/// is still running: a task that has returned its answer may go on (work
/// after the response: a log line, a fetch, a cache write), and holds its
/// instance until it exits.
pub(crate) async fn guest_tasks_done<T>(accessor: &Accessor<T>) {
    poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
}

/// Let a guest that has answered, and whose answer is delivered, finish its
/// work in a task of its own, still under the deadline it runs under (and
/// its CPU budget, which its store carries). The client does not wait for
/// it; how it ends is logged.
pub(crate) fn finish_in_background<F>(mut guest: Running<F>)
where
    F: Future<Output = wasmtime::Result<()>> + Send + 'static,
{
    // Most guests have nothing left to do: no task for them.
    if let Some(stopped) = guest.as_mut().now_or_never() {
        if let Err(failure) = finished(stopped) {
            tracing::warn!("the guest's work after the response ended: {failure}");
        }
        return;
    }
    tokio::spawn(
        async move {
            if let Err(failure) = finished(guest.await) {
                tracing::warn!("the guest's work after the response ended: {failure}");
            }
        }
        .in_current_span(),
    );
}

/// How a guest that ran under its deadline ended.
pub(crate) fn finished(stopped: Result<wasmtime::Result<()>, Elapsed>) -> Result<(), HostError> {
    match stopped {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(HostError::from_guest(err)),
        Err(Elapsed { .. }) => Err(HostError::Timeout),
    }
}

/// Logs a cancellation if dropped before [`OnCancel::disarm`]: dropping the
/// future that owns a store is how a request's guest and its pending host
/// calls (timers, fetches) are cancelled.
pub(crate) struct OnCancel {
    what: &'static str,
    armed: bool,
}

impl OnCancel {
    /// Arm it: `what` says what was cancelled.
    pub(crate) fn new(what: &'static str) -> Self {
        OnCancel { what, armed: true }
    }

    /// The work finished: nothing to log.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!(
                "cancelled: {}; the guest and its pending calls are dropped",
                self.what
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn an_answer_comes_back_with_the_guest_still_running() {
        let (answer, running) = until_answer(LONG, |sender| async move {
            let _ = sender.send(200u16);
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        assert_eq!(answer.expect("answered"), 200);
        let running = running.expect("still streaming");
        assert!(finished(running.await).is_ok());
    }

    #[tokio::test]
    async fn an_answer_given_in_the_last_step_counts() {
        let (answer, running) = until_answer(LONG, |sender| async move {
            let _ = sender.send(7u8);
            Ok(())
        })
        .await;
        assert_eq!(answer.expect("answered"), 7);
        assert!(running.is_none());
    }

    #[tokio::test]
    async fn finishing_without_answering_is_an_error() {
        let (answer, _) =
            until_answer(LONG, |_sender: oneshot::Sender<u8>| async move { Ok(()) }).await;
        assert!(matches!(answer, Err(HostError::NoAnswer)));
    }

    #[tokio::test]
    async fn a_failure_after_answering_in_the_same_step_is_a_failure() {
        let (answer, _) = until_answer(LONG, |sender| async move {
            let _ = sender.send(1u8);
            Err(HostError::CpuTime.into())
        })
        .await;
        assert!(matches!(answer, Err(HostError::CpuTime)));
    }

    #[tokio::test]
    async fn the_deadline_stops_a_guest_that_never_answers() {
        let (answer, _) = until_answer(
            Duration::from_millis(20),
            |_sender: oneshot::Sender<u8>| async move {
                std::future::pending::<()>().await;
                Ok(())
            },
        )
        .await;
        assert!(matches!(answer, Err(HostError::Timeout)));
    }
}
