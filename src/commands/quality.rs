//! `modelwatch quality`: model quality per window, realised from feedback and estimated
//! from the confidence distribution without labels, side by side.

use super::{Env, num, open_read_only, table};
use crate::cli::{OutputFormat, QualityArgs};
use modelwatch::time::rfc3339;
use modelwatch_query::quality::{Quality, QualityOptions, report};
use std::io::Write;
use std::process::ExitCode;

/// A figure of a [`Quality`] and its interval.
type FigureWithInterval = fn(&Quality) -> (f64, Option<(f64, f64)>);

fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.1} %", 100.0 * x) } else { "-".into() }
}

/// A delay in the largest unit that keeps it readable.
fn secs(s: f64) -> String {
    match s {
        s if !s.is_finite() => "-".into(),
        s if s >= 86_400.0 => format!("{:.1}d", s / 86_400.0),
        s if s >= 3_600.0 => format!("{:.1}h", s / 3_600.0),
        s if s >= 60.0 => format!("{:.1}m", s / 60.0),
        s => format!("{s:.0}s"),
    }
}

fn ci(c: Option<(f64, f64)>) -> String {
    c.map(|(lo, hi)| format!(" [{}, {}]", num(lo), num(hi))).unwrap_or_default()
}

pub fn run(env: &Env, args: &QualityArgs) -> anyhow::Result<ExitCode> {
    let store = open_read_only(&args.data)?;
    let (from, to) = env.window(&args.window, "7d")?;
    let reference = match &args.reference {
        Some(r) => env.range(r, "reference")?,
        None => (from - (to - from), from),
    };
    let opts = QualityOptions {
        reference: Some(reference),
        threshold: args.threshold,
        min_label_age_ms: modelwatch::time::parse_age(&args.min_label_age)
            .map_err(|e| super::UsageError(format!("--min-label-age: {e}")))?,
        min_bin_labels: args.min_bin_labels,
    };
    let by: Vec<String> = args.by.iter().cloned().collect();
    let doc = report(&store, &args.filter.matchers(), &by, (from, to), env.now_ms(), &opts)?;
    let [from, to] = doc.window;
    let rows = &doc.groups;
    let mut out = std::io::stdout().lock();
    let group = |r: &modelwatch_query::quality::QualityRow| {
        if r.tags.is_empty() {
            "all".to_string()
        } else {
            r.tags.values().cloned().collect::<Vec<_>>().join(",")
        }
    };
    match args.format {
        OutputFormat::Json => {
            // Through a `Value`: its keys sorted, as the REST answer prints them.
            writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::to_value(&doc)?)?)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "group",
                "kind",
                "predictions",
                "coverage",
                "n",
                "positives",
                "tp",
                "fp",
                "fn",
                "tn",
                "precision",
                "recall",
                "f1",
                "auc",
                "estimate_refused",
            ])?;
            for r in rows {
                let mut rec = |kind: &str, q: &Quality| {
                    w.write_record([
                        group(r),
                        kind.into(),
                        r.predictions.to_string(),
                        r.coverage.to_string(),
                        q.n.to_string(),
                        q.positives.to_string(),
                        q.tp.to_string(),
                        q.fp.to_string(),
                        q.fn_.to_string(),
                        q.tn.to_string(),
                        q.precision.to_string(),
                        q.recall.to_string(),
                        q.f1.to_string(),
                        q.auc.to_string(),
                        r.estimate_refused.clone().unwrap_or_default(),
                    ])
                };
                rec("realised", &r.realised)?;
                if let Some(e) = &r.estimated {
                    rec("estimated", e)?;
                }
            }
            w.flush()?;
        }
        OutputFormat::Table => {
            let matured = if doc.min_label_age_ms > 0 {
                format!(
                    " (asked until {}; labels at least {} old)",
                    rfc3339(doc.requested_window[1]),
                    args.min_label_age
                )
            } else {
                String::new()
            };
            writeln!(
                out,
                "predictions made {} .. {}{matured}; threshold {}; estimate calibrated on {} .. {}",
                rfc3339(from),
                rfc3339(to),
                args.threshold,
                rfc3339(reference.0),
                rfc3339(reference.1)
            )?;
            let mut t = table([
                "group",
                "predictions",
                "labels (coverage)",
                "label delay p50 / p90",
                "TP / FP / FN / TN",
                "precision [95 %]",
                "recall [95 %]",
                "F1",
                "AUC",
                "est. precision [95 %]",
                "est. recall [95 %]",
                "est. F1",
                "est. AUC",
            ]);
            let mut refused = Vec::new();
            for r in rows {
                let q = &r.realised;
                let e = r.estimated.as_ref();
                let est = |f: fn(&Quality) -> f64| e.map(|e| num(f(e))).unwrap_or_default();
                let est_ci = |f: FigureWithInterval| {
                    e.map(|e| {
                        let (v, c) = f(e);
                        format!("{}{}", num(v), ci(c))
                    })
                    .unwrap_or_default()
                };
                if let Some(why) = &r.estimate_refused {
                    refused.push(format!("{}: no estimate: {why}", group(r)));
                }
                t.add_row([
                    group(r),
                    format!("{:.0}", r.predictions),
                    format!("{:.0} ({})", q.n, pct(r.coverage)),
                    r.label_delay
                        .as_ref()
                        .map(|d| format!("{} / {}", secs(d.p50_s), secs(d.p90_s)))
                        .unwrap_or_default(),
                    format!("{:.0} / {:.0} / {:.0} / {:.0}", q.tp, q.fp, q.fn_, q.tn),
                    format!("{}{}", num(q.precision), ci(q.precision_ci)),
                    format!("{}{}", num(q.recall), ci(q.recall_ci)),
                    num(q.f1),
                    num(q.auc),
                    est_ci(|q| (q.precision, q.precision_ci)),
                    est_ci(|q| (q.recall, q.recall_ci)),
                    est(|q| q.f1),
                    est(|q| q.auc),
                ]);
            }
            writeln!(out, "{t}")?;
            for line in refused {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
