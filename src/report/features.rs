//! The quarterly feature review as one HTML page, drawn from the document `modelwatch
//! features report --format json` prints (its shape is fixed by the shared contract: the
//! page reads it as a `serde_json::Value`, so it is drawn from exactly what it embeds).
//!
//! Charts: the report version's importance (one bar per feature), importance across
//! versions (a line per feature, one point per version), the Pearson and Spearman matrices
//! (a cell per pair), the drift of each feature over the period (a bar per feature, a line
//! per feature with a point per window); tables of the versions, the pruning candidates with
//! their evidence, the features kept, and the most correlated pairs.
//!
//! Matrices of more than [`MATRIX_FEATURES`] features draw the most important ones (a
//! thousand features would make a million cells nobody can read); the pairs table and the
//! embedded document still cover all of them.

use super::chart::{self, Bar, BarChart, Heatmap, Line, LineChart, Tone, XAxis};
use super::html::{Page, para, table};
use super::{ReportError, num, text};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The most features a correlation heatmap draws.
pub const MATRIX_FEATURES: usize = 60;

/// The most lines a trend chart draws (the first in importance or drift order).
pub const TREND_LINES: usize = 20;

/// The most rows of the correlated-pairs table.
const PAIRS_SHOWN: usize = 200;

/// `doc[key]` as an array, or an error naming the field.
fn array<'a>(doc: &'a Value, key: &str) -> Result<&'a Vec<Value>, ReportError> {
    doc.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| ReportError::Document(format!("the features report has no `{key}` list")))
}

/// The report version's share of each feature, in the order of `features`.
fn shares(doc: &Value, features: &[String], version: &Value) -> Vec<f64> {
    let by_feature: HashMap<String, &Value> =
        doc["importance"].as_array().into_iter().flatten().map(|i| (text(&i["feature"]), i)).collect();
    features
        .iter()
        .map(|f| {
            by_feature
                .get(f)
                .and_then(|i| i["by_version"].as_array())
                .and_then(|v| v.iter().find(|e| &e["version"] == version))
                .map_or(f64::NAN, |e| num(&e["share"]))
        })
        .collect()
}

/// Indices of `values` largest first, those that are not finite last (a stable order).
fn ranked(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |v: f64| if v.is_finite() { v } else { f64::NEG_INFINITY };
        key(values[b]).total_cmp(&key(values[a]))
    });
    order
}

/// Draws the features report `doc` (see the module docs), or says which field is missing.
pub fn features_html(doc: &Value) -> Result<String, ReportError> {
    let model = doc
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ReportError::Document("the features report has no `model`".into()))?;
    let features: Vec<String> = array(doc, "features")?.iter().map(text).collect();
    for k in ["versions", "importance", "candidates", "kept", "drift"] {
        array(doc, k)?;
    }
    let version = doc.get("version").cloned().unwrap_or(Value::Null);
    let mut page = Page::new(&format!("Feature review: {model}"));
    page.lead(&format!(
        "version {} · {} .. {} · {} features",
        text(&version),
        text(&doc["from"]),
        text(&doc["to"]),
        features.len()
    ));
    let s = &doc["settings"];
    page.lead(&format!(
        "pruning: importance share below {} % in each of the last {} versions, or |correlation| ≥ {} with a more important feature",
        chart::short(num(&s["min_share"]) * 100.0),
        text(&s["versions"]),
        chart::short(num(&s["max_correlation"]))
    ));

    let share = shares(doc, &features, &version);
    let order = ranked(&share);
    let bars: Vec<Bar> = order
        .iter()
        .map(|&i| Bar {
            label: features[i].clone(),
            series: "share".into(),
            value: share[i],
            tone: Tone::Series(0),
        })
        .collect();
    page.section(
        "importance",
        &format!("Importance of version {}", text(&version)),
        &format!(
            "{}{}",
            para("note", "Share of the total permutation importance, most important first."),
            chart::bar_chart(&BarChart {
                id: "importance",
                bars: &bars,
                divide: 0.01,
                unit: "%",
                threshold: None
            })
        ),
    );
    page.section("importance_trend", "Importance across versions", &importance_trend(doc, &features, &order));
    page.wide_section("correlation", "Correlation between features", &correlation(doc, &features, &share)?);
    page.wide_section("candidates", "Pruning candidates", &candidates(doc));
    page.wide_section("drift", "Drift of each feature over the period", &drift(doc));
    let versions: Vec<Vec<String>> = doc["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let aliases: Vec<String> = v["aliases"].as_array().into_iter().flatten().map(text).collect();
            vec![
                text(&v["version"]),
                text(&v["created_at"]),
                text(&v["status"]),
                aliases.join(", "),
                text(&v["rows"]),
            ]
        })
        .collect();
    page.section(
        "versions",
        "Versions in the period",
        &if versions.is_empty() {
            chart::no_data("versions", "")
        } else {
            table("versions", &["version", "created", "status", "aliases", "training rows"], &versions)
        },
    );
    Ok(page.finish(&embedded(doc, &features, &share)?))
}

fn importance_trend(doc: &Value, features: &[String], order: &[usize]) -> String {
    let by_feature: HashMap<String, &Value> =
        doc["importance"].as_array().into_iter().flatten().map(|i| (text(&i["feature"]), i)).collect();
    let lines: Vec<Line> = order
        .iter()
        .map(|&i| Line {
            name: features[i].clone(),
            points: by_feature
                .get(&features[i])
                .and_then(|e| e["by_version"].as_array())
                .into_iter()
                .flatten()
                .map(|v| (num(&v["version"]), num(&v["share"])))
                .collect(),
        })
        .collect();
    chart::line_chart(&LineChart {
        id: "importance_trend",
        x: XAxis::Number,
        x_range: None,
        step: None,
        divide: 0.01,
        unit: "%",
        threshold: None,
        lines: &lines,
        max_lines: TREND_LINES,
    })
}

fn correlation(doc: &Value, features: &[String], share: &[f64]) -> Result<String, ReportError> {
    let c = &doc["correlation"];
    if c.is_null() {
        return Ok(chart::no_data(
            "pearson",
            ": this version has no correlation matrix stored (registered before correlations were kept)",
        ));
    }
    let names: Vec<String> = array(c, "features")?.iter().map(text).collect();
    let n = names.len();
    let drawn = drawn_features(&names, features, share);
    let mut html = String::new();
    if n > drawn.len() {
        html.push_str(&para(
            "note",
            &format!(
                "{} of {n} features drawn (the most important), and only theirs embedded in the page; \
                 the table below lists every pair past the limit, and `modelwatch features report --format json` \
                 has both whole matrices.",
                drawn.len()
            ),
        ));
    }
    let labels: Vec<(String, String)> = drawn.iter().map(|&i| (names[i].clone(), names[i].clone())).collect();
    for (id, key) in [("pearson", "Pearson"), ("spearman", "Spearman")] {
        let m = matrix(c, id, n)?;
        let values: Vec<Vec<f64>> = drawn.iter().map(|&i| drawn.iter().map(|&j| m[i][j]).collect()).collect();
        html.push_str(&format!("<h3>{key}</h3>"));
        html.push_str(&chart::heatmap(&Heatmap {
            id,
            rows: &labels,
            cols: &labels,
            values: &values,
            colours: chart::Colours::Diverging,
        }));
    }
    let limit = num(&doc["settings"]["max_correlation"]);
    let limit = if limit.is_finite() { limit } else { 0.95 };
    let (p, sp) = (matrix(c, "pearson", n)?, matrix(c, "spearman", n)?);
    let mut pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| p[i][j].abs() >= limit || sp[i][j].abs() >= limit)
        .collect();
    pairs.sort_by(|a, b| p[b.0][b.1].abs().total_cmp(&p[a.0][a.1].abs()));
    if pairs.is_empty() {
        html.push_str(&para(
            "note",
            &format!("No pair of features reaches |correlation| {}.", chart::short(limit)),
        ));
    } else {
        let rows: Vec<Vec<String>> = pairs
            .iter()
            .take(PAIRS_SHOWN)
            .map(|&(i, j)| {
                vec![names[i].clone(), names[j].clone(), chart::short(p[i][j]), chart::short(sp[i][j])]
            })
            .collect();
        html.push_str(&para(
            "note",
            &format!(
                "{} pair{} at |correlation| ≥ {}{}:",
                pairs.len(),
                if pairs.len() == 1 { "" } else { "s" },
                chart::short(limit),
                if pairs.len() > PAIRS_SHOWN { format!(", the first {PAIRS_SHOWN}") } else { String::new() }
            ),
        ));
        html.push_str(&table("pairs", &["feature", "feature", "Pearson", "Spearman"], &rows));
    }
    Ok(html)
}

/// The positions in `names` of the features a heatmap draws: the [`MATRIX_FEATURES`] most
/// important by the report version's share (unknown ones last), in matrix order.
fn drawn_features(names: &[String], features: &[String], share: &[f64]) -> Vec<usize> {
    let rank: HashMap<&str, f64> = features.iter().map(String::as_str).zip(share.iter().copied()).collect();
    let keyed: Vec<f64> = names.iter().map(|f| rank.get(f.as_str()).copied().unwrap_or(f64::NAN)).collect();
    let mut drawn = ranked(&keyed);
    drawn.truncate(MATRIX_FEATURES);
    drawn.sort_unstable();
    drawn
}

/// The document the page embeds: `doc`, but past [`MATRIX_FEATURES`] features the
/// correlation keeps only the drawn features' matrices (two 1,000-feature matrices are
/// 20 MB of page), saying so in `correlation.embedded`.
fn embedded(doc: &Value, features: &[String], share: &[f64]) -> Result<Value, ReportError> {
    let c = &doc["correlation"];
    let Some(names) = c.get("features").and_then(Value::as_array) else { return Ok(doc.clone()) };
    let names: Vec<String> = names.iter().map(text).collect();
    let n = names.len();
    if n <= MATRIX_FEATURES {
        return Ok(doc.clone());
    }
    let drawn = drawn_features(&names, features, share);
    let mut out = doc.clone();
    for key in ["pearson", "spearman"] {
        let m = matrix(c, key, n)?;
        let sub: Vec<Vec<Value>> =
            drawn.iter().map(|&i| drawn.iter().map(|&j| c[key][i][j].clone()).collect()).collect();
        debug_assert_eq!(m.len(), n);
        out["correlation"][key] = json!(sub);
    }
    out["correlation"]["features"] = json!(drawn.iter().map(|&i| &names[i]).collect::<Vec<_>>());
    out["correlation"]["embedded"] = json!({
        "features": drawn.len(),
        "of": n,
        "note": "the most important features' matrices only; `modelwatch features report --format json` has both whole",
    });
    Ok(out)
}

/// The `n × n` matrix `c[key]` (null cells not finite), or an error saying what is wrong.
fn matrix(c: &Value, key: &str, n: usize) -> Result<Vec<Vec<f64>>, ReportError> {
    let rows = array(c, key)?;
    if rows.len() != n || rows.iter().any(|r| r.as_array().is_none_or(|r| r.len() != n)) {
        return Err(ReportError::Document(format!(
            "correlation.{key} is not a {n} × {n} matrix (one row and column per feature of correlation.features)"
        )));
    }
    Ok(rows.iter().map(|r| r.as_array().into_iter().flatten().map(num).collect()).collect())
}

fn candidates(doc: &Value) -> String {
    let rows: Vec<Vec<String>> = doc["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let reasons: Vec<String> = c["reasons"].as_array().into_iter().flatten().map(text).collect();
            let evidence: Vec<String> = c["evidence"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let mut s = format!("v{}: share {}", text(&e["version"]), chart::short(num(&e["share"])));
                    if !e["correlated_with"].is_null() {
                        s.push_str(&format!(
                            ", r {} with {}",
                            chart::short(num(&e["correlation"])),
                            text(&e["correlated_with"])
                        ));
                    }
                    s
                })
                .collect();
            vec![text(&c["feature"]), reasons.join("; "), evidence.join("; ")]
        })
        .collect();
    let mut html = if rows.is_empty() {
        para("nodata", "No pruning candidate: every feature carries weight in the last versions.")
    } else {
        table("candidates", &["feature", "why", "evidence by version"], &rows)
    };
    let kept: Vec<Vec<String>> = doc["kept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| vec![text(&k["feature"]), text(&k["reason"])])
        .collect();
    html.push_str("<h3>Kept</h3>");
    html.push_str(&if kept.is_empty() {
        para("nodata", "No feature that qualified was kept.")
    } else {
        table("kept", &["feature", "kept because"], &kept)
    });
    html
}

fn drift(doc: &Value) -> String {
    let items: Vec<&Value> = doc["drift"].as_array().into_iter().flatten().collect();
    let values: Vec<f64> = items.iter().map(|d| num(&d["value"])).collect();
    let order = ranked(&values);
    let bars: Vec<Bar> = order
        .iter()
        .map(|&i| {
            let d = items[i];
            Bar {
                label: text(&d["feature"]),
                series: d["statistic"].as_str().unwrap_or("drift").to_string(),
                value: values[i],
                tone: if d["drifted"] == Value::Bool(true) { Tone::Bad } else { Tone::Ok },
            }
        })
        .collect();
    let threshold = chart::shared_threshold(items.iter().map(|d| num(&d["threshold"])));
    let mut html = para("note", "Each feature's drift over the whole period, red where it drifted:");
    html.push_str(&chart::drift_bars(&bars, threshold));
    let lines: Vec<Line> = order
        .iter()
        .map(|&i| Line {
            name: text(&items[i]["feature"]),
            points: items[i]["windows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| (time_ms(&w["start"]), num(&w["value"])))
                .collect(),
        })
        .collect();
    html.push_str(&para("note", "Its trend, one point per window of the period:"));
    html.push_str(&chart::line_chart(&LineChart {
        id: "drift_trend",
        x: XAxis::Time,
        x_range: Some((time_ms(&doc["from"]), time_ms(&doc["to"])))
            .filter(|r| r.0.is_finite() && r.1.is_finite()),
        step: None,
        divide: 1.0,
        unit: "",
        threshold,
        lines: &lines,
        max_lines: TREND_LINES,
    }));
    html
}

/// An RFC 3339 instant (or epoch ms) as ms; not finite when it is neither.
fn time_ms(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => {
            chrono::DateTime::parse_from_rfc3339(s).map_or(f64::NAN, |t| t.timestamp_millis() as f64)
        }
        _ => f64::NAN,
    }
}
