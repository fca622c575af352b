//! `modelwatch query '<expr>'`: one query over a window, as a table, JSON or CSV.
//!
//! Values keep the unit the query yields (`Query::unit`): the table shows latency in
//! milliseconds with the unit in each column's header; JSON and CSV keep the stored unit and
//! name it (`"unit": "ns"`, `value_ns`), as `docs/query-language.md` documents.

use super::{Env, open_read_only};
use crate::cli::{OutputFormat, QueryArgs};
use modelwatch::time::rfc3339;
use modelwatch_query::{Limits, QueryError, Range, Series, answer, parse};
use std::io::Write;
use std::process::ExitCode;

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

pub fn run(env: &Env, args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let q = match parse(&args.expr) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("modelwatch: bad query: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let step = env.duration(&args.step, "step")?;
    let (from, to) = env.window(&args.window, "1h")?;
    // Whichever flags gave the window, its windows start on multiples of the step, as
    // Grafana aligns them: stable across runs, and they let the engine use the roll-ups.
    let from = from.div_euclid(step) * step;
    let store = open_read_only(&args.data)?;
    let series =
        match answer(&store, &q, Range { from_ms: from, to_ms: to, step_ms: step }, Limits::default()) {
            Ok(s) => s,
            Err(
                e @ (QueryError::NotADistribution { .. }
                | QueryError::BadRange(_)
                | QueryError::TooLarge(_)
                | QueryError::Unsupported(_)),
            ) => {
                eprintln!("modelwatch: {e}");
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e.into()),
        };
    let unit = q.unit();
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&modelwatch_query::SeriesJson::new(&series, unit))?
            )?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            let mut header = vec!["timestamp_ms".to_string()];
            header.extend(q.by.iter().cloned());
            header.push(unit.suffixed("value"));
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
                writeln!(out, "no data for {} between {} and {}", args.expr, rfc3339(from), rfc3339(to))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut times: Vec<i64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
            times.sort_unstable();
            times.dedup();
            let shown = unit.for_people();
            let mut t = comfy_table::Table::new();
            let mut header = vec!["time".to_string()];
            header.extend(series.iter().map(|s| match shown.symbol() {
                "" => label(s),
                sym => format!("{} ({sym})", label(s)),
            }));
            t.set_header(header);
            for time in times {
                let mut row = vec![rfc3339(time)];
                for s in &series {
                    row.push(
                        s.points
                            .iter()
                            .find(|p| p.0 == time)
                            .map(|p| fmt_value(unit.convert(p.1, shown)))
                            .unwrap_or_default(),
                    );
                }
                t.add_row(row);
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
