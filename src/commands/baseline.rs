//! `modelwatch baseline save | list`: named reference profiles for drift.

use super::{Env, open_read_only, print_json, table};
use crate::cli::{BaselineCommand, Format, OutputFormat};
use modelwatch::baseline::{self, Baseline};
use modelwatch::time::rfc3339;
use modelwatch_query::drift;
use serde::Serialize;
use std::process::ExitCode;

/// A saved baseline, as listed.
#[derive(Serialize)]
struct Listed {
    name: String,
    from: String,
    to: String,
    filters: Vec<String>,
    /// Why it could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(env: &Env, cmd: BaselineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BaselineCommand::Save { data, name, window, filter, format } => {
            if !window.given() {
                anyhow::bail!("baseline save needs its window: --range FROM..TO, --since D or --from/--to");
            }
            let (from, to) = env.window(&window, "7d")?;
            let store = open_read_only(&data)?;
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
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "name": name, "from": rfc3339(from), "to": rfc3339(to), "distributions": features,
                    "path": path.display().to_string(),
                }))?,
                Format::Table => say!(
                    "saved baseline {name} ({features} distributions, {} .. {}) to {}",
                    rfc3339(from),
                    rfc3339(to),
                    path.display()
                ),
            }
        }
        BaselineCommand::List { data, format } => {
            let listed: Vec<Listed> = baseline::list(&data.data)
                .into_iter()
                .map(|name| match baseline::load(&data.data, &name) {
                    Ok(b) => Listed {
                        name,
                        from: rfc3339(b.from_ms),
                        to: rfc3339(b.to_ms),
                        filters: b.filters,
                        error: None,
                    },
                    Err(e) => Listed {
                        name,
                        from: String::new(),
                        to: String::new(),
                        filters: Vec::new(),
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            let filters =
                |l: &Listed| if l.filters.is_empty() { "all series".into() } else { l.filters.join(",") };
            match format {
                OutputFormat::Json => print_json(&listed)?,
                OutputFormat::Csv => {
                    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
                    w.write_record(["name", "from", "to", "filters", "error"])?;
                    for l in &listed {
                        let e = l.error.clone().unwrap_or_default();
                        w.write_record([l.name.as_str(), &l.from, &l.to, &filters(l), &e])?;
                    }
                    w.flush()?;
                }
                OutputFormat::Table if listed.is_empty() => say!("no baseline saved yet"),
                OutputFormat::Table => {
                    let mut t = table(["name", "from", "to", "series"]);
                    for l in &listed {
                        match &l.error {
                            Some(e) => t.add_row([
                                l.name.clone(),
                                format!("unreadable: {e}"),
                                String::new(),
                                String::new(),
                            ]),
                            None => t.add_row([l.name.clone(), l.from.clone(), l.to.clone(), filters(l)]),
                        };
                    }
                    say!("{t}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
