//! What the host hands each kind of guest for a request, and what it gets
//! back before the response's body is done: the types both the fresh and
//! the shared path of an executor use. A kind ties a request to its answer
//! ([`GuestCall`]), so the pool of shared instances, generic over it, can
//! never pair one kind's request with another's answer. They sit below
//! `app`, which keeps each version's shared instances typed by them.

use crate::bindings::types as wit;
use crate::body::IncomingBodyProducer;
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};

/// A kind of guest: the request it takes and the answer it gives.
pub(crate) trait GuestCall: Send + 'static {
    type Request: Send + 'static;
    type Answer: Send + 'static;
}

/// A squall-sdk app's `handle`.
pub(crate) struct SquallCall;

impl GuestCall for SquallCall {
    type Request = GuestRequest;
    type Answer = Head;
}

/// A standard WASI 0.3 component's `wasi:http/handler`.
pub(crate) struct StandardCall;

impl GuestCall for StandardCall {
    type Request = wasmtime_wasi_http::handler::Request;
    type Answer = StandardHead;
}

/// The request as a squall-sdk guest will see it (its body still a
/// producer), waiting for a store to become a `wit::Request`.
pub(crate) struct GuestRequest {
    pub(crate) head: wit::Request,
    pub(crate) body: Option<IncomingBodyProducer>,
}

/// What a squall-sdk guest answered, before its body is done.
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) headers: wit::Fields,
    pub(crate) body: HeadBody,
}

/// The body of an answer: whole, or still streaming.
pub(crate) enum HeadBody {
    Full(Vec<u8>),
    /// The chunks, and the word that the guest closed its stream.
    Stream(mpsc::Receiver<Bytes>, oneshot::Receiver<bool>),
}

/// A standard component's response on a shared instance, whose body the
/// guest writes as it is read (the instance's task drives it).
pub(crate) struct StandardHead {
    pub(crate) response: wasmtime_wasi_http::handler::Response,
    /// Dropped once the body is read to its end, or dropped: the request is
    /// then done.
    pub(crate) read: oneshot::Sender<()>,
    /// Fires once the request is past its timeout (or its instance
    /// stopped): the body is cut there.
    pub(crate) cut: oneshot::Receiver<()>,
}
