//! Every way a request can fail, and the one place each becomes an HTTP status. Bodies are
//! `{"message": "..."}`, the message naming the parameter, target or event involved.

use crate::time::TimeError;
use crate::triggers::TriggerError;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelwatch_query::QueryError;
use modelwatch_store::StoreError;

/// A request that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request is malformed: a parameter, body or query that does not parse (400).
    BadRequest(String),
    /// No token, or the wrong one (401); `challenge` adds `WWW-Authenticate: Bearer`.
    Unauthorized {
        /// What is wrong.
        message: String,
        /// Whether to ask for a bearer token.
        challenge: bool,
    },
    /// No such route, event or feature of this server (404).
    NotFound(String),
    /// The route exists, with another method (405).
    MethodNotAllowed(String),
    /// The request conflicts with the current state: an event acknowledged already, a
    /// retraining event held back by the cool-down (409).
    Conflict(String),
    /// The body is larger than the server accepts (413).
    TooLarge(String),
    /// The request is well formed but would cost more than the limits allow: too many
    /// series or points, too long a range, past the deadline (422).
    TooCostly(String),
    /// The store cannot be read yet (503).
    Unavailable(String),
    /// The request ran past the server's time limit (503, as Prometheus answers a query
    /// timeout): the server is busy or the request too costly, and trying later or asking
    /// for less may succeed. Not 422: the request itself was acceptable.
    TimedOut(String),
    /// Something failed inside the server: the store, a thread (500).
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error: the only mapping from errors to statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooCostly(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::TimedOut(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        let (ApiError::BadRequest(m)
        | ApiError::Unauthorized { message: m, .. }
        | ApiError::NotFound(m)
        | ApiError::MethodNotAllowed(m)
        | ApiError::Conflict(m)
        | ApiError::TooLarge(m)
        | ApiError::TooCostly(m)
        | ApiError::Unavailable(m)
        | ApiError::TimedOut(m)
        | ApiError::Internal(m)) = self;
        m
    }

    /// The same error with `prefix: ` before its message (which target, which parameter).
    pub fn context(self, prefix: impl std::fmt::Display) -> Self {
        let message = format!("{prefix}: {}", self.message());
        match self {
            ApiError::Unauthorized { challenge, .. } => ApiError::Unauthorized { message, challenge },
            ApiError::BadRequest(_) => ApiError::BadRequest(message),
            ApiError::NotFound(_) => ApiError::NotFound(message),
            ApiError::MethodNotAllowed(_) => ApiError::MethodNotAllowed(message),
            ApiError::Conflict(_) => ApiError::Conflict(message),
            ApiError::TooLarge(_) => ApiError::TooLarge(message),
            ApiError::TooCostly(_) => ApiError::TooCostly(message),
            ApiError::Unavailable(_) => ApiError::Unavailable(message),
            ApiError::TimedOut(_) => ApiError::TimedOut(message),
            ApiError::Internal(_) => ApiError::Internal(message),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub(super) fn too_costly(message: impl Into<String>) -> Self {
        ApiError::TooCostly(message.into())
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal(message.into())
    }

    /// A body axum could not read: too large (413) or unreadable (400).
    pub(super) fn from_body(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Store(e) => e.into(),
            QueryError::TooLarge(_) => ApiError::TooCostly(e.to_string()),
            QueryError::Cancelled => ApiError::TimedOut(e.to_string()),
            QueryError::NotADistribution { .. } | QueryError::BadRange(_) | QueryError::Unsupported(_) => {
                ApiError::BadRequest(e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<TimeError> for ApiError {
    fn from(e: TimeError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::UnknownEvent(_) => ApiError::NotFound(e.to_string()),
            TriggerError::AlreadyAcknowledged(_) | TriggerError::CoolingDown { .. } => {
                ApiError::Conflict(e.to_string())
            }
            TriggerError::Locked(_) => ApiError::Conflict(e.to_string()),
            TriggerError::Config(_) | TriggerError::Parse(_) => ApiError::BadRequest(e.to_string()),
            TriggerError::Query(e) => e.into(),
            TriggerError::Store(_) | TriggerError::File { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let challenge = matches!(self, ApiError::Unauthorized { challenge: true, .. });
        let mut r =
            (self.status(), axum::Json(serde_json::json!({ "message": self.message() }))).into_response();
        if challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_errors_map_to_the_status_a_client_can_act_on() {
        let status = |e: TriggerError| ApiError::from(e).status();
        assert_eq!(status(TriggerError::UnknownEvent("x".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(TriggerError::AlreadyAcknowledged("x".into())), StatusCode::CONFLICT);
        assert_eq!(
            status(TriggerError::CoolingDown { until_ms: 0, suppressed: Vec::new() }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(TriggerError::File { path: "state.json".into(), message: "disk full".into() }),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(TriggerError::Config("triggers.cooldown".into())), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_status() {
        let e = ApiError::TooCostly("too many series".into()).context("target A (latency)");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.message(), "target A (latency): too many series");
    }
}
