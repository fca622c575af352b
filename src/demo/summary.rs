//! What the demo found, read back through the same engine users query: the scenario's
//! figures before and after the drift, the drift report, the CUSUM detector, realised versus
//! estimated quality, and the retraining events the triggers emitted over the run.

use super::{DemoError, Run, Simulated};
use crate::triggers::{DriftTrigger, LabelsTrigger, ScheduleTrigger, TriggerConfig, TriggerEngine};
use crate::{ManualClock, Timestamp};
use modelwatch_query::detect::{self, Cusum, Detector, Direction};
use modelwatch_query::drift::{Measure, Statistic};
use modelwatch_query::{Limits, Range, Unit, drift, parse, run as run_query};
use modelwatch_store::Store;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// Everything the demo prints.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The model.
    pub model: &'static str,
    /// Simulated days.
    pub days: u64,
    /// What was written.
    pub run: Simulated,
    /// What the drift changes.
    pub drift_note: &'static str,
    /// The scenario's figures before and after the drift.
    pub figures: Vec<Figure>,
    /// Features the drift report judged (first day against the last 6 h; not those with
    /// insufficient data).
    pub features_compared: usize,
    /// The features that drift, with the statistic the verdict rests on.
    pub drifting: Vec<Drifting>,
    /// CUSUM's first alarm on the watched query, per 10 min.
    pub cusum: Option<Alarm>,
    /// The watched query.
    pub watch: &'static str,
    /// Quality after the drift: realised from labels and estimated without.
    pub quality: Option<QualityAfter>,
    /// Retraining events over the run, evaluated hourly.
    pub events: Vec<Event>,
    /// Hourly checks that fired but were held back by the cool-down.
    pub suppressed: u64,
}

/// A figure before and after the drift, in the unit people read (`unit`).
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// What it is.
    pub title: &'static str,
    /// The query.
    pub query: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Before the drift.
    pub before: Option<f64>,
    /// After it.
    pub after: Option<f64>,
}

/// A drifting feature.
#[derive(Clone, Debug, Serialize)]
pub struct Drifting {
    /// The feature.
    pub feature: String,
    /// The verdict's statistic.
    pub statistic: String,
    /// Its value.
    pub value: f64,
}

/// A detector alarm.
#[derive(Clone, Debug, Serialize)]
pub struct Alarm {
    /// When (ms).
    pub at_ms: i64,
    /// `up` or `down`.
    pub direction: &'static str,
    /// Minutes after the injected drift, counting the whole window that alarmed.
    pub minutes_after_drift: f64,
}

/// Quality after the drift.
#[derive(Clone, Debug, Serialize)]
pub struct QualityAfter {
    /// Precision from the labels of the predictions after the drift made at least
    /// `matured_hours` before the end.
    pub realised_precision: f64,
    /// Labels behind it.
    pub labels: f64,
    /// Labelled ÷ predictions, of those predictions.
    pub coverage: f64,
    /// How old the predictions measured are, at least.
    pub matured_hours: f64,
    /// Precision of every prediction after the drift, labels or not yet.
    pub all_precision: f64,
    /// Labels behind it.
    pub all_labels: f64,
    /// Precision estimated without labels.
    pub estimated_precision: Option<f64>,
    /// AUC from the labels.
    pub realised_auc: f64,
    /// AUC estimated without labels.
    pub estimated_auc: Option<f64>,
}

/// The age from which the summary judges a cohort's labels complete enough, hours.
const MATURED_H: i64 = 12;

/// A retraining event of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Its ID.
    pub id: String,
    /// Minutes after the injected drift.
    pub minutes_after_drift: f64,
    /// Its reasons.
    pub reasons: Vec<crate::triggers::Reason>,
}

const DAY: i64 = 86_400_000;

/// Reads the summary of a run back from the store, and runs the triggers over the
/// simulated time with their state in `<data>/triggers` (the demo's own directory: a
/// trigger state already there, from a scorer's real history, would be taken up).
pub fn summarise(run: &Run, sim: &Simulated, store: &Arc<Store>, data: &Path) -> Result<Summary, DemoError> {
    let s = run.scenario;
    let (start, drift_ms, end) = (sim.start_ms, sim.drift_ms, sim.end_ms);
    let one = |query: &str, from: i64, to: i64| -> Result<Option<f64>, DemoError> {
        let q = parse(query)?;
        let range = Range { from_ms: from, to_ms: to, step_ms: to - from };
        let series = run_query(store, &q, range, Limits::default())?;
        let unit = q.unit();
        Ok(series.first().and_then(|s| s.points.first()).map(|p| unit.convert(p.1, unit.for_people())))
    };
    let figures = s
        .summary
        .iter()
        .map(|&(title, query)| {
            Ok(Figure {
                title,
                query,
                unit: parse(query)?.unit().for_people(),
                before: one(query, start, drift_ms)?,
                after: one(query, drift_ms, end)?,
            })
        })
        .collect::<Result<_, DemoError>>()?;

    // What the detectors say, with no knowledge of where the drift was injected: the first
    // day against the last six hours, and CUSUM over the watched query.
    let reference = drift::profile(store, &[], start, start + DAY.min(drift_ms - start))?;
    let current = drift::profile(store, &[], end - 6 * 3_600_000, end)?;
    let report = drift::compare(&reference, &current, &drift::DriftConfig::default());
    let drifting = report
        .features
        .iter()
        .filter(|f| f.verdict == drift::Verdict::Drift)
        .map(|f| {
            let effect = [Measure::Statistic(Statistic::WassersteinNorm), Measure::Statistic(Statistic::Js)];
            let w = f.stats.iter().find(|s| effect.contains(&s.statistic));
            Drifting {
                feature: f.feature.clone(),
                statistic: w.map_or(String::new(), |s| s.statistic.to_string()),
                value: w.map_or(f64::NAN, |s| s.value),
            }
        })
        .collect();
    let step = 600_000i64;
    let watched = detect::query_points(
        store,
        &parse(s.watch)?,
        Range { from_ms: start, to_ms: end, step_ms: step },
        Limits::default(),
    )?;
    let cusum = Cusum::default().run(&watched).first().cloned().map(|a| Alarm {
        at_ms: a.time_ms,
        direction: if a.direction == Direction::Down { "down" } else { "up" },
        minutes_after_drift: (a.time_ms + step - drift_ms) as f64 / 60_000.0,
    });
    // Rejections take hours to come back: the latest predictions' precision is judged on
    // the cohorts whose labels had `MATURED_H` hours to arrive, beside all of them so far.
    let opts = modelwatch_query::quality::QualityOptions {
        reference: Some((start, drift_ms)),
        threshold: s.threshold,
        ..Default::default()
    };
    let overall =
        |to: i64| -> Result<Option<modelwatch_query::quality::QualityRow>, modelwatch_query::QueryError> {
            Ok(if to > drift_ms {
                modelwatch_query::quality::quality(store, &[], &[], drift_ms, to, &opts)?.into_iter().next()
            } else {
                None
            })
        };
    let matured = overall(end - MATURED_H * 3_600_000)?;
    let quality = overall(end)?.map(|all| QualityAfter {
        realised_precision: matured.as_ref().map_or(f64::NAN, |q| q.realised.precision),
        labels: matured.as_ref().map_or(0.0, |q| q.realised.n),
        coverage: matured.as_ref().map_or(f64::NAN, |q| q.coverage),
        estimated_precision: matured.as_ref().and_then(|q| q.estimated.as_ref()).map(|e| e.precision),
        realised_auc: matured.as_ref().map_or(f64::NAN, |q| q.realised.auc),
        estimated_auc: matured.as_ref().and_then(|q| q.estimated.as_ref()).map(|e| e.auc),
        matured_hours: MATURED_H as f64,
        all_precision: all.realised.precision,
        all_labels: all.realised.n,
    });
    let (events, suppressed) = triggers(run, sim, store, data)?;
    Ok(Summary {
        scenario: s.name,
        model: s.model,
        days: run.days,
        run: sim.clone(),
        drift_note: s.drift.note,
        figures,
        features_compared: report.judged(),
        drifting,
        cusum,
        watch: s.watch,
        quality,
        events,
        suppressed,
    })
}

/// The retraining triggers over the simulated days, evaluated every hour as a `modelwatch
/// serve --triggers` would: drift against the first day, CUSUM on the watched query, and
/// quality degradation; a retraining side acknowledges each event.
fn triggers(
    run: &Run,
    sim: &Simulated,
    store: &Arc<Store>,
    data: &Path,
) -> Result<(Vec<Event>, u64), DemoError> {
    let config = trigger_config(run, sim);
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis((sim.start_ms + DAY) as u64)));
    let mut engine = TriggerEngine::open(config, store.clone(), data, clock.clone(), Vec::new())?;
    let mut events = Vec::new();
    let mut t = sim.start_ms + DAY;
    while t <= sim.end_ms {
        clock.set(Timestamp::from_millis(t as u64));
        if let Some(e) = engine.evaluate()?.event {
            engine.ack(&e.id)?;
            events.push(Event {
                id: e.id,
                minutes_after_drift: (t - sim.drift_ms) as f64 / 60_000.0,
                reasons: e.reasons,
            });
        }
        t += 3_600_000;
    }
    Ok((events, engine.state().suppressed))
}

/// The demo's triggers: drift against the history's first day over the last 6 h (a fifth of
/// the features), CUSUM on the watched query, quality degradation; a 24 h cool-down.
pub fn trigger_config(run: &Run, sim: &Simulated) -> TriggerConfig {
    TriggerConfig {
        model: run.scenario.model.into(),
        cooldown: "24h".into(),
        labels: LabelsTrigger { enabled: false, ..Default::default() },
        schedule: ScheduleTrigger { enabled: false, ..Default::default() },
        drift: DriftTrigger {
            reference: format!("{}..{}", sim.start_ms, sim.start_ms + DAY),
            window: "6h".into(),
            share: 0.2,
            detector: run.scenario.watch.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}
