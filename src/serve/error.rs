//! Every way a request can fail, and the one place each becomes an HTTP status. Bodies are
//! `{"message": "..."}`, the message naming the parameter, target or event involved.

use crate::time::TimeError;
use crate::triggers::TriggerError;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use modelwatch_query::QueryError;
use modelwatch_store::StoreError;
use std::sync::Arc;

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
    /// The client did not send its request's body in time (408).
    RequestTimeout(String),
    /// The request target (path and query) is longer than the server reads (414).
    UriTooLong(String),
    /// The request head is larger than the server reads, or has too many fields (431).
    HeadTooLarge(String),
    /// The client holds as many connections as one address may (429).
    TooManyRequests(String),
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
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
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
        | ApiError::RequestTimeout(m)
        | ApiError::UriTooLong(m)
        | ApiError::HeadTooLarge(m)
        | ApiError::TooManyRequests(m)
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
            ApiError::RequestTimeout(_) => ApiError::RequestTimeout(message),
            ApiError::UriTooLong(_) => ApiError::UriTooLong(message),
            ApiError::HeadTooLarge(_) => ApiError::HeadTooLarge(message),
            ApiError::TooManyRequests(_) => ApiError::TooManyRequests(message),
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

    /// What a rejection hyper makes by itself, before any handler, means: a request head
    /// that does not parse (400), a target too long (414), a head too large (431).
    pub(super) fn from_hyper(status: StatusCode) -> Self {
        use super::run::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};
        match status {
            StatusCode::URI_TOO_LONG => ApiError::UriTooLong(format!(
                "the request target (path and query) is longer than the {MAX_URI_BYTES} bytes this server reads"
            )),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadTooLarge(format!(
                "the request head is larger than the {MAX_HEAD_BYTES} bytes this server reads, or has more \
                 than {MAX_HEADERS} header fields: send fewer or smaller headers"
            )),
            _ => ApiError::BadRequest(
                "the request does not parse as HTTP/1.1: a malformed request line or header field (a path \
                 is ASCII: percent-encode other bytes, UTF-8 `é` as %C3%A9)"
                    .into(),
            ),
        }
    }

    /// The error as a whole HTTP/1.1 response that closes the connection, for answers
    /// written to the socket outside hyper: a connection refused at a cap, a rejection hyper
    /// wrote without a body.
    pub(super) fn to_http1(&self) -> Vec<u8> {
        let body = serde_json::json!({ "message": self.message() }).to_string();
        let status = self.status();
        let retry = if matches!(self, ApiError::TooManyRequests(_) | ApiError::Unavailable(_)) {
            "retry-after: 1\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
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

/// The outermost layer of the server the binary runs: every error leaves as `{"message":
/// ...}` naming the problem. It refuses a target longer than [`super::run::MAX_URI_BYTES`]
/// (414) and a body declared larger than [`super::ServeConfig::max_body_bytes`] (413, at
/// once, rather than after reading up to the limit of a body that may never come), reads
/// the body within [`super::ServeConfig::header_read_timeout`] (408 past it: a client
/// trickling a body holds a connection and a handler as a slow head would), names the
/// method and the methods taken in a 405 (and, to `OPTIONS`, that there is no CORS), and
/// turns any error answered in plain text by a layer below into JSON.
pub(super) async fn json_everywhere(
    State(state): State<Arc<super::AppState>>,
    request: Request,
    next: Next,
) -> Response {
    use super::run::MAX_URI_BYTES;
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "the request target (path and query) is {target} bytes, more than the {MAX_URI_BYTES} this \
             server reads"
        ))
        .into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max = state.config.max_body_bytes;
    if let Some(len) = declared.filter(|&len| len > max as u64) {
        return ApiError::TooLarge(format!(
            "the body is {len} bytes (Content-Length), more than the {max} this server accepts (--max-body)"
        ))
        .into_response();
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let (parts, body) = request.into_parts();
    let wait = state.config.header_read_timeout;
    let body = match tokio::time::timeout(wait, read_body(body, max)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            return ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} ms of its head (--header-read-timeout)",
                wait.as_millis()
            ))
            .into_response();
        }
    };
    let response = next.run(Request::from_parts(parts, axum::body::Body::from(body))).await;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return method_not_allowed(&method, &path, response);
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    // An error a layer below answered in plain text (an extractor's rejection): its text.
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    let mut r = (status, axum::Json(serde_json::json!({ "message": message }))).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// The whole body, up to `max` bytes (413 past it; 400 when it is cut off or malformed in
/// transit).
async fn read_body(mut body: axum::body::Body, max: usize) -> Result<axum::body::Bytes, ApiError> {
    use axum::body::HttpBody;
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("the request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ApiError::TooLarge(format!(
                    "the body is larger than the {max} bytes this server accepts (--max-body)"
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.into())
}

/// A 405 whose message names the method, the path and the methods the path takes.
fn method_not_allowed(method: &Method, path: &str, response: Response) -> Response {
    let allow = response.headers().get(header::ALLOW).cloned();
    let takes = allow.as_ref().and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let takes = takes.map_or("another method".to_string(), |v| v.replace(',', ", "));
    let message = if method == Method::OPTIONS {
        format!(
            "OPTIONS {path}: this server answers no cross-origin (CORS) preflight, so a page in a browser \
             cannot call it; reach it through Grafana's server-side proxy (Access: Server). {path} takes {takes}"
        )
    } else {
        format!("{method} {path}: this endpoint takes {takes}")
    };
    let mut r = ApiError::MethodNotAllowed(message).into_response();
    if let Some(allow) = allow {
        r.headers_mut().insert(header::ALLOW, allow);
    }
    r
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
