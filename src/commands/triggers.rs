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
    Ok(TriggerEngine::open(
        config,
        Arc::new(store),
        &args.data.data,
        Arc::new(modelwatch::SystemClock),
        Vec::new(),
    )?)
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

fn time(v: &serde_json::Value) -> String {
    v.as_i64().map(rfc3339).unwrap_or_else(|| "-".into())
}

/// One line per trigger, for people (`--format json` has every figure).
fn print_status(s: &serde_json::Value) {
    if let Some(l) = s.get("labels") {
        println!(
            "labels       {:.0} of {:.0} since {}",
            l["labels"].as_f64().unwrap_or(0.0),
            l["needed"].as_f64().unwrap_or(0.0),
            time(&l["since_ms"])
        );
    }
    if let Some(d) = s.get("degradation").and_then(|d| d.as_array()) {
        let line = |g: &serde_json::Value| {
            format!(
                "{} {} {:.3} (was {:.3}, {:+.1} %, {:.0} labels, p {:.2e})",
                g["group"].as_str().unwrap_or(""),
                g["metric"].as_str().unwrap_or(""),
                g["current"].as_f64().unwrap_or(f64::NAN),
                g["previous"].as_f64().unwrap_or(f64::NAN),
                -100.0 * g["relative_fall"].as_f64().unwrap_or(0.0),
                g["labels_current"].as_f64().unwrap_or(0.0),
                g["p_value"].as_f64().unwrap_or(f64::NAN)
            )
        };
        match d.iter().max_by(|a, b| {
            a["relative_fall"].as_f64().unwrap_or(0.0).total_cmp(&b["relative_fall"].as_f64().unwrap_or(0.0))
        }) {
            Some(worst) => {
                println!("degradation  {} groups compared; largest fall: {}", d.len(), line(worst))
            }
            None => println!("degradation  no labelled windows to compare"),
        }
    }
    if let Some(c) = s.get("schedule") {
        println!("schedule     next {} ({})", time(&c["next_ms"]), c["cron"].as_str().unwrap_or(""));
    }
    if let Some(d) = s.get("drift") {
        if let Some(share) = d.get("share") {
            match share.get("error") {
                Some(e) => println!("drift        {}", e.as_str().unwrap_or("")),
                None => {
                    let names: Vec<&str> = share["drifting"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["feature"].as_str())
                        .collect();
                    println!(
                        "drift        {:.0} % of features drift (threshold {:.0} %){}; against {}",
                        share["share"].as_f64().unwrap_or(0.0) * 100.0,
                        share["threshold"].as_f64().unwrap_or(0.0) * 100.0,
                        if names.is_empty() { String::new() } else { format!(": {}", names.join(", ")) },
                        share["reference"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        if let Some(det) = d.get("detector") {
            println!("detector     {} alarm(s) on {}", det["alarms"], det["query"].as_str().unwrap_or(""));
        }
    }
    println!("cool-down    until {} ({} suppressed so far)", time(&s["cooldown_until_ms"]), s["suppressed"]);
    let pending: Vec<&str> =
        s["unacknowledged"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    println!(
        "unacknowledged events: {}",
        if pending.is_empty() { "none".to_string() } else { pending.join(", ") }
    );
}

pub fn run(cmd: TriggersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TriggersCommand::Status(args) => {
            let status = engine(&args)?.status()?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Format::Table => print_status(&status),
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
