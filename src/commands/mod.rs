//! The verbs: one file each, with their arguments in `cli.rs`. What several verbs share is
//! here: opening the store, reading a window, the clock.

use crate::cli::{Cli, Command, DataArg, StoreCommand, WindowArgs};
use anyhow::Context;
use modelwatch::Clock;
use modelwatch::time::{Millis, parse_duration, parse_range, parse_time};
use modelwatch_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

/// `println!` for the verbs' output: a closed pipe (`modelwatch triggers history | head`)
/// comes back as an error, which `main` ends quietly on, where `println!` panics.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod baseline;
mod canary;
mod canary_scorer;
mod crash_registry;
mod crash_writer;
mod demo;
mod drift;
mod features;
mod import;
mod models;
mod quality;
mod query;
mod report;
mod retrain;
mod serve;
mod store;
mod triggers;

/// Runs a verb. Every `now` comes from `clock` (the system clock, or `--now`).
pub fn run(cli: Cli, clock: Arc<dyn Clock>) -> anyhow::Result<ExitCode> {
    let env = Env { clock };
    match cli.command {
        Command::Import(args) => import::run(&env, &args),
        Command::Store(StoreCommand::Inspect { data, format }) => store::inspect(&data, format),
        Command::Store(StoreCommand::Verify { data, format }) => store::verify(&data, format),
        Command::Store(StoreCommand::Repair { data, yes, format }) => store::repair(&data, yes, format),
        Command::Store(StoreCommand::Compact { data, as_of, wait, format }) => {
            store::compact(&env, &data, as_of.as_deref(), wait, format)
        }
        Command::CrashWriter(args) => crash_writer::run(&args),
        Command::CrashRegistry(args) => crash_registry::run(&args),
        Command::CanaryScorer(args) => canary_scorer::run(&env, &args),
        Command::Models(cmd) => models::run(&env, cmd),
        Command::Canary(cmd) => canary::run(&env, cmd),
        Command::Features(cmd) => features::run(&env, cmd),
        Command::Query(args) => query::run(&env, &args),
        Command::Demo(args) => demo::run(&env, &args),
        Command::Retrain(args) => retrain::run(&env, &args),
        Command::Serve(args) => serve::run(&env, &args),
        Command::Drift(args) => drift::run(&env, &args),
        Command::Quality(args) => quality::run(&env, &args),
        Command::Baseline(cmd) => baseline::run(&env, cmd),
        Command::Triggers(cmd) => triggers::run(&env, cmd),
        Command::Report(args) => report::run(&env, &args),
    }
}

/// A flag whose value does not parse or makes no sense: a usage error (exit code 2), the
/// message naming the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(flag: &str, e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(format!("--{flag}: {e}")).into()
}

/// What every verb gets besides its arguments.
pub struct Env {
    /// Where `now` comes from.
    pub clock: Arc<dyn Clock>,
}

impl Env {
    /// Now, ms since the Unix epoch.
    pub fn now_ms(&self) -> Millis {
        self.clock.now().as_millis() as Millis
    }

    /// A point in time given to `--flag`.
    pub fn time(&self, s: &str, flag: &str) -> anyhow::Result<Millis> {
        parse_time(s, self.now_ms()).map_err(|e| usage(flag, e))
    }

    /// A range or duration given to `--flag`.
    pub fn range(&self, s: &str, flag: &str) -> anyhow::Result<(Millis, Millis)> {
        parse_range(s, self.now_ms()).map_err(|e| usage(flag, e))
    }

    /// A duration given to `--flag`, in ms.
    pub fn duration(&self, s: &str, flag: &str) -> anyhow::Result<Millis> {
        parse_duration(s).map_err(|e| usage(flag, e))
    }

    /// The window the flags describe; without any, the last `default` (a duration).
    pub fn window(&self, w: &WindowArgs, default: &str) -> anyhow::Result<(Millis, Millis)> {
        if let Some(r) = &w.range {
            return self.range(r, "range");
        }
        let to = match &w.to {
            Some(t) => self.time(t, "to")?,
            None => self.now_ms(),
        };
        let from = match &w.from {
            Some(f) => self.time(f, "from")?,
            None => {
                let since = w.since.as_deref().unwrap_or(default);
                let from = to - self.duration(since, "since")?;
                if from < modelwatch::time::EARLIEST {
                    return Err(usage("since", format!("{since:?} reaches back before 1970")));
                }
                from
            }
        };
        if to <= from {
            return Err(UsageError(format!(
                "the window ends ({}) before or when it starts ({})",
                modelwatch::time::rfc3339(to),
                modelwatch::time::rfc3339(from)
            ))
            .into());
        }
        Ok((from, to))
    }
}

/// Opens a store read-only (a scorer, the demo or an import may be writing it right now),
/// or says which directory is missing.
pub fn open_read_only(data: &DataArg) -> anyhow::Result<Store> {
    if data.objects.is_none() && !data.data.exists() {
        anyhow::bail!(
            "{}: no such data directory (run `modelwatch demo` or `modelwatch import` first)",
            data.data.display()
        );
    }
    Store::open_read_only(data.store_config())
        .with_context(|| format!("opening the store at {}", data.data.display()))
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Four significant digits, or the p-value in scientific notation when tiny.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else if v.abs() >= 1e15 {
        // Past a double's integer precision: digits beyond these say nothing.
        format!("{v:.6e}")
    } else {
        format!("{v:.4}")
    }
}

/// A table in the house style.
pub fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED);
    t.set_header(header);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch::{ManualClock, Timestamp};

    const NOW: i64 = 1_764_115_200_000;

    fn env() -> Env {
        Env { clock: Arc::new(ManualClock::new(Timestamp::from_millis(NOW as u64))) }
    }

    fn w(since: Option<&str>, from: Option<&str>, to: Option<&str>, range: Option<&str>) -> WindowArgs {
        let s = |v: Option<&str>| v.map(str::to_string);
        WindowArgs { since: s(since), from: s(from), to: s(to), range: s(range) }
    }

    #[test]
    fn every_window_flag_means_the_same_on_every_verb() {
        let e = env();
        let h = 3_600_000;
        assert_eq!(e.window(&w(None, None, None, None), "7d").unwrap(), (NOW - 168 * h, NOW));
        assert_eq!(e.window(&w(Some("6h"), None, None, None), "7d").unwrap(), (NOW - 6 * h, NOW));
        assert_eq!(
            e.window(&w(Some("6h"), None, Some("now-1h"), None), "7d").unwrap(),
            (NOW - 7 * h, NOW - h)
        );
        assert_eq!(e.window(&w(None, Some("now-6h"), Some("now"), None), "7d").unwrap(), (NOW - 6 * h, NOW));
        assert_eq!(e.window(&w(None, Some("now-6h"), None, None), "7d").unwrap(), (NOW - 6 * h, NOW));
        assert_eq!(e.window(&w(None, None, None, Some("now-6h..now")), "7d").unwrap(), (NOW - 6 * h, NOW));
        assert_eq!(e.window(&w(None, None, None, Some("6h")), "7d").unwrap(), (NOW - 6 * h, NOW));
        let err = e.window(&w(None, Some("yesterday"), None, None), "7d").unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "a bad window is a usage error (exit 2)");
        assert!(err.to_string().contains("--from") && err.to_string().contains("yesterday"), "{err}");
        let err = e.window(&w(None, Some("now"), Some("now-1h"), None), "7d").unwrap_err().to_string();
        assert!(err.contains("ends"), "{err}");
        let err = e.window(&w(Some("99999w"), None, None, None), "7d").unwrap_err().to_string();
        assert!(err.contains("--since") && err.contains("1970"), "{err}");
        let err = e.window(&w(None, None, Some("-9223372036854775808"), None), "7d").unwrap_err().to_string();
        assert!(err.contains("--to") && err.contains("out of range"), "{err}");
    }
}
