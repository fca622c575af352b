//! `modelwatch quality`: model quality per window, realised from feedback and estimated
//! from the confidence distribution without labels, side by side.

use super::{Env, num, open_read_only, table};
use crate::cli::{OutputFormat, QualityArgs};
use modelwatch::time::rfc3339;
use modelwatch_query::quality::{Quality, QualityDocument, quality as quality_of};
use std::io::Write;
use std::process::ExitCode;

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
    let by: Vec<String> = args.by.iter().cloned().collect();
    let groups = quality_of(&store, &args.filter.matchers(), &by, from, to, Some(reference), args.threshold)?;
    let doc = QualityDocument {
        window: [from, to],
        reference: [reference.0, reference.1],
        threshold: args.threshold,
        groups,
    };
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
            w.write_record(["group", "kind", "n", "positives", "precision", "recall", "f1", "auc"])?;
            for r in rows {
                let mut rec = |kind: &str, q: &Quality| {
                    w.write_record([
                        group(r),
                        kind.into(),
                        q.n.to_string(),
                        q.positives.to_string(),
                        q.precision.to_string(),
                        q.recall.to_string(),
                        q.f1.to_string(),
                        q.auc.to_string(),
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
            writeln!(
                out,
                "window {} .. {}; threshold {}; estimate calibrated on {} .. {}",
                rfc3339(from),
                rfc3339(to),
                args.threshold,
                rfc3339(reference.0),
                rfc3339(reference.1)
            )?;
            let mut t = table([
                "group",
                "labels",
                "precision [95 %]",
                "recall [95 %]",
                "F1",
                "AUC",
                "predictions",
                "est. precision",
                "est. recall",
                "est. F1",
                "est. AUC",
            ]);
            for r in rows {
                let q = &r.realised;
                let e = r.estimated.as_ref();
                let est = |f: fn(&Quality) -> f64| e.map(|e| num(f(e))).unwrap_or_default();
                t.add_row([
                    group(r),
                    format!("{:.0}", q.n),
                    format!("{}{}", num(q.precision), ci(q.precision_ci)),
                    format!("{}{}", num(q.recall), ci(q.recall_ci)),
                    num(q.f1),
                    num(q.auc),
                    e.map(|e| format!("{:.0}", e.n)).unwrap_or_default(),
                    est(|q| q.precision),
                    est(|q| q.recall),
                    est(|q| q.f1),
                    est(|q| q.auc),
                ]);
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
