//! The executor for standard inbound `wasi:http` components — the WASI 0.2
//! proxy world and the WASI 0.3 service world, built for `wasmtime serve`
//! or Spin — with the same routing, limits and logs as Squall's own apps
//! (Tornado's `WSGIContainer`, applied to wasm). wasmtime-wasi-http does
//! the translation. Each request gets a fresh instance unless the app
//! reuses them (`reuse`); a WASI 0.3 component may also share one between
//! requests in flight (`reuse.concurrent`).

use super::concurrent::ServeConcurrently;
use super::error_response;
use crate::app::AppRef;
use crate::body::{DrivenGuest, InboundBody, OutgoingBody};
use crate::capabilities::GuestState;
use crate::error::{BoxError, HostError};
use crate::guest_call::{StandardCall, StandardHead};
use crate::reuse::Handler;
use crate::reuse::concurrent::ConcurrentInstances;
use crate::runtime::{finished, guest_tasks_done, until_answer};
use futures::channel::oneshot;
use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, header};
use http_body_util::{BodyExt, LengthLimitError};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::AsContextMut;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::{Error as HttpError, WasiHttpView};

type Answer = Result<Response<wasmtime_wasi_http::WasiBody>, wasmtime::Error>;

/// Run a request through the standard component `app`: on an instance
/// its requests in flight share, if `shared` (WASI 0.3 only), else a fresh
/// (or idle) one. `admitted` is its place among the app's requests in
/// flight, held until the component is done (its body too).
pub(super) async fn run(
    app: AppRef,
    mut parts: Parts,
    body: InboundBody,
    admitted: OwnedSemaphorePermit,
    shared: Option<Arc<ConcurrentInstances<StandardCall>>>,
) -> Response<OutgoingBody> {
    let limits = app.limits().clone();
    let name = app.name_label().clone();
    parts.uri = absolute_uri(&parts);
    let max_body = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
    let body = http_body_util::Limited::new(body, max_body)
        .map_err(|err| {
            if err.is::<LengthLimitError>() {
                HttpError::HttpRequestBodySize(None)
            } else {
                match err.downcast::<hyper::Error>() {
                    Ok(hyper) => HttpError::Hyper(*hyper),
                    Err(_) => HttpError::HttpProtocolError,
                }
            }
        })
        .boxed_unsync();
    let request = Request::from_parts(parts, body);
    if let Some(shared) = shared {
        return run_shared(app, shared, request, admitted).await;
    }

    let deadline = tokio::time::Instant::now() + limits.timeout;
    let (body_read, body_released) = oneshot::channel();
    let (answer, guest) = until_answer(limits.timeout, |answer| async move {
        let outcome = serve(app, request, answer, body_released).await;
        drop(admitted);
        outcome
    })
    .await;
    let response = match answer.and_then(|answer| answer.map_err(HostError::from_guest)) {
        Ok(response) => response,
        Err(failure) => return error_response(super::failed(&name, &failure)),
    };
    // The store lives on in the body while it streams; dropping the body
    // (done, or the client gone) or its deadline drops the store.
    let guest = guest.map(|guest| {
        let driven = Box::pin(async move {
            finished(guest.await).map_err(|failure| {
                tracing::warn!("the component failed after answering: {failure}");
                BoxError::from(failure.to_string())
            })
        });
        DrivenGuest::new(driven, deadline)
    });
    response.map(|body| OutgoingBody::driven(body, guest, body_read))
}

/// Run `request` on an instance of the WASI 0.3 component `app` shares
/// between requests in flight; the instance's task writes the body as the
/// client reads it, and the request's timeout cuts it.
async fn run_shared(
    app: AppRef,
    shared: Arc<ConcurrentInstances<StandardCall>>,
    request: Request<wasmtime_wasi_http::WasiBody>,
    admitted: OwnedSemaphorePermit,
) -> Response<OutgoingBody> {
    let name = app.name_label().clone();
    match super::concurrent::run(app, shared, request, admitted).await {
        Ok(head) => head
            .response
            .map(|body| OutgoingBody::cut_at(body, head.read, head.cut)),
        Err(failure) => error_response(super::failed(&name, &failure)),
    }
}

impl ServeConcurrently for StandardCall {
    /// Its answer, then the end of its body, which the guest writes as the
    /// client reads it. Ends (and so cuts the body) if dropped first, at
    /// the request's timeout.
    async fn serve<'a>(
        accessor: &'a Accessor<GuestState>,
        guest: &'a Handler,
        request: wasmtime_wasi_http::handler::Request,
        give: impl FnOnce(Result<StandardHead, HostError>) + Send + 'a,
    ) -> wasmtime::Result<()> {
        let Handler::Standard(proxy @ Proxy::P3(_)) = guest else {
            return Err(wasmtime::Error::msg(
                "a WASI 0.2 component cannot share an instance between requests",
            ));
        };
        let (respond, response) = oneshot::channel();
        let prepared = accessor.with(|mut store| {
            Prepared::new(
                store.as_context_mut(),
                proxy,
                request,
                <GuestState as WasiHttpView>::http,
                respond,
            )
        })?;
        prepared.run(accessor, std::future::pending()).await?;
        let response = match response.await {
            Ok(Ok(response)) => response,
            // An error the handler returned is this request's alone.
            // (wasmtime 48 raises a trap from `run_concurrent` itself;
            // should one come here, it still stops the instance.)
            Ok(Err(err)) if err.downcast_ref::<wasmtime::Trap>().is_some() => return Err(err),
            Ok(Err(err)) => {
                give(Err(HostError::from_guest(err)));
                return Ok(());
            }
            Err(_) => return Err(wasmtime::Error::msg("the component gave no response")),
        };
        let (read, body_done) = oneshot::channel();
        let (_cut_at_drop, cut) = oneshot::channel();
        give(Ok(StandardHead {
            response,
            read,
            cut,
        }));
        // Done when the body has been read to its end or dropped.
        let _ = body_done.await;
        Ok(())
    }
}

/// Instantiate, hand the request to the component, and keep its store
/// until its tasks are done and its body is read (or dropped): a WASI 0.3
/// body is produced by the guest as it is read, a WASI 0.2 body is a
/// resource of the store, and what the guest does after answering runs to
/// its end.
async fn serve(
    app: AppRef,
    request: Request<wasmtime_wasi_http::WasiBody>,
    answer: oneshot::Sender<Answer>,
    body_released: oneshot::Receiver<()>,
) -> wasmtime::Result<()> {
    let mut instance = app.instance_for_request().await?;
    let Handler::Standard(proxy) = &instance.guest else {
        return Err(wasmtime::Error::msg("not a standard wasi:http component"));
    };
    let prepared = Prepared::new(
        instance.store.as_context_mut(),
        proxy,
        request,
        <GuestState as WasiHttpView>::http,
        answer,
    )?;
    instance
        .store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            prepared.run(accessor, std::future::pending()).await?;
            // A WASI 0.3 body is written by the guest's task after it
            // returns, and work after the response runs in it too; a WASI
            // 0.2 handler runs on after `response-outparam::set`.
            guest_tasks_done(accessor).await;
            let _ = body_released.await;
            Ok(())
        })
        .await??;
    // Served to the end, nothing failed: the instance may serve again.
    app.request_done(instance);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn absolute(request: http::Request<()>) -> String {
        absolute_uri(&request.into_parts().0).to_string()
    }

    #[test]
    fn origin_form_requests_gain_scheme_and_host() {
        let request = http::Request::get("/a?b=1")
            .header("host", "example.com:8080")
            .body(())
            .expect("request");
        assert_eq!(absolute(request), "http://example.com:8080/a?b=1");
    }

    #[test]
    fn a_missing_or_bad_host_becomes_localhost() {
        let request = http::Request::get("/x").body(()).expect("request");
        assert_eq!(absolute(request), "http://localhost/x");
        let request = http::Request::get("/x")
            .header("host", "bad host")
            .body(())
            .expect("request");
        assert_eq!(absolute(request), "http://localhost/x");
    }

    #[test]
    fn absolute_form_requests_stay_as_they_are() {
        let request = http::Request::get("https://a.example/p")
            .header("host", "b.example")
            .body(())
            .expect("request");
        assert_eq!(absolute(request), "https://a.example/p");
    }
}
