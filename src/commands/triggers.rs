//! `modelwatch triggers status | history | check | fire | ack`.

use super::{Env, open_read_only, print_json};
use crate::cli::{Format, TriggerArgs, TriggersCommand};
use modelwatch::time::rfc3339;
use modelwatch::triggers::{
    ConfigFile, Delivery, DeliveryState, EventRecord, HistoryRow, TriggerConfig, TriggerEngine, TriggerError,
    TriggerState, read_state, with_registry,
};
use modelwatch_store::registry::{AuditEntry, Registry, RegistryConfig};
use std::process::ExitCode;
use std::sync::Arc;

fn config(args: &TriggerArgs) -> anyhow::Result<TriggerConfig> {
    Ok(match &args.config {
        Some(p) => ConfigFile::load(p)?.triggers,
        None => Default::default(),
    })
}

/// The engine, with its lock: for the verbs that fire, acknowledge or deliver.
fn engine(env: &Env, args: &TriggerArgs) -> anyhow::Result<TriggerEngine> {
    let store = open_read_only(&args.data)?;
    Ok(TriggerEngine::open(config(args)?, Arc::new(store), &args.data.data, env.clock.clone(), Vec::new())?)
}

/// The history with the registry's audit entries each event caused, read from the data
/// directory's registry (none where there is no registry).
fn history(env: &Env, args: &TriggerArgs, records: &[EventRecord]) -> Vec<HistoryRow> {
    let c = args.data.store_config();
    let reg =
        Registry::open(RegistryConfig { dir: c.dir, objects: c.objects, clock: env.clock.clone() }).ok();
    with_registry(records, reg.as_ref())
}

fn print_event(r: &EventRecord, caused: &[AuditEntry]) -> anyhow::Result<()> {
    let e = &r.event;
    say!(
        "{}  fired {}{}",
        e.id,
        rfc3339(e.fired_at_ms),
        r.acked_at_ms.map(|t| format!(", acknowledged {}", rfc3339(t))).unwrap_or_default()
    );
    if let Some(o) = &r.outcome {
        say!("  outcome: {o}");
    }
    for a in caused {
        let v = a.version.map_or(String::new(), |v| format!(" version {v}"));
        say!("  registry {}: {}{v} by {}: {}", rfc3339(a.at_ms), a.op.as_str(), a.actor, a.reason);
    }
    for reason in &e.reasons {
        say!("  {}: {}", reason.trigger(), reason.summary);
        say!("    evidence: {}", reason.evidence.figures());
    }
    if !r.planned {
        say!("  deliveries: to the sinks of the next engine start");
    }
    for d in &r.deliveries {
        say!("  {}", delivery_line(d));
    }
    Ok(())
}

/// `<sink>: <state>, <n> attempt(s)`, then when and why: the next retry of a pending
/// delivery, the last error.
fn delivery_line(d: &Delivery) -> String {
    let attempts = format!("{} attempt{}", d.attempts, if d.attempts == 1 { "" } else { "s" });
    let when = |t: Option<i64>| t.map_or("-".to_string(), rfc3339);
    let mut line = match d.state {
        DeliveryState::Pending => {
            format!("{}: pending, {attempts}, next attempt {}", d.sink, when(d.next_attempt_ms))
        }
        DeliveryState::Delivered => format!(
            "{}: delivered {} ({}), {attempts}",
            d.sink,
            when(d.last_attempt_ms),
            d.detail.as_deref().unwrap_or("")
        ),
        // Loud: nobody will try again, a person has to.
        DeliveryState::DeadLettered => {
            format!("{}: DEAD-LETTERED after {attempts}, the last {}", d.sink, when(d.last_attempt_ms))
        }
    };
    if let Some(e) = &d.last_error {
        line.push_str(&format!("; last error: {e}"));
    }
    line
}

pub fn run(env: &Env, cmd: TriggersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TriggersCommand::Status(args) => {
            // Read only: beside a running engine, and never delivering a pending event
            // with this verb's (lack of) sinks.
            let store = open_read_only(&args.data)?;
            let status = TriggerEngine::peek(&config(&args)?, &store, &args.data.data, env.clock.as_ref())?;
            match args.format {
                Format::Json => print_json(&status)?,
                Format::Table => say!("{status}"),
            }
        }
        TriggersCommand::History(args) => {
            let state = read_state(&args.data.data)?;
            let rows = history(env, &args, &state.history);
            match args.format {
                Format::Json => print_json(&rows)?,
                Format::Table if rows.is_empty() => say!("no trigger event yet"),
                Format::Table => rows.iter().try_for_each(|r| print_event(&r.record, &r.registry))?,
            }
        }
        TriggersCommand::Check(args) => {
            // Read before the engine opens: opening makes the attempts that are due.
            let before = read_state(&args.data.data).map(|s| dead_letters(&s)).unwrap_or_default();
            let mut e = engine(env, &args)?;
            let out = e.evaluate()?;
            for f in &out.failures {
                eprintln!("modelwatch: {f}");
            }
            let given_up = newly_dead(&before, e.state());
            match args.format {
                Format::Json => print_json(&out)?,
                Format::Table => match (&out.event, out.suppressed.is_empty()) {
                    (Some(ev), _) => {
                        say!("fired:");
                        if let Some(r) = e.state().history.iter().find(|r| r.event.id == ev.id) {
                            print_event(r, &[])?;
                        }
                    }
                    (None, false) => {
                        say!("suppressed by the cool-down:");
                        for r in &out.suppressed {
                            say!("  {}: {}", r.trigger(), r.summary);
                        }
                    }
                    (None, true) => say!("nothing fires"),
                },
            }
            // The event (if any) is out, but a trigger or the outbox failed, or a delivery was
            // given up on: cron says so.
            if !out.failures.is_empty() || given_up {
                return Ok(ExitCode::FAILURE);
            }
        }
        TriggersCommand::Fire { args, reason, force } => {
            let before = read_state(&args.data.data).map(|s| dead_letters(&s)).unwrap_or_default();
            let mut e = engine(env, &args)?;
            let fired = e.fire(&reason, force);
            // Fired, whatever its deliveries did (a retry would fire twice): said on stderr.
            newly_dead(&before, e.state());
            match fired {
                Ok(ev) => match args.format {
                    Format::Json => print_json(&ev)?,
                    Format::Table => say!("fired {}", ev.id),
                },
                Err(e @ TriggerError::CoolingDown { .. }) => {
                    eprintln!("modelwatch: {e}");
                    return Ok(ExitCode::from(3));
                }
                Err(e) => return Err(e.into()),
            }
        }
        TriggersCommand::Ack { args, id } => {
            engine(env, &args)?.ack(&id)?;
            match args.format {
                Format::Json => print_json(&serde_json::json!({ "acknowledged": id }))?,
                Format::Table => say!("acknowledged {id}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The (event, sink) pairs whose delivery is dead-lettered.
fn dead_letters(state: &TriggerState) -> std::collections::HashSet<(String, String)> {
    state
        .history
        .iter()
        .flat_map(|r| r.deliveries.iter().map(move |d| (r, d)))
        .filter(|(_, d)| d.state == DeliveryState::DeadLettered)
        .map(|(r, d)| (r.event.id.clone(), d.sink.clone()))
        .collect()
}

/// Says on stderr which deliveries were given up on since `before`; true if any was.
fn newly_dead(before: &std::collections::HashSet<(String, String)>, state: &TriggerState) -> bool {
    let mut any = false;
    for r in &state.history {
        for d in r.deliveries.iter().filter(|d| d.state == DeliveryState::DeadLettered) {
            if !before.contains(&(r.event.id.clone(), d.sink.clone())) {
                any = true;
                eprintln!(
                    "modelwatch: gave up delivering {} to {}: {}",
                    r.event.id,
                    d.sink,
                    d.last_error.as_deref().unwrap_or("no attempt left")
                );
            }
        }
    }
    any
}
