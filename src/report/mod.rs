//! Reports people look at: self-contained HTML pages with charts drawn here, in Rust, as
//! inline SVG (no script, no library, nothing fetched: `docs/decisions/0011-report-charts.md`
//! says why).
//!
//! - [`health_data`] / [`health_html`]: the ML System Health report (`modelwatch report`),
//!   the Grafana dashboard's panels and the retraining loop's timeline, computed by the
//!   functions the CLI prints.
//! - [`features_html`]: the quarterly feature review (`modelwatch features report --format
//!   html`) from the features report's JSON document.
//!
//! A page embeds the document it was drawn from once, as JSON in `<script
//! type="application/json" id="modelwatch-data">`; every drawn mark carries its data in
//! `data-*` attributes (see [`chart`]), so what is drawn can be checked against what was
//! computed.

pub mod chart;
mod features;
mod health;
pub mod html;
#[cfg(test)]
mod tests;

pub use features::{MATRIX_FEATURES, TREND_LINES, features_html};
pub use health::{
    HealthOptions, LANES, audit_lane, bin_of, event_lane, health_data, health_html, series_name,
};

/// A number of a document, not finite where it is null or not a number (no data).
fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A document's value as plain text: a string as it is, null as nothing.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A range that makes no sense.
    #[error("{0}")]
    Range(String),
    /// The document to draw lacks a field or has one of the wrong shape.
    #[error("{0}")]
    Document(String),
    /// Reading the store failed.
    #[error(transparent)]
    Query(#[from] modelwatch_query::QueryError),
    /// The drift reference could not be read.
    #[error("the drift reference: {0}")]
    Baseline(#[from] crate::baseline::BaselineError),
    /// The registry could not be read.
    #[error("the model registry: {0}")]
    Registry(#[from] modelwatch_store::registry::RegistryError),
    /// The trigger state could not be read.
    #[error("the trigger state: {0}")]
    Trigger(#[from] crate::triggers::TriggerError),
    /// The events table could not be read.
    #[error(transparent)]
    Store(#[from] modelwatch_store::StoreError),
    /// A document did not serialise.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
