//! `modelwatch demo`: plays a scenario (`modelwatch::demo`) into the store and prints what
//! the detectors, quality metrics and triggers found, and the commands to look further.

use super::{Env, print_json};
use crate::cli::{DemoArgs, Format};
use anyhow::Context;
use modelwatch::demo::{Closing, Run, Summary, close_loop, scenario, summarise};
use modelwatch::time::rfc3339;
use modelwatch_store::{Durability, Store, StoreConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn run(env: &Env, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let end_ms = match &args.end {
        Some(t) => env.time(t, "end")?,
        None => env.now_ms(),
    };
    let Some(scenario) = scenario::find(&args.scenario) else {
        let names: Vec<&str> = scenario::ALL.iter().map(|s| s.name).collect();
        eprintln!("modelwatch: --scenario {:?}: one of {}", args.scenario, names.join(", "));
        return Ok(ExitCode::from(2));
    };
    // The loop plays after the history and ends by --end (about 11 simulated hours of its
    // `LOOP_HOURS`), so a dashboard's "last 3 days" up to now shows all of it.
    let history_end = if args.no_loop { end_ms } else { end_ms - modelwatch::demo::LOOP_HOURS * 3_600_000 };
    let run = Run { scenario, days: args.days, end_ms: history_end, seed: args.seed };
    if run.times().0 < modelwatch::time::EARLIEST {
        let e = format!("--end {}: {} days before it is before 1970", rfc3339(end_ms), args.days);
        return Err(super::UsageError(e).into());
    }
    make_room(args)?;
    std::fs::create_dir_all(&args.data.data)
        .with_context(|| format!("creating {}", args.data.data.display()))?;
    // Simulated history is written in bulk: group commit instead of an fsync per snapshot.
    let store = Arc::new(
        Store::open(StoreConfig {
            durability: Durability::Interval(Duration::from_secs(1)),
            background: false,
            buffer_rows: 200_000,
            ..args.data.store_config()
        })
        .with_context(|| format!("opening the store at {}", args.data.data.display()))?,
    );
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} simulating [{bar:40}] {pos}/{len} minutes ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let written = run.write(&store, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message("publishing and rolling up to 1m and 1h");
    spinner.enable_steady_tick(Duration::from_millis(120));
    store.flush()?;
    store.maintain(written.end_ms)?;
    spinner.finish_and_clear();
    let summary = summarise(&run, &written, &store, &args.data.data)?;
    let closing = if args.no_loop {
        None
    } else {
        let spinner = indicatif::ProgressBar::new_spinner()
            .with_message("closing the loop: retrain, gate, canary, promotion (three rounds)");
        spinner.enable_steady_tick(Duration::from_millis(120));
        let closing = close_loop(&run, &written, &store, &args.data.data)?;
        store.flush()?;
        spinner.finish_and_clear();
        Some(closing)
    };
    match args.format {
        Format::Json => print_json(&serde_json::json!({ "history": summary, "loop": closing }))?,
        Format::Table => {
            print(&summary, &args.data.data.display().to_string(), args.end.is_none())?;
            if let Some(c) = &closing {
                print_loop(c, summary.model, &args.data.data.display().to_string())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_loop(c: &Closing, model: &str, data: &str) -> anyhow::Result<()> {
    say!(
        "\nclosing the loop: after the history the scorer follows the registry ({} documents, 10 % of them \
         to a challenger while a canary runs):",
        c.predictions
    );
    for m in &c.timeline {
        say!("  {}  {}", rfc3339(m.at_ms), m.what);
    }
    say!("\nrounds:");
    for (i, r) in c.rounds.iter().enumerate() {
        let v = r.version.map_or("no version".to_string(), |v| format!("version {v}"));
        say!("  {}. {}: {v} {}", i + 1, r.name, r.ended);
    }
    let (before, after) = c.versions;
    say!(
        "\nprecision and recall per segment on {} fresh drifted documents each (the simulation knows their truth):",
        modelwatch::demo::TRUTH_DOCS
    );
    let (b, a) = (format!("version {before}"), format!("version {after}"));
    say!("  {:<12} {:>22} {:>22}", "", "precision", "recall");
    say!("  {:<12} {b:>10} {a:>11} {b:>10} {a:>11}", "segment");
    for p in &c.precision {
        say!(
            "  {:<12} {:>10.3} {:>11.3} {:>10.3} {:>11.3}",
            p.segment,
            p.before,
            p.after,
            p.recall_before,
            p.recall_after
        );
    }
    say!("\nlook at it:");
    say!(
        "  modelwatch models log {model} --data {data}     # every registration, promotion and rejection, with its reason"
    );
    say!("  modelwatch triggers history --data {data}       # each retraining event and what became of it");
    Ok(())
}

/// The demo writes into an empty (or new) directory only: simulated history mixed into a
/// scorer's data, or written twice, would be worse than no demo. `--replace` deletes the
/// directory first (its registry too), unless a trigger engine, a store writer or a
/// registry change holds it.
fn make_room(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = &args.data.data;
    let used = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    if !used {
        return Ok(());
    }
    if !args.replace {
        anyhow::bail!(
            "{} already holds data; the demo writes into an empty directory (choose another --data, or add --replace to delete it first)",
            dir.display()
        );
    }
    let lock = modelwatch::triggers::trigger_dir(dir).join("lock");
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock)
        && f.try_lock().is_err()
    {
        anyhow::bail!(
            "{}: a running trigger engine (`modelwatch serve --triggers`?) holds it; not deleting",
            dir.display()
        );
    }
    // Nor a retraining run (`modelwatch retrain`, `serve --retrain`), which holds only its
    // own lock while it trains: deleting under it left a version of vanished data and a
    // journal that could never finish. Held through the delete, as the registry's below.
    let mut held = Vec::new();
    let runs = dir.join("retrain").join("lock");
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&runs) {
        if f.try_lock().is_err() {
            anyhow::bail!("{}: a retraining run holds it; not deleting", runs.display());
        }
        held.push(f);
    }
    // Nor a store a live process writes (a scorer, an import).
    let config = args.data.store_config();
    let writers = modelwatch_store::writer_slots(&config).with_context(|| {
        format!("{}: cannot tell whether a live process writes it; not deleting", dir.display())
    })?;
    if let Some(w) = writers.iter().find(|w| w.held) {
        let who = w.holder.as_ref().map_or_else(|| "a live process".to_string(), |h| h.to_string());
        anyhow::bail!("{}: writer slot {} is held by {who}; not deleting", dir.display(), w.id);
    }
    // Nor a registry some process is changing; the registry goes with the rest (the demo
    // registers its own model there). Its locks are held through the delete, so a change
    // either finished before it or starts after it on an empty registry.
    if let Ok(models) = std::fs::read_dir(dir.join("registry")) {
        for m in models.flatten() {
            let lock = m.path().join(".lock");
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock) {
                if f.try_lock().is_err() {
                    anyhow::bail!("{}: a registry change is in progress; not deleting", lock.display());
                }
                held.push(f);
            }
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))
}

fn print(s: &Summary, data: &str, ends_now: bool) -> anyhow::Result<()> {
    let r = &s.run;
    say!(
        "simulated {} days of the {} scenario ({} predictions, model {}) into {data}",
        s.days,
        s.scenario,
        r.predictions,
        s.model
    );
    say!(
        "the scorer serves {} version {} from the registry (control and latest): logistic regression on {} labelled documents{}",
        s.model,
        r.model_version,
        r.model_rows,
        r.model_auc.map_or(String::new(), |a| format!(", hold-out AUC {a:.3}"))
    );
    say!("a drift starts at {}: {}", rfc3339(r.drift_ms), s.drift_note);
    say!("\n{:<40} {:>14} {:>14}", "", "before drift", "after drift");
    for f in &s.figures {
        let v = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
        say!("{:<40} {:>14} {:>14}", f.title, v(f.before), v(f.after));
    }
    let drifting: Vec<String> =
        s.drifting.iter().map(|d| format!("{} ({} {:.2})", d.feature, d.statistic, d.value)).collect();
    say!(
        "\ndrift, first day vs the last 6 h: {} of {} features drift: {}",
        drifting.len(),
        s.features_compared,
        if drifting.is_empty() { "none".to_string() } else { drifting.join(", ") }
    );
    match &s.cusum {
        Some(a) => say!(
            "CUSUM on {} per 10 min: alarm at {} ({}, {:.0} min after the injected drift)",
            s.watch,
            rfc3339(a.at_ms),
            a.direction,
            a.minutes_after_drift
        ),
        None => say!("CUSUM on {} per 10 min: no alarm", s.watch),
    }
    if let Some(q) = s.quality.as_ref().filter(|q| q.labels == 0.0) {
        // A short run: no prediction after the drift is old enough for its labels to count.
        say!(
            "quality after the drift: no labels yet on predictions at least {:.0} h old ({:.0} labels in so far on newer ones)",
            q.matured_hours,
            q.all_labels
        );
    } else if let Some(q) = &s.quality {
        let e = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
        say!(
            "quality after the drift, predictions at least {:.0} h old: precision {:.3} realised ({:.0} labels, {:.1} % \
             of predictions) vs {} estimated without labels; AUC {:.3} vs {}",
            q.matured_hours,
            q.realised_precision,
            q.labels,
            100.0 * q.coverage,
            e(q.estimated_precision),
            q.realised_auc,
            e(q.estimated_auc)
        );
        say!(
            "  (all predictions after the drift: precision {:.3} on the {:.0} labels in so far; rejections come back \
             hours after confirmations)",
            q.all_precision,
            q.all_labels
        );
    }
    for e in &s.events {
        say!("\nretraining event {} ({:.0} min after the injected drift):", e.id, e.minutes_after_drift);
        for reason in &e.reasons {
            say!("  {}: {}", reason.trigger(), reason.summary);
            let evidence = reason.evidence.figures().to_string();
            let cut: String = evidence.chars().take(160).collect();
            say!("    evidence: {cut}{}", if cut.len() < evidence.len() { " ..." } else { "" });
        }
    }
    if s.suppressed > 0 {
        say!("  (then {} hourly checks that still fired were held back by the 24 h cool-down)", s.suppressed);
    }
    // Relative windows only when the run ends now; otherwise the run's own times.
    let window = |since: &str| {
        if ends_now {
            format!("--since {since}")
        } else {
            format!("--from {} --to {}", rfc3339(r.start_ms), rfc3339(r.end_ms))
        }
    };
    let days = format!("{}d", s.days);
    say!("\nlook at it:");
    say!("  modelwatch query 'p95(latency) by (variant)' {} --step 1h --data {data}", window(&days));
    say!(
        "  modelwatch query 'mean(feature{{feature=\"digit_ratio\"}}) by (segment)' {} --step 6h --data {data}",
        window(&days)
    );
    say!(
        "  modelwatch drift --reference {}..{} --from {} --to {} --data {data}",
        rfc3339(r.start_ms),
        rfc3339(r.drift_ms),
        rfc3339(r.end_ms - 6 * 3_600_000),
        rfc3339(r.end_ms)
    );
    say!("  modelwatch quality {} --by segment --data {data}", window(&days));
    say!("  modelwatch triggers history --data {data}");
    say!("  modelwatch store inspect --data {data}");
    say!("  modelwatch models list pii-confidence --data {data}");
    say!("\nor serve it to Grafana and Prometheus (README, \"modelwatch serve\"):");
    say!("  modelwatch serve --data {data}   # http://127.0.0.1:9464/grafana and /metrics");
    Ok(())
}
