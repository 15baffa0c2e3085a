//! `squall:app/pubsub`: publish, and wait for messages (long polling).

use super::{Grants, GuestState, grants_of};
use crate::bindings::pubsub::{Host, HostWithStore, Message, PubsubError};
use crate::broker::{MAX_PAYLOAD, Published, TopicKey};
use crate::limit_log::Limit;
use crate::relay::Relay;
use bytes::Bytes;
use std::time::Duration;
use wasmtime::component::{Accessor, HasSelf};

/// The topic's key if the app was granted it.
pub(super) fn granted(grants: &Grants, topic: &str) -> Result<TopicKey, PubsubError> {
    if grants.topics.allows(topic) {
        Ok(TopicKey::new(&grants.app, topic))
    } else {
        tracing::info!(
            topic,
            "pubsub denied: the topic is not in the app's pubsub list"
        );
        Err(PubsubError::Denied(format!(
            "topic {topic:?} is not in this app's pubsub list"
        )))
    }
}

impl Host for GuestState {
    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, PubsubError>> {
        let grants = self.host().grants().clone();
        let key = match granted(&grants, &topic) {
            Ok(key) => key,
            Err(err) => return Ok(Err(err)),
        };
        if payload.len() > MAX_PAYLOAD {
            return Ok(Err(PubsubError::Invalid(format!(
                "the payload is over {MAX_PAYLOAD} bytes"
            ))));
        }
        let published = match grants.shared.relay() {
            None => grants
                .shared
                .broker
                .publish(&key, Bytes::from(payload), &grants.topic_fence)
                .map_err(|refused| grants.refused(refused)),
            Some(relay) => publish_everywhere(&grants, relay, &key, &payload).await,
        };
        if published.is_ok() {
            crate::stats::publish(&grants.app);
        }
        Ok(published)
    }
}

/// Publish through Redis, for every host: the topic counts against the
/// app's fence here and is followed, so its subscribers and waiters on
/// this host get the message (with the id Redis gave it) as others do.
async fn publish_everywhere(
    grants: &Grants,
    relay: &Relay,
    key: &TopicKey,
    payload: &[u8],
) -> Result<u64, PubsubError> {
    let fence = &grants.topic_fence;
    grants
        .shared
        .broker
        .open_topic(key, fence)
        .map_err(|refused| grants.refused(refused))?;
    relay
        .follow(key, fence)
        .await
        .map_err(PubsubError::Unavailable)?;
    let budget = fence.max_bytes();
    match relay.publish(key, payload, fence.history(), budget).await {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(grants.refused(crate::broker::TopicRefused::HistoryFull(budget))),
        Err(why) => Err(PubsubError::Unavailable(why)),
    }
}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn wait(
        accessor: &Accessor<GuestState, Self>,
        topic: String,
        after: Option<u64>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<Message>, PubsubError>> {
        let grants = grants_of(accessor);
        let memory_limit = accessor.with(|mut access| access.get().memory_limit());
        let key = match granted(&grants, &topic) {
            Ok(key) => key,
            Err(err) => return Ok(Err(err)),
        };
        // Across hosts: the topic's history caught up, then followed.
        if let Some(relay) = grants.shared.relay()
            && let Err(why) = relay.follow(&key, &grants.topic_fence).await
        {
            return Ok(Err(PubsubError::Unavailable(why)));
        }
        // Cancelled with the store when the client goes away.
        let waited = grants
            .shared
            .broker
            .wait(
                &key,
                after,
                Duration::from_millis(u64::from(timeout_ms)),
                &grants.topic_fence,
            )
            .await;
        let mut messages = match waited {
            Ok(messages) => messages,
            Err(refused) => return Ok(Err(grants.refused(refused))),
        };
        // As many as the guest can take in one answer (the rest wait for
        // its next call, after the last id it got), held before copied.
        let per_call = grants.call_bytes.per_call(memory_limit);
        let size = |message: &Published| (message.payload.len() + topic.len() + 16) as u64;
        let mut total = 0u64;
        let fits = messages
            .iter()
            .take_while(|message| {
                total = total.saturating_add(size(message));
                total <= per_call
            })
            .count();
        if let Some(first) = messages.first()
            && fits == 0
        {
            let why = format!(
                "the next message is {} bytes, over the {per_call} this call may take",
                size(first)
            );
            grants.hits.hit(Limit::CallBytes, &why);
            return Ok(Err(PubsubError::Limit(why)));
        }
        messages.truncate(fits);
        let held = grants
            .call_bytes
            .hold(messages.iter().map(|message| size(message)).sum(), per_call)
            .await;
        let _held = match held {
            Ok(held) => held,
            Err(refused) => return Ok(Err(PubsubError::Limit(grants.over_budget(&refused)))),
        };
        Ok(Ok(messages
            .iter()
            .map(|message| Message {
                id: message.id,
                topic: topic.clone(),
                payload: message.payload.to_vec(),
            })
            .collect()))
    }
}
