//! `modelwatch drift`: a reference (a saved baseline or a range) against a current window,
//! every feature and the confidence score, most severe first, with data-quality checks.

use super::{Env, num, open_read_only, table};
use crate::cli::{CorrectionArg, DriftArgs, OutputFormat};
use modelwatch::baseline;
use modelwatch_query::drift::{Correction, DriftConfig, FeatureVerdict, Measure, Verdict};
use std::io::Write;
use std::process::ExitCode;

pub fn run(env: &Env, args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let store = open_read_only(&args.data)?;
    let window = match &args.current {
        Some(c) => env.range(c, "current")?,
        None => env.window(&args.window, "24h")?,
    };
    let cfg = DriftConfig {
        psi_bins: usize::from(args.psi_bins),
        psi_warning: args.psi_warning,
        psi_drift: args.psi_drift,
        alpha: args.alpha,
        wasserstein: args.wasserstein,
        js: args.js,
        hellinger: args.js,
        drift_share: args.drift_share,
        min_rows: args.min_rows,
        correction: match args.correction {
            CorrectionArg::None => Correction::None,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::Fdr => Correction::Fdr,
        },
        ..DriftConfig::default()
    };
    let doc = baseline::drift_document(
        &store,
        &args.data.data,
        &args.reference,
        &args.filter.matchers(),
        args.filter.describe(),
        window,
        env.now_ms(),
        &cfg,
    )?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            // Through a `Value`: its keys sorted, as the REST answer prints them.
            writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::to_value(&doc)?)?)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "feature",
                "statistic",
                "value",
                "p_value",
                "threshold",
                "verdict",
                "reference",
                "current",
                "note",
            ])?;
            let opt = |v: Option<f64>| v.map(csv_num).unwrap_or_default();
            // First each feature's verdict (its effect, the counts as reference and current,
            // and why), then every statistic.
            for f in &doc.feature_verdicts {
                w.write_record([
                    f.feature.clone(),
                    "verdict".into(),
                    opt(f.effect_value),
                    opt(f.p_value),
                    opt(f.threshold),
                    f.verdict.as_str().to_string(),
                    f.reference_count.to_string(),
                    f.current_count.to_string(),
                    note(f),
                ])?;
            }
            for r in &doc.statistics {
                w.write_record([
                    r.feature.clone(),
                    r.statistic.to_string(),
                    csv_num(r.value),
                    opt(r.p_value),
                    opt(r.threshold),
                    r.verdict.as_str().to_string(),
                    opt(Some(r.reference).filter(|v| !v.is_nan())),
                    opt(Some(r.current).filter(|v| !v.is_nan())),
                    String::new(),
                ])?;
            }
            w.flush()?;
        }
        OutputFormat::Table => {
            writeln!(out, "reference: {}\ncurrent:   {}", doc.reference, doc.current)?;
            if !doc.filters.is_empty() {
                writeln!(out, "filters:   {}", doc.filters.join(", "))?;
            }
            let mut t = table(["feature", "verdict", "effect", "p-value", "values", "note"]);
            for f in &doc.feature_verdicts {
                t.add_row([
                    f.feature.clone(),
                    f.verdict.as_str().replace('_', " "),
                    match (&f.effect, f.effect_value) {
                        (Some(e), Some(v)) => format!("{e} {}", num(v)),
                        _ => String::new(),
                    },
                    f.p_value.map(num).unwrap_or_default(),
                    format!("{} / {}", f.reference_count, f.current_count),
                    note(f),
                ]);
            }
            writeln!(out, "{t}")?;
            let mut t = table([
                "feature",
                "statistic",
                "value",
                "p-value",
                "threshold",
                "verdict",
                "reference",
                "current",
            ]);
            for r in &doc.statistics {
                let changes = r.threshold.is_none();
                t.add_row([
                    r.feature.clone(),
                    if changes { format!("{} change", r.statistic) } else { r.statistic.to_string() },
                    num(r.value),
                    r.p_value.map(num).unwrap_or_default(),
                    r.threshold
                        .map(|t| match r.statistic {
                            Measure::Statistic(s) if s.is_test() => format!("p < {t}"),
                            _ => num(t),
                        })
                        .unwrap_or_default(),
                    if changes { String::new() } else { r.verdict.as_str().to_string() },
                    if changes { num(r.reference) } else { String::new() },
                    if changes { num(r.current) } else { String::new() },
                ]);
            }
            writeln!(out, "{t}")?;
            writeln!(
                out,
                "drifting features (normed Wasserstein past {} or JS past {}, and p < {}): {} of {} judged ({:.0} %){}; dataset drift: {}",
                cfg.wasserstein,
                cfg.js,
                cfg.alpha,
                doc.drifting_features,
                doc.features,
                doc.drifting_share * 100.0,
                if doc.insufficient_features > 0 {
                    format!("; {} with insufficient data", doc.insufficient_features)
                } else {
                    String::new()
                },
                if doc.dataset_drift { "yes" } else { "no" }
            )?;
            let warnings: Vec<_> = doc.data_quality.iter().filter(|c| c.verdict != Verdict::Ok).collect();
            if warnings.is_empty() {
                writeln!(out, "data quality: every check passed ({} checks)", doc.data_quality.len())?;
            } else {
                let mut t = table(["feature", "check", "value", "reference", "threshold", "detail"]);
                for c in warnings {
                    t.add_row([
                        c.feature.clone(),
                        c.check.to_string(),
                        num(c.value),
                        num(c.reference),
                        num(c.threshold),
                        c.detail.clone(),
                    ]);
                }
                writeln!(out, "data quality warnings:\n{t}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The note column: why there is no verdict, resolution, new categories.
fn note(f: &FeatureVerdict) -> String {
    let mut parts: Vec<String> = f.reason.iter().cloned().collect();
    if f.low_resolution {
        parts.push(format!(
            "low resolution: buckets {} wide, the binned statistics are coarse; mean and σ are exact",
            f.bucket_width.map(num).unwrap_or_default()
        ));
    }
    if !f.new_categories.is_empty() {
        // The largest first, a few of them: the JSON has them all.
        let mut new: Vec<_> = f.new_categories.iter().collect();
        new.sort_by(|a, b| b.count.total_cmp(&a.count));
        let mut named: Vec<String> = new
            .iter()
            .take(NEW_SHOWN)
            .map(|c| format!("{} ({:.1} %)", c.category, c.share * 100.0))
            .collect();
        if new.len() > NEW_SHOWN {
            named.push(format!("and {} more", new.len() - NEW_SHOWN));
        }
        parts.push(format!("new: {}", named.join(", ")));
    }
    parts.join("; ")
}

/// New categories named in a note.
const NEW_SHOWN: usize = 5;

/// A CSV number: in full, or in scientific notation where the full form is long (a p-value
/// of 1e-208 is 210 characters of decimals).
fn csv_num(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-6..1e15).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}
