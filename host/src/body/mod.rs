//! Bodies crossing the boundary. Incoming bodies (a client's request, an
//! upstream's response) flow from hyper into a guest `stream<u8>`; bodies the
//! guest writes flow from its stream into hyper.
//!
//! Both directions are pull-based with small bounded buffers, so neither a
//! fast peer nor a fast guest can make the host buffer without bound.

mod compress;
mod expect_continue;
mod incoming;
mod outgoing;

pub(crate) use compress::{accepts_gzip, gzip};
pub(crate) use expect_continue::expecting_continue;
pub(crate) use incoming::{IncomingBodyProducer, discard_in_background};
pub(crate) use outgoing::{ChunkConsumer, DrivenGuest, OutgoingBody};

use crate::error::BoxError;
use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;

/// A body arriving at the host, whoever sends it: a client's request (from
/// hyper, or built in-process by a test), or an upstream's response.
pub(crate) type InboundBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Box `body` as an [`InboundBody`].
pub(crate) fn inbound<B>(body: B) -> InboundBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
