//! `modelwatch report`: the ML System Health report as one self-contained HTML file.

use super::{Env, open_read_only};
use crate::cli::ReportArgs;
use anyhow::Context;
use modelwatch::report::{HealthOptions, health_data, health_html};
use std::io::Write;
use std::process::ExitCode;

pub fn run(env: &Env, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let (from_ms, to_ms) = env.window(&args.window, "24h")?;
    if let Some(r) = &args.reference
        && modelwatch::time::is_range(r)
    {
        env.range(r, "reference")?;
    }
    let store = open_read_only(&args.data)?;
    // No registry is no timeline of registrations, not an error.
    let registry = super::models::open(env, &args.data).ok();
    let opts = HealthOptions {
        model: args.model.clone(),
        from_ms,
        to_ms,
        now_ms: env.now_ms(),
        reference: args.reference.clone(),
    };
    if let Some(model) = &args.model {
        // A misspelt model would otherwise draw a page of empty panels, every one "no data".
        let mut known: std::collections::BTreeSet<String> =
            registry.as_ref().and_then(|r| r.models().ok()).unwrap_or_default().into_iter().collect();
        known.extend(
            modelwatch_query::catalog(&store, from_ms, to_ms)?.into_iter().map(|(k, _)| k.model.to_string()),
        );
        if !known.contains(model) {
            let seen: Vec<String> = known.into_iter().collect();
            let seen = if seen.is_empty() { "none".to_string() } else { seen.join(", ") };
            return Err(super::UsageError(format!(
                "--model {model:?}: no such model in the registry or in the store over the range (models: {seen})"
            ))
            .into());
        }
    }
    let doc = health_data(&store, &args.data.data, registry.as_ref(), &opts)?;
    let page = health_html(&doc)?;
    write_page(&args.output, &page)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes an HTML page to `output` (`-`: standard output) and says where on standard error.
pub fn write_page(output: &std::path::Path, page: &str) -> anyhow::Result<()> {
    if output.as_os_str() == "-" {
        std::io::stdout().lock().write_all(page.as_bytes())?;
        return Ok(());
    }
    write_atomically(output, page.as_bytes())
        .with_context(|| format!("writing the report to {}", output.display()))?;
    eprintln!("modelwatch: wrote {} ({} bytes)", output.display(), page.len());
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it (with the usual permissions
/// of a new file), so a reader never sees half a report and a failed write leaves the
/// previous one. The temporary file is named after this process (`.NAME.PID.tmp`), so two
/// runs writing one page do not write into each other's; one a killed run left behind is
/// removed by the next write of the page (see [`remove_stale_temporaries`]).
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_stale_temporaries(path, &name);
    }
    written
}

/// Removes the temporary files of `path` (`.NAME.PID.tmp`) whose process is gone: a run
/// killed between writing its temporary file and renaming it leaves one, and every such
/// run a new one. A temporary file of a live process (another run writing the page now)
/// is left to it. Best effort: what cannot be listed or removed stays.
fn remove_stale_temporaries(path: &std::path::Path, name: &str) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = rustix::process::Pid::from_raw(pid)
            .is_none_or(|p| rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH));
        if gone {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
