//! `modelwatch features report`: the quarterly review of a model's features
//! (`modelwatch::features::report`) as a table or as the JSON document the HTML report
//! renders.

use super::{Env, UsageError, num, open_read_only, print_json, table};
use crate::cli::{FeaturesCommand, FeaturesFormat, FeaturesReportArgs};
use modelwatch::features::pruning::PruningSettings;
use modelwatch::features::report::{FeaturesReport, ReportRequest, features_report};
use modelwatch::retrain::gate::GateConfig;
use modelwatch::triggers::ConfigFile;
use std::io::Write;
use std::process::ExitCode;

pub fn run(env: &Env, cmd: FeaturesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FeaturesCommand::Report(args) => report(env, &args),
    }
}

fn report(env: &Env, args: &FeaturesReportArgs) -> anyhow::Result<ExitCode> {
    let period = env.window(&args.window, "90d")?;
    let gate = match &args.config {
        Some(p) => ConfigFile::load(p).map_err(|e| UsageError(format!("--config: {e}")))?.gate,
        None => GateConfig::default(),
    };
    let settings = PruningSettings {
        min_share: args.min_share,
        max_correlation: args.max_correlation,
        versions: args.versions,
    };
    let store = open_read_only(&args.data)?;
    let registry = super::models::open(env, &args.data)?;
    let req = ReportRequest {
        model: args.model.clone(),
        version: args.version.clone(),
        period,
        now_ms: env.now_ms(),
        settings,
        gate,
    };
    let doc = features_report(&registry, &store, &args.data.data, &req)
        .map_err(|e| if e.is_usage() { UsageError(e.to_string()).into() } else { anyhow::Error::from(e) })?;
    match args.format {
        FeaturesFormat::Json => print_json(&doc)?,
        FeaturesFormat::Table => print_table(&doc)?,
        FeaturesFormat::Html => {
            let page = modelwatch::report::features_html(&serde_json::to_value(&doc)?)?;
            super::report::write_page(&args.output, &page)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// At most this many versions are columns of the importance table (the newest); the JSON
/// has them all.
const VERSION_COLUMNS: usize = 8;
/// The strongest pairs the table lists; the JSON has the whole matrix.
const PAIRS_SHOWN: usize = 10;

fn print_table(doc: &FeaturesReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let this = doc.versions.iter().find(|v| v.version == doc.version);
    let aliases = this.map(|v| v.aliases.join(", ")).filter(|a| !a.is_empty());
    writeln!(
        out,
        "model {}, version {}{}; {} .. {}",
        doc.model,
        doc.version,
        aliases.map(|a| format!(" ({a})")).unwrap_or_default(),
        doc.from,
        doc.to
    )?;
    let listed: Vec<String> = doc
        .versions
        .iter()
        .map(|v| {
            let no = if v.evidence { "" } else { " (refused: no evidence)" };
            format!("{} {}{no}", v.version, v.status)
        })
        .collect();
    writeln!(out, "versions: {}", listed.join(", "))?;

    let shown = &doc.versions[doc.versions.len().saturating_sub(VERSION_COLUMNS)..];
    let skip = doc.versions.len() - shown.len();
    writeln!(
        out,
        "\nimportance: share of the total permutation importance, per version{}",
        if skip > 0 {
            format!(" (the newest {VERSION_COLUMNS}; the JSON has all {})", doc.versions.len())
        } else {
            String::new()
        }
    )?;
    let mut header = vec!["feature".to_string()];
    header.extend(shown.iter().map(|v| format!("v{}", v.version)));
    header.extend(["trend".to_string(), format!("mean fall (v{})", doc.version)]);
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(header);
    for f in &doc.importance {
        let by = &f.by_version[skip..];
        let mut row = vec![f.feature.clone()];
        row.extend(by.iter().map(|i| i.share.map_or_else(|| "-".into(), share)));
        row.push(sparkline(&by.iter().map(|i| i.share).collect::<Vec<_>>()));
        let own = f.by_version.iter().find(|i| i.version == doc.version);
        row.push(match own.and_then(|i| i.mean.zip(i.std)) {
            Some((m, s)) => format!("{} ± {}", num(m), num(s)),
            None => "-".into(),
        });
        t.add_row(row);
    }
    writeln!(out, "{t}")?;

    match &doc.correlation {
        None => writeln!(
            out,
            "\ncorrelation: none stored with version {} (registered before correlations were computed)",
            doc.version
        )?,
        Some(c) if c.skipped.is_some() => {
            writeln!(out, "\ncorrelation: not computed ({})", c.skipped.as_deref().unwrap_or_default())?
        }
        Some(c) => {
            let sample = match c.sample_seed {
                Some(seed) => {
                    format!("a sample of {} of its {} training rows (seed {seed})", c.rows, c.training_rows)
                }
                None => format!("its {} training rows", c.rows),
            };
            writeln!(out, "\ncorrelation on {sample}: the strongest pairs (the JSON has the matrices)")?;
            let mut pairs = Vec::new();
            for i in 0..c.features.len() {
                for j in i + 1..c.features.len() {
                    let (p, s) = (c.pearson[i][j], c.spearman[i][j]);
                    let strength = p.unwrap_or(0.0).abs().max(s.unwrap_or(0.0).abs());
                    pairs.push((strength, i, j, p, s));
                }
            }
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut t = table(["feature", "feature", "pearson", "spearman"]);
            for &(_, i, j, p, s) in pairs.iter().take(PAIRS_SHOWN) {
                let r = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:+.3}"));
                t.add_row([c.features[i].clone(), c.features[j].clone(), r(p), r(s)]);
            }
            writeln!(out, "{t}")?;
            let constant: Vec<&str> = c
                .features
                .iter()
                .enumerate()
                .filter(|(i, _)| c.pearson[*i][*i].is_none())
                .map(|(_, f)| f.as_str())
                .collect();
            if !constant.is_empty() {
                writeln!(out, "no spread in the training rows (no correlation): {}", constant.join(", "))?;
            }
        }
    }

    let s = &doc.settings;
    if doc.candidates.is_empty() {
        let with = doc.importance.first().map_or(0, |f| {
            f.by_version.iter().zip(&doc.versions).filter(|(i, v)| v.evidence && i.share.is_some()).count()
        });
        writeln!(
            out,
            "\npruning candidates: none (a rule must hold in each of the last {} versions with the evidence{})",
            s.versions,
            if with < s.versions {
                format!("; {with} of the versions shown have importance and count")
            } else {
                String::new()
            }
        )?;
    } else {
        writeln!(out, "\npruning candidates")?;
        let mut t = table(["feature", "reasons", "evidence"]);
        for c in &doc.candidates {
            let evidence: Vec<String> = c
                .evidence
                .iter()
                .map(|e| {
                    let mut text =
                        format!("v{}: share {}", e.version, e.share.map_or_else(|| "-".into(), share));
                    if let (Some(g), Some(r)) = (&e.correlated_with, e.correlation) {
                        text.push_str(&format!(", r {r:+.3} with {g}"));
                    }
                    text
                })
                .collect();
            t.add_row([c.feature.clone(), c.reasons.join("; "), evidence.join("\n")]);
        }
        writeln!(out, "{t}")?;
    }
    if !doc.kept.is_empty() {
        writeln!(out, "\nkept (the gate's bias check would flag their removal)")?;
        let mut t = table(["feature", "why"]);
        for k in &doc.kept {
            t.add_row([k.feature.clone(), k.reason.clone()]);
        }
        writeln!(out, "{t}")?;
    }

    writeln!(
        out,
        "\ndrift over the period against {}{}",
        doc.drift_reference.description,
        match (&doc.drift_reference.from, &doc.drift_reference.to) {
            (Some(a), Some(b)) => format!(" ({a} .. {b})"),
            _ => String::new(),
        }
    )?;
    let mut t = table(["feature", "statistic", "value", "threshold", "verdict", "per window", "note"]);
    for d in &doc.drift {
        t.add_row([
            d.feature.clone(),
            d.statistic.clone().unwrap_or_else(|| "-".into()),
            d.value.map_or_else(|| "-".into(), num),
            d.threshold.map_or_else(|| "-".into(), num),
            d.verdict.replace('_', " "),
            sparkline(&d.windows.iter().map(|w| w.value).collect::<Vec<_>>()),
            d.reason.clone().unwrap_or_default(),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(())
}

/// A share as a percentage: `31.2 %`, `0.0004 %`, `0 %`.
fn share(v: f64) -> String {
    let p = v * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p.abs() < 0.01 {
        format!("{p:.1e} %")
    } else {
        format!("{p:.2} %")
    }
}

/// Values as a line of block characters scaled to their largest (`·` for a missing one).
fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().flatten().fold(0.0_f64, |m, v| m.max(*v));
    values
        .iter()
        .map(|v| match v {
            None => '·',
            Some(_) if max <= 0.0 => BARS[0],
            Some(v) => BARS[((v.max(0.0) / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_and_shares_read_at_a_glance() {
        assert_eq!(sparkline(&[Some(0.0), Some(0.5), Some(1.0), None]), "▁▅█·");
        assert_eq!(sparkline(&[Some(0.0), Some(0.0)]), "▁▁");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(share(0.3125), "31.25 %");
        assert_eq!(share(0.0), "0 %");
        assert_eq!(share(0.000004), "4.0e-4 %");
    }
}
