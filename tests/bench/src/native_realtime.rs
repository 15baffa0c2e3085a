//! The realtime baseline: what a hand-written tokio + hyper +
//! tokio-tungstenite server does for the `sockets` test guest's routes,
//! with the same small WebSocket buffers Squall uses. `/echo` echoes,
//! `/count` subscribes to the news, `POST /publish/news` broadcasts (and
//! answers the message's id), `POST /wait/news?after=N&ms=T` long-polls.

use crate::native::{self, NativeArgs, Response};
use anyhow::Result;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The news topic: its feed for sockets, and its last message for polls.
struct News {
    feed: broadcast::Sender<Utf8Bytes>,
    latest: watch::Sender<(u64, Bytes)>,
    publishing: Mutex<()>,
}

pub(crate) fn run(args: &NativeArgs) -> Result<()> {
    let news = Arc::new(News {
        feed: broadcast::channel(16).0,
        latest: watch::channel((0, Bytes::new())).0,
        publishing: Mutex::new(()),
    });
    native::serve(args.listen, move |request| handle(news.clone(), request))
}

async fn handle(
    news: Arc<News>,
    mut request: http::Request<Incoming>,
) -> Result<Response, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some(key) = request.headers().get("sec-websocket-key") {
        let accept = derive_accept_key(key.as_bytes());
        let subscribe = path == "/count";
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                socket(news, upgraded, subscribe).await;
            }
        });
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        if let Ok(accept) = http::HeaderValue::from_str(&accept) {
            headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        return Ok(response);
    }
    if path == "/publish/news" {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        let id = {
            let _one_at_a_time = news.publishing.lock();
            let id = news.latest.borrow().0 + 1;
            news.latest.send_replace((id, body.clone()));
            id
        };
        if let Ok(text) = Utf8Bytes::try_from(body) {
            let _ = news.feed.send(text);
        }
        return Ok(http::Response::new(Full::new(Bytes::from(id.to_string()))));
    }
    if path == "/wait/news" {
        let query = request.uri().query().unwrap_or_default().to_owned();
        let field = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .and_then(|n| n.parse::<u64>().ok())
        };
        let after = field("after").unwrap_or(0);
        let wait = Duration::from_millis(field("ms").unwrap_or(30_000));
        let mut latest = news.latest.subscribe();
        let woken = tokio::time::timeout(wait, latest.wait_for(|(id, _)| *id > after)).await;
        let body = match woken {
            Ok(Ok(message)) => message.1.clone(),
            _ => Bytes::new(),
        };
        return Ok(http::Response::new(Full::new(body)));
    }
    Ok(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// Echo what arrives; on `/count`, also send every published message.
async fn socket(news: Arc<News>, upgraded: hyper::upgrade::Upgraded, subscribe: bool) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .write_buffer_size(4 << 10)
        .max_write_buffer_size(64 << 10);
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (mut sink, mut stream) = socket.split();
    let mut feed = subscribe.then(|| news.feed.subscribe());
    loop {
        tokio::select! {
            published = async { feed.as_mut()?.recv().await.ok() }, if feed.is_some() => {
                match published {
                    Some(text) => {
                        if sink.send(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                    None => feed = None,
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}
