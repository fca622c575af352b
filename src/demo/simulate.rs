//! Playing a scenario through the agent hook into a store, minute by minute on a manual
//! clock: the same code path a real scorer takes, only faster than real time.

use super::{DemoError, Rng, Scenario};
use crate::retrain::{LogisticTrainer, Model, ModelLoader, Registration, load_alias, train_and_register};
use crate::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_agent::LabelledPrediction;
use modelwatch_store::examples::SplitSpec;
use modelwatch_store::registry::{Action, Alias, Registry, RegistryConfig, VersionInfo};
use modelwatch_store::{EventRow, Rows, Store};
use std::sync::Arc;
use std::time::Duration;

/// What a run simulates.
#[derive(Clone, Debug)]
pub struct Run {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// Simulated days.
    pub days: u64,
    /// When the run ends (ms, rounded down to the minute).
    pub end_ms: i64,
    /// The seed: the same seed and end give the same store.
    pub seed: u64,
}

/// What a run wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Simulated {
    /// The first minute (ms).
    pub start_ms: i64,
    /// The end (ms).
    pub end_ms: i64,
    /// When the injected drift starts (ms).
    pub drift_ms: i64,
    /// Predictions recorded.
    pub predictions: u64,
    /// The registered version that scored them (control and latest).
    pub model_version: u32,
    /// Its hold-out AUC (on the newest quarter of the history it was trained on).
    pub model_auc: Option<f64>,
    /// How many labelled examples it was trained on.
    pub model_rows: u64,
}

/// Labelled history the first model is trained on: documents from the week before the run.
const HISTORY: usize = 4_000;
const DAY_MS: i64 = 86_400_000;

impl Run {
    fn minutes(&self) -> i64 {
        self.days.clamp(1, 30) as i64 * 1_440
    }

    /// The simulated window: (start, drift, end), ms.
    pub fn times(&self) -> (i64, i64, i64) {
        let end = self.end_ms.div_euclid(60_000) * 60_000;
        let minutes = self.minutes();
        let start = end - minutes * 60_000;
        (start, start + (minutes as f64 * self.scenario.drift.at) as i64 * 60_000, end)
    }

    /// Writes the run into `store`, calling `tick` after each simulated minute (of
    /// `minutes()`), e.g. for a progress bar.
    pub fn write(&self, store: &Arc<Store>, mut tick: impl FnMut(u64, u64)) -> Result<Simulated, DemoError> {
        let s = self.scenario;
        s.validate().map_err(DemoError::Scenario)?;
        let (start, drift_ms, end) = self.times();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(start as u64)));
        let (model, version) = self.first_model(store, &clock, start)?;
        let agents: Vec<Agent> = s
            .variants
            .iter()
            .map(|v| agent(s, v.version, v.name, &clock, store))
            .collect::<Result<_, _>>()?;
        // Events for the dashboards' annotations: the deployments, and where the drift is
        // injected (ground truth the detectors should find on their own).
        let event = |time_ms: i64, v: usize, kind: &str, message: String| EventRow {
            time_ms,
            model: s.model.into(),
            version: s.variants[v].version.into(),
            variant: s.variants[v].name.into(),
            kind: kind.into(),
            message,
        };
        let mut events: Vec<EventRow> = (0..s.variants.len())
            .map(|v| {
                let share = s.variants[v].share * 100.0;
                event(
                    start,
                    v,
                    "model_loaded",
                    format!("{} serves {share:.0} % of the traffic", s.variants[v].name),
                )
            })
            .collect();
        events.push(event(drift_ms, 0, "simulated_drift", s.drift.note.to_string()));
        store.append(Rows { events, ..Rows::default() })?;
        for a in &agents {
            a.handle().model_loaded();
            // The registered version's age, from its registration (the agent's own gauges
            // count from this load).
            crate::registry::ModelGauges::new(a.handle(), clock.clone()).loaded(&version);
        }

        let handles: Vec<_> = agents.iter().map(|a| a.handle()).collect();
        let segs: Vec<Vec<_>> =
            handles.iter().map(|h| s.segments.iter().map(|seg| h.segment(seg.name)).collect()).collect();
        let error_kind = handles[0].error_kind(s.errors.1);
        let mut rng = Rng::seeded(self.seed);
        // Label delays draw from their own stream, so the traffic is the same with or
        // without them.
        let mut delays = Rng::seeded(self.seed ^ 0x005e_ed1a_be15);
        // Labels on their way back, and when each arrives (soonest first).
        let mut labels: Vec<PendingLabel> = Vec::new();
        let mut due: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> =
            std::collections::BinaryHeap::new();
        let mut x = vec![f64::NAN; s.numeric.len() + s.categorical.len()];
        // What the model sees and a labelled example keeps: the numeric values, then each
        // categorical feature's category index.
        let mut seen = vec![f64::NAN; s.numeric.len() + s.categorical.len()];
        let mut cats: Vec<Option<&str>> = Vec::with_capacity(s.categorical.len());
        let mut predictions = 0u64;
        let minutes = self.minutes();
        for minute in 0..minutes {
            let now = start + minute * 60_000;
            clock.set(Timestamp::from_millis(now as u64));
            while let Some(&std::cmp::Reverse((at_ms, i))) = due.peek()
                && at_ms <= now
            {
                due.pop();
                let l = &labels[i];
                let at = Timestamp::from_millis(l.predicted_ms as u64);
                let h = &handles[l.variant];
                h.feedback_for(at, segs[l.variant][l.segment], l.confidence, l.label);
                h.example(&LabelledPrediction::new(
                    segs[l.variant][l.segment],
                    at,
                    &l.features,
                    l.confidence,
                    l.label,
                ));
            }
            let drifted = now >= drift_ms;
            let hour = (now.div_euclid(3_600_000) % 24) as f64;
            let t = &s.traffic;
            let load = t.per_minute
                + t.daily_amplitude * ((hour - t.peak_hour) / 24.0 * std::f64::consts::TAU).cos()
                + rng.normal() * t.noise;
            let n = load.max(1.0) as i64;
            for k in 0..n {
                clock.set(Timestamp::from_millis((now + k * 60_000 / n) as u64));
                let v = pick(&mut rng, s.variants.iter().map(|v| v.share));
                let seg = rng.below(s.segments.len());
                if rng.u() < s.errors.0 {
                    handles[v].error(segs[v][seg], error_kind);
                    continue;
                }
                let truth = rng.u() < s.segments[seg].positives;
                document(s, seg, drifted, truth, &mut rng, &mut x, &mut seen, &mut cats);
                let latency_ms = s.segments[seg].latency_ms
                    * s.variants[v].latency_factor
                    * (t.latency_sigma * rng.normal()).exp();
                let conf = model.score(&seen);
                handles[v].record(
                    &Prediction::new(segs[v][seg], Duration::from_secs_f64(latency_ms / 1e3), conf)
                        .features(&x)
                        .categories(&cats)
                        .predicted(conf >= s.threshold),
                );
                predictions += 1;
                if rng.u() < s.feedback {
                    // Users confirm or reject, and tell us later.
                    let label = truth;
                    let mean = if label { s.label_delay_min.0 } else { s.label_delay_min.1 };
                    let delay = -mean * 60_000.0 * (1.0 - delays.u()).ln();
                    let predicted_ms = now + k * 60_000 / n;
                    due.push(std::cmp::Reverse((predicted_ms + delay as i64, labels.len())));
                    labels.push(PendingLabel {
                        features: seen.clone(),
                        variant: v,
                        segment: seg,
                        confidence: conf,
                        label,
                        predicted_ms,
                    });
                }
            }
            clock.set(Timestamp::from_millis((now + 60_000) as u64));
            for a in &agents {
                a.flush_due()?;
            }
            tick(minute as u64 + 1, minutes as u64);
        }
        for a in agents {
            a.shutdown()?;
        }
        Ok(Simulated {
            start_ms: start,
            end_ms: end,
            drift_ms,
            predictions,
            model_version: version.meta.version,
            model_auc: version.meta.training.metrics.overall.get("auc").copied(),
            model_rows: version.meta.training.rows,
        })
    }

    /// The model the scorer serves: trained on a week of labelled history before the run
    /// (kept in the store's examples), registered in the store's registry and promoted to
    /// control (and so latest), then loaded back from the registry like a scorer would.
    fn first_model(
        &self,
        store: &Arc<Store>,
        clock: &Arc<ManualClock>,
        start: i64,
    ) -> Result<(Box<dyn Model>, VersionInfo), DemoError> {
        let s = self.scenario;
        let err = |e: &dyn std::fmt::Display| DemoError::Model(e.to_string());
        // Its own stream, so the traffic is the same whatever the history.
        let history = s.history(HISTORY, start - 7 * DAY_MS, start, self.seed ^ 0x000b_5e55_ed0f_1157);
        store.append_examples(s.model, history.clone())?;
        let split = history.split(&SplitSpec::time(0.25)).map_err(|e| err(&e))?;
        let data = crate::retrain::TrainingData::new(split.train, split.holdout).map_err(|e| err(&e))?;
        let registry =
            Registry::open(RegistryConfig::new(store.dir(), clock.clone())).map_err(|e| err(&e))?;
        let mut r =
            Registration::new(s.model, "the demo's first model, trained on a week of labelled history");
        r.split = serde_json::to_value(&split.record).unwrap_or_default();
        r.threshold = s.threshold;
        let loader = ModelLoader::new();
        let v = train_and_register(&registry, &LogisticTrainer::default(), &loader, &data, &r)
            .map_err(|e| err(&e))?;
        registry
            .promote(s.model, v.meta.version, &Action::new("auto", "the demo's first model"))
            .map_err(|e| err(&e))?;
        let dir = tempfile::tempdir().map_err(|e| err(&e))?;
        let (info, model) =
            load_alias(&registry, &loader, s.model, Alias::Control, dir.path()).map_err(|e| err(&e))?;
        Ok((model, info))
    }
}

/// The agent of one variant of the demo's scorer: the scenario's segments and features,
/// one-minute intervals on the simulation's clock, flushed by the simulation.
pub(super) fn agent(
    s: &Scenario,
    version: &str,
    variant: &str,
    clock: &Arc<ManualClock>,
    store: &Arc<Store>,
) -> Result<Agent, modelwatch_agent::BuildError> {
    let schema =
        s.numeric.iter().map(|f| Feature::numeric(f.name)).chain(
            s.categorical.iter().map(|c| Feature::categorical(c.name, c.categories.iter().map(|c| c.0))),
        );
    Agent::builder(s.model)
        .version(version)
        .variant(variant)
        .instance("demo")
        .segments(s.segments.iter().map(|s| s.name))
        .features(schema)
        .interval(Duration::from_secs(60))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
}

/// One document of segment `seg`: its numeric features into `x` (as the agent records
/// them), and into `seen` with each categorical feature's drawn category index (what the
/// model scores); the categories' names into `cats`.
#[allow(clippy::too_many_arguments)]
pub(super) fn document<'s>(
    s: &'s Scenario,
    seg: usize,
    drifted: bool,
    truth: bool,
    rng: &mut Rng,
    x: &mut [f64],
    seen: &mut [f64],
    cats: &mut Vec<Option<&'s str>>,
) {
    s.draw_features(s.segments[seg].name, drifted, truth, rng, x);
    cats.clear();
    seen[..s.numeric.len()].copy_from_slice(&x[..s.numeric.len()]);
    for (j, c) in s.categorical.iter().enumerate() {
        let k = pick(rng, c.categories.iter().map(|c| c.1));
        seen[s.numeric.len() + j] = k as f64;
        cats.push(Some(c.categories[k].0));
    }
}

/// A user's label on its way back.
struct PendingLabel {
    features: Vec<f64>,
    variant: usize,
    segment: usize,
    confidence: f64,
    label: bool,
    predicted_ms: i64,
}

/// An index drawn with the given weights.
pub(super) fn pick(rng: &mut Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut u = rng.u() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last = i;
            if u < w {
                return i;
            }
        }
        u -= w;
    }
    last
}
