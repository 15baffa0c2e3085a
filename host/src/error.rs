//! The one error type for a request or WebSocket event that a guest did not
//! serve: a trap, a limit, a broken body, no free instance. Each variant
//! knows its HTTP status, its WebSocket close code and how it is logged, so
//! every path (squall apps, standard components, WebSocket events) answers a
//! failure the same way.

use http::StatusCode;
use wasmtime::PoolConcurrencyLimitError;

/// Any error, boxed: what a body reports when it breaks.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a guest did not answer, or stopped part way.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// The guest trapped or panicked.
    #[error("the guest failed: {0:?}")]
    Trap(wasmtime::Error),
    /// The request ran past its wall-clock `timeout`.
    #[error("the request hit its timeout")]
    Timeout,
    /// The guest ran code for longer than its `cpu_time`.
    #[error("the request ran guest code for longer than its cpu_time limit")]
    CpuTime,
    /// The guest asked for more linear memory than its `memory` limit.
    #[error("the guest asked for more memory than its memory limit")]
    Memory,
    /// The request body is larger than the app's `max_body`.
    #[error("the request body is larger than the app's max_body limit")]
    RequestBodyTooLarge,
    /// The client's body stopped with an error (reset, malformed framing).
    #[error("the request body broke off: {0}")]
    BrokenRequestBody(#[source] BoxError),
    /// No instance slot within the app's share of the pool.
    #[error("no instance slot is free: {0}")]
    NoInstanceSlot(String),
    /// The app is at one of its limits on work in flight.
    #[error("the app is busy: {0}")]
    Busy(String),
    /// The instance the request shared with others of the app's requests
    /// (`reuse.concurrent`) was stopped by one of them.
    #[error("the instance serving it was stopped: {0}")]
    InstanceStopped(String),
    /// The guest finished without giving an answer.
    #[error("the guest finished without answering")]
    NoAnswer,
    /// The guest's answer is not a valid HTTP response.
    #[error("the guest answered an invalid response: {0}")]
    InvalidResponse(String),
}

impl HostError {
    /// What a wasmtime error from running a guest means: one of our own
    /// limits (raised inside the store), a full pool, or a trap.
    pub(crate) fn from_guest(err: wasmtime::Error) -> HostError {
        let err = match err.downcast::<HostError>() {
            Ok(ours) => return ours,
            Err(err) => err,
        };
        if let Some(full) = err.downcast_ref::<PoolConcurrencyLimitError>() {
            return HostError::NoInstanceSlot(full.to_string());
        }
        HostError::Trap(err)
    }

    /// The status a client gets when nothing of the response was sent yet.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HostError::Timeout | HostError::CpuTime => StatusCode::GATEWAY_TIMEOUT,
            HostError::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HostError::BrokenRequestBody(_) => StatusCode::BAD_REQUEST,
            HostError::NoInstanceSlot(_) | HostError::Busy(_) | HostError::InstanceStopped(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HostError::Trap(_)
            | HostError::Memory
            | HostError::NoAnswer
            | HostError::InvalidResponse(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The close code a WebSocket gets when its handler fails this way.
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            // 1013: try again later.
            HostError::NoInstanceSlot(_) | HostError::Busy(_) => 1013,
            // 1011: the server met a condition that kept it from serving.
            _ => 1011,
        }
    }

    /// Log the failure at the level it deserves: the guest's own faults are
    /// errors, limits are warnings, a client's broken body is news.
    pub(crate) fn log(&self) {
        match self {
            HostError::BrokenRequestBody(_) => tracing::info!("{self}"),
            HostError::Timeout
            | HostError::CpuTime
            | HostError::Memory
            | HostError::RequestBodyTooLarge
            | HostError::InstanceStopped(_) => tracing::warn!("{self}"),
            // Counted and logged, rate-limited, where the limit is.
            HostError::NoInstanceSlot(_) | HostError::Busy(_) => tracing::debug!("{self}"),
            HostError::Trap(_) | HostError::NoAnswer | HostError::InvalidResponse(_) => {
                tracing::error!("{self}")
            }
        }
    }

    /// Log it and return its status: the usual end of a failed request.
    pub(crate) fn logged_status(&self) -> StatusCode {
        self.log();
        self.status()
    }

    /// What the guest did wrong, for the failure counts; `None` for a
    /// refusal or the client's fault.
    pub(crate) fn guest_kind(&self) -> Option<&'static str> {
        match self {
            HostError::Trap(_) => Some("trap"),
            HostError::Timeout => Some("timeout"),
            HostError::CpuTime => Some("cpu_time"),
            HostError::Memory => Some("memory"),
            HostError::NoAnswer => Some("no_answer"),
            HostError::InvalidResponse(_) => Some("invalid_response"),
            HostError::RequestBodyTooLarge
            | HostError::BrokenRequestBody(_)
            | HostError::NoInstanceSlot(_)
            | HostError::Busy(_)
            | HostError::InstanceStopped(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_raised_inside_a_store_keep_their_kind() {
        let raised = wasmtime::Error::from(HostError::CpuTime);
        assert!(matches!(HostError::from_guest(raised), HostError::CpuTime));
        let raised = wasmtime::Error::from(HostError::RequestBodyTooLarge);
        let classified = HostError::from_guest(raised);
        assert_eq!(classified.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn context_added_on_the_way_up_does_not_hide_the_kind() {
        let raised = wasmtime::Error::from(HostError::Memory).context("while calling handle");
        assert!(matches!(HostError::from_guest(raised), HostError::Memory));
    }

    #[test]
    fn anything_else_is_a_trap() {
        let classified = HostError::from_guest(wasmtime::Error::msg("unreachable executed"));
        assert!(matches!(classified, HostError::Trap(_)));
        assert_eq!(classified.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(classified.close_code(), 1011);
    }

    #[test]
    fn each_failure_has_its_status() {
        let cases = [
            (HostError::Timeout, 504),
            (HostError::CpuTime, 504),
            (HostError::Memory, 500),
            (HostError::RequestBodyTooLarge, 413),
            (HostError::BrokenRequestBody("reset".into()), 400),
            (HostError::NoInstanceSlot("full".into()), 503),
            (HostError::NoAnswer, 500),
            (HostError::InvalidResponse("status 1".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    #[test]
    fn wording_names_the_limit() {
        assert!(HostError::CpuTime.to_string().contains("cpu_time"));
        assert!(
            HostError::RequestBodyTooLarge
                .to_string()
                .contains("max_body")
        );
        assert!(
            HostError::InvalidResponse("status 42 is not an HTTP status".into())
                .to_string()
                .contains("status 42")
        );
    }
}
