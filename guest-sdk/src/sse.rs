//! Server-sent events (`text/event-stream`): a response that stays open and
//! delivers each event as soon as it is produced.
//!
//! ```
//! use squall_sdk::Request;
//! use squall_sdk::futures::stream;
//! use squall_sdk::sse::{Event, Sse};
//! use std::time::Duration;
//!
//! async fn clock(_req: Request) -> Sse {
//!     let ticks = stream::unfold(0u64, |n| async move {
//!         squall_sdk::sleep(Duration::from_secs(1)).await;
//!         Some((Event::default().id(n.to_string()).data(format!("tick {n}")), n + 1))
//!     });
//!     Sse::new(ticks).keep_alive(Duration::from_secs(15))
//! }
//! # use squall_sdk::IntoResponse;
//! # use squall_sdk::futures::FutureExt;
//! # let response = clock(Request::new(squall_sdk::Method::GET, "/clock")).now_or_never().expect("ready").into_response();
//! # assert_eq!(response.headers()["content-type"], "text/event-stream");
//! ```

use crate::{IntoResponse, Response, sleep};
use ::http::header;
use futures::future::{Either, select};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;

/// One event. Lines of `data` become one `data:` field each.
///
/// ```
/// use squall_sdk::sse::Event;
///
/// let event = Event::default().event("price").id("42").data("BTC 64000");
/// assert_eq!(event.to_wire(), "event: price\nid: 42\ndata: BTC 64000\n\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
    data: Option<String>,
}

impl Event {
    /// Set the event's name (`event:`); without one, browsers fire `message`.
    ///
    /// ```
    /// use squall_sdk::sse::Event;
    ///
    /// // In the browser: source.addEventListener("joined", ...)
    /// let event = Event::default().event("joined").data("ada");
    /// assert_eq!(event.to_wire(), "event: joined\ndata: ada\n\n");
    /// ```
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(single_line(name.into()));
        self
    }

    /// Set the id the browser sends back as `Last-Event-ID` on reconnect.
    ///
    /// ```
    /// use squall_sdk::Request;
    /// use squall_sdk::sse::Event;
    /// # use squall_sdk::Method;
    ///
    /// fn resume_after(req: &Request) -> u64 {
    ///     req.header("last-event-id").and_then(|id| id.parse().ok()).unwrap_or(0)
    /// }
    ///
    /// let event = Event::default().id("8").data("eighth");
    /// # assert_eq!(event.to_wire(), "id: 8\ndata: eighth\n\n");
    /// # assert_eq!(resume_after(&Request::new(Method::GET, "/events").with_header("last-event-id", "8")), 8);
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(single_line(id.into()));
        self
    }

    /// Tell the browser how long to wait before reconnecting.
    ///
    /// ```
    /// use squall_sdk::sse::Event;
    /// use std::time::Duration;
    ///
    /// let hello = Event::default().retry(Duration::from_secs(10)).data("connected");
    /// assert_eq!(hello.to_wire(), "retry: 10000\ndata: connected\n\n");
    /// ```
    pub fn retry(mut self, after: Duration) -> Self {
        self.retry = Some(after);
        self
    }

    /// Set the payload; it may span several lines.
    ///
    /// ```
    /// use squall_sdk::sse::Event;
    ///
    /// let event = Event::default().data("line one\nline two");
    /// assert_eq!(event.to_wire(), "data: line one\ndata: line two\n\n");
    /// ```
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Set the payload to `value` as JSON.
    ///
    /// ```
    /// use squall_sdk::serde_json::json;
    /// use squall_sdk::sse::Event;
    ///
    /// let event = Event::default().event("score").json(&json!({ "home": 2, "away": 1 }))?;
    /// assert_eq!(event.to_wire(), "event: score\ndata: {\"away\":1,\"home\":2}\n\n");
    /// # Ok::<(), squall_sdk::serde_json::Error>(())
    /// ```
    pub fn json<T: serde::Serialize>(self, value: &T) -> Result<Self, serde_json::Error> {
        Ok(self.data(serde_json::to_string(value)?))
    }

    /// The event in wire format, ending with the blank line.
    ///
    /// ```
    /// use squall_sdk::sse::Event;
    ///
    /// let wire = Event::default().id("1").data("hello").to_wire();
    /// assert_eq!(wire, "id: 1\ndata: hello\n\n");
    /// ```
    pub fn to_wire(&self) -> String {
        let mut wire = String::new();
        if let Some(event) = &self.event {
            wire.push_str(&format!("event: {event}\n"));
        }
        if let Some(id) = &self.id {
            wire.push_str(&format!("id: {id}\n"));
        }
        if let Some(retry) = self.retry {
            wire.push_str(&format!("retry: {}\n", retry.as_millis()));
        }
        if let Some(data) = &self.data {
            for line in data.split('\n') {
                wire.push_str(&format!("data: {}\n", line.trim_end_matches('\r')));
            }
        }
        wire.push('\n');
        wire
    }
}

/// Newlines would end the field early; an id or name is one line.
fn single_line(text: String) -> String {
    text.replace(['\r', '\n'], " ")
}

/// A stream of events as a response.
///
/// ```
/// use squall_sdk::futures::{StreamExt, stream};
/// use squall_sdk::sse::{Event, Sse};
/// use squall_sdk::{IntoResponse, Request};
///
/// async fn progress(_req: Request) -> Sse {
///     let steps = stream::iter(["download", "unpack", "install"]);
///     Sse::new(steps.map(|step| Event::default().event("step").data(step)))
/// }
/// # use squall_sdk::futures::FutureExt;
/// # let response = progress(Request::new(squall_sdk::Method::GET, "/progress")).now_or_never().expect("ready").into_response();
/// # assert_eq!(response.headers()["content-type"], "text/event-stream");
/// ```
pub struct Sse {
    events: Pin<Box<dyn Stream<Item = Event>>>,
    keep_alive: Option<Duration>,
}

impl Sse {
    /// Send every event of `events`, then end the response.
    ///
    /// ```no_run
    /// use squall_sdk::futures::{StreamExt, stream};
    /// use squall_sdk::sse::{Event, Sse};
    /// use squall_sdk::{Request, pubsub};
    /// use std::time::Duration;
    ///
    /// async fn news(_req: Request) -> Sse {
    ///     let messages = stream::unfold(None, |after| async move {
    ///         let batch = pubsub::wait("news", after, Duration::from_secs(60)).await.ok()?;
    ///         let next = batch.last().map(|m| m.id).or(after);
    ///         Some((stream::iter(batch), next))
    ///     });
    ///     Sse::new(messages.flatten().map(|m| {
    ///         Event::default().id(m.id.to_string()).data(m.text().unwrap_or_default())
    ///     }))
    /// }
    /// ```
    pub fn new(events: impl Stream<Item = Event> + 'static) -> Self {
        Sse {
            events: Box::pin(events),
            keep_alive: None,
        }
    }

    /// Send a comment line whenever no event went out for `interval`, so
    /// proxies and idle timeouts keep the connection open.
    ///
    /// ```
    /// use squall_sdk::futures::{StreamExt, stream};
    /// use squall_sdk::sse::{Event, Sse};
    /// use squall_sdk::{IntoResponse, Request};
    /// use std::time::Duration;
    ///
    /// async fn feed(_req: Request) -> Sse {
    ///     // Say hello, then stay open with nothing to say but keep-alives.
    ///     let welcome = stream::once(async { Event::default().data("welcome") });
    ///     let events = welcome.chain(stream::pending());
    ///     Sse::new(events).keep_alive(Duration::from_secs(15))
    /// }
    /// # use squall_sdk::futures::FutureExt;
    /// # let response = feed(Request::new(squall_sdk::Method::GET, "/feed")).now_or_never().expect("ready").into_response();
    /// # assert_eq!(response.body(), None);
    /// # assert_eq!(response.headers()["cache-control"], "no-cache");
    /// ```
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = Some(interval);
        self
    }
}

impl IntoResponse for Sse {
    fn into_response(self) -> Response {
        let Sse {
            mut events,
            keep_alive,
        } = self;
        Response::stream(move |mut body| async move {
            loop {
                let next = match keep_alive {
                    None => events.next().await,
                    Some(interval) => {
                        match select(events.next(), Box::pin(sleep(interval))).await {
                            Either::Left((next, _)) => next,
                            Either::Right(((), _)) => {
                                if body.write(":\n\n").await.is_err() {
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                };
                let Some(event) = next else { return };
                if body.write(event.to_wire()).await.is_err() {
                    return;
                }
            }
        })
        .with_header(header::CONTENT_TYPE, "text/event-stream")
        .with_header(header::CACHE_CONTROL, "no-cache")
        // Ask reverse proxies (nginx) not to buffer the stream.
        .with_header(header::HeaderName::from_static("x-accel-buffering"), "no")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_wire_format() {
        let event = Event::default()
            .event("tick")
            .id("7")
            .retry(Duration::from_secs(3))
            .data("one\ntwo");
        assert_eq!(
            event.to_wire(),
            "event: tick\nid: 7\nretry: 3000\ndata: one\ndata: two\n\n"
        );
        assert_eq!(Event::default().id("a\nb").to_wire(), "id: a b\n\n");
    }

    #[test]
    fn multi_line_data_becomes_one_field_per_line() {
        let event = Event::default().data("first\r\nsecond\n\nfourth\n");
        assert_eq!(
            event.to_wire(),
            "data: first\ndata: second\ndata: \ndata: fourth\ndata: \n\n"
        );
        assert_eq!(Event::default().data("").to_wire(), "data: \n\n");
    }

    #[test]
    fn an_empty_event_is_just_the_blank_line() {
        assert_eq!(Event::default().to_wire(), "\n");
    }

    #[test]
    fn names_and_ids_stay_on_one_line() {
        let event = Event::default().event("up\r\ndate").id("1\r2").data("x");
        assert_eq!(event.to_wire(), "event: up  date\nid: 1 2\ndata: x\n\n");
    }

    #[test]
    fn retry_is_in_whole_milliseconds() {
        let event = Event::default().retry(Duration::from_micros(1500));
        assert_eq!(event.to_wire(), "retry: 1\n\n");
        let event = Event::default().retry(Duration::from_secs(90)).id("");
        assert_eq!(event.to_wire(), "id: \nretry: 90000\n\n");
    }

    #[test]
    fn json_data_is_compact_and_one_line() {
        let event = Event::default()
            .json(&serde_json::json!({ "text": "a\nb" }))
            .expect("serializable");
        assert_eq!(event.to_wire(), "data: {\"text\":\"a\\nb\"}\n\n");
    }

    #[test]
    fn an_sse_response_streams_uncached_and_unbuffered() {
        let response = Sse::new(futures::stream::empty())
            .keep_alive(Duration::from_secs(15))
            .into_response();
        assert_eq!(response.status(), ::http::StatusCode::OK);
        assert_eq!(response.body(), None, "a streamed body");
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
    }
}
