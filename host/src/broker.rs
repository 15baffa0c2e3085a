//! The in-process pub/sub broker: topics with a short history of numbered
//! messages, long-poll waiters, and WebSocket subscribers that the broker
//! feeds directly, without waking any guest.
//!
//! Guests share no memory; this is where Tornado's class-level
//! `waiters = set()` lives instead. Topic names are namespaced per app by
//! the caller (see [`TopicKey`]), and each app's topics are fenced by its
//! [`AppTopics`]: how many it may have and how many bytes their histories
//! keep. A topic with no history, waiter or subscriber is collected.
//!
//! Locks: the map of topics is held only to find, create or remove a topic;
//! each topic has its own lock, which orders its messages. Payloads are
//! parsed (for `with-id` frames) before any lock is taken.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

/// Largest payload a message may carry.
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// A topic's name within one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicKey {
    app: Arc<str>,
    topic: Arc<str>,
}

impl TopicKey {
    /// The app the topic belongs to.
    pub(crate) fn app(&self) -> &str {
        &self.app
    }

    /// The topic's name within its app.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// `topic` of `app`.
    pub(crate) fn new(app: &Arc<str>, topic: &str) -> Self {
        TopicKey {
            app: app.clone(),
            topic: topic.into(),
        }
    }
}

/// One published message.
#[derive(Debug)]
pub(crate) struct Published {
    /// Increasing per topic, from 1.
    pub(crate) id: u64,
    /// What the publisher sent.
    pub(crate) payload: Bytes,
}

/// Who a message taken in goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deliver {
    /// The topic's subscribers and waiters.
    ToAll,
    /// Its waiters only: history caught up when a topic starts being followed.
    HistoryOnly,
}

/// A WebSocket connection that receives a topic's messages.
pub(crate) trait Subscriber: Send + Sync {
    /// Queue `frame`; never waits (a full queue is the subscriber's problem).
    fn deliver(&self, frame: Frame);
}

/// One app's fence around its topics, and what it uses of it.
#[derive(Debug)]
pub(crate) struct AppTopics {
    /// Topics it may have at once.
    max_topics: AtomicU32,
    /// Bytes the histories of all its topics may keep.
    max_bytes: AtomicU64,
    /// Messages each topic keeps.
    history: AtomicUsize,
    topics: AtomicU32,
    bytes: AtomicU64,
}

impl AppTopics {
    /// A fence of `max_topics` topics, `max_bytes` of history, and
    /// `history` messages per topic.
    pub(crate) fn new(max_topics: u32, max_bytes: u64, history: usize) -> Arc<Self> {
        Arc::new(AppTopics {
            max_topics: AtomicU32::new(max_topics),
            max_bytes: AtomicU64::new(max_bytes),
            history: AtomicUsize::new(history.max(1)),
            topics: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    /// New limits, for the app's next version: what its topics hold stays
    /// counted, and is trimmed as they are next published to.
    pub(crate) fn set_limits(&self, max_topics: u32, max_bytes: u64, history: usize) {
        self.max_topics.store(max_topics, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
        self.history.store(history.max(1), Ordering::Relaxed);
    }

    /// Bytes its topics may keep (`pubsub_history_bytes`).
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// Messages each topic keeps (`pubsub_history`).
    pub(crate) fn history(&self) -> usize {
        self.history.load(Ordering::Relaxed)
    }

    /// Topics the app has now.
    pub(crate) fn topics(&self) -> u32 {
        self.topics.load(Ordering::Relaxed)
    }

    /// Bytes its topics keep now.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Take `len` bytes of the history budget, if they fit.
    fn take_bytes(&self, len: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(len)
                    .filter(|total| *total <= self.max_bytes.load(Ordering::Relaxed))
            })
            .is_ok()
    }

    fn give_bytes(&self, len: u64) {
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

/// Why the broker refused: the app is at one of its pub/sub limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TopicRefused {
    /// It has as many topics as `pubsub_topics` allows.
    #[error("the app has {0} topics (pubsub_topics)")]
    TooManyTopics(u32),
    /// The message does not fit in `pubsub_history_bytes`.
    #[error("the app's topics keep {0} bytes of history (pubsub_history_bytes)")]
    HistoryFull(u64),
}

struct Subscription {
    subscriber: Arc<dyn Subscriber>,
    with_id: bool,
}

struct Topic {
    app: Arc<AppTopics>,
    /// The id of the last message, for long-poll waiters.
    latest: watch::Sender<u64>,
    state: Mutex<TopicState>,
}

struct TopicState {
    /// The id the next message gets.
    next_id: u64,
    history: VecDeque<Arc<Published>>,
    subscribers: HashMap<u64, Subscription>,
}

impl Topic {
    fn state(&self) -> MutexGuard<'_, TopicState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Nothing keeps it: no history, no waiter, no subscriber.
    fn is_idle(&self) -> bool {
        let state = self.state();
        state.history.is_empty()
            && state.subscribers.is_empty()
            && self.latest.receiver_count() == 0
    }
}

impl TopicState {
    fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// The kept messages with ids above `after`, oldest first.
    fn newer_than(&self, after: u64) -> Vec<Arc<Published>> {
        let start = self.history.partition_point(|message| message.id <= after);
        self.history.range(start..).cloned().collect()
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        let kept: u64 = self
            .state()
            .history
            .iter()
            .map(|message| message.payload.len() as u64)
            .sum();
        self.app.give_bytes(kept);
        self.app.topics.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All topics of all apps.
#[derive(Default)]
pub(crate) struct Broker {
    topics: Mutex<HashMap<TopicKey, Arc<Topic>>>,
}

impl Broker {
    /// An empty broker.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Broker::default())
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<TopicKey, Arc<Topic>>> {
        // Each change to the map is one insert or remove: a poisoned lock
        // still holds a consistent map.
        self.topics
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The topic `key`, created (within the app's fence) if it is new.
    fn topic(&self, key: &TopicKey, app: &Arc<AppTopics>) -> Result<Arc<Topic>, TopicRefused> {
        let mut topics = self.topics();
        if let Some(topic) = topics.get(key) {
            return Ok(topic.clone());
        }
        let max_topics = app.max_topics.load(Ordering::Relaxed);
        let counted = app
            .topics
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                (count < max_topics).then_some(count + 1)
            });
        if counted.is_err() {
            return Err(TopicRefused::TooManyTopics(max_topics));
        }
        let topic = Arc::new(Topic {
            app: app.clone(),
            latest: watch::Sender::new(0),
            state: Mutex::new(TopicState {
                next_id: 1,
                history: VecDeque::new(),
                subscribers: HashMap::new(),
            }),
        });
        topics.insert(key.clone(), topic.clone());
        Ok(topic)
    }

    /// Forget `key` if nothing keeps it any more.
    fn collect(&self, key: &TopicKey) {
        let mut topics = self.topics();
        if topics.get(key).is_some_and(|topic| topic.is_idle()) {
            topics.remove(key);
        }
    }

    /// Publish `payload` and return its id.
    pub(crate) fn publish(
        &self,
        key: &TopicKey,
        payload: Bytes,
        app: &Arc<AppTopics>,
    ) -> Result<u64, TopicRefused> {
        self.append(key, None, payload, app, Deliver::ToAll)
    }

    /// Take in a message numbered elsewhere (another host's, through a
    /// shared backend): kept and delivered like one published here, unless
    /// its id is not newer than the topic's last. `Deliver::HistoryOnly`
    /// fills the history (a topic just followed) without sending it to the
    /// topic's subscribers, who asked for messages from now on.
    pub(crate) fn take_in(
        &self,
        key: &TopicKey,
        id: u64,
        payload: Bytes,
        app: &Arc<AppTopics>,
        deliver: Deliver,
    ) -> Result<(), TopicRefused> {
        self.append(key, Some(id), payload, app, deliver).map(drop)
    }

    /// Whether the topic is known here (has history, waiters or subscribers).
    pub(crate) fn has_topic(&self, key: &TopicKey) -> bool {
        self.topics().contains_key(key)
    }

    /// Create the topic within the app's fence, if it is new.
    pub(crate) fn open_topic(
        &self,
        key: &TopicKey,
        app: &Arc<AppTopics>,
    ) -> Result<(), TopicRefused> {
        self.topic(key, app).map(drop)
    }

    /// Keep `payload` as the topic's next message (numbered `id`, or the
    /// next number) and deliver it as `deliver` says.
    fn append(
        &self,
        key: &TopicKey,
        id: Option<u64>,
        payload: Bytes,
        app: &Arc<AppTopics>,
        deliver: Deliver,
    ) -> Result<u64, TopicRefused> {
        let len = payload.len() as u64;
        // Parsed before any lock: only the id is spliced in under it.
        let frames = Frames::new(payload.clone());
        let topic = self.topic(key, app)?;
        let mut state = topic.state();
        if let Some(id) = id
            && id < state.next_id
        {
            // Already here (a message seen twice after a reconnection).
            return Ok(id);
        }
        while state.history.len() >= app.history.load(Ordering::Relaxed) {
            evict_oldest(&mut state, app);
        }
        // The topic makes room from its own history; an app whose other
        // topics hold its whole budget is refused.
        while !app.take_bytes(len) {
            if !evict_oldest(&mut state, app) {
                drop(state);
                drop(topic);
                self.collect(key);
                return Err(TopicRefused::HistoryFull(
                    app.max_bytes.load(Ordering::Relaxed),
                ));
            }
        }
        let id = id.unwrap_or(state.next_id);
        state.next_id = id + 1;
        state.history.push_back(Arc::new(Published { id, payload }));
        topic.latest.send_replace(id);
        if deliver == Deliver::ToAll && !state.subscribers.is_empty() {
            let with_id = frames.with_id(id);
            for subscription in state.subscribers.values() {
                let frame = match (&with_id, subscription.with_id) {
                    (Some(frame), true) => frame.clone(),
                    _ => frames.raw.clone(),
                };
                subscription.subscriber.deliver(frame);
            }
        }
        Ok(id)
    }

    /// Messages with ids above `after` (default: the latest), waiting up to
    /// `timeout` for the first; empty when the time runs out.
    pub(crate) async fn wait(
        &self,
        key: &TopicKey,
        after: Option<u64>,
        timeout: Duration,
        app: &Arc<AppTopics>,
    ) -> Result<Vec<Arc<Published>>, TopicRefused> {
        let topic = self.topic(key, app)?;
        let (after, mut latest) = {
            let state = topic.state();
            let after = after.unwrap_or(state.last_id());
            let newer = state.newer_than(after);
            if !newer.is_empty() {
                return Ok(newer);
            }
            (after, topic.latest.subscribe())
        };
        let deadline = tokio::time::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        let newer = loop {
            tokio::select! {
                changed = latest.changed() => {
                    if changed.is_err() {
                        break Vec::new();
                    }
                    let newer = topic.state().newer_than(after);
                    if !newer.is_empty() {
                        break newer;
                    }
                }
                () = &mut deadline => break Vec::new(),
            }
        };
        drop(latest);
        drop(topic);
        self.collect(key);
        Ok(newer)
    }

    /// Feed `topic`'s messages to `subscriber` (known by `id`) from now on.
    pub(crate) fn subscribe(
        &self,
        key: &TopicKey,
        id: u64,
        subscriber: Arc<dyn Subscriber>,
        with_id: bool,
        app: &Arc<AppTopics>,
    ) -> Result<(), TopicRefused> {
        self.topic(key, app)?.state().subscribers.insert(
            id,
            Subscription {
                subscriber,
                with_id,
            },
        );
        Ok(())
    }

    /// Stop feeding `key` to the subscriber `id`.
    pub(crate) fn unsubscribe(&self, key: &TopicKey, id: u64) {
        let topic = self.topics().get(key).cloned();
        if let Some(topic) = topic {
            topic.state().subscribers.remove(&id);
            drop(topic);
            self.collect(key);
        }
    }
}

/// Drop the topic's oldest message; false if it kept none.
fn evict_oldest(state: &mut TopicState, app: &AppTopics) -> bool {
    match state.history.pop_front() {
        Some(oldest) => {
            app.give_bytes(oldest.payload.len() as u64);
            true
        }
        None => false,
    }
}

/// The frames one message becomes, built once however many subscribers.
struct Frames {
    raw: Frame,
    /// A JSON-object payload without its `"id"`, re-serialized, so that a
    /// frame with the message's id is a splice, not a parse.
    object: Option<String>,
}

impl Frames {
    fn new(payload: Bytes) -> Self {
        let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&payload)
            .ok()
            .and_then(|mut object| {
                object.remove("id");
                serde_json::to_string(&object).ok()
            });
        Frames {
            raw: payload_frame(payload),
            object,
        }
    }

    /// The frame with `"id": id` first in the object; `None` if the payload
    /// is not a JSON object.
    fn with_id(&self, id: u64) -> Option<Frame> {
        let object = self.object.as_deref()?;
        let rest = object.strip_prefix('{')?;
        let separator = if rest == "}" { "" } else { "," };
        Some(Frame::Text(
            format!("{{\"id\":{id}{separator}{rest}").into(),
        ))
    }
}

/// Text if the payload is UTF-8, binary otherwise.
fn payload_frame(payload: Bytes) -> Frame {
    match Utf8Bytes::try_from(payload.clone()) {
        Ok(text) => Frame::Text(text),
        Err(_) => Frame::Binary(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str) -> TopicKey {
        TopicKey::new(&Arc::from("app"), topic)
    }

    fn app(history: usize) -> Arc<AppTopics> {
        AppTopics::new(100, 1 << 20, history)
    }

    #[tokio::test]
    async fn ids_increase_and_history_is_bounded() {
        let broker = Broker::new();
        let app = app(3);
        for n in 1..=5u64 {
            let id = broker.publish(&key("t"), Bytes::from(n.to_string()), &app);
            assert_eq!(id, Ok(n));
        }
        let kept = broker
            .wait(&key("t"), Some(0), Duration::ZERO, &app)
            .await
            .expect("granted");
        let ids: Vec<u64> = kept.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        let newer = broker
            .wait(&key("t"), Some(4), Duration::ZERO, &app)
            .await
            .expect("granted");
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].payload, "5");
        assert_eq!(app.bytes(), 3, "only what is kept is counted");
    }

    #[tokio::test]
    async fn waiters_wake_on_publish_and_time_out_otherwise() {
        let broker = Broker::new();
        let app = app(10);
        let empty = broker
            .wait(&key("t"), None, Duration::from_millis(20), &app)
            .await
            .expect("granted");
        assert!(empty.is_empty());
        let waiter = {
            let (broker, app) = (broker.clone(), app.clone());
            tokio::spawn(async move {
                broker
                    .wait(&key("t"), None, Duration::from_secs(10), &app)
                    .await
            })
        };
        // Once the waiter watches the topic, publish.
        let parked = |broker: &Broker| {
            broker
                .topics()
                .get(&key("t"))
                .is_some_and(|topic| topic.latest.receiver_count() > 0)
        };
        while !parked(&broker) {
            tokio::task::yield_now().await;
        }
        broker
            .publish(&key("t"), Bytes::from_static(b"hi"), &app)
            .expect("published");
        let woken = waiter.await.expect("the waiter finishes").expect("granted");
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].payload, "hi");
    }

    #[test]
    fn topics_of_different_apps_are_separate() {
        let broker = Broker::new();
        let (a, b) = (
            TopicKey::new(&Arc::from("a"), "chat"),
            TopicKey::new(&Arc::from("b"), "chat"),
        );
        let quota = app(10);
        assert_eq!(broker.publish(&a, Bytes::new(), &quota), Ok(1));
        assert_eq!(broker.publish(&a, Bytes::new(), &quota), Ok(2));
        assert_eq!(broker.publish(&b, Bytes::new(), &quota), Ok(1));
    }

    #[test]
    fn json_objects_gain_their_id() {
        let frames = Frames::new(Bytes::from_static(br#"{"body":"hi","id":"forged"}"#));
        let Some(Frame::Text(text)) = frames.with_id(7) else {
            panic!("a text frame")
        };
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["id"], 7, "the broker's id replaces the payload's");
        assert_eq!(value["body"], "hi");
        let empty = Frames::new(Bytes::from_static(b"{}"));
        assert_eq!(empty.with_id(1), Some(Frame::Text(r#"{"id":1}"#.into())));
    }

    /// A subscriber that keeps what it is given.
    #[derive(Default)]
    struct Inbox(Mutex<Vec<Frame>>);

    impl Subscriber for Inbox {
        fn deliver(&self, frame: Frame) {
            self.0.lock().expect("not poisoned").push(frame);
        }
    }

    #[test]
    fn subscribers_get_frames_until_they_unsubscribe() {
        let broker = Broker::new();
        let app = app(10);
        let inbox = Arc::new(Inbox::default());
        broker
            .subscribe(&key("t"), 1, inbox.clone(), false, &app)
            .expect("granted");
        broker
            .publish(&key("t"), Bytes::from_static(b"one"), &app)
            .expect("published");
        broker
            .publish(&key("other"), Bytes::from_static(b"not mine"), &app)
            .expect("published");
        broker.unsubscribe(&key("t"), 1);
        broker
            .publish(&key("t"), Bytes::from_static(b"two"), &app)
            .expect("published");
        let frames = inbox.0.lock().expect("not poisoned").clone();
        assert_eq!(frames, vec![Frame::Text("one".into())]);
    }

    #[test]
    fn binary_and_non_object_payloads_are_sent_as_they_are() {
        let binary = Frames::new(Bytes::from_static(&[0xff, 0x00]));
        assert!(matches!(binary.raw, Frame::Binary(_)));
        assert!(binary.with_id(1).is_none());
        let array = Frames::new(Bytes::from_static(b"[1,2]"));
        assert!(array.with_id(3).is_none());
        assert_eq!(array.raw, Frame::Text("[1,2]".into()));
    }

    #[tokio::test]
    async fn a_cursor_older_than_the_history_gets_what_is_kept() {
        let broker = Broker::new();
        let app = app(4);
        for _ in 0..10 {
            broker
                .publish(&key("t"), Bytes::new(), &app)
                .expect("published");
        }
        let kept = broker
            .wait(&key("t"), Some(1), Duration::ZERO, &app)
            .await
            .expect("granted");
        let ids: Vec<u64> = kept.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![7, 8, 9, 10]);
    }

    #[tokio::test]
    async fn an_app_cannot_have_more_topics_than_its_fence() {
        let broker = Broker::new();
        let app = AppTopics::new(2, 1 << 20, 10);
        broker
            .publish(&key("a"), Bytes::new(), &app)
            .expect("first");
        broker
            .publish(&key("b"), Bytes::new(), &app)
            .expect("second");
        assert_eq!(
            broker.publish(&key("c"), Bytes::new(), &app),
            Err(TopicRefused::TooManyTopics(2))
        );
        assert!(
            broker
                .wait(&key("d"), None, Duration::ZERO, &app)
                .await
                .is_err()
        );
        let other_app = AppTopics::new(2, 1 << 20, 10);
        let theirs = TopicKey::new(&Arc::from("other"), "c");
        assert!(broker.publish(&theirs, Bytes::new(), &other_app).is_ok());
    }

    #[tokio::test]
    async fn topics_nobody_keeps_are_collected() {
        let broker = Broker::new();
        let app = AppTopics::new(1, 1 << 20, 10);
        for topic in ["a", "b", "c"] {
            let got = broker
                .wait(&key(topic), None, Duration::from_millis(1), &app)
                .await
                .expect("the last topic was collected");
            assert!(got.is_empty());
        }
        let inbox = Arc::new(Inbox::default());
        broker
            .subscribe(&key("s"), 1, inbox, false, &app)
            .expect("room");
        assert_eq!(app.topics(), 1);
        broker.unsubscribe(&key("s"), 1);
        assert_eq!(app.topics(), 0);
    }

    #[test]
    fn history_bytes_are_fenced_per_app() {
        let broker = Broker::new();
        let app = AppTopics::new(10, 10, 100);
        broker
            .publish(&key("a"), Bytes::from_static(b"123456"), &app)
            .expect("fits");
        assert_eq!(
            broker.publish(&key("b"), Bytes::from_static(b"123456"), &app),
            Err(TopicRefused::HistoryFull(10))
        );
        assert_eq!(app.topics(), 1, "the refused topic is not kept");
        let small = AppTopics::new(10, 10, 1);
        for _ in 0..5 {
            broker
                .publish(&key("x"), Bytes::from_static(b"123456"), &small)
                .expect("the oldest makes room");
        }
        assert_eq!(small.bytes(), 6);
    }
}
