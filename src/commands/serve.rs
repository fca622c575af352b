//! `modelwatch serve`: the HTTP read side (see `modelwatch::serve`).

use crate::cli::ServeArgs;
use crate::commands::query::parse_duration;
use anyhow::Context;
use modelwatch::serve::ServeConfig;
use modelwatch_query::Limits;
use modelwatch_store::Store;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let ms = |s: &str, flag: &str| parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"));
    let config = ServeConfig {
        listen: args.listen,
        token: args.token.clone().filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body,
        limits: Limits { max_series: args.max_series, max_points: args.max_points },
        max_range_ms: ms(&args.max_range, "max-range")?,
        timeout: Duration::from_millis(ms(&args.timeout, "timeout")? as u64),
        refresh_every: Duration::from_millis(ms(&args.refresh, "refresh")? as u64),
        ..ServeConfig::default()
    };
    if args.data.objects.is_none() && !args.data.data.exists() {
        anyhow::bail!("{}: no such data directory (run `modelwatch demo` first)", args.data.data.display());
    }
    // Read-only: the scorer (or the demo) owns the WAL; the server follows it by refreshing.
    let store = std::sync::Arc::new(
        Store::open_read_only(args.data.store_config())
            .with_context(|| format!("opening the store at {}", args.data.data.display()))?,
    );
    let triggers = match &args.triggers {
        Some(path) => {
            let c = modelwatch::triggers::ConfigFile::load(path)?;
            let engine = modelwatch::triggers::TriggerEngine::open(
                c.triggers,
                store.clone(),
                &args.data.data,
                std::sync::Arc::new(modelwatch::SystemClock),
                Vec::new(),
            )?;
            Some((engine, Duration::from_millis(ms(&args.check_every, "check-every")? as u64)))
        }
        None => None,
    };
    modelwatch::serve::run_with(store, config, triggers)?;
    Ok(ExitCode::SUCCESS)
}
