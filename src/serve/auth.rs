//! The bearer token: every route but `/healthz` and `/readyz` needs it when one is set.

use super::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) async fn authorize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.config.token else { return next.run(request).await };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 11.1).
        .and_then(|v| {
            v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|p| p.1)
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match given {
        Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized { message: "wrong token".into(), challenge: false }.into_response(),
        None => ApiError::Unauthorized {
            message: "this server needs `Authorization: Bearer <token>` or `X-API-Key: <token>`".into(),
            challenge: true,
        }
        .into_response(),
    }
}
