//! The pooled outbound HTTP client of each app (HTTP/1.1 and HTTP/2, HTTPS
//! through rustls with the web's roots), and what its failures mean. The
//! capabilities that send requests sit above it and check each request's
//! URL against the app's allow-list first; the client's resolver then
//! checks where the name really goes: an internal address (loopback,
//! private, link-local, ...) is refused unless a rule names it for the
//! port asked for.

use crate::body::OutgoingBody;
use crate::policy::OutboundPolicy;
use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// An app's pooled client: its connections are its own, resolved under its
/// policy.
pub(crate) type HttpClient = Client<HttpsConnector<CheckedConnector>, OutgoingBody>;

/// How long a TCP (and TLS) connection may take to establish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest response head a fetch takes (HTTP/1.1 read buffer, HTTP/2
/// header list), and the most headers.
const MAX_RESPONSE_HEAD: usize = 64 << 10;
const MAX_RESPONSE_HEADERS: usize = 200;

/// Build the client of an app whose allow-list is `policy`, its name
/// lookups within `lookups`.
pub(crate) fn new_client(
    policy: &OutboundPolicy,
    lookups: Arc<Semaphore>,
) -> anyhow::Result<HttpClient> {
    let checked = CheckedConnector {
        policy: Arc::new(policy.clone()),
        lookups,
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(checked);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        // A response head from anywhere is bounded as a request's is
        // (hyper's HTTP/2 default would take 16 MiB of headers).
        .http1_max_buf_size(MAX_RESPONSE_HEAD)
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http2_max_header_list_size(MAX_RESPONSE_HEAD as u32)
        .build(https))
}

/// Connects an app's requests: looks the name up (bounded, see
/// [`crate::dns`]), keeps only the addresses the app's policy allows for
/// the URL's port, and connects to those. (An IP literal in a URL is not
/// looked up: the allow-list already had to name it with its port.)
#[derive(Clone)]
pub(crate) struct CheckedConnector {
    policy: Arc<OutboundPolicy>,
    lookups: Arc<Semaphore>,
}

/// A name resolved only to addresses the app may not reach.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves to {address}, an internal address no outbound rule names for port {port}")]
pub(crate) struct InternalAddress {
    name: String,
    address: std::net::IpAddr,
    port: u16,
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<TcpStream>>> + Send>>;

impl tower_service::Service<Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let (policy, lookups) = (self.policy.clone(), self.lookups.clone());
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let addresses = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => allowed_addresses(&policy, &lookups, host, port).await?,
            };
            let mut http = HttpConnector::new_with_resolver(Resolved(addresses));
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            http.call(uri).await.map_err(std::io::Error::other)
        })
    }
}

/// The addresses `host:port` resolves to that `policy` lets the app reach.
async fn allowed_addresses(
    policy: &OutboundPolicy,
    lookups: &Arc<Semaphore>,
    host: String,
    port: u16,
) -> std::io::Result<Vec<SocketAddr>> {
    let resolved =
        crate::dns::lookup(lookups, &host, port)
            .await
            .map_err(|failure| match failure {
                crate::dns::LookupFailure::Timeout(_) => {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, failure)
                }
                crate::dns::LookupFailure::Failed(..) => std::io::Error::other(failure),
            })?;
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|address| {
            policy.allows_address(address.ip(), port, crate::policy::is_own(address.ip()))
        })
        .collect();
    match (allowed.is_empty(), resolved.first()) {
        (true, Some(refused)) => {
            tracing::info!(
                name = host,
                address = %refused.ip(),
                port,
                "fetch denied: the name resolves to an internal address"
            );
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                InternalAddress {
                    name: host,
                    address: refused.ip(),
                    port,
                },
            ))
        }
        _ => Ok(allowed),
    }
}

/// Addresses already looked up and checked, handed to hyper's connector.
#[derive(Clone)]
struct Resolved(Vec<SocketAddr>);

impl tower_service::Service<Name> for Resolved {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _name: Name) -> Self::Future {
        std::future::ready(Ok(self.0.clone().into_iter()))
    }
}

/// Why the pooled client could not deliver a request, with the whole chain
/// of causes as its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// The name resolves to an address the app may not reach.
    Denied(String),
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
            if let Some(internal) = current.downcast_ref::<InternalAddress>() {
                return SendFailure::Denied(internal.to_string());
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
    use crate::policy::is_own;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_machines_own_addresses_are_told_apart() {
        assert!(is_own("127.0.0.1".parse().expect("an address")));
        // TEST-NET-1 is never assigned to a machine.
        assert!(!is_own("192.0.2.1".parse().expect("an address")));
    }

    #[tokio::test]
    async fn a_name_that_resolves_inside_is_denied() {
        // `127.1` is not an IP literal to the URL, so it is resolved: to
        // 127.0.0.1, which no rule names.
        let policy = OutboundPolicy::new(vec![
            crate::policy::OutboundRule::parse("http://127.1:*").expect("rule"),
        ]);
        let client = new_client(&policy, crate::dns::app_lookups()).expect("client");
        let request = http::Request::get("http://127.1:9/")
            .body(OutgoingBody::empty())
            .expect("request");
        let err = client.request(request).await.expect_err("denied");
        assert!(
            matches!(SendFailure::of(&err), SendFailure::Denied(why) if why.contains("127.0.0.1")),
            "{err:?}"
        );
    }

    /// A server on a loopback port writing `reply` to every connection,
    /// once it has read what the client sent first.
    async fn answering(reply: &'static [u8]) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(reply).await;
            }
        });
        address
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

    #[tokio::test]
    async fn a_rule_naming_loopback_opens_only_its_own_port() {
        let (named, other) = (answering(OK).await, answering(OK).await);
        // A wildcard-port rule for a name that resolves to loopback, and a
        // rule naming loopback for one port: only that port is reachable.
        let policy = OutboundPolicy::new(vec![
            crate::policy::OutboundRule::parse("http://127.1:*").expect("rule"),
            crate::policy::OutboundRule::parse(&format!("http://localhost:{}", named.port()))
                .expect("rule"),
        ]);
        let client = new_client(&policy, crate::dns::app_lookups()).expect("client");
        let get = |port: u16| {
            http::Request::get(format!("http://127.1:{port}/"))
                .body(OutgoingBody::empty())
                .expect("request")
        };
        let reached = client.request(get(named.port())).await.expect("allowed");
        assert_eq!(reached.status(), 200);
        let err = client
            .request(get(other.port()))
            .await
            .expect_err("another loopback port");
        assert!(
            matches!(SendFailure::of(&err), SendFailure::Denied(why) if why.contains(&other.port().to_string())),
            "{err:?}"
        );
    }

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
        let policy = OutboundPolicy::new(vec![
            crate::policy::OutboundRule::parse("http://127.0.0.1:*").expect("rule"),
            crate::policy::OutboundRule::parse("https://127.0.0.1:*").expect("rule"),
        ]);
        let client = new_client(&policy, crate::dns::app_lookups()).expect("client");
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
        let address = answering(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        let policy = OutboundPolicy::new(vec![
            crate::policy::OutboundRule::parse("http://127.0.0.1:*").expect("rule"),
            crate::policy::OutboundRule::parse("https://127.0.0.1:*").expect("rule"),
        ]);
        let client = new_client(&policy, crate::dns::app_lookups()).expect("client");
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
