//! `modelwatch serve`: the HTTP read side (see `modelwatch::serve`), and the trigger engine
//! beside it when a configuration is given. The only verb that starts the server.

use super::{Env, open_read_only};
use crate::cli::ServeArgs;
use modelwatch::serve::ServeConfig;
use modelwatch::time::to_std;
use modelwatch_query::Limits;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(env: &Env, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let ms = |s: &str, flag: &str| env.duration(s, flag);
    let config = ServeConfig {
        listen: args.listen,
        token: args.token.clone().filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body,
        limits: Limits { max_series: args.max_series, max_points: args.max_points },
        max_targets: args.max_targets,
        max_response_bytes: args.max_response,
        cache_bytes: args.cache_size,
        max_range_ms: ms(&args.max_range, "max-range")?,
        timeout: to_std(ms(&args.timeout, "timeout")?),
        refresh_every: to_std(ms(&args.refresh, "refresh")?),
        header_read_timeout: to_std(ms(&args.header_read_timeout, "header-read-timeout")?),
        idle_timeout: to_std(ms(&args.idle_timeout, "idle-timeout")?),
        max_connections: args.max_connections as usize,
        max_connections_per_address: args.max_connections_per_address as usize,
        ..ServeConfig::default()
    };
    let max_concurrent = args.max_concurrent.unwrap_or(config.max_concurrent);
    if max_concurrent == 0 {
        anyhow::bail!("--max-concurrent 0: at least one evaluation must be able to run");
    }
    let config = ServeConfig { max_concurrent, ..config };
    // Read-only: the scorer (or the demo) owns the WAL; the server follows it by refreshing.
    let store = Arc::new(open_read_only(&args.data)?);
    let mut retrain = None;
    let mut canary = None;
    let triggers = match &args.triggers {
        Some(path) => {
            let c = modelwatch::triggers::ConfigFile::load(path)?;
            let mut sinks: Vec<Box<dyn modelwatch::triggers::EventSink>> = Vec::new();
            let events = if args.retrain {
                let (tx, rx) = crossbeam_channel::unbounded();
                sinks.push(Box::new(modelwatch::triggers::ChannelSink(tx)));
                Some(rx)
            } else {
                None
            };
            let engine = modelwatch::triggers::TriggerEngine::open(
                c.triggers.clone(),
                store.clone(),
                &args.data.data,
                env.clock.clone(),
                sinks,
            )?;
            if let Some(rx) = events {
                let pending: Vec<_> = engine
                    .state()
                    .history
                    .iter()
                    .filter(|r| r.acked_at_ms.is_none())
                    .map(|r| r.event.clone())
                    .collect();
                let mut rc = c.retrain.clone();
                if rc.model.is_empty() {
                    rc.model = c.triggers.model.clone();
                }
                let manager = modelwatch::retrain::RetrainManager::new(
                    rc,
                    c.gate.clone(),
                    store.clone(),
                    super::models::open(env, &args.data)?,
                    &args.data.data,
                    env.clock.clone(),
                    Box::new(modelwatch::retrain::gate::InterleavedProbe::default()),
                )?;
                retrain = Some((manager, rx, pending));
                if c.canary.enabled {
                    let model = [&c.canary.model, &c.retrain.model, &c.triggers.model]
                        .into_iter()
                        .find(|m| !m.is_empty())
                        .cloned()
                        .unwrap_or_default();
                    if model.is_empty() {
                        eprintln!(
                            "modelwatch: {}: no canary controller: it needs a model (canary.model, retrain.model or triggers.model)",
                            path.display()
                        );
                    } else {
                        let config = c.canary.config().map_err(anyhow::Error::msg)?;
                        // Its decisions go into the events table (Grafana's annotations) through a
                        // writer slot of its own; the server's store stays read-only.
                        let writer = Arc::new(modelwatch_store::Store::open(args.data.store_config())?);
                        canary = Some(modelwatch::canary::CanaryWorker::spawn(
                            writer,
                            super::models::open(env, &args.data)?,
                            env.clock.clone(),
                            config,
                            model,
                        )?);
                    }
                }
            }
            Some((engine, to_std(ms(&args.check_every, "check-every")?)))
        }
        None => None,
    };
    modelwatch::serve::run_with(store, config, env.clock.clone(), triggers, retrain)?;
    drop(canary);
    Ok(ExitCode::SUCCESS)
}
