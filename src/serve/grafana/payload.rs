//! What a request carries: its time range, ad hoc filters, and a target's payload — options
//! (`statistic`, `by`, `format`, ...) and label filters in every form Grafana sends them.

use crate::serve::ApiError;
use crate::time::parse_time;
use modelwatch_query::{Matcher, Op};
use serde::Deserialize;
use serde_json::Value;

/// Payload keys that are options, not label filters.
pub(super) const OPTIONS: [&str; 9] =
    ["statistic", "by", "format", "bins", "alias", "annotations", "reference", "threshold", "show"];
/// Labels every series has.
pub(super) const LABELS: [&str; 6] = ["model", "version", "variant", "segment", "feature", "instance"];
/// Most label filters one query may carry (a payload's and the ad hoc ones together), and
/// most `by` labels: a dashboard uses a handful; each regex filter costs up to
/// `modelwatch_query::REGEX_SIZE_LIMIT` twice to compile and keep, so the bound also
/// bounds a request's memory.
pub(in crate::serve) const MAX_FILTERS: usize = 100;
pub(in crate::serve) const MAX_GROUP_LABELS: usize = 32;

/// Refuses (422) more than [`MAX_FILTERS`] filters, before any is compiled.
pub(in crate::serve) fn check_filters(n: usize, what: &str) -> Result<(), ApiError> {
    if n > MAX_FILTERS {
        return Err(ApiError::TooCostly(format!("{n} {what}, at most {MAX_FILTERS} are allowed")));
    }
    Ok(())
}

/// How far back metric discovery looks when a request carries no range.
pub(super) const DISCOVERY_MS: i64 = 7 * 86_400_000;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TimeRange {
    pub(super) from: String,
    pub(super) to: String,
}

impl TimeRange {
    pub(super) fn bounds(&self, now: i64) -> Result<(i64, i64), ApiError> {
        if self.from.is_empty() && self.to.is_empty() {
            return Ok((now - DISCOVERY_MS, now));
        }
        let t = |s: &str, what: &str| {
            parse_time(s, now).map_err(|e| ApiError::bad_request(format!("range.{what}: {e}")))
        };
        Ok((t(&self.from, "from")?, t(&self.to, "to")?))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AdhocFilter {
    pub(super) key: String,
    operator: String,
    value: Value,
    values: Option<Vec<Value>>,
}

pub(in crate::serve) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

impl AdhocFilter {
    pub(super) fn matcher(&self) -> Result<Matcher, ApiError> {
        let bad = |m: String| ApiError::bad_request(format!("ad hoc filter on {:?}: {m}", self.key));
        label_name(&self.key).map_err(bad)?;
        let alternation = || {
            let values = self.values.clone().unwrap_or_else(|| vec![self.value.clone()]);
            values.iter().map(|v| regex::escape(&text(v))).collect::<Vec<_>>().join("|")
        };
        let (op, value) = match self.operator.as_str() {
            "=" => (Op::Eq, text(&self.value)),
            "!=" => (Op::Ne, text(&self.value)),
            "=~" => (Op::Re, text(&self.value)),
            "!~" => (Op::NotRe, text(&self.value)),
            "=|" => (Op::Re, alternation()),
            "!=|" => (Op::NotRe, alternation()),
            other => {
                return Err(bad(format!("operator {other:?} is not supported (=, !=, =~, !~, =|, !=|)")));
            }
        };
        Matcher::new(&self.key, op, &value).map_err(bad)
    }
}

/// A payload value as a filter: `None` for "everything" (absent, empty, `$__all`, `All`,
/// `*`); one value is an equality unless it carries regex syntax (Grafana's regex format
/// escapes values and joins several as `(a|b)`); an array is an alternation of its values.
pub(in crate::serve) fn filter_of(label: &str, v: &Value) -> Result<Option<Matcher>, ApiError> {
    let all = |s: &str| matches!(s, "" | "$__all" | "All" | "*" | ".*");
    let bad = |e: String| ApiError::bad_request(format!("payload.{label}: {e}"));
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let values: Vec<String> = items.iter().map(text).collect();
            if values.is_empty() || values.iter().any(|s| all(s)) {
                return Ok(None);
            }
            if let [one] = values.as_slice() {
                return filter_of(label, &Value::String(one.clone()));
            }
            let alt = values.iter().map(|s| regex::escape(s)).collect::<Vec<_>>().join("|");
            Matcher::new(label, Op::Re, &alt).map(Some).map_err(bad)
        }
        Value::Object(_) => Err(bad("expected a string or an array of strings, got an object".into())),
        v => {
            let s = text(v);
            if all(&s) {
                return Ok(None);
            }
            let regexy = s.contains(['\\', '(', '|', '[', '*', '+', '?', '^', '$']);
            if regexy && let Ok(m) = Matcher::new(label, Op::Re, &s) {
                return Ok(Some(m));
            }
            Matcher::new(label, Op::Eq, &s).map(Some).map_err(bad)
        }
    }
}

/// The label names in `by`: a string (comma separated) or an array.
pub(in crate::serve) fn labels_of(v: &Value) -> Vec<String> {
    let items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(text).collect(),
        v => text(v).split(',').map(str::to_string).collect(),
    };
    items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && s != "$__all").collect()
}

/// The payload's label filters.
pub(in crate::serve) fn payload_filters(payload: &Value) -> Result<Vec<Matcher>, ApiError> {
    let mut out = Vec::new();
    if let Value::Object(map) = payload {
        check_filters(map.len(), "payload fields")?;
        for (k, v) in map {
            if OPTIONS.contains(&k.as_str()) || k == "metric" || k == "target" || k == "name" {
                continue;
            }
            label_name(k).map_err(|m| ApiError::bad_request(format!("payload key {k:?}: {m}")))?;
            out.extend(filter_of(k, v)?);
        }
    }
    Ok(out)
}

/// A label name as Prometheus allows them, `[A-Za-z_][A-Za-z0-9_]*`: a filter's key is
/// printed into queries and messages, and must not carry syntax.
fn label_name(k: &str) -> Result<(), String> {
    let mut chars = k.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("not a label name (letters, digits and _, not starting with a digit)".into())
    }
}

pub(in crate::serve) fn payload_str<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// An option's value (`reference`, `statistic`, `format`, `threshold`...), unescaped: a
/// dashboard variable in an option arrives in Grafana's regex format, which escapes regex
/// syntax (`now-8d..now-1d` becomes `now-8d\.\.now-1d`), and no option is a regex.
pub(in crate::serve) fn option_str(payload: &Value, key: &str) -> Option<String> {
    payload_str(payload, key).map(unescape)
}

/// `s` without the backslashes that escape a character that is not a letter or digit.
pub(in crate::serve) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&next) if c == '\\' && !next.is_alphanumeric() => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_query::Op;
    use serde_json::json;

    #[test]
    fn options_arrive_unescaped_from_grafanas_regex_format() {
        let p = json!({"reference": "now-8d\\.\\.now-1d", "threshold": "0\\.5", "statistic": "psi", "alias": " "});
        assert_eq!(option_str(&p, "reference").as_deref(), Some("now-8d..now-1d"));
        assert_eq!(option_str(&p, "threshold").as_deref(), Some("0.5"));
        assert_eq!(option_str(&p, "statistic").as_deref(), Some("psi"));
        assert_eq!(option_str(&p, "alias"), None);
        // A backslash before a letter or digit stays (it escapes nothing in the regex format).
        assert_eq!(unescape("a\\d\\\\b\\"), "a\\d\\b\\");
    }

    #[test]
    fn multi_values_arrive_in_every_form_grafana_sends() {
        let m = |v: Value| filter_of("segment", &v).unwrap();
        let eq = m(json!("email")).unwrap();
        assert!(eq.op == Op::Eq && eq.matches("email") && !eq.matches("phone"));
        for v in [
            json!(["email", "phone"]),
            json!("(email|phone)"),
            json!("{email,phone}".replace(['{', '}'], "").replace(',', "|")),
        ] {
            let f = m(v.clone()).unwrap();
            assert!(f.matches("email") && f.matches("phone") && !f.matches("ssn"), "{v}");
        }
        // Grafana's regex format escapes the values it interpolates.
        let v = m(json!("(1\\.4\\.0|1\\.5\\.0-rc1)")).unwrap();
        assert!(v.matches("1.4.0") && v.matches("1.5.0-rc1") && !v.matches("1x4x0"));
        for all in [json!("$__all"), json!(["$__all"]), json!(""), json!(null), json!([]), json!("All")] {
            assert!(m(all.clone()).is_none(), "{all}");
        }
        assert!(filter_of("segment", &json!({"a": 1})).unwrap_err().message().contains("payload.segment"));
    }

    #[test]
    fn adhoc_filters_cover_grafanas_operators() {
        let f = |op: &str, value: Value, values: Option<Vec<Value>>| {
            AdhocFilter { key: "variant".into(), operator: op.into(), value, values }.matcher()
        };
        assert!(f("=", json!("canary"), None).unwrap().matches("canary"));
        assert!(!f("!=", json!("canary"), None).unwrap().matches("canary"));
        assert!(f("=~", json!("can.*"), None).unwrap().matches("canary"));
        assert!(!f("!~", json!("can.*"), None).unwrap().matches("canary"));
        let any = f("=|", json!(""), Some(vec![json!("a.b"), json!("canary")])).unwrap();
        assert!(any.matches("a.b") && any.matches("canary") && !any.matches("axb"));
        assert!(!f("!=|", json!(""), Some(vec![json!("canary")])).unwrap().matches("canary"));
        let e = f("<", json!("3"), None).unwrap_err();
        assert!(e.message().contains("\"<\"") && e.message().contains("variant"), "{}", e.message());
    }
}
