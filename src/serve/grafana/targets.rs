//! The derived targets: annotations from the events tables, and the error ratio (computed
//! by `modelwatch_query::error_ratio`).

use super::payload::payload_filters;
use super::query::Target;
use crate::serve::{ApiError, AppState};
use modelwatch_query::{Limits, Query, Range, Series};
use modelwatch_store::{EventRow, Store};
use serde_json::{Value, json};
use std::sync::Arc;

/// errors / (predictions + errors) per window and group, on this thread (a blocking one).
pub(super) fn error_ratio(
    state: &Arc<AppState>,
    q: &Query,
    range: Range,
    limits: Limits,
) -> Result<Vec<Series>, ApiError> {
    state.check_range("the range", range.from_ms, range.to_ms)?;
    Ok(modelwatch_query::error_ratio(&state.store, q, range, limits)?)
}

/// Events in `[from, to)`: the store's and the trigger engine's.
pub(super) fn events_now(store: &Store, from: i64, to: i64) -> Result<Vec<EventRow>, ApiError> {
    // Retraining events live in the trigger engine's own event store.
    Ok(crate::triggers::all_events(store, from, to)?)
}

pub(super) async fn event_rows(state: &Arc<AppState>, from: i64, to: i64) -> Result<Vec<EventRow>, ApiError> {
    state.blocking(state.deadline(), move |store| events_now(store, from, to)).await
}

/// Annotations: events in the range, filtered by the payload's `model`, `version`,
/// `variant` and `kind`; on this thread (a blocking one).
pub(super) fn annotations(state: &Arc<AppState>, t: &Target, from: i64, to: i64) -> Result<Value, ApiError> {
    let mut events = events_now(&state.store, from, to)?;
    let filters = payload_filters(&t.payload)?;
    events.retain(|e| {
        filters.iter().all(|m| {
            m.matches(match m.label.as_str() {
                "model" => &e.model,
                "version" => &e.version,
                "variant" => &e.variant,
                "kind" => &e.kind,
                _ => "",
            })
        })
    });
    events.sort_by_key(|e| e.time_ms);
    let col = |f: &dyn Fn(&modelwatch_store::EventRow) -> Value| events.iter().map(f).collect::<Vec<_>>();
    Ok(json!({
        "name": "events",
        "refId": t.ref_id,
        "fields": [
            { "name": "time", "type": "time", "values": col(&|e| json!(e.time_ms)) },
            { "name": "title", "type": "string", "values": col(&|e| json!(e.kind.to_string())) },
            { "name": "text", "type": "string", "values": col(&|e| json!(format!("{} {} ({}): {}", e.model, e.version, e.variant, e.message))) },
            { "name": "tags", "type": "string", "values": col(&|e| json!(format!("{},{},{}", e.kind, e.model, e.variant))) },
        ],
    }))
}
