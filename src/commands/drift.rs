//! `modelwatch drift`: a reference (a saved baseline or a range) against a current window,
//! every feature and the confidence score, most severe first, with data-quality checks.

use super::{Env, open_read_only, table};
use crate::cli::{CorrectionArg, DriftArgs, OutputFormat};
use modelwatch::baseline;
use modelwatch::time::rfc3339;
use modelwatch_query::drift::{self, Correction, DriftConfig, QualityThresholds, Verdict};
use std::io::Write;
use std::process::ExitCode;

/// Four significant digits, or the p-value in scientific notation when tiny.
pub(super) fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if v.is_infinite() {
        "inf".into()
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

pub fn run(env: &Env, args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let store = open_read_only(&args.data)?;
    let matchers = args.filter.matchers();
    let (reference, ref_desc) =
        baseline::reference(&store, &args.data.data, &args.reference, &matchers, env.now_ms())?;
    let (from, to) = match &args.current {
        Some(c) => env.range(c, "current")?,
        None => env.window(&args.window, "24h")?,
    };
    let current = drift::profile(&store, &matchers, from, to)?;
    if current.numeric.is_empty() && current.categorical.is_empty() {
        anyhow::bail!("no feature or confidence data between {} and {}", rfc3339(from), rfc3339(to));
    }
    let cfg = DriftConfig {
        psi_bins: args.psi_bins.max(2),
        psi_warning: args.psi_warning,
        psi_drift: args.psi_drift,
        alpha: args.alpha,
        wasserstein: args.wasserstein,
        js: args.js,
        hellinger: args.js,
        drift_share: args.drift_share,
        correction: match args.correction {
            CorrectionArg::None => Correction::None,
            CorrectionArg::Bonferroni => Correction::Bonferroni,
            CorrectionArg::Fdr => Correction::Fdr,
        },
    };
    let report = drift::compare(&reference, &current, &cfg);
    let checks = drift::data_quality(&reference, &current, &QualityThresholds::default());
    let cur_desc = format!("{} .. {}", rfc3339(from), rfc3339(to));
    let drifting = report.features.iter().filter(|f| f.verdict == Verdict::Drift).count();
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "reference": ref_desc, "current": cur_desc, "filters": args.filter.describe(),
                "drifting_features": drifting, "features": report.features.len(),
                "drifting_share": report.drifting_share, "dataset_drift": report.dataset_drift,
                "drift_share_threshold": cfg.drift_share,
                "statistics": report.rows_by_severity(), "data_quality": checks,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
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
            ])?;
            for r in report.rows_by_severity() {
                let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
                w.write_record([
                    r.feature.clone(),
                    r.statistic.to_string(),
                    r.value.to_string(),
                    opt(r.p_value),
                    opt(r.threshold),
                    r.verdict.as_str().to_string(),
                    opt(Some(r.reference).filter(|v| !v.is_nan())),
                    opt(Some(r.current).filter(|v| !v.is_nan())),
                ])?;
            }
            w.flush()?;
        }
        OutputFormat::Table => {
            writeln!(out, "reference: {ref_desc}\ncurrent:   {cur_desc}")?;
            if !args.filter.describe().is_empty() {
                writeln!(out, "filters:   {}", args.filter.describe().join(", "))?;
            }
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
            for r in report.rows_by_severity() {
                let changes = r.threshold.is_none();
                t.add_row([
                    r.feature.clone(),
                    if changes { format!("{} change", r.statistic) } else { r.statistic.to_string() },
                    num(r.value),
                    r.p_value.map(num).unwrap_or_default(),
                    r.threshold
                        .map(|t| if r.p_value.is_some() { format!("p < {t}") } else { num(t) })
                        .unwrap_or_default(),
                    if changes { String::new() } else { r.verdict.as_str().to_string() },
                    if changes { num(r.reference) } else { String::new() },
                    if changes { num(r.current) } else { String::new() },
                ]);
            }
            writeln!(out, "{t}")?;
            writeln!(
                out,
                "drifting features (normed Wasserstein past {} or JS past {}): {drifting} of {} ({:.0} %); dataset drift: {}",
                cfg.wasserstein,
                cfg.js,
                report.features.len(),
                report.drifting_share * 100.0,
                if report.dataset_drift { "yes" } else { "no" }
            )?;
            let warnings: Vec<_> = checks.iter().filter(|c| c.verdict != Verdict::Ok).collect();
            if warnings.is_empty() {
                writeln!(out, "data quality: every check passed ({} checks)", checks.len())?;
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
