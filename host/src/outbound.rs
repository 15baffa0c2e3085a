//! The pooled outbound HTTP client every app's requests go through
//! (HTTP/1.1 and HTTP/2, HTTPS through rustls with the web's roots), and
//! what its failures mean. The capabilities that send requests sit above it
//! and check each request against the app's allow-list first.

use crate::body::OutgoingBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The pooled client every app's fetches go through.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, OutgoingBody>;

/// How long a TCP (and TLS) connection may take to establish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Build the shared client.
pub(crate) fn new_client() -> anyhow::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(https))
}

/// Why the pooled client could not deliver a request, with the whole chain
/// of causes as its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// The TLS handshake failed.
    Tls(String),
    /// Connecting or reading timed out.
    Timeout,
    /// No connection: DNS failure, refused, reset or unreachable.
    Connect(String),
    /// The peer broke the protocol.
    Protocol(String),
}

impl SendFailure {
    /// Diagnose a failed pooled request.
    pub(crate) fn of(err: &hyper_util::client::legacy::Error) -> SendFailure {
        let message = error_chain(err);
        let mut link: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(current) = link {
            if current.downcast_ref::<rustls::Error>().is_some() {
                return SendFailure::Tls(message);
            }
            link = match current.downcast_ref::<std::io::Error>() {
                Some(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    return SendFailure::Timeout;
                }
                // An io::Error's `source` skips the error it wraps: step into it.
                Some(io) => match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => current.source(),
                },
                None => current.source(),
            };
        }
        if err.is_connect() {
            SendFailure::Connect(message)
        } else {
            SendFailure::Protocol(message)
        }
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let client = new_client().expect("client");
        let request = http::Request::get(format!("http://{address}/"))
            .body(OutgoingBody::empty())
            .expect("request");
        let err = client.request(request).await.expect_err("nothing listens");
        assert!(
            matches!(SendFailure::of(&err), SendFailure::Connect(why) if why.contains("onnect")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn tls_to_a_plain_port_is_a_tls_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let client = new_client().expect("client");
        let request = http::Request::get(format!("https://{address}/"))
            .body(OutgoingBody::empty())
            .expect("request");
        let err = client.request(request).await.expect_err("not TLS");
        assert!(
            matches!(SendFailure::of(&err), SendFailure::Tls(_)),
            "{err:?}"
        );
    }
}
