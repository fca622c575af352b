//! `modelwatch demo`: a simulated PII-detection scorer serving traffic through the agent hook
//! over several simulated days ending now, with a drift event two thirds of the way in,
//! written to the store. The main job on the embedded default: no server to set up.

use crate::cli::DemoArgs;
use anyhow::Context;
use modelwatch::agent::{Clock, ManualClock, SystemClock, Timestamp};
use modelwatch::triggers::TriggerEngine;
use modelwatch::{Agent, Feature, Prediction};
use modelwatch_query::detect::{Cusum, Detector, Direction};
use modelwatch_query::{Limits, Range, drift, parse, run as run_query};
use modelwatch_store::{Durability, EventRow, Rows, Store, StoreConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const SEGMENTS: [&str; 6] = ["email", "phone", "ssn", "credit_card", "name", "address"];
const NUMERIC: [&str; 14] = [
    "token_length",
    "digit_ratio",
    "alpha_ratio",
    "upper_ratio",
    "punct_ratio",
    "has_at_sign",
    "dash_count",
    "context_score",
    "regex_match",
    "checksum_valid",
    "char_entropy",
    "position_in_doc",
    "doc_length",
    "prev_token_is_label",
];
const LANGS: [&str; 4] = ["en", "de", "fr", "es"];
const SCRIPTS: [&str; 3] = ["latin", "cyrillic", "cjk"];

/// A small deterministic generator (xorshift) with the distributions the demo needs.
struct Rng(u64);

impl Rng {
    fn u(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (a, b) = (self.u().max(1e-12), self.u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

/// One simulated prediction's features for a segment; `drift` shifts what the feature
/// extractor sees (a new phone-number format with fewer digits, longer documents).
fn features(rng: &mut Rng, seg: usize, drift: bool) -> [f64; 14] {
    let digits = match seg {
        1 => {
            if drift {
                0.45
            } else {
                0.75
            }
        }
        2 | 3 => 0.8,
        _ => 0.05,
    };
    let len = [18.0, 12.0, 11.0, 16.0, 9.0, 28.0][seg];
    let mut f = [
        (len + rng.normal() * 3.0).max(1.0).round(),
        (digits + rng.normal() * 0.08).clamp(0.0, 1.0),
        (1.0 - digits + rng.normal() * 0.08).clamp(0.0, 1.0),
        (0.1 + rng.normal() * 0.05).clamp(0.0, 1.0),
        (0.05 + rng.normal() * 0.02).clamp(0.0, 1.0),
        f64::from(u8::from(seg == 0 && rng.u() < 0.97)),
        if seg == 1 || seg == 2 { (2.0 + rng.normal()).round().max(0.0) } else { 0.0 },
        (0.7 + rng.normal() * 0.15).clamp(0.0, 1.0),
        f64::from(u8::from(rng.u() < 0.85)),
        f64::from(u8::from(seg == 3 && rng.u() < 0.9)),
        (3.2 + rng.normal() * 0.4).max(0.0),
        rng.u(),
        (if drift { 2400.0 } else { 1200.0 } * (1.0 + rng.normal() * 0.3)).max(50.0).round(),
        f64::from(u8::from(rng.u() < 0.3)),
    ];
    if rng.u() < 0.02 {
        f[7] = f64::NAN; // the context model sometimes times out: a missing feature
    }
    f
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let days = args.days.clamp(1, 30);
    let minutes = days * 1440;
    let end = SystemClock.now().as_millis() / 60_000 * 60_000;
    let start = end - minutes * 60_000;
    let drift_at = minutes * 2 / 3;
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
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(start)));
    let schema: Vec<Feature> = NUMERIC
        .iter()
        .map(|n| Feature::numeric(*n))
        .chain([Feature::categorical("language", LANGS), Feature::categorical("script", SCRIPTS)])
        .collect();
    let agents: Vec<Agent> = [("control", "1.4.0"), ("canary", "1.5.0-rc1")]
        .iter()
        .map(|(variant, version)| {
            Agent::builder("pii-confidence")
                .version(version)
                .variant(variant)
                .instance("demo")
                .segments(SEGMENTS)
                .features(schema.clone())
                .interval(Duration::from_secs(60))
                .clock(clock.clone())
                .background_flush(false)
                .build(store.clone())
        })
        .collect::<Result<_, _>>()?;
    for a in &agents {
        a.handle().model_loaded();
    }
    // Events for the dashboards' annotations: the deployments, and where the simulation
    // injects its drift (ground truth the detectors should find on their own).
    let event = |t: u64, version: &str, variant: &str, kind: &str, message: &str| EventRow {
        time_ms: t as i64,
        model: "pii-confidence".into(),
        version: version.into(),
        variant: variant.into(),
        kind: kind.into(),
        message: message.into(),
    };
    store.append(Rows {
        events: vec![
            event(start, "1.4.0", "control", "model_loaded", "control model serving"),
            event(start, "1.5.0-rc1", "canary", "model_loaded", "canary takes 10 % of the traffic"),
            event(
                start + drift_at * 60_000,
                "1.4.0",
                "control",
                "simulated_drift",
                "the demo injects a drift: new phone number format, longer documents",
            ),
        ],
        ..Rows::default()
    })?;
    let handles: Vec<_> = agents.iter().map(|a| a.handle()).collect();
    let segs: Vec<Vec<_>> = handles.iter().map(|h| SEGMENTS.iter().map(|s| h.segment(s)).collect()).collect();
    let timeout = handles[0].error_kind("timeout");

    let bar = indicatif::ProgressBar::new(minutes).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} simulating [{bar:40}] {pos}/{len} minutes ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rng = Rng(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut predictions = 0u64;
    let mut x = [0.0f64; 16];
    for minute in 0..minutes {
        let drift = minute >= drift_at;
        // Daily traffic shape: busier in the (UTC) afternoon.
        let hour = (start / 3_600_000 + minute / 60) % 24;
        let load = 12.0 + 10.0 * ((hour as f64 - 14.0) / 24.0 * std::f64::consts::TAU).cos();
        let n = (load + rng.normal() * 2.0).max(1.0) as u64;
        for k in 0..n {
            let v = usize::from(rng.u() < 0.1); // 10 % canary
            let seg = (rng.u() * 6.0) as usize % 6;
            let t = Timestamp::from_millis(start + minute * 60_000 + k * 60_000 / n);
            clock.set(t);
            if rng.u() < 0.002 {
                handles[v].error(segs[v][seg], timeout);
                continue;
            }
            let f = features(&mut rng, seg, drift);
            x[..14].copy_from_slice(&f);
            x[14] = f64::NAN;
            x[15] = f64::NAN;
            let cats = [Some(LANGS[(rng.u() * 4.0) as usize % 4]), Some(SCRIPTS[usize::from(rng.u() < 0.1)])];
            // Latency: lognormal around 4 ms (the canary is 15 % slower); confidence from a
            // per-segment base, lower on drifted phone numbers.
            let base_ms = [3.5, 4.0, 3.0, 5.0, 4.5, 6.0][seg] * if v == 1 { 1.15 } else { 1.0 };
            let latency = Duration::from_secs_f64(base_ms / 1e3 * (0.35 * rng.normal()).exp());
            let mut conf = [0.86, 0.82, 0.9, 0.88, 0.7, 0.74][seg] + rng.normal() * 0.08;
            if drift && seg == 1 {
                conf -= 0.18;
            }
            let conf = conf.clamp(0.0, 1.0);
            handles[v].record(
                &Prediction::new(segs[v][seg], latency, conf)
                    .features(&x)
                    .categories(&cats)
                    .predicted(conf >= 0.5),
            );
            predictions += 1;
            if rng.u() < 0.05 {
                // Users confirm or reject: positive with the model's (calibrated) probability.
                handles[v].feedback(segs[v][seg], conf, rng.u() < conf);
            }
        }
        clock.set(Timestamp::from_millis(start + (minute + 1) * 60_000));
        for a in &agents {
            a.flush_due()?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for a in agents {
        a.shutdown()?;
    }
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message("publishing and rolling up to 1m and 1h");
    spinner.enable_steady_tick(Duration::from_millis(120));
    store.flush()?;
    store.maintain(end as i64)?;
    spinner.finish_and_clear();

    println!(
        "simulated {days} days of a PII-detection scorer ({predictions} predictions, 6 categories, 16 features, \
         control 1.4.0 and a 10 % canary 1.5.0-rc1) into {}",
        args.data.data.display()
    );
    let drift_ms = (start + drift_at * 60_000) as i64;
    println!(
        "a drift event starts at {}: phone numbers in a new format (digit_ratio falls), longer documents",
        super::rfc3339(drift_ms)
    );
    let range = |from: i64, to: i64| Range { from_ms: from, to_ms: to, step_ms: to - from };
    let one = |text: &str, from: i64, to: i64| -> anyhow::Result<Vec<modelwatch_query::Series>> {
        Ok(run_query(&store, &parse(text)?, range(from, to), Limits::default())?)
    };
    let before = (start as i64, drift_ms);
    let after = (drift_ms, end as i64);
    println!("\n{:<40} {:>14} {:>14}", "", "before drift", "after drift");
    for (title, q) in [
        ("p95 latency, ms (control)", r#"p95(latency{variant="control"})"#),
        ("p95 latency, ms (canary)", r#"p95(latency{variant="canary"})"#),
        ("mean confidence, phone", r#"mean(confidence{segment="phone"})"#),
        ("mean confidence, email", r#"mean(confidence{segment="email"})"#),
        ("mean digit_ratio, phone", r#"mean(feature{feature="digit_ratio", segment="phone"})"#),
        ("mean doc_length, all", r#"mean(feature{feature="doc_length"})"#),
    ] {
        let b = one(q, before.0, before.1)?;
        let a = one(q, after.0, after.1)?;
        let v = |s: &[modelwatch_query::Series]| {
            s.first().and_then(|s| s.points.first()).map(|p| p.1).unwrap_or(f64::NAN)
        };
        let scale = if title.contains("latency") { 1e-6 } else { 1.0 };
        println!("{title:<40} {:>14.3} {:>14.3}", v(&b) * scale, v(&a) * scale);
    }
    // What the detectors say, with no knowledge of where the drift was injected: the first
    // day against the last six hours, and CUSUM over the phone segment's mean confidence.
    let day = 86_400_000i64;
    let reference =
        drift::profile(&store, &[], start as i64, start as i64 + day.min(drift_ms - start as i64))?;
    let current = drift::profile(&store, &[], end as i64 - 6 * 3_600_000, end as i64)?;
    let report = drift::compare(&reference, &current, &drift::DriftConfig::default());
    let drifting: Vec<String> = report
        .features
        .iter()
        .filter(|f| f.verdict == drift::Verdict::Drift)
        .map(|f| {
            let w = f.stats.iter().find(|s| s.statistic == "wasserstein_norm" || s.statistic == "js");
            format!(
                "{} ({} {:.2})",
                f.feature,
                w.map_or("", |s| s.statistic.as_str()),
                w.map_or(f64::NAN, |s| s.value)
            )
        })
        .collect();
    println!(
        "\ndrift, first day vs the last 6 h: {} of {} features drift: {}",
        drifting.len(),
        report.features.len(),
        if drifting.is_empty() { "none".to_string() } else { drifting.join(", ") }
    );
    let step = 600_000i64;
    let series = run_query(
        &store,
        &parse(r#"mean(confidence{segment="phone"})"#)?,
        Range { from_ms: start as i64, to_ms: end as i64, step_ms: step },
        Limits::default(),
    )?;
    if let Some(s) = series.first() {
        match Cusum::default().run(&s.points).first() {
            Some(a) => println!(
                "CUSUM on phone's mean confidence per 10 min: alarm at {} ({}, {:.0} min after the injected drift)",
                super::rfc3339(a.time_ms),
                if a.direction == Direction::Down { "down" } else { "up" },
                (a.time_ms + step - drift_ms) as f64 / 60_000.0
            ),
            None => println!("CUSUM on phone's mean confidence per 10 min: no alarm"),
        }
    }
    let quality = modelwatch_query::quality::quality(
        &store,
        &[],
        &[],
        drift_ms,
        end as i64,
        Some((start as i64, drift_ms)),
        0.5,
    )?;
    if let Some(q) = quality.first() {
        let e = q.estimated.as_ref();
        println!(
            "quality after the drift: precision {:.3} realised ({:.0} labels) vs {:.3} estimated without labels; AUC {:.3} vs {:.3}",
            q.realised.precision,
            q.realised.n,
            e.map_or(f64::NAN, |e| e.precision),
            q.realised.auc,
            e.map_or(f64::NAN, |e| e.auc)
        );
    }

    // The retraining triggers over the simulated days, evaluated every hour as a
    // `modelwatch serve --triggers` would: drift against the first day, CUSUM on phone's
    // confidence, and quality degradation; a retraining side acknowledges each event.
    let trigger_dir = modelwatch::triggers::trigger_dir(&args.data.data);
    let _ = std::fs::remove_dir_all(&trigger_dir); // the demo's own simulated history
    let config = modelwatch::triggers::TriggerConfig {
        model: "pii-confidence".into(),
        cooldown: "24h".into(),
        labels: modelwatch::triggers::LabelsTrigger { enabled: false, ..Default::default() },
        schedule: modelwatch::triggers::ScheduleTrigger { enabled: false, ..Default::default() },
        drift: modelwatch::triggers::DriftTrigger {
            reference: format!("{}..{}", start, start as i64 + day),
            window: "6h".into(),
            share: 0.2,
            detector: r#"mean(confidence{segment="phone"})"#.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let trigger_clock = Arc::new(ManualClock::new(Timestamp::from_millis(start + day as u64)));
    let mut engine =
        TriggerEngine::open(config, store.clone(), &args.data.data, trigger_clock.clone(), Vec::new())?;
    let mut t = start as i64 + day;
    while t <= end as i64 {
        trigger_clock.set(Timestamp::from_millis(t as u64));
        if let Some(e) = engine.evaluate()?.event {
            println!(
                "\nretraining event {} ({:.0} min after the injected drift):",
                e.id,
                (t - drift_ms) as f64 / 60_000.0
            );
            for r in &e.reasons {
                println!("  {}: {}", r.trigger, r.summary);
                let evidence = r.evidence.to_string();
                let cut: String = evidence.chars().take(160).collect();
                println!("    evidence: {cut}{}", if cut.len() < evidence.len() { " ..." } else { "" });
            }
            engine.ack(&e.id)?;
        }
        t += 3_600_000;
    }
    if engine.state().suppressed > 0 {
        println!(
            "  (then {} hourly checks that still fired were held back by the 24 h cool-down)",
            engine.state().suppressed
        );
    }
    drop(engine);

    let d = args.data.data.display();
    println!("\nlook at it:");
    println!("  modelwatch query 'p95(latency) by (variant)' --since {days}d --step 1h --data {d}");
    println!(
        "  modelwatch query 'mean(feature{{feature=\"digit_ratio\"}}) by (segment)' --since {days}d --step 6h --data {d}"
    );
    println!("  modelwatch query 'rate(predictions) by (segment)' --since 1h --step 10m --data {d}");
    println!(
        "  modelwatch drift --reference {}..{} --current 6h --data {d}",
        super::rfc3339(start as i64),
        super::rfc3339(drift_ms)
    );
    println!("  modelwatch quality --since {days}d --by segment --data {d}");
    println!("  modelwatch triggers history --data {d}");
    println!("  modelwatch store inspect --data {d}");
    println!("\nor serve it to Grafana and Prometheus (README, \"modelwatch serve\"):");
    println!("  modelwatch serve --data {d}   # http://127.0.0.1:9464/grafana and /metrics");
    Ok(ExitCode::SUCCESS)
}
