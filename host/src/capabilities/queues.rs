//! `squall:app/queues`: messages to the app's own consumers' queues, kept
//! in a store per queue ([`JobStore`]) under `queue_max_messages` and
//! `queue_max_payload`; their dead letters read and forgotten. A queue no
//! manifest consumer reads is denied before any key is named.

use super::{Grants, GuestState, grants_of};
use crate::bindings::queues::{DeadLetter as WitDeadLetter, Host, HostWithStore, QueueError};
use crate::config::ConsumerConfig;
use crate::dead_letters::DeadLetters;
use crate::job_store::{JobRecord, JobStore, is_job_id, new_job_id};
use crate::kv::{KvBackend, KvFailure};
use crate::limit_log::Limit;
use std::sync::Arc;
use tokio::sync::Notify;
use wasmtime::component::{Accessor, HasSelf};

/// Messages one `send-batch` may carry, and letters one read may list.
const MAX_PER_CALL: usize = 100;

impl Host for GuestState {}

type Answer<T> = wasmtime::Result<Result<T, QueueError>>;

/// One queue of an app: its messages, its dead letters, how it is read.
pub(crate) struct QueueGrant {
    pub(crate) consumer: ConsumerConfig,
    pub(crate) messages: Arc<JobStore>,
    pub(crate) dead: Arc<DeadLetters>,
}

/// An app's queues, one per manifest consumer.
pub(crate) struct QueueGrants {
    pub(crate) queues: Vec<QueueGrant>,
    max_messages: u64,
    max_payload: u64,
    /// Woken when a message is sent, so the runner looks again.
    sent: Arc<Notify>,
}

impl QueueGrants {
    /// The queues `consumers` read, kept in `backend` under the app's limits.
    pub(crate) fn new(
        backend: &Arc<dyn KvBackend>,
        app: &str,
        consumers: &[ConsumerConfig],
        (max_messages, max_payload): (u64, u64),
        sent: Arc<Notify>,
    ) -> QueueGrants {
        let queues = consumers
            .iter()
            .map(|consumer| QueueGrant {
                consumer: consumer.clone(),
                messages: Arc::new(JobStore::for_queue(
                    backend.clone(),
                    app,
                    &consumer.queue,
                    max_messages,
                    max_payload,
                )),
                dead: Arc::new(DeadLetters::new(
                    backend.clone(),
                    app,
                    &consumer.queue,
                    max_messages,
                    max_payload,
                )),
            })
            .collect();
        QueueGrants {
            queues,
            max_messages,
            max_payload,
            sent,
        }
    }
}

impl Grants {
    fn queue(&self, name: &str) -> Result<&QueueGrant, QueueError> {
        let found = self.queues.as_ref().and_then(|grants| {
            grants
                .queues
                .iter()
                .find(|queue| queue.consumer.queue == name)
        });
        found.ok_or_else(|| {
            QueueError::Denied(format!(
                "no [[app.{}.consumer]] reads the queue {:?}",
                self.app,
                name.chars().take(64).collect::<String>()
            ))
        })
    }

    fn queue_failure(&self, failure: KvFailure) -> QueueError {
        match failure {
            KvFailure::Quota(_) => {
                let most = self.queues.as_ref().map_or(0, |grants| grants.max_messages);
                let why = format!("the queue holds {most} messages (queue_max_messages)");
                self.hits.hit(Limit::Jobs, &why);
                QueueError::Quota(why)
            }
            KvFailure::Invalid(why) => QueueError::Invalid(why),
            KvFailure::TooLarge(most) => {
                let why =
                    format!("the letters asked for are over the {most} bytes this call may return");
                self.hits.hit(Limit::CallBytes, &why);
                QueueError::TooLarge(why)
            }
            KvFailure::Unavailable(why) => {
                tracing::warn!(app = %self.app, %why, "queues unavailable");
                QueueError::Unavailable(why)
            }
        }
    }

    fn queue_call_place(&self) -> Result<tokio::sync::OwnedSemaphorePermit, QueueError> {
        self.background_call_place().map_err(QueueError::Quota)
    }

    /// Send `payloads` to `queue`, all or none: their ids.
    async fn send_all(
        &self,
        queue: String,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<String>, QueueError> {
        let found = self.queue(&queue)?;
        let max_payload = self.queues.as_ref().map_or(0, |grants| grants.max_payload);
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        if payloads.len() > MAX_PER_CALL {
            return Err(QueueError::TooLarge(format!(
                "{} messages in one batch, over {MAX_PER_CALL}",
                payloads.len()
            )));
        }
        if let Some(large) = payloads
            .iter()
            .find(|payload| payload.len() as u64 > max_payload)
        {
            let why = format!(
                "a message of {} bytes is over the app's queue_max_payload of {max_payload}",
                large.len()
            );
            self.hits.hit(Limit::Jobs, &why);
            return Err(QueueError::TooLarge(why));
        }
        let _place = self.queue_call_place()?;
        let carried = payloads.iter().map(|payload| payload.len() as u64).sum();
        let _held = self
            .call_bytes
            .try_hold(carried, u64::MAX)
            .map_err(|refused| QueueError::TooLarge(self.over_budget(&refused)))?;
        let now = crate::kv::now_ms();
        let mut messages = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let id = new_job_id().map_err(|failure| self.queue_failure(failure))?;
            let record = JobRecord {
                due_ms: now,
                attempt: 0,
                leased: false,
                name: queue.clone(),
                payload,
            };
            messages.push((id, record));
        }
        found
            .messages
            .add_all(&messages)
            .await
            .map_err(|failure| self.queue_failure(failure))?;
        crate::stats::queue_sent(&self.app, &queue, messages.len() as u64);
        if let Some(grants) = &self.queues {
            grants.sent.notify_one();
        }
        Ok(messages.into_iter().map(|(id, _)| id).collect())
    }

    async fn dead_letters(
        &self,
        queue: String,
        limit: u32,
        per_call: u64,
    ) -> Result<Vec<WitDeadLetter>, QueueError> {
        let found = self.queue(&queue)?;
        if limit == 0 {
            return Err(QueueError::Invalid("a limit of 0 lists nothing".into()));
        }
        let limit = limit.min(MAX_PER_CALL as u32);
        let _place = self.queue_call_place()?;
        let max_payload = self.queues.as_ref().map_or(0, |grants| grants.max_payload);
        // Held at the most the letters could be, before they are read.
        let most = u64::from(limit)
            .saturating_mul(DeadLetters::letter_bound(max_payload))
            .min(per_call);
        let mut held = self
            .call_bytes
            .hold(most, per_call)
            .await
            .map_err(|refused| QueueError::TooLarge(self.over_budget(&refused)))?;
        let letters = found
            .dead
            .list(limit, most)
            .await
            .map_err(|failure| self.queue_failure(failure))?;
        held.shrink_to(
            letters
                .iter()
                .map(|letter| letter.payload.len() as u64)
                .sum(),
        );
        Ok(letters
            .into_iter()
            .map(|letter| WitDeadLetter {
                id: letter.id,
                payload: letter.payload,
                attempts: letter.attempts,
                error: letter.error,
            })
            .collect())
    }

    async fn forget_dead_letter(&self, queue: String, id: String) -> Result<bool, QueueError> {
        let found = self.queue(&queue)?;
        if !is_job_id(&id) {
            return Ok(false);
        }
        let _place = self.queue_call_place()?;
        found
            .dead
            .forget(&id)
            .await
            .map_err(|failure| self.queue_failure(failure))
    }
}

/// What one call may hand its guest at most (see [`crate::budget`]).
fn per_call(accessor: &Accessor<GuestState, HasSelf<GuestState>>) -> u64 {
    accessor.with(|mut access| {
        let state = access.get();
        let limit = state.memory_limit();
        state.host().grants().call_bytes.per_call(limit)
    })
}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn send(
        accessor: &Accessor<GuestState, Self>,
        queue: String,
        payload: Vec<u8>,
    ) -> Answer<String> {
        let grants = grants_of(accessor);
        Ok(async {
            let mut ids = grants.send_all(queue, vec![payload]).await?;
            ids.pop()
                .ok_or_else(|| QueueError::Unavailable("the store kept nothing".into()))
        }
        .await)
    }

    async fn send_batch(
        accessor: &Accessor<GuestState, Self>,
        queue: String,
        payloads: Vec<Vec<u8>>,
    ) -> Answer<Vec<String>> {
        let grants = grants_of(accessor);
        Ok(grants.send_all(queue, payloads).await)
    }

    async fn dead_letters(
        accessor: &Accessor<GuestState, Self>,
        queue: String,
        limit: u32,
    ) -> Answer<Vec<WitDeadLetter>> {
        let grants = grants_of(accessor);
        let per_call = per_call(accessor);
        Ok(grants.dead_letters(queue, limit, per_call).await)
    }

    async fn forget_dead_letter(
        accessor: &Accessor<GuestState, Self>,
        queue: String,
        id: String,
    ) -> Answer<bool> {
        let grants = grants_of(accessor);
        Ok(grants.forget_dead_letter(queue, id).await)
    }
}
