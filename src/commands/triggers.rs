//! `modelwatch triggers status|history|check|fire|ack`.

use crate::cli::{Format, TriggerArgs, TriggersCommand};
use anyhow::Context;
use modelwatch::baseline::rfc3339;
use modelwatch::triggers::{ConfigFile, EventRecord, TriggerEngine, read_state};
use modelwatch_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

fn engine(args: &TriggerArgs) -> anyhow::Result<TriggerEngine> {
    let config = match &args.config {
        Some(p) => ConfigFile::load(p)?.triggers,
        None => Default::default(),
    };
    if args.data.objects.is_none() && !args.data.data.exists() {
        anyhow::bail!("{}: no such data directory (run `modelwatch demo` first)", args.data.data.display());
    }
    let store = Store::open_read_only(args.data.store_config())
        .with_context(|| format!("opening the store at {}", args.data.data.display()))?;
    TriggerEngine::open(
        config,
        Arc::new(store),
        &args.data.data,
        Arc::new(modelwatch::SystemClock),
        Vec::new(),
    )
}

fn print_event(r: &EventRecord) {
    let e = &r.event;
    println!(
        "{}  fired {}{}",
        e.id,
        rfc3339(e.fired_at_ms),
        r.acked_at_ms.map(|t| format!(", acknowledged {}", rfc3339(t))).unwrap_or_default()
    );
    for reason in &e.reasons {
        println!("  {}: {}", reason.trigger, reason.summary);
        println!("    evidence: {}", reason.evidence);
    }
    for d in &r.deliveries {
        println!("  {} {}: {}", if d.ok { "delivered to" } else { "FAILED at" }, d.sink, d.detail);
    }
}

pub fn run(cmd: TriggersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TriggersCommand::Status(args) => {
            let status = engine(&args)?.status()?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Format::Table => {
                    for (k, v) in status.as_object().into_iter().flatten() {
                        println!("{k:<18} {v}");
                    }
                }
            }
        }
        TriggersCommand::History(args) => {
            let state = read_state(&args.data.data)?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&state.history)?),
                Format::Table if state.history.is_empty() => println!("no trigger event yet"),
                Format::Table => state.history.iter().for_each(print_event),
            }
        }
        TriggersCommand::Check(args) => {
            let mut e = engine(&args)?;
            let out = e.evaluate()?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                Format::Table => match (&out.event, out.suppressed.is_empty()) {
                    (Some(ev), _) => {
                        println!("fired:");
                        if let Some(r) = e.state().history.iter().find(|r| r.event.id == ev.id) {
                            print_event(r);
                        }
                    }
                    (None, false) => {
                        println!("suppressed by the cool-down:");
                        out.suppressed.iter().for_each(|r| println!("  {}: {}", r.trigger, r.summary));
                    }
                    (None, true) => println!("nothing fires"),
                },
            }
        }
        TriggersCommand::Fire { args, reason, force } => match engine(&args)?.fire(&reason, force)? {
            Ok(ev) => println!("fired {}", ev.id),
            Err(_) => {
                eprintln!("modelwatch: suppressed by the cool-down (use --force to fire anyway)");
                return Ok(ExitCode::from(3));
            }
        },
        TriggersCommand::Ack { args, id } => {
            engine(&args)?.ack(&id)?;
            println!("acknowledged {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
