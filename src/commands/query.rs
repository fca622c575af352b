//! `modelwatch query '<expr>'`: one query over a time range, as a table, JSON or CSV.

use crate::cli::{OutputFormat, QueryArgs};
use anyhow::Context;
use modelwatch::agent::Clock;
use modelwatch_query::{Limits, QueryError, Range, Series, parse, run as run_query};
use modelwatch_store::Store;
use std::io::Write;
use std::process::ExitCode;

pub use modelwatch::serve::parse_duration;

fn time_of(s: &str, what: &str) -> anyhow::Result<i64> {
    crate::commands::import::parse_timestamp(s).map_err(|e| anyhow::anyhow!("--{what}: {e}"))
}

fn label(s: &Series) -> String {
    if s.tags.is_empty() {
        "value".into()
    } else {
        s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.6}") }
}

pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let q = match parse(&args.expr) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("modelwatch: bad query: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let step = match parse_duration(&args.step) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modelwatch: --step: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let to = match &args.to {
        Some(t) => time_of(t, "to")?,
        None => modelwatch::agent::SystemClock.now().as_millis() as i64,
    };
    let from = match &args.from {
        Some(f) => time_of(f, "from")?,
        None => match parse_duration(&args.since) {
            // Windows on multiples of the step, as Grafana aligns them: stable across runs,
            // and they let the engine use the roll-ups.
            Ok(d) => (to - d).div_euclid(step) * step,
            Err(e) => {
                eprintln!("modelwatch: --since: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    if !args.data.data.exists() {
        anyhow::bail!("{}: no such data directory (run `modelwatch demo` first)", args.data.data.display());
    }
    let store =
        // Read-only: a scorer or the demo may be writing this directory right now.
        Store::open_read_only(args.data.store_config())
            .with_context(|| format!("opening the store at {}", args.data.data.display()))?;
    let series =
        match run_query(&store, &q, Range { from_ms: from, to_ms: to, step_ms: step }, Limits::default()) {
            Ok(s) => s,
            Err(
                e @ (QueryError::NotADistribution { .. } | QueryError::BadRange(_) | QueryError::TooLarge(_)),
            ) => {
                eprintln!("modelwatch: {e}");
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e.into()),
        };
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            let doc = modelwatch::serve::series_json(&series);
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            let mut header = vec!["timestamp_ms".to_string()];
            header.extend(q.by.iter().cloned());
            header.push("value".into());
            w.write_record(&header)?;
            for s in &series {
                for &(t, v) in &s.points {
                    let mut rec = vec![t.to_string()];
                    rec.extend(q.by.iter().map(|l| s.tags.get(l).cloned().unwrap_or_default()));
                    rec.push(v.to_string());
                    w.write_record(&rec)?;
                }
            }
            w.flush()?;
        }
        OutputFormat::Table => {
            if series.is_empty() {
                writeln!(
                    out,
                    "no data for {} between {} and {}",
                    args.expr,
                    super::rfc3339(from),
                    super::rfc3339(to)
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut times: Vec<i64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
            times.sort_unstable();
            times.dedup();
            let mut t = comfy_table::Table::new();
            let mut header = vec!["time".to_string()];
            header.extend(series.iter().map(label));
            t.set_header(header);
            for time in times {
                let mut row = vec![super::rfc3339(time)];
                for s in &series {
                    row.push(
                        s.points.iter().find(|p| p.0 == time).map(|p| fmt_value(p.1)).unwrap_or_default(),
                    );
                }
                t.add_row(row);
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
