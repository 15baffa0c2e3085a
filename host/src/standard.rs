//! Serving standard `wasi:http` components — the WASI 0.2 proxy world and
//! the WASI 0.3 service world, built for `wasmtime serve` or Spin — with the
//! same routing, limits and logs as Squall's own apps (Tornado's
//! `WSGIContainer`, applied to wasm). wasmtime-wasi-http does the
//! translation; each request still gets a fresh instance.

use crate::body::{OutgoingBody, discard_in_background};
use crate::dispatch::{Stopped, error_response, failure_status, until_answer};
use crate::runtime::{Guest, SharedApp, State};
use futures::channel::oneshot;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::time::error::Elapsed;
use wasmtime::AsContextMut;
use wasmtime_wasi_http::handler::Prepared;
use wasmtime_wasi_http::{Error as HttpError, WasiHttpView};

type Answer = Result<Response<wasmtime_wasi_http::WasiBody>, wasmtime::Error>;

/// Run `request` through a fresh instance of the standard component `app`.
pub async fn run(app: SharedApp, request: Request<Incoming>) -> Response<OutgoingBody> {
    let limits = app.limits().clone();
    let (mut parts, body) = request.into_parts();
    if body.size_hint().lower() > limits.max_body {
        discard_in_background(body);
        return error_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    parts.uri = absolute_uri(&parts);
    let max_body = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
    let body = http_body_util::Limited::new(body, max_body)
        .map_err(|err| match err.downcast::<hyper::Error>() {
            Ok(hyper) => HttpError::Hyper(*hyper),
            Err(_) => HttpError::HttpRequestBodySize(None),
        })
        .boxed_unsync();
    let request = Request::from_parts(parts, body);

    let (answer, guest) = until_answer(limits.timeout, |answer| serve(app, request, answer)).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(stopped) => return error_response(status_for(stopped)),
    };
    let response = match answer {
        Ok(response) => response,
        Err(err) => {
            tracing::error!("the component gave no response: {err:#}");
            return error_response(failure_status(&err));
        }
    };
    // The store lives on in the body while it streams; dropping the body
    // (done, or the client gone) drops the store.
    let guest = guest.map(|guest| {
        Box::pin(async move {
            if let Ok(Err(err)) = guest.await {
                tracing::warn!("the component failed while streaming its body: {err:#}");
            }
        }) as std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    });
    response.map(|body| OutgoingBody::Wasi { body, guest })
}

/// Instantiate, hand the request to the component, and keep its store
/// running: a WASI 0.3 body is produced by the guest as it is read.
async fn serve(
    app: SharedApp,
    request: Request<wasmtime_wasi_http::WasiBody>,
    answer: oneshot::Sender<Answer>,
) -> wasmtime::Result<()> {
    let Guest::Standard(pre) = app.guest() else {
        return Err(wasmtime::Error::msg("not a standard wasi:http component"));
    };
    let mut store = app.new_store();
    let proxy = pre.instantiate_async(&mut store).await?;
    let prepared = Prepared::new(
        store.as_context_mut(),
        &proxy,
        request,
        <State as WasiHttpView>::http,
        answer,
    )?;
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            prepared.run(accessor, std::future::pending()).await?;
            std::future::pending::<()>().await;
            Ok(())
        })
        .await?
}

fn status_for(finished: Stopped) -> StatusCode {
    match finished {
        Err(Elapsed { .. }) => {
            tracing::warn!("the request hit its timeout");
            StatusCode::GATEWAY_TIMEOUT
        }
        Ok(Ok(())) => StatusCode::INTERNAL_SERVER_ERROR,
        Ok(Err(err)) => failure_status(&err),
    }
}

/// The request's URI with scheme and authority, as wasi:http expects.
fn absolute_uri(parts: &http::request::Parts) -> Uri {
    if parts.uri.authority().is_some() {
        return parts.uri.clone();
    }
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<Authority>().ok())
        .unwrap_or_else(|| Authority::from_static("localhost"));
    let mut uri = parts.uri.clone().into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority);
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(uri).unwrap_or_else(|_| parts.uri.clone())
}
