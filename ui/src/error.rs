//! What a request can fail with, and the HTTP status and Storm error body of each.

use std::time::Duration;

use http::StatusCode;

use crate::source::ControlError;

/// A failed request: answered with its status and Storm's body
/// `{"error": "<status line>", "errorMessage": "<what went wrong>"}`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// No such path, topology or component.
    #[error("{0}")]
    NotFound(String),
    /// A malformed parameter or body.
    #[error("{0}")]
    BadRequest(String),
    /// The caller could not be identified.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be decided now (the authority did not answer).
    #[error("{0}")]
    Unavailable(String),
    /// The path exists but not for this method; `allow` lists those it takes.
    #[error("{message}")]
    MethodNotAllowed {
        /// The methods the resource takes now (may be empty).
        allow: &'static str,
        /// What was refused.
        message: String,
    },
    /// The action cannot apply to the topology in its current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// Path and query together are longer than the limit.
    #[error("request path and query are over the limit of {limit} bytes")]
    UriTooLong {
        /// The limit, bytes.
        limit: usize,
    },
    /// The request was not answered in time (a slow body or a slow action).
    #[error("request not completed within {0:?}")]
    Timeout(Duration),
    /// A bug on this side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ControlError::Refused(m) => ApiError::Conflict(m),
            // The action exists in the API, but this deployment offers no method on it.
            ControlError::Unsupported(m) => ApiError::MethodNotAllowed {
                allow: "",
                message: m,
            },
        }
    }
}
