//! `modelwatch retrain --event ID | --force`: one retraining run, to its end or resumed.

use super::{Env, UsageError, open_read_only, print_json};
use crate::cli::{Format, RetrainArgs};
use modelwatch::retrain::gate::{self, FixedLatency, InterleavedProbe, LatencyProbe};
use modelwatch::retrain::{Acknowledge, Outcome, RetrainManager, RunRecord};
use modelwatch::triggers::{ConfigFile, TriggerConfig, TriggerEngine, TriggerError, read_state};
use modelwatch_store::Store;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn probe(arg: Option<&str>) -> anyhow::Result<Box<dyn LatencyProbe>> {
    let Some(text) = arg else {
        return Ok(Box::new(InterleavedProbe::default()));
    };
    let bad = || {
        UsageError(format!(
            "--simulated-latency {text:?}: expected CONTROL_MS,CHALLENGER_MS, two non-negative numbers"
        ))
    };
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    let ms = |s: &str| -> anyhow::Result<Duration> {
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        if !(v.is_finite() && (0.0..=3.6e6).contains(&v)) {
            return Err(bad().into());
        }
        Ok(Duration::from_secs_f64(v / 1000.0))
    };
    Ok(Box::new(FixedLatency { control: ms(a)?, challenger: ms(b)? }))
}

pub fn run(env: &Env, args: &RetrainArgs) -> anyhow::Result<ExitCode> {
    let probe = probe(args.simulated_latency.as_deref())?;
    let config = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let store = Arc::new(open_read_only(&args.data)?);
    let open = || open_engine(&config.triggers, &store, args, env);
    let mut retrain = config.retrain.clone();
    if retrain.model.is_empty() {
        retrain.model = config.triggers.model.clone();
    }
    let registry = super::models::open(env, &args.data)?;
    let manager = RetrainManager::new(
        retrain,
        config.gate.clone(),
        store.clone(),
        registry,
        &args.data.data,
        env.clock.clone(),
        probe,
    )?;
    // The runs' lock first: a --force that lost the race to another run must not leave
    // an event behind that nobody runs.
    let lock = manager.lock()?;
    // The trigger engine (and its lock) only to fire the event and, at the end, to
    // acknowledge it: a run takes minutes to hours, during which `serve --triggers` or
    // `triggers check` may want it. An event to run is read from the state without it.
    let event = if args.force {
        open()?.fire(&args.reason, true)?
    } else {
        let id = args.event.as_deref().unwrap_or_default();
        read_state(&args.data.data)?
            .history
            .into_iter()
            .find(|r| r.event.id == id)
            .map(|r| r.event)
            .ok_or_else(|| {
                UsageError(format!(
                    "--event {id:?}: no such event in the trigger state (see `modelwatch triggers history`)"
                ))
            })?
    };
    let rec = manager.run_locked(&lock, &event, &mut EngineAck(&open))?;
    match args.format {
        Format::Json => print_json(&rec)?,
        Format::Table => print_table(&rec)?,
    }
    Ok(match rec.outcome {
        Some(Outcome::Failed { .. }) | None => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// The trigger engine of the data directory, waiting up to 10 s for its lock (another
/// `modelwatch retrain` or `triggers` command holds it a moment); a server holding it for
/// good is named.
fn open_engine(
    config: &TriggerConfig,
    store: &Arc<Store>,
    args: &RetrainArgs,
    env: &Env,
) -> anyhow::Result<TriggerEngine> {
    let start = Instant::now();
    loop {
        match TriggerEngine::open(
            config.clone(),
            store.clone(),
            &args.data.data,
            env.clock.clone(),
            Vec::new(),
        ) {
            Ok(e) => return Ok(e),
            Err(TriggerError::Locked(_)) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TriggerError::Locked(dir)) => {
                return Err(anyhow::anyhow!(
                    "{}: the trigger engine of this data directory has been held for 10 s by another process \
                     (`modelwatch serve --triggers`? Its events are retrained there with --retrain; or stop it)",
                    dir.display()
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Acknowledges through the engine, opened for that moment only.
struct EngineAck<'a, F: Fn() -> anyhow::Result<TriggerEngine>>(&'a F);

impl<F: Fn() -> anyhow::Result<TriggerEngine>> Acknowledge for EngineAck<'_, F> {
    fn acknowledge(&mut self, event_id: &str, outcome: &str) -> Result<(), String> {
        let mut engine = (self.0)().map_err(|e| e.to_string())?;
        engine.acknowledge(event_id, outcome)
    }
}

fn print_table(rec: &RunRecord) -> anyhow::Result<()> {
    let resumed =
        if rec.attempts > 1 { format!(" (resumed: {} attempts)", rec.attempts) } else { String::new() };
    say!("event {} ({}){resumed}", rec.event_id, rec.model);
    if let Some(r) = &rec.report {
        use std::io::Write as _;
        write!(std::io::stdout(), "{}", gate::table(r))?;
    }
    match &rec.outcome {
        Some(o) => say!("outcome: {o}"),
        None => say!("outcome: none"),
    }
    Ok(())
}
