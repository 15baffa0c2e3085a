//! The in-process pub/sub broker: topics with a short history of numbered
//! messages, long-poll waiters, and WebSocket subscribers that the broker
//! feeds directly, without waking any guest.
//!
//! Guests share no memory; this is where Tornado's class-level
//! `waiters = set()` lives instead. Topic names are namespaced per app by
//! the caller (see [`TopicKey`]).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
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

/// A WebSocket connection that receives a topic's messages.
pub(crate) trait Subscriber: Send + Sync {
    /// Queue `frame`; never waits (a full queue is the subscriber's problem).
    fn deliver(&self, frame: Frame);
}

struct Subscription {
    subscriber: Arc<dyn Subscriber>,
    with_id: bool,
}

struct Topic {
    /// The id the next message gets.
    next_id: u64,
    history: VecDeque<Arc<Published>>,
    capacity: usize,
    /// The id of the last message, for long-poll waiters.
    latest: watch::Sender<u64>,
    subscribers: HashMap<u64, Subscription>,
}

impl Topic {
    fn new(capacity: usize) -> Self {
        Topic {
            next_id: 1,
            history: VecDeque::new(),
            capacity: capacity.max(1),
            latest: watch::Sender::new(0),
            subscribers: HashMap::new(),
        }
    }

    fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// The kept messages with ids above `after`, oldest first.
    fn newer_than(&self, after: u64) -> Vec<Arc<Published>> {
        let start = self.history.partition_point(|message| message.id <= after);
        self.history.range(start..).cloned().collect()
    }
}

/// All topics of all apps.
#[derive(Default)]
pub(crate) struct Broker {
    topics: Mutex<HashMap<TopicKey, Topic>>,
}

impl Broker {
    /// An empty broker.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Broker::default())
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<TopicKey, Topic>> {
        // A panic while holding the lock cannot leave a topic half-updated
        // in a way that matters more than stopping all pub/sub would.
        self.topics
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Publish `payload` and return its id. `history` is how many messages
    /// the topic keeps (set when the topic is first used).
    pub(crate) fn publish(&self, key: &TopicKey, payload: Bytes, history: usize) -> u64 {
        let mut topics = self.topics();
        let topic = topics
            .entry(key.clone())
            .or_insert_with(|| Topic::new(history));
        let id = topic.next_id;
        topic.next_id += 1;
        let message = Arc::new(Published { id, payload });
        if topic.history.len() == topic.capacity {
            topic.history.pop_front();
        }
        topic.history.push_back(message.clone());
        topic.latest.send_replace(id);
        if !topic.subscribers.is_empty() {
            let frames = Frames::new(&message);
            for subscription in topic.subscribers.values() {
                subscription
                    .subscriber
                    .deliver(frames.get(subscription.with_id));
            }
        }
        id
    }

    /// Messages with ids above `after` (default: the latest), waiting up to
    /// `timeout` for the first; empty when the time runs out.
    pub(crate) async fn wait(
        &self,
        key: &TopicKey,
        after: Option<u64>,
        timeout: Duration,
        history: usize,
    ) -> Vec<Arc<Published>> {
        let (after, mut latest) = {
            let mut topics = self.topics();
            let topic = topics
                .entry(key.clone())
                .or_insert_with(|| Topic::new(history));
            let after = after.unwrap_or(topic.last_id());
            let newer = topic.newer_than(after);
            if !newer.is_empty() {
                return newer;
            }
            (after, topic.latest.subscribe())
        };
        let deadline = tokio::time::sleep(timeout);
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                changed = latest.changed() => {
                    if changed.is_err() {
                        return Vec::new();
                    }
                    let newer = self
                        .topics()
                        .get(key)
                        .map(|topic| topic.newer_than(after))
                        .unwrap_or_default();
                    if !newer.is_empty() {
                        return newer;
                    }
                }
                () = &mut deadline => return Vec::new(),
            }
        }
    }

    /// Feed `topic`'s messages to `subscriber` (known by `id`) from now on.
    pub(crate) fn subscribe(
        &self,
        key: &TopicKey,
        id: u64,
        subscriber: Arc<dyn Subscriber>,
        with_id: bool,
        history: usize,
    ) {
        self.topics()
            .entry(key.clone())
            .or_insert_with(|| Topic::new(history))
            .subscribers
            .insert(
                id,
                Subscription {
                    subscriber,
                    with_id,
                },
            );
    }

    /// Stop feeding `key` to the subscriber `id`.
    pub(crate) fn unsubscribe(&self, key: &TopicKey, id: u64) {
        if let Some(topic) = self.topics().get_mut(key) {
            topic.subscribers.remove(&id);
        }
    }
}

/// The frames one message becomes, built once however many subscribers.
struct Frames {
    raw: Frame,
    with_id: Frame,
}

impl Frames {
    fn new(message: &Published) -> Self {
        let raw = payload_frame(message.payload.clone());
        let with_id = with_id(message).map_or_else(|| raw.clone(), payload_frame);
        Frames { raw, with_id }
    }

    fn get(&self, with_id: bool) -> Frame {
        if with_id {
            self.with_id.clone()
        } else {
            self.raw.clone()
        }
    }
}

/// Text if the payload is UTF-8, binary otherwise.
fn payload_frame(payload: Bytes) -> Frame {
    match Utf8Bytes::try_from(payload.clone()) {
        Ok(text) => Frame::Text(text),
        Err(_) => Frame::Binary(payload),
    }
}

/// A JSON object payload with the message's `"id"` added; `None` for
/// anything else.
fn with_id(message: &Published) -> Option<Bytes> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&message.payload).ok()?;
    object.insert("id".to_owned(), message.id.into());
    serde_json::to_vec(&object).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str) -> TopicKey {
        TopicKey::new(&Arc::from("app"), topic)
    }

    #[tokio::test]
    async fn ids_increase_and_history_is_bounded() {
        let broker = Broker::new();
        for n in 1..=5u64 {
            assert_eq!(broker.publish(&key("t"), Bytes::from(n.to_string()), 3), n);
        }
        let kept = broker.wait(&key("t"), Some(0), Duration::ZERO, 3).await;
        let ids: Vec<u64> = kept.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        let newer = broker.wait(&key("t"), Some(4), Duration::ZERO, 3).await;
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].payload, "5");
    }

    #[tokio::test]
    async fn waiters_wake_on_publish_and_time_out_otherwise() {
        let broker = Broker::new();
        let empty = broker
            .wait(&key("t"), None, Duration::from_millis(20), 10)
            .await;
        assert!(empty.is_empty());
        let waiter = {
            let broker = broker.clone();
            tokio::spawn(async move {
                broker
                    .wait(&key("t"), None, Duration::from_secs(10), 10)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        broker.publish(&key("t"), Bytes::from_static(b"hi"), 10);
        let woken = waiter.await.expect("the waiter finishes");
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].payload, "hi");
    }

    #[test]
    fn topics_of_different_apps_are_separate() {
        let broker = Broker::new();
        let a = TopicKey::new(&Arc::from("a"), "chat");
        let b = TopicKey::new(&Arc::from("b"), "chat");
        assert_eq!(broker.publish(&a, Bytes::new(), 10), 1);
        assert_eq!(broker.publish(&a, Bytes::new(), 10), 2);
        assert_eq!(broker.publish(&b, Bytes::new(), 10), 1);
    }

    #[test]
    fn json_objects_gain_their_id() {
        let message = Published {
            id: 7,
            payload: Bytes::from_static(br#"{"body":"hi"}"#),
        };
        let frames = Frames::new(&message);
        assert_eq!(frames.get(false), Frame::Text(r#"{"body":"hi"}"#.into()));
        let Frame::Text(text) = frames.get(true) else {
            panic!("a text frame")
        };
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["id"], 7);
        assert_eq!(value["body"], "hi");
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
        let inbox = Arc::new(Inbox::default());
        broker.subscribe(&key("t"), 1, inbox.clone(), false, 10);
        broker.publish(&key("t"), Bytes::from_static(b"one"), 10);
        broker.publish(&key("other"), Bytes::from_static(b"not mine"), 10);
        broker.unsubscribe(&key("t"), 1);
        broker.publish(&key("t"), Bytes::from_static(b"two"), 10);
        let frames = inbox.0.lock().expect("not poisoned").clone();
        assert_eq!(frames, vec![Frame::Text("one".into())]);
    }

    #[test]
    fn binary_payloads_become_binary_frames() {
        let message = Published {
            id: 1,
            payload: Bytes::from_static(&[0xff, 0x00]),
        };
        let frames = Frames::new(&message);
        assert!(matches!(frames.get(false), Frame::Binary(_)));
        assert!(
            matches!(frames.get(true), Frame::Binary(_)),
            "not JSON: sent as it is"
        );
    }

    #[test]
    fn non_object_json_keeps_its_payload() {
        let message = Published {
            id: 3,
            payload: Bytes::from_static(b"[1,2]"),
        };
        assert_eq!(Frames::new(&message).get(true), Frame::Text("[1,2]".into()));
    }

    #[tokio::test]
    async fn a_cursor_older_than_the_history_gets_what_is_kept() {
        let broker = Broker::new();
        for _ in 0..10 {
            broker.publish(&key("t"), Bytes::new(), 4);
        }
        let kept = broker.wait(&key("t"), Some(1), Duration::ZERO, 4).await;
        let ids: Vec<u64> = kept.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![7, 8, 9, 10]);
    }
}
