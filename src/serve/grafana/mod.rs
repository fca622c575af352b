//! The Grafana JSON datasource contract (simpod-json-datasource), under `/grafana`.
//!
//! A target is a query in modelwatch's language (`p95(latency) by (variant)`) or just a
//! metric name picked in the builder (`latency`), refined by the payload:
//! `statistic` (`p95`, `mean`, `rate`, `buckets`, ...), `by` (labels to group by),
//! `format` (`time_series`, `table`, `heatmap`), `bins` (heatmap rows), `alias`, and label
//! filters (`model`, `version`, `variant`, `segment`, `feature`, `instance`, any free tag),
//! each a string, an array of strings or a regex alternation `(a|b)`. Ad hoc filters
//! (`filters`, or the older `adhocFilters`) and `groupByKeys` apply to every target.
//! Targets `events` (or refId `Anno`) answer annotations from the events table, and
//! `error_ratio` the share of failed requests (errors / (predictions + errors)).

//!
//! - `payload`: what a request carries — ranges, ad hoc filters, the payload's options and
//!   label filters — read into matchers and options.
//! - `discovery`: `/metrics`, `/metric-payload-options`, `/variable`, `/tag-keys`,
//!   `/tag-values`.
//! - `query`: `/query`: a target's query built from its text and payload, evaluated, cut
//!   into frames.
//! - `targets`: the derived targets (`events` annotations; `drift`, `quality` and
//!   `error_ratio` are computed by `modelwatch_query` and `super::reports`).
//! - `frames`: Grafana's data frames.

mod discovery;
mod frames;
mod payload;
mod query;
mod targets;

pub(super) use payload::check_filters;
pub(super) use payload::{labels_of, option_str, payload_filters, text, unescape};
pub(super) use query::ResponseKey;

use super::{ApiError, AppState};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use serde_json::Value;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/metrics", post(discovery::metrics))
        .route("/metric-payload-options", post(discovery::payload_options))
        .route("/query", post(query::query))
        .route("/variable", post(discovery::variable))
        .route("/tag-keys", post(discovery::tag_keys))
        .route("/tag-values", post(discovery::tag_values))
}

pub(super) type Body = Result<Bytes, BytesRejection>;
pub(super) type Answer = Result<axum::Json<Value>, ApiError>;
