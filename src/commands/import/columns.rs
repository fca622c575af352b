//! What an input's columns mean: the required ones, the optional `label`, `label_time` and
//! `error`, the
//! features (`f.<name>`), and the ones the importer does not use; and how one record's
//! cells become a prediction's fields, or the reason the record is rejected.

use super::input::{Cell, Cells, Use};

/// The columns every input has.
pub(super) const REQUIRED: [&str; 7] =
    ["timestamp", "model", "version", "variant", "segment", "latency_ms", "confidence"];
/// Optional columns besides the features.
pub(super) const OPTIONAL: [&str; 3] = ["label", "label_time", "error"];
/// The prefix of a feature column's name.
pub(super) const FEATURE_PREFIX: &str = "f.";

/// Where each column the importer uses is in the header.
pub(super) struct Columns {
    /// Columns in the header.
    pub(super) width: usize,
    required: [usize; 7],
    label: Option<usize>,
    label_time: Option<usize>,
    error: Option<usize>,
    /// The longest a label may come after its prediction, ms.
    pub(super) max_label_delay_ms: i64,
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
    /// When the label arrived (ms); `None`: with the prediction.
    pub(super) label_time_ms: Option<i64>,
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
            label_time: col("label_time"),
            error: col("error"),
            max_label_delay_ms: modelwatch::agent::DEFAULT_MAX_LABEL_DELAY.as_millis() as i64,
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
        for c in self.label.iter().chain(&self.label_time).chain(&self.error) {
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
        let ts_ms = modelwatch::time::parse_time(text(ts), now_ms).map_err(|e| format!("timestamp {e}"))?;
        let label = self.label.map(|c| parse_label(text(c))).transpose()?.flatten();
        let label_time_ms = match self.label_time.map(|c| trim(text(c))).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let t = modelwatch::time::parse_time(s, now_ms).map_err(|e| format!("label_time {e}"))?;
                let at = |ms: i64| modelwatch::time::rfc3339(ms);
                if label.is_none() {
                    return Err(format!("label_time {s:?} is given without a label"));
                }
                if t < ts_ms {
                    return Err(format!(
                        "label_time {} is before the prediction's timestamp {}",
                        at(t),
                        at(ts_ms)
                    ));
                }
                if t > now_ms {
                    return Err(format!("label_time {} is in the future (now is {})", at(t), at(now_ms)));
                }
                if t - ts_ms > self.max_label_delay_ms {
                    return Err(format!(
                        "label_time {} is more than {} days after the prediction's timestamp {} \
                         (--max-label-delay)",
                        at(t),
                        self.max_label_delay_ms as f64 / 86_400_000.0,
                        at(ts_ms)
                    ));
                }
                Some(t)
            }
        };
        Ok(Fields {
            ts_ms,
            model: text(model),
            version: text(version),
            variant: text(variant),
            segment: text(segment),
            latency_ms: number("latency_ms", cells.get(latency))?,
            confidence: number("confidence", cells.get(confidence))?,
            label,
            label_time_ms,
            error: self.error.map(|c| trim(text(c))).filter(|e| !e.is_empty()),
        })
    }
}

fn number(name: &str, cell: Cell<'_>) -> Result<f64, String> {
    match cell {
        Cell::Number(x) => Ok(x),
        Cell::Text(s) => trim(s).parse::<f64>().map_err(|_| format!("{name} {s:?} is not a number")),
    }
}

/// `str::trim`, without looking at the characters of a cell that starts and ends with
/// ASCII that is not white space (almost every cell).
pub(super) fn trim(s: &str) -> &str {
    let plain = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii() && !b.is_ascii_whitespace());
    if plain(s.as_bytes().first()) && plain(s.as_bytes().last()) { s } else { s.trim() }
}

/// Whether a trimmed cell reads as a number: a quick look for the usual decimal form
/// (`-12.5`, `3e-4`), then Rust's own parse for the rest (`inf`, `NaN`, `+.5`).
pub(super) fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int = digits(i);
    i += int;
    if int > 0 && b.get(i) == Some(&b'.') {
        let frac = digits(i + 1);
        i += 1 + frac;
    }
    if int > 0 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'-' | b'+')));
        let exp = digits(i + 1 + sign);
        if exp > 0 {
            i += 1 + sign + exp;
        }
    }
    (int > 0 && i == b.len()) || s.parse::<f64>().is_ok()
}

fn parse_label(s: &str) -> Result<Option<bool>, String> {
    match trim(s) {
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

#[cfg(test)]
mod tests {
    use super::{is_number, trim};

    #[test]
    fn the_quick_number_check_agrees_with_rusts_parse() {
        for s in [
            "0", "-1", "12.5", "12.", "-0.001", "3e-4", "3E+4", "1e", "1e+", "-", "", ".5", "+1", "inf",
            "-inf", "NaN", "nan", "infinity", "1.2.3", "1,5", "0x10", "1_000", "--1", "1e5.5", "١", "12 ",
            " 12",
        ] {
            assert_eq!(is_number(s), s.parse::<f64>().is_ok(), "{s:?}");
        }
    }

    #[test]
    fn trim_is_str_trim() {
        for s in ["", " ", "a", " a", "a ", "\u{a0}a\u{a0}", "é", "a\t", "\u{2003}1"] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }
}
