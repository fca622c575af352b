//! `modelwatch drift`, `modelwatch quality` and `modelwatch baseline`.

use crate::cli::{BaselineCommand, CorrectionArg, DataArg, DriftArgs, OutputFormat, QualityArgs};
use anyhow::Context;
use modelwatch::baseline::{self, Baseline, rfc3339};
use modelwatch::serve::{now_ms, parse_range};
use modelwatch_query::drift::{self, Correction, DriftConfig, QualityThresholds, Verdict};
use modelwatch_query::quality::{Quality, quality as quality_of};
use modelwatch_store::Store;
use std::io::Write;
use std::process::ExitCode;

fn open(data: &DataArg) -> anyhow::Result<Store> {
    if data.objects.is_none() && !data.data.exists() {
        anyhow::bail!("{}: no such data directory (run `modelwatch demo` first)", data.data.display());
    }
    Store::open_read_only(data.store_config())
        .with_context(|| format!("opening the store at {}", data.data.display()))
}

fn range(spec: &str, what: &str) -> anyhow::Result<(i64, i64)> {
    parse_range(spec, now_ms()).map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

/// Four significant digits, or the p-value in scientific notation when tiny.
fn num(v: f64) -> String {
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

pub fn drift(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.data)?;
    let matchers = args.filter.matchers();
    let now = now_ms();
    let (reference, ref_desc) =
        baseline::reference(&store, &args.data.data, &args.reference, &matchers, now)?;
    let (from, to) = range(&args.current, "current")?;
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
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
            t.set_header([
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
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
                t.set_header(["feature", "check", "value", "reference", "threshold", "detail"]);
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

fn ci(c: Option<(f64, f64)>) -> String {
    c.map(|(lo, hi)| format!(" [{}, {}]", num(lo), num(hi))).unwrap_or_default()
}

pub fn quality(args: &QualityArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.data)?;
    let (from, to) = match &args.range {
        Some(r) => range(r, "range")?,
        None => range(&args.since, "since")?,
    };
    let reference = match &args.reference {
        Some(r) => range(r, "reference")?,
        None => (from - (to - from), from),
    };
    if !(0.0..=1.0).contains(&args.threshold) {
        anyhow::bail!("--threshold {}: a confidence in [0, 1]", args.threshold);
    }
    let by: Vec<String> = args.by.iter().cloned().collect();
    let rows = quality_of(&store, &args.filter.matchers(), &by, from, to, Some(reference), args.threshold)?;
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
            let doc = serde_json::json!({
                "window": [from, to], "reference": [reference.0, reference.1], "threshold": args.threshold,
                "groups": rows,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["group", "kind", "n", "positives", "precision", "recall", "f1", "auc"])?;
            for r in &rows {
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
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
            t.set_header([
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
            for r in &rows {
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

pub fn baseline(cmd: BaselineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BaselineCommand::Save { data, name, range: spec, filter } => {
            let store = open(&data)?;
            let (from, to) = range(&spec, "range")?;
            let profile = drift::profile(&store, &filter.matchers(), from, to)?;
            if profile.numeric.is_empty() && profile.categorical.is_empty() {
                anyhow::bail!("no feature or confidence data between {} and {}", rfc3339(from), rfc3339(to));
            }
            let features = profile.numeric.len() + profile.categorical.len();
            let b = Baseline {
                name: name.clone(),
                from_ms: from,
                to_ms: to,
                filters: filter.describe(),
                profile,
            };
            let path = baseline::save(&data.data, &b)?;
            println!(
                "saved baseline {name} ({features} distributions, {} .. {}) to {}",
                rfc3339(from),
                rfc3339(to),
                path.display()
            );
        }
        BaselineCommand::List { data } => {
            for name in baseline::list(&data.data) {
                match baseline::load(&data.data, &name) {
                    Ok(b) => println!(
                        "{name}\t{} .. {}\t{}",
                        rfc3339(b.from_ms),
                        rfc3339(b.to_ms),
                        if b.filters.is_empty() { "all series".into() } else { b.filters.join(",") }
                    ),
                    Err(e) => println!("{name}\tunreadable: {e}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
