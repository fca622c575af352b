//! What an input's columns mean: the required ones, the optional `label` and `error`, the
//! features (`f.<name>`), and the ones the importer does not use; and how one record's
//! cells become a prediction's fields, or the reason the record is rejected.

use super::input::{Cell, Cells, Use};

/// The columns every input has.
pub(super) const REQUIRED: [&str; 7] =
    ["timestamp", "model", "version", "variant", "segment", "latency_ms", "confidence"];
/// Optional columns besides the features.
pub(super) const OPTIONAL: [&str; 2] = ["label", "error"];
/// The prefix of a feature column's name.
pub(super) const FEATURE_PREFIX: &str = "f.";

/// Where each column the importer uses is in the header.
pub(super) struct Columns {
    /// Columns in the header.
    pub(super) width: usize,
    required: [usize; 7],
    label: Option<usize>,
    error: Option<usize>,
    /// Feature columns: their index and the feature's name.
    pub(super) features: Vec<(usize, String)>,
    /// Columns the importer ignores, by name.
    pub(super) unknown: Vec<String>,
}

/// A record's fields, borrowed from its cells.
pub(super) struct Fields<'a> {
    pub(super) ts_ms: i64,
    pub(super) model: &'a str,
    pub(super) version: &'a str,
    pub(super) variant: &'a str,
    pub(super) segment: &'a str,
    pub(super) latency_ms: f64,
    pub(super) confidence: f64,
    pub(super) label: Option<bool>,
    pub(super) error: Option<&'a str>,
}

impl Columns {
    /// The columns of `header`, or the required ones it lacks.
    pub(super) fn new(header: &[String]) -> Result<Columns, Vec<&'static str>> {
        let col = |name: &str| header.iter().position(|h| h == name);
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| col(c).is_none()).collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let features: Vec<(usize, String)> = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.strip_prefix(FEATURE_PREFIX).map(|n| (i, n.to_string())))
            .collect();
        let unknown = header
            .iter()
            .filter(|h| !REQUIRED.contains(&h.as_str()) && !OPTIONAL.contains(&h.as_str()))
            .filter(|h| !h.starts_with(FEATURE_PREFIX))
            .cloned()
            .collect();
        Ok(Columns {
            width: header.len(),
            required: REQUIRED.map(|c| col(c).unwrap_or(0)),
            label: col("label"),
            error: col("error"),
            features,
            unknown,
        })
    }

    /// How each column is read: numbers for latency, confidence and features, text for the
    /// other known columns, nothing for the unknown ones.
    pub(super) fn uses(&self) -> Vec<Use> {
        let mut uses = vec![Use::Ignored; self.width];
        for (i, &c) in self.required.iter().enumerate() {
            uses[c] = if REQUIRED[i] == "latency_ms" || REQUIRED[i] == "confidence" {
                Use::Number
            } else {
                Use::Text
            };
        }
        for c in self.label.iter().chain(&self.error) {
            uses[*c] = Use::Text;
        }
        for (c, _) in &self.features {
            uses[*c] = Use::Number;
        }
        uses
    }

    /// The fields of a record, or why it is rejected (the reason starts with the field's
    /// name, which the summary counts by).
    pub(super) fn parse<'a>(&self, cells: &Cells<'a>, now_ms: i64) -> Result<Fields<'a>, String> {
        if cells.len() != self.width {
            return Err(format!("fields: {} in the row, {} in the header", cells.len(), self.width));
        }
        let text = |i: usize| match cells.get(i) {
            Cell::Text(s) => s,
            Cell::Number(_) => "",
        };
        let [ts, model, version, variant, segment, latency, confidence] = self.required;
        Ok(Fields {
            ts_ms: modelwatch::time::parse_time(text(ts), now_ms).map_err(|e| format!("timestamp {e}"))?,
            model: text(model),
            version: text(version),
            variant: text(variant),
            segment: text(segment),
            latency_ms: number("latency_ms", cells.get(latency))?,
            confidence: number("confidence", cells.get(confidence))?,
            label: self.label.map(|c| parse_label(text(c))).transpose()?.flatten(),
            error: self.error.map(|c| text(c).trim()).filter(|e| !e.is_empty()),
        })
    }
}

fn number(name: &str, cell: Cell<'_>) -> Result<f64, String> {
    match cell {
        Cell::Number(x) => Ok(x),
        Cell::Text(s) => s.trim().parse::<f64>().map_err(|_| format!("{name} {s:?} is not a number")),
    }
}

fn parse_label(s: &str) -> Result<Option<bool>, String> {
    match s.trim() {
        "" => Ok(None),
        "1" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "false" | "FALSE" | "False" => Ok(Some(false)),
        other => Err(format!("label {other:?} is not 0, 1 or empty")),
    }
}

/// The columns the importer reads, for messages: the required and optional ones by name,
/// then the feature pattern.
pub(super) fn known_columns() -> String {
    let mut names: Vec<&str> = REQUIRED.to_vec();
    names.extend(OPTIONAL);
    format!("{} and {FEATURE_PREFIX}<name> for features", names.join(", "))
}
