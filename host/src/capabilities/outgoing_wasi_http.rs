//! Outbound `wasi:http` for standard components (WASI 0.2 and 0.3): their
//! requests go through the same allow-list and pooled client as Squall's
//! own `fetch`, by way of wasmtime-wasi-http's `send_request` hook.

use super::Grants;
use crate::body::OutgoingBody;
use crate::outbound::SendFailure;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The hooks of one store: its app's grants, and the store's fetches in
/// flight.
pub(super) struct OutgoingHooks {
    grants: Arc<Grants>,
    fetches: Arc<AtomicU32>,
}

impl OutgoingHooks {
    pub(super) fn new(grants: Arc<Grants>) -> Self {
        OutgoingHooks {
            grants,
            fetches: Arc::new(AtomicU32::new(0)),
        }
    }

    pub(super) fn grants(&self) -> &Arc<Grants> {
        &self.grants
    }

    pub(super) fn fetches(&self) -> &Arc<AtomicU32> {
        &self.fetches
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutgoingHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        io: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        // Request-body errors reach the guest through this future; we have
        // nothing to add to them.
        drop(io);
        let grants = self.grants.clone();
        let admitted = grants.admit_fetch(&self.fetches);
        Box::new(async move {
            if !grants.outbound.allows(request.uri()) {
                tracing::info!(
                    uri = %request.uri(),
                    "fetch denied: not in the app's outbound list"
                );
                return Err(Error::HttpRequestDenied);
            }
            let Ok(admitted) = admitted else {
                return Err(Error::ConnectionLimitReached);
            };
            let first_byte = options
                .and_then(|options| options.first_byte_timeout)
                .unwrap_or(grants.default_timeout);
            let request = request.map(OutgoingBody::standard);
            let response =
                match tokio::time::timeout(first_byte, grants.client.request(request)).await {
                    Err(_) => return Err(Error::ConnectionReadTimeout),
                    Ok(Err(err)) => return Err(classify(err)),
                    Ok(Ok(response)) => response,
                };
            let limit = usize::try_from(grants.fetch_max_body).unwrap_or(usize::MAX);
            let response = response.map(|body| {
                http_body_util::Limited::new(body, limit)
                    .map_err(|err| match err.downcast::<hyper::Error>() {
                        Ok(hyper) => Error::Hyper(*hyper),
                        Err(_) => Error::HttpResponseBodySize(None),
                    })
                    // In flight until its body is read or dropped.
                    .map_frame(move |frame| {
                        let _ = &admitted;
                        frame
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// The wasi:http error for a failed pooled request: the same diagnosis as
/// Squall's own `fetch`, in wasi:http's terms.
fn classify(err: hyper_util::client::legacy::Error) -> Error {
    match SendFailure::of(&err) {
        SendFailure::Denied(_) => Error::DestinationIpProhibited,
        SendFailure::Tls(_) => Error::TlsProtocolError,
        SendFailure::Timeout => Error::ConnectionTimeout,
        SendFailure::Connect(_) => Error::ConnectionRefused,
        SendFailure::Protocol(_) => Error::HttpProtocolError,
    }
}
