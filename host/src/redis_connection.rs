//! A connection to Redis made on first use by a task of its own (the
//! store and pub/sub each keep one per host).
//!
//! A guest's synchronous host call holds its whole instance while it
//! waits. Were the connection made inside the first caller's future, a
//! synchronous call of the same instance waiting for it would wait for a
//! future that instance can no longer poll, until its deadline. Work that
//! several callers wait for is done by a spawned task, so a caller only
//! ever waits for the task, never for another caller.

use futures::future::{BoxFuture, FutureExt, Shared};
use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long a call waits for Redis before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take, at start and when Redis comes back.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Work done once, in a task of its own, for whoever asks while it runs.
pub(crate) type SpawnedOnce<T> = Shared<BoxFuture<'static, Result<T, String>>>;

/// Start `work` in a task of its own; every clone of the result waits for it.
pub(crate) fn spawn_once<T, W>(work: W) -> SpawnedOnce<T>
where
    T: Clone + Send + Sync + 'static,
    W: Future<Output = Result<T, String>> + Send + 'static,
{
    let task = tokio::spawn(work);
    async move { task.await.unwrap_or_else(|err| Err(err.to_string())) }
        .boxed()
        .shared()
}

/// A connection manager, made on first use (made again if that failed);
/// once made, it reconnects by itself when Redis comes back.
pub(crate) struct LazyConnection {
    client: redis::Client,
    making: Mutex<Option<SpawnedOnce<ConnectionManager>>>,
}

impl LazyConnection {
    pub(crate) fn new(client: redis::Client) -> LazyConnection {
        LazyConnection {
            client,
            making: Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self) -> Result<ConnectionManager, String> {
        let making = {
            let mut making = self.making.lock().unwrap_or_else(PoisonError::into_inner);
            match making.as_ref().map(|started| (started, started.peek())) {
                Some((_, Some(Ok(made)))) => return Ok(made.clone()),
                Some((started, None)) => started.clone(),
                // None started yet, or the last try failed: try (again).
                _ => {
                    let config = ConnectionManagerConfig::new()
                        .set_response_timeout(Some(RESPONSE_TIMEOUT))
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_number_of_retries(2);
                    let client = self.client.clone();
                    let started = spawn_once(async move {
                        ConnectionManager::new_with_config(client, config)
                            .await
                            .map_err(|err| err.to_string())
                    });
                    *making = Some(started.clone());
                    started
                }
            }
        };
        making.await
    }
}

/// A connection not shared with other calls (for a blocking read, which
/// would hold them up), with the same timeouts, named `name` in Redis's
/// `CLIENT LIST` (what an operator, or a test, sees of it).
pub(crate) async fn connection_of_its_own(
    client: &redis::Client,
    name: &str,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async::<()>(&mut connection)
        .await?;
    Ok(connection)
}
