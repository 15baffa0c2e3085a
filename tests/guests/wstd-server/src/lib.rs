//! A server written with `wstd` (0.6.8), the async standard library for
//! WASI 0.2 components: a greeting, headers echoed back, a body streamed
//! with timers between its chunks, and a body that fails part way.

use futures_lite::stream;
use wstd::http::body::{Body, Bytes};
use wstd::http::{Error, Request, Response, StatusCode};
use wstd::time::Duration;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/" => Ok(Response::builder()
            .header("content-type", "text/plain")
            .header("x-served-by", "wstd")
            .body("Hello from wstd!".into())?),
        "/headers" => {
            let greeting = request
                .headers()
                .get("x-greeting")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            Ok(Response::new(format!("x-greeting: {greeting}").into()))
        }
        "/stream" => {
            let chunks = stream::unfold(0u32, |i| async move {
                if i == 4 {
                    return None;
                }
                wstd::task::sleep(Duration::from_millis(20)).await;
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(format!("part {i}\n"))),
                    i + 1,
                ))
            });
            Ok(Response::new(Body::from_try_stream(chunks)))
        }
        "/fail-body" => {
            // One chunk, a pause, then an error: the client must see a
            // broken body, not a complete one.
            let chunks = stream::unfold(0u32, |i| async move {
                match i {
                    0 => Some((Ok(Bytes::from_static(b"first part; ")), 1)),
                    1 => {
                        wstd::task::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("the body failed part way")), 2))
                    }
                    _ => None,
                }
            });
            Ok(Response::new(Body::from_try_stream(chunks)))
        }
        "/fail-body-at-once" => {
            // The error comes before anything is sent.
            let chunks = stream::iter([Err::<Bytes, _>(std::io::Error::other("no body at all"))]);
            Ok(Response::new(Body::from_try_stream(chunks)))
        }
        "/fail" => Err(anyhow::anyhow!("the handler failed")),
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())?),
    }
}
