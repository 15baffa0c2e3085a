//! Incoming bodies into a guest's `stream<u8>`, counted against a limit and
//! pulled only when the guest reads.

use super::InboundBody;
use crate::bindings::types::FetchError;
use crate::error::{BoxError, HostError};
use crate::runtime::ChargeCopies;
use bytes::{Buf, Bytes};
use futures::channel::oneshot;
use http_body::Body;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use wasmtime::component::{Destination, StreamProducer, StreamResult};
use wasmtime::{AsContextMut, StoreContextMut};

/// How an incoming body ended, when it did not end normally.
enum Stop {
    TooLarge,
    Broken(BoxError),
}

/// What to do when an incoming body stops early.
enum OnStop {
    /// A client's request body: trap the guest, so it never takes a cut-off
    /// body for a complete one, and let the dispatcher answer 413 or 400.
    Trap,
    /// An upstream's response body: end the stream and report why through
    /// the fetch's `body-result` future.
    Report(Option<oneshot::Sender<Result<(), FetchError>>>),
}

/// Feeds a body into a guest's `stream<u8>`, counting bytes against a
/// limit. Polled only when the guest reads.
pub(crate) struct IncomingBodyProducer {
    /// Taken out when a refused body is handed off to be discarded.
    body: Option<InboundBody>,
    pending: Bytes,
    received: u64,
    limit: u64,
    on_stop: OnStop,
}

impl IncomingBodyProducer {
    /// A client's request body, trapping the guest past `limit` bytes.
    pub(crate) fn request(body: InboundBody, limit: u64) -> Self {
        IncomingBodyProducer::new(body, limit, OnStop::Trap)
    }

    /// An upstream's response body and the receiver of its outcome.
    pub(crate) fn fetched(
        body: InboundBody,
        limit: u64,
    ) -> (Self, oneshot::Receiver<Result<(), FetchError>>) {
        let (report, outcome) = oneshot::channel();
        let producer = IncomingBodyProducer::new(body, limit, OnStop::Report(Some(report)));
        (producer, outcome)
    }

    fn new(body: InboundBody, limit: u64, on_stop: OnStop) -> Self {
        IncomingBodyProducer {
            body: Some(body),
            pending: Bytes::new(),
            received: 0,
            limit,
            on_stop,
        }
    }

    /// The next non-empty data frame, or `None` at the end of the body.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Stop>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            let frame = match ready!(Pin::new(body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(None)),
                Some(Err(err)) => return Poll::Ready(Err(Stop::Broken(err))),
                Some(Ok(frame)) => frame,
            };
            // Trailers are not passed on (yet).
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.received += data.len() as u64;
            if self.received > self.limit {
                return Poll::Ready(Err(Stop::TooLarge));
            }
            return Poll::Ready(Ok(Some(data)));
        }
    }

    /// End the stream: trap, or report the outcome and close it.
    fn finish(&mut self, outcome: Result<(), Stop>) -> Poll<wasmtime::Result<StreamResult>> {
        match (&mut self.on_stop, outcome) {
            (OnStop::Trap, Ok(())) => Poll::Ready(Ok(StreamResult::Dropped)),
            (OnStop::Trap, Err(Stop::TooLarge)) => {
                if let Some(body) = self.body.take() {
                    discard_in_background(body);
                }
                Poll::Ready(Err(HostError::RequestBodyTooLarge.into()))
            }
            (OnStop::Trap, Err(Stop::Broken(err))) => {
                Poll::Ready(Err(HostError::BrokenRequestBody(err).into()))
            }
            (OnStop::Report(report), outcome) => {
                if let Some(report) = report.take() {
                    let _ = report.send(outcome.map_err(|stop| match stop {
                        Stop::TooLarge => FetchError::TooLarge,
                        Stop::Broken(err) => FetchError::Protocol(err.to_string()),
                    }));
                }
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

impl<D: ChargeCopies + 'static> StreamProducer<D> for IncomingBodyProducer {
    type Item = u8;
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        destination: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match this.poll_data(cx) {
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(None)) => return this.finish(Ok(())),
                Poll::Ready(Err(stop)) => return this.finish(Err(stop)),
                Poll::Ready(Ok(Some(data))) => this.pending = data,
            }
        }
        // A zero-length read only asks whether data is ready: it is.
        if destination.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let mut direct = destination.as_direct(store.as_context_mut(), this.pending.len());
        let room = direct.remaining();
        let count = room.len().min(this.pending.len());
        room[..count].copy_from_slice(&this.pending[..count]);
        direct.mark_written(count);
        this.pending.advance(count);
        if let Err(spent) = store.data_mut().charge_copied(count) {
            return Poll::Ready(Err(spent.into()));
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl Drop for IncomingBodyProducer {
    fn drop(&mut self) {
        // Dropped before the end: the guest stopped reading, or its store is gone.
        if let OnStop::Report(report) = &mut self.on_stop
            && let Some(report) = report.take()
        {
            let _ = report.send(Err(FetchError::Protocol(
                "the body was not read to its end".into(),
            )));
        }
    }
}

/// Most of a refused body read and thrown away, after the answer.
const DISCARD_LIMIT: u64 = 64 << 20;
/// How long a refused body may take to arrive.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Read a refused request body to its end (within bounds) while the answer
/// goes out. A client still sending when the server closes gets a reset
/// and often never sees the answer; draining lets it read the 413.
pub(crate) fn discard_in_background(mut body: InboundBody) {
    if body.size_hint().lower() > DISCARD_LIMIT {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |data| data.len() as u64);
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::inbound;
    use futures::task::noop_waker_ref;
    use http_body_util::{Full, StreamBody};

    fn poll(producer: &mut IncomingBodyProducer) -> Poll<Result<Option<Bytes>, Stop>> {
        producer.poll_data(&mut Context::from_waker(noop_waker_ref()))
    }

    fn chunks(parts: Vec<Result<&'static str, &'static str>>) -> InboundBody {
        let frames = parts.into_iter().map(|part| {
            part.map(|text| http_body::Frame::data(Bytes::from_static(text.as_bytes())))
                .map_err(BoxError::from)
        });
        inbound(StreamBody::new(futures::stream::iter(frames)))
    }

    #[test]
    fn data_within_the_limit_passes_then_ends() {
        let mut producer = IncomingBodyProducer::request(inbound(Full::new(Bytes::from("hi"))), 2);
        assert!(matches!(poll(&mut producer), Poll::Ready(Ok(Some(data))) if data == "hi"));
        assert!(matches!(poll(&mut producer), Poll::Ready(Ok(None))));
    }

    #[test]
    fn one_byte_over_the_limit_stops_the_body() {
        let mut producer = IncomingBodyProducer::request(chunks(vec![Ok("ab"), Ok("c")]), 2);
        assert!(matches!(poll(&mut producer), Poll::Ready(Ok(Some(_)))));
        assert!(matches!(
            poll(&mut producer),
            Poll::Ready(Err(Stop::TooLarge))
        ));
    }

    #[test]
    fn empty_frames_are_skipped_and_errors_break_the_body() {
        let mut producer =
            IncomingBodyProducer::request(chunks(vec![Ok(""), Ok("x"), Err("reset")]), 10);
        assert!(matches!(poll(&mut producer), Poll::Ready(Ok(Some(data))) if data == "x"));
        assert!(
            matches!(poll(&mut producer), Poll::Ready(Err(Stop::Broken(err))) if err.to_string() == "reset")
        );
    }

    #[test]
    fn a_request_body_cut_short_traps_with_its_kind() {
        let mut producer = IncomingBodyProducer::request(chunks(vec![]), 10);
        let Poll::Ready(Err(err)) = producer.finish(Err(Stop::Broken("reset".into()))) else {
            panic!("a broken request body traps the guest");
        };
        assert_eq!(HostError::from_guest(err).status().as_u16(), 400);
    }

    #[test]
    fn a_fetched_body_reports_how_it_ended() {
        let (mut producer, mut outcome) = IncomingBodyProducer::fetched(chunks(vec![]), 10);
        assert!(matches!(
            producer.finish(Err(Stop::TooLarge)),
            Poll::Ready(Ok(StreamResult::Dropped))
        ));
        assert!(matches!(
            outcome.try_recv(),
            Ok(Some(Err(FetchError::TooLarge)))
        ));
    }

    #[test]
    fn a_fetched_body_dropped_early_says_so() {
        let (producer, mut outcome) = IncomingBodyProducer::fetched(chunks(vec![Ok("x")]), 10);
        drop(producer);
        assert!(matches!(
            outcome.try_recv(),
            Ok(Some(Err(FetchError::Protocol(why)))) if why.contains("not read to its end")
        ));
    }
}
