//! The derived targets: annotations from the events tables, and the error ratio (computed
//! by `modelwatch_query::error_ratio`).

use super::payload::payload_filters;
use super::query::Target;
use crate::serve::{ApiError, AppState};
use modelwatch_query::{Query, Range, Series};
use modelwatch_store::{ReadRequest, Resolution, Table};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// errors / (predictions + errors) per window and group.
pub(super) async fn error_ratio(
    state: &Arc<AppState>,
    q: Query,
    range: Range,
    deadline: Instant,
) -> Result<Vec<Series>, ApiError> {
    let limits = state.config.limits;
    state.blocking(deadline, move |store| Ok(modelwatch_query::error_ratio(store, &q, range, limits)?)).await
}

pub(super) async fn event_rows(
    state: &Arc<AppState>,
    from: i64,
    to: i64,
) -> Result<Vec<modelwatch_store::EventRow>, ApiError> {
    state
        .blocking(state.deadline(), move |store| {
            let mut rows = store.read(&ReadRequest::new(Table::Events, from, to, Resolution::Raw))?.events;
            // Retraining events live in the trigger engine's own event store.
            rows.extend(crate::triggers::events(store.dir(), from, to));
            Ok(rows)
        })
        .await
}

/// Annotations: events in the range, filtered by the payload's `model`, `version`,
/// `variant` and `kind`.
pub(super) async fn annotations(
    state: &Arc<AppState>,
    t: &Target,
    from: i64,
    to: i64,
) -> Result<Value, ApiError> {
    let mut events = event_rows(state, from, to).await?;
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
