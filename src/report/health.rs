//! The ML System Health report: the Grafana dashboard's panels (`deploy/grafana/dashboards/
//! ml-system-health.json`) without Grafana, and the retraining loop's timeline.
//!
//! [`health_data`] computes every panel through the functions the CLI prints (the query
//! engine through [`modelwatch_query::answer`], `baseline::drift_document`,
//! `quality::report`, the registry's audit log, the trigger history), so each panel's data
//! is, value for value, the JSON of the command it names in its `cli` field (run with the
//! same `--data`); the two per-window trends Grafana draws (drift and quality by window)
//! come from `drift::series` and `quality::series`, as `/grafana/query` computes them.
//! [`health_html`] draws the page from that document alone, and embeds it.
//!
//! Every query panel uses the same windows: [`modelwatch_query::report_windows`] of the
//! range (an hour or more, at most 48), the windows the drift and quality trends use.

use super::chart::{self, Bar, BarChart, Event, Heatmap, Histogram, Line, LineChart, Tone, XAxis};
use super::html::{Page, escape, para, table};
use super::{ReportError, num, text};
use crate::baseline::{self, BaselineError};
use crate::time::{rfc3339, rfc3339_exact as instant};
use crate::triggers::{EventRecord, with_registry};
use modelwatch_query::drift::{DriftConfig, DriftSeries};
use modelwatch_query::quality::{self, QualityOptions, QualitySeries};
use modelwatch_query::{Limits, Matcher, Range, SeriesJson, Unit, duration_words, parse, report_windows};
use modelwatch_store::Store;
use modelwatch_store::registry::Registry;
use serde_json::{Value, json};
use std::path::Path;

/// What a health report covers.
#[derive(Clone, Debug)]
pub struct HealthOptions {
    /// Only this model (every model without).
    pub model: Option<String>,
    /// The range, `[from_ms, to_ms)`.
    pub from_ms: i64,
    /// Its end.
    pub to_ms: i64,
    /// Now (relative ranges, the cache of reference profiles).
    pub now_ms: i64,
    /// The drift reference: a saved baseline's name or a range; by default the seven days
    /// before the range (for the default range, the dashboard's `now-8d..now-1d`).
    pub reference: Option<String>,
}

/// The seven days before the range: the default drift reference and the labelled range the
/// quality estimate is calibrated on.
const REFERENCE_MS: i64 = 7 * 86_400_000;

/// A query panel: id, title, and (series name, query) pairs.
type QueryPanel = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The query panels, in the dashboard's order.
const QUERIES: [QueryPanel; 7] = [
    (
        "latency",
        "Prediction latency p50 / p95 / p99 by variant",
        &[
            ("p50", "p50(latency) by (variant)"),
            ("p95", "p95(latency) by (variant)"),
            ("p99", "p99(latency) by (variant)"),
        ],
    ),
    ("error_rate", "Error rate by variant", &[("", "error_ratio by (variant)")]),
    ("predictions", "Predictions per second by segment", &[("", "rate(predictions) by (segment)")]),
    ("confidence", "Confidence score distribution", &[("", "buckets(confidence)")]),
    ("confidence_mean", "Mean confidence by segment", &[("", "mean(confidence) by (segment)")]),
    ("model_age", "Model age", &[("", "max(model_age_seconds) by (variant, version)")]),
    ("loaded_models", "Loaded models", &[("", "max(model_loaded) by (variant, version)")]),
];

/// The report's document: every panel's data, the command that prints the same, and the
/// timeline's sources.
pub fn health_data(
    store: &Store,
    data_dir: &Path,
    registry: Option<&Registry>,
    o: &HealthOptions,
) -> Result<Value, ReportError> {
    if o.to_ms <= o.from_ms {
        return Err(ReportError::Range(format!(
            "the range ends ({}) before it starts ({})",
            rfc3339(o.to_ms),
            rfc3339(o.from_ms)
        )));
    }
    let windows = report_windows(Range { from_ms: o.from_ms, to_ms: o.to_ms, step_ms: 1 });
    let step = windows.first().map_or(3_600_000, |w| w.1 - w.0);
    let range = Range { from_ms: windows.first().map_or(o.from_ms, |w| w.0), to_ms: o.to_ms, step_ms: step };
    let matchers: Vec<Matcher> = o.model.iter().map(|m| modelwatch_query::drift::eq("model", m)).collect();
    let filters: Vec<String> = o.model.iter().map(|m| format!("model={m}")).collect();
    let window_args = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend(["--from".into(), instant(o.from_ms), "--to".into(), instant(o.to_ms)]);
        v
    };
    let mut panels = serde_json::Map::new();
    for (id, title, queries) in QUERIES {
        let mut out = Vec::new();
        for (name, text) in queries {
            let mut q = parse(text).map_err(|e| ReportError::Range(format!("{text}: {e}")))?;
            q.matchers.extend(matchers.iter().cloned());
            let series = modelwatch_query::answer(store, &q, range, Limits::default())?;
            let text = q.to_string();
            let mut cli = window_args(&["query", &text]);
            cli.extend(["--step".into(), duration_words(step), "--format".into(), "json".into()]);
            out.push(json!({
                "name": name,
                "query": text,
                "unit": q.unit(),
                "cli": cli,
                "series": SeriesJson::new(&series, q.unit()),
            }));
        }
        panels.insert(id.into(), json!({ "title": title, "queries": out }));
    }

    let reference = o
        .reference
        .clone()
        .unwrap_or_else(|| format!("{}..{}", instant(o.from_ms - REFERENCE_MS), instant(o.from_ms)));
    let cfg = DriftConfig::default();
    let mut drift_cli = window_args(&["drift", "--reference", &reference]);
    drift_cli.extend(o.model.iter().flat_map(|m| ["--model".to_string(), m.clone()]));
    drift_cli.extend(["--format".into(), "json".into()]);
    let (document, note) = match baseline::drift_document(
        store,
        data_dir,
        &reference,
        &matchers,
        filters.clone(),
        (o.from_ms, o.to_ms),
        o.now_ms,
        &cfg,
    ) {
        Ok(d) => (serde_json::to_value(&d)?, Value::Null),
        Err(e @ BaselineError::NoData { .. }) => (Value::Null, json!(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let which = DriftSeries::default();
    let trend = if document.is_null() {
        Vec::new()
    } else {
        let (profile, _) = baseline::reference(store, data_dir, &reference, &matchers, o.now_ms)?;
        modelwatch_query::drift::series(store, &profile, &matchers, &[], which, &windows, &cfg)?
    };
    panels.insert(
        "drift".into(),
        json!({
            "title": "Drift by feature",
            "reference": reference,
            "cli": drift_cli,
            "document": document,
            "note": note,
            "trend": { "statistic": which.as_str(), "series": SeriesJson::new(&trend, Unit::None) },
        }),
    );

    // The quality estimate is calibrated on the labelled range before: the reference when
    // it is a range, else the seven days before.
    let calibration = crate::time::parse_range(&reference, o.now_ms)
        .ok()
        .filter(|_| crate::time::is_range(&reference))
        .unwrap_or((o.from_ms - REFERENCE_MS, o.from_ms));
    let opts = QualityOptions { reference: Some(calibration), ..QualityOptions::default() };
    let by = ["segment".to_string()];
    let doc = quality::report(store, &matchers, &by, (o.from_ms, o.to_ms), o.now_ms, &opts)?;
    let mut quality_cli = window_args(&["quality", "--by", "segment"]);
    quality_cli
        .extend(["--reference".into(), format!("{}..{}", instant(calibration.0), instant(calibration.1))]);
    quality_cli.extend(o.model.iter().flat_map(|m| ["--model".to_string(), m.clone()]));
    quality_cli.extend(["--format".into(), "json".into()]);
    let trend = quality::series(
        store,
        &matchers,
        &[],
        QualitySeries::default(),
        &windows,
        calibration,
        opts.threshold,
    )?;
    panels.insert(
        "quality".into(),
        json!({
            "title": "Quality per segment, realised and estimated",
            "cli": quality_cli,
            "document": serde_json::to_value(&doc)?,
            "trend": { "statistic": "precision", "series": SeriesJson::new(&trend, Unit::None) },
        }),
    );

    Ok(json!({
        "report": "ml-system-health",
        "model": o.model,
        "from_ms": o.from_ms,
        "to_ms": o.to_ms,
        "from": instant(o.from_ms),
        "to": instant(o.to_ms),
        "now": instant(o.now_ms),
        "step_ms": step,
        "step": duration_words(step),
        "windows": windows.iter().map(|w| w.0).collect::<Vec<_>>(),
        "panels": panels,
        "timeline": timeline_data(store, data_dir, registry, o)?,
    }))
}

/// The timeline's sources in the range: the events tables (`events`), the registry's audit
/// entries (`audit`, as `models log --format json`), the trigger history (`triggers`, as
/// `triggers history --format json`).
fn timeline_data(
    store: &Store,
    data_dir: &Path,
    registry: Option<&Registry>,
    o: &HealthOptions,
) -> Result<Value, ReportError> {
    let wanted = |m: &str| o.model.as_deref().is_none_or(|w| w == m);
    let within = |t: i64| (o.from_ms..o.to_ms).contains(&t);
    let mut events = crate::triggers::all_events(store, o.from_ms, o.to_ms)?;
    events.retain(|e| wanted(&e.model));
    events.sort_by_key(|e| e.time_ms);
    let mut audit = Vec::new();
    if let Some(reg) = registry {
        let models = match &o.model {
            Some(m) => vec![m.clone()],
            None => reg.models()?,
        };
        for m in models {
            // A model with no registry head (never registered) has no log.
            let Ok(log) = reg.log(&m) else { continue };
            audit.extend(log.into_iter().filter(|e| within(e.at_ms)));
        }
    }
    let records: Vec<EventRecord> = crate::triggers::read_state(data_dir)?
        .history
        .into_iter()
        .filter(|r| wanted(&r.event.model) && within(r.event.fired_at_ms))
        .collect();
    Ok(json!({
        "events": events,
        "audit": audit,
        "triggers": with_registry(&records, registry),
    }))
}

/// The lanes of the timeline, top to bottom.
pub const LANES: [&str; 7] = ["trigger", "retraining", "gate", "canary", "promotion", "deployment", "event"];

/// The lane of a registry audit entry (`op`, `actor`).
pub fn audit_lane(op: &str, actor: &str) -> &'static str {
    match (op, actor) {
        ("register" | "status", _) => "retraining",
        (_, "canary") => "canary",
        ("gate_report" | "challenger" | "reject", _) => "gate",
        _ => "promotion",
    }
}

/// The lane of an events-table row, or none for the trigger engine's own rows (the trigger
/// history draws those).
pub fn event_lane(kind: &str) -> Option<&'static str> {
    match kind {
        "retrain_triggered" | "retrain_acknowledged" => None,
        k if k.starts_with("canary") => Some("canary"),
        "model_loaded" => Some("deployment"),
        _ => Some("event"),
    }
}

/// A series' name: its query's name and its tags (`p95 variant=control`).
pub fn series_name(prefix: &str, tags: &Value) -> String {
    let tags: Vec<String> = tags
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    match (prefix.is_empty(), tags.is_empty()) {
        (true, true) => "value".into(),
        (true, false) => tags.join(","),
        (false, true) => prefix.into(),
        (false, false) => format!("{prefix} {}", tags.join(",")),
    }
}

/// The lines of a query's JSON answer (`SeriesJson`), named after `prefix` and their tags.
fn lines(prefix: &str, series: &Value) -> Vec<Line> {
    series
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Line {
            name: series_name(prefix, &s["tags"]),
            points: s["points"].as_array().into_iter().flatten().map(|p| (num(&p[0]), num(&p[1]))).collect(),
        })
        .collect()
}

/// Draws the page of a [`health_data`] document.
pub fn health_html(doc: &Value) -> Result<String, ReportError> {
    let need = |k: &str| {
        doc.get(k).ok_or_else(|| ReportError::Document(format!("the health document has no `{k}`")))
    };
    let panels = need("panels")?;
    let (from, to) = (num(need("from_ms")?), num(need("to_ms")?));
    let step = num(need("step_ms")?);
    let model = doc["model"].as_str().map_or("every model".to_string(), |m| format!("model {m}"));
    let mut page = Page::new("ML System Health");
    page.lead(&format!(
        "{model}, {} .. {} (windows of {}), as of {}",
        text(&doc["from"]),
        text(&doc["to"]),
        text(&doc["step"]),
        text(&doc["now"])
    ));
    page.lead("Every panel embeds its data and the modelwatch command that prints the same (add --data).");
    let time_chart = |id: &str, panel: &Value, divide: f64, unit: &str| -> String {
        let mut all = Vec::new();
        for q in panel["queries"].as_array().into_iter().flatten() {
            all.extend(lines(q["name"].as_str().unwrap_or(""), &q["series"]));
        }
        let mut html = chart::line_chart(&LineChart {
            id,
            x: XAxis::Time,
            x_range: Some((from, to)),
            step: Some(step),
            divide,
            unit,
            threshold: None,
            lines: &all,
            max_lines: 24,
        });
        html.push_str(&commands(panel));
        html
    };
    let p = |k: &str| &panels[k];
    for (id, divide, unit) in [
        ("latency", 1e6, "ms"),
        ("error_rate", 0.01, "%"),
        ("predictions", 1.0, "/s"),
        ("confidence_mean", 1.0, ""),
    ] {
        page.section(id, &text(&p(id)["title"]), &time_chart(id, p(id), divide, unit));
    }
    page.section("confidence", "Confidence score distribution", &confidence(p("confidence")));
    page.section(
        "quality",
        "Quality per segment, realised and estimated",
        &quality_panel(p("quality"), from, to, step),
    );
    page.wide_section("drift", "Drift by feature", &drift_panel(p("drift"), from, to, step));
    page.section("model_age", "Model age", &model_age(p("model_age")));
    page.section("loaded_models", "Loaded models", &loaded(p("loaded_models")));
    page.wide_section(
        "timeline",
        "Triggers, retraining, gate, canary and promotions",
        &timeline_panel(&doc["timeline"], from, to),
    );
    Ok(page.finish(doc))
}

/// The commands that print a panel's data, as a note.
fn commands(panel: &Value) -> String {
    let mut out = String::from("<p class=\"note\">");
    for q in panel["queries"].as_array().into_iter().flatten().chain(std::iter::once(panel)) {
        if let Some(cli) = q["cli"].as_array() {
            let words: Vec<String> = cli.iter().map(text).map(|w| shell_word(&w)).collect();
            out.push_str(&format!("<code>modelwatch {}</code> ", escape(&words.join(" "))));
        }
    }
    out.push_str("</p>\n");
    out
}

/// A word quoted for a POSIX shell when it needs it.
fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/=,+@".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Rows of the confidence heatmap: 20 bins of 0.05.
const BINS: usize = 20;

/// The confidence distribution: a heatmap (windows × 20 bins, as the dashboard's) and the
/// histogram of the whole range. A stored bucket counts in the bin holding its midpoint.
fn confidence(panel: &Value) -> String {
    let series = &panel["queries"][0]["series"];
    let mut html = String::new();
    let mut total = [0.0; BINS];
    for s in series.as_array().into_iter().flatten() {
        let points: Vec<i64> =
            s["points"].as_array().into_iter().flatten().map(|p| p[0].as_i64().unwrap_or(0)).collect();
        let mut cells = vec![vec![0.0; points.len()]; BINS];
        for (w, window) in s["buckets"].as_array().into_iter().flatten().enumerate() {
            for b in window.as_array().into_iter().flatten() {
                let (lo, hi, n) = (num(&b[0]), num(&b[1]), num(&b[2]));
                let i = bin_of(lo, hi);
                if w < points.len() && n.is_finite() {
                    cells[i][w] += n;
                    total[i] += n;
                }
            }
        }
        // Top row the most confident.
        cells.reverse();
        let rows: Vec<(String, String)> = (0..BINS)
            .rev()
            .map(|i| {
                (
                    format!("{:?}", i as f64 / BINS as f64),
                    format!("{:.2}–{:.2}", i as f64 / 20.0, (i + 1) as f64 / 20.0),
                )
            })
            .collect();
        let cols: Vec<(String, String)> =
            points.iter().map(|&t| (t.to_string(), chart::time_label(t))).collect();
        html.push_str(&chart::heatmap(&Heatmap {
            id: "confidence",
            rows: &rows,
            cols: &cols,
            values: &cells,
            colours: chart::Colours::ColumnShare,
        }));
    }
    if html.is_empty() {
        html.push_str(&chart::no_data("confidence", ""));
    }
    let bins: Vec<(f64, f64, f64)> =
        (0..BINS).map(|i| (i as f64 / BINS as f64, (i + 1) as f64 / BINS as f64, total[i])).collect();
    html.push_str(&chart::histogram(&Histogram {
        id: "confidence_histogram",
        series: "confidence",
        bins: &bins,
    }));
    html.push_str(&commands(panel));
    html
}

/// The confidence bin (of 20, each 0.05 wide) a stored bucket `[lo, hi)` counts in: the one
/// holding its midpoint.
pub fn bin_of(lo: f64, hi: f64) -> usize {
    let mid = if hi.is_finite() { (lo + hi) / 2.0 } else { lo };
    let i = (mid * BINS as f64).floor();
    if i.is_finite() { (i.max(0.0) as usize).min(BINS - 1) } else { 0 }
}

fn quality_panel(panel: &Value, from: f64, to: f64, step: f64) -> String {
    let doc = &panel["document"];
    let groups: Vec<&Value> = doc["groups"].as_array().into_iter().flatten().collect();
    let mut bars = Vec::new();
    let mut rows = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for g in &groups {
        let values: Vec<String> = g["tags"].as_object().into_iter().flatten().map(|(_, v)| text(v)).collect();
        let label = if values.is_empty() { "all".to_string() } else { values.join(",") };
        bars.push(Bar {
            label: label.clone(),
            series: "realised".into(),
            value: num(&g["realised"]["precision"]),
            tone: Tone::Series(0),
        });
        bars.push(Bar {
            label: label.clone(),
            series: "estimated".into(),
            value: num(&g["estimated"]["precision"]),
            tone: Tone::Series(1),
        });
        let f = |k: &str, q: &str| chart::short(num(&g[k][q]));
        if let Some(why) = g["estimate_refused"].as_str()
            && !refused.iter().any(|r| r == why)
        {
            refused.push(why.to_string());
        }
        rows.push(vec![
            label,
            chart::short(num(&g["predictions"])),
            format!("{} %", chart::short(num(&g["coverage"]) * 100.0)),
            f("realised", "precision"),
            f("realised", "recall"),
            f("realised", "f1"),
            f("realised", "auc"),
            f("estimated", "precision"),
            f("estimated", "recall"),
        ]);
    }
    let mut html = para(
        "note",
        "Precision per segment: realised from feedback, estimated from the confidence without labels.",
    );
    html.push_str(&chart::bar_chart(&BarChart {
        id: "quality",
        bars: &bars,
        divide: 1.0,
        unit: "",
        threshold: None,
    }));
    if !rows.is_empty() {
        html.push_str(&table(
            "quality",
            &[
                "segment",
                "predictions",
                "labelled",
                "precision",
                "recall",
                "F1",
                "AUC",
                "est. precision",
                "est. recall",
            ],
            &rows,
        ));
    }
    for why in refused {
        html.push_str(&para("note", &format!("no estimate: {why}")));
    }
    html.push_str(&para(
        "note",
        "Precision per window, realised from feedback and estimated without labels (the dashboard's panel):",
    ));
    html.push_str(&chart::line_chart(&LineChart {
        id: "quality_trend",
        x: XAxis::Time,
        x_range: Some((from, to)),
        step: Some(step),
        divide: 1.0,
        unit: "",
        threshold: None,
        lines: &lines("", &panel["trend"]["series"]),
        max_lines: 24,
    }));
    html.push_str(&commands(panel));
    html
}

fn drift_panel(panel: &Value, from: f64, to: f64, step: f64) -> String {
    let doc = &panel["document"];
    let mut html = para("note", &format!("reference: {}", text(&panel["reference"])));
    if doc.is_null() {
        html.push_str(&chart::no_data("drift", &format!(": {}", text(&panel["note"]))));
        html.push_str(&commands(panel));
        return html;
    }
    let verdicts: Vec<&Value> = doc["feature_verdicts"].as_array().into_iter().flatten().collect();
    let bars: Vec<Bar> = verdicts
        .iter()
        .map(|f| Bar {
            label: text(&f["feature"]),
            series: f["effect"].as_str().unwrap_or("effect").to_string(),
            value: num(&f["effect_value"]),
            tone: match f["verdict"].as_str() {
                Some("drift") => Tone::Bad,
                Some("warning") => Tone::Warn,
                _ => Tone::Ok,
            },
        })
        .collect();
    let threshold = chart::shared_threshold(verdicts.iter().map(|f| num(&f["threshold"])));
    html.push_str(&para(
        "note",
        &format!(
            "{} of {} judged features drift ({}); effect size per feature, red past its threshold:",
            text(&doc["drifting_features"]),
            text(&doc["features"]),
            if doc["dataset_drift"] == json!(true) { "dataset drift" } else { "no dataset drift" }
        ),
    ));
    html.push_str(&chart::drift_bars(&bars, threshold));
    html.push_str(&para(
        "note",
        &format!(
            "{} per window against the reference (the dashboard's panel):",
            text(&panel["trend"]["statistic"])
        ),
    ));
    html.push_str(&chart::line_chart(&LineChart {
        id: "drift_trend",
        x: XAxis::Time,
        x_range: Some((from, to)),
        step: Some(step),
        divide: 1.0,
        unit: "",
        threshold,
        lines: &lines("", &panel["trend"]["series"]),
        max_lines: 24,
    }));
    html.push_str(&commands(panel));
    html
}

/// The latest value of each series, as bars.
fn model_age(panel: &Value) -> String {
    let bars: Vec<Bar> = lines("", &panel["queries"][0]["series"])
        .into_iter()
        .enumerate()
        .map(|(i, l)| Bar {
            value: l.points.iter().rev().map(|p| p.1).find(|v| v.is_finite()).unwrap_or(f64::NAN),
            label: l.name,
            series: "age".into(),
            tone: Tone::Series(i % chart::PALETTE.len()),
        })
        .collect();
    let mut html = chart::bar_chart(&BarChart {
        id: "model_age",
        bars: &bars,
        divide: 3_600.0,
        unit: "h",
        threshold: None,
    });
    html.push_str(&commands(panel));
    html
}

fn loaded(panel: &Value) -> String {
    let rows: Vec<Vec<String>> = lines("", &panel["queries"][0]["series"])
        .into_iter()
        .map(|l| {
            let last = l.points.iter().rev().find(|p| p.1.is_finite());
            vec![
                l.name,
                last.map(|p| chart::short(p.1)).unwrap_or_else(|| "no data".into()),
                last.map(|p| rfc3339(p.0 as i64)).unwrap_or_default(),
            ]
        })
        .collect();
    let mut html = if rows.is_empty() {
        chart::no_data("loaded_models", "")
    } else {
        table("loaded_models", &["variant, version", "loaded (latest window)", "window"], &rows)
    };
    html.push_str(&commands(panel));
    html
}

/// The timeline's events, in time order: the trigger history, the audit entries, the
/// events-table rows that are not the trigger engine's.
pub fn timeline_events(t: &Value) -> Vec<Event> {
    let list = |k: &str| t[k].as_array().cloned().unwrap_or_default();
    let mut events = Vec::new();
    for r in list("triggers") {
        let e = &r["event"];
        let reasons: Vec<String> =
            e["reasons"].as_array().into_iter().flatten().map(|r| text(&r["summary"])).collect();
        let kinds: Vec<String> =
            e["reasons"].as_array().into_iter().flatten().map(|r| text(&r["trigger"])).collect();
        events.push(Event {
            time: e["fired_at_ms"].as_i64().unwrap_or(0),
            lane: "trigger".into(),
            kind: if kinds.iter().all(String::is_empty) { "event".into() } else { kinds.join(",") },
            text: format!(
                "{} ({}): {}{}",
                text(&e["id"]),
                text(&e["model"]),
                reasons.join("; "),
                r["outcome"].as_str().map(|o| format!(" → {o}")).unwrap_or_default()
            ),
        });
    }
    for a in list("audit") {
        let (op, actor) = (text(&a["op"]), text(&a["actor"]));
        events.push(Event {
            time: a["at_ms"].as_i64().unwrap_or(0),
            lane: audit_lane(&op, &actor).into(),
            text: format!(
                "{} version {} by {actor}: {}",
                text(&a["model"]),
                text(&a["version"]),
                text(&a["reason"])
            ),
            kind: op,
        });
    }
    for e in list("events") {
        let kind = text(&e["kind"]);
        if let Some(lane) = event_lane(&kind) {
            events.push(Event {
                time: e["time_ms"].as_i64().unwrap_or(0),
                lane: lane.into(),
                text: format!(
                    "{} {} ({}): {}",
                    text(&e["model"]),
                    text(&e["version"]),
                    text(&e["variant"]),
                    text(&e["message"])
                ),
                kind,
            });
        }
    }
    events.sort_by_key(|e| e.time);
    events
}

fn timeline_panel(t: &Value, from: f64, to: f64) -> String {
    let events = timeline_events(t);
    let mut html = chart::timeline(&chart::Timeline {
        id: "timeline",
        range: (from as i64, to as i64),
        lanes: &LANES,
        events: &events,
    });
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| vec![rfc3339(e.time), e.lane.clone(), e.kind.clone(), e.text.clone()])
        .collect();
    if !rows.is_empty() {
        html.push_str(&table("timeline", &["time", "step", "what", "details"], &rows));
    }
    html.push_str(&para(
        "note",
        "From the events tables, the registry's audit log (modelwatch models log MODEL) and the trigger history (modelwatch triggers history).",
    ));
    html
}
