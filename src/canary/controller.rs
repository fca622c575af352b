//! The canary controller: reads both arms of a running canary from the store, asks the
//! [`judge`] and acts on its verdict in the registry.
//!
//! A canary runs while the model's `challenger` alias names a version: it starts at the
//! audit entry that moved the alias there, so the controller keeps no state of its own and
//! a restart (or a `kill -9`) loses nothing — every check reads the whole canary again.
//! Each check:
//!
//! 1. gathers the [`Evidence`] of the whole windows since the start: per window of
//!    `window_ms` and arm, requests, errors and the latency p95 (`latency` and `errors`
//!    tagged `version="<n>"`, which the watcher's agents carry); per arm, the realised
//!    quality of the predictions whose labels are `maturity_ms` old, the label-free
//!    precision (the mean confidence of the predicted positives), and the PSI between the
//!    arms' confidence distributions;
//! 2. judges it; the confidence sequences are valid at any stopping time, so checking at
//!    every interval, or after a gap, keeps their error rates;
//! 3. acts: **promote** (the challenger becomes control and latest; the old control stays
//!    registered, on the rollback stack) or **roll back** (the challenger is rejected: it
//!    stops serving and can never be promoted), with the verdict's one-line reason in the
//!    audit entry (`modelwatch models log`, and `triggers history` under the event that
//!    trained it), and an event in the store's events table (Grafana's annotations) with
//!    every guardrail's figures.
//!
//! A promotion is made from the state the evidence was read under (`promote_from`): if an
//! operator moved an alias meanwhile, it fails with a conflict and changes nothing.

use crate::Clock;
use modelwatch_query::judge::{
    self, ArmQuality, ArmWindow, Decision, Evidence, JudgeConfig, MatchedWindow, Verdict,
};
use modelwatch_query::quality::{QualityOptions, quality};
use modelwatch_query::{Func, Limits, QueryError, Range, merged, parse, run_each};
use modelwatch_store::registry::{Action, AuditEntry, Op, Registry, RegistryError};
use modelwatch_store::{DistributionRow, EventRow, ReadRequest, Resolution, Rows, Store, StoreError, Table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One arm's values by window start.
type Points = BTreeMap<i64, f64>;

/// The most windows a canary may span (`max_duration / window`).
pub const MAX_WINDOWS: i64 = 100_000;

/// The audit log's actor for what the controller does.
pub const ACTOR: &str = "canary";

/// What the controller reads and how it judges.
#[derive(Clone, Debug)]
pub struct CanaryConfig {
    /// The judge's margins, error rate and limits (`max_duration_ms` among them).
    pub judge: JudgeConfig,
    /// Length of a matched window, ms (default ten minutes: at a 10 % canary a window needs
    /// `min_requests` = 100 challenger requests to count, 1.7 requests a second in all).
    pub window_ms: i64,
    /// How old a prediction must be for its label to count, ms (default two hours; set it
    /// from the label delay: cohorts younger than their labels are biased to the fast ones).
    pub maturity_ms: i64,
    /// Confidence from which a prediction is positive (default 0.5).
    pub threshold: f64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            judge: JudgeConfig::default(),
            window_ms: 60_000,
            maturity_ms: 3_600_000,
            threshold: 0.5,
        }
    }
}

impl CanaryConfig {
    /// Names the first setting that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.judge.validate()?;
        if self.window_ms <= 0 {
            return Err(format!("window_ms {}: must be positive", self.window_ms));
        }
        if self.maturity_ms < 0 {
            return Err(format!("maturity_ms {}: must not be negative", self.maturity_ms));
        }
        // Every check reads every window of the canary: past the query's limits a check
        // would fail, and the canary would never reach its max_duration.
        let windows = self.judge.max_duration_ms / self.window_ms;
        if windows < self.judge.min_windows as i64 {
            return Err(format!(
                "window_ms {} over max_duration_ms {} is {windows} windows, fewer than min_windows {}: the canary could never be promoted; narrow the window",
                self.window_ms, self.judge.max_duration_ms, self.judge.min_windows
            ));
        }
        if windows > MAX_WINDOWS {
            return Err(format!(
                "window_ms {} over max_duration_ms {} is {windows} windows, more than {MAX_WINDOWS}: widen the window",
                self.window_ms, self.judge.max_duration_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {}: must be in [0, 1]", self.threshold));
        }
        Ok(())
    }
}

/// The `[canary]` section of the configuration file (`deploy/modelwatch.toml`): what
/// `modelwatch serve --triggers CONFIG --retrain` checks the canary with, every `window`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanarySettings {
    /// Whether `serve --retrain` runs the canary controller.
    pub enabled: bool,
    /// The model; empty: `triggers.model`.
    pub model: String,
    /// Length of the matched windows, and how often the controller checks.
    pub window: String,
    /// How old a prediction must be for its label to count in precision.
    pub maturity: String,
    /// The longest a canary runs; still inconclusive then, it is rolled back.
    pub max_duration: String,
    /// Confidence from which a prediction is positive.
    pub threshold: f64,
    /// The judge: margins, error rate, minimum samples (see `modelwatch_query::judge`).
    pub alpha: f64,
    /// The challenger's p95 latency may be at most this times the control's.
    pub latency_margin: f64,
    /// Its error rate may be at most this above the control's.
    pub error_margin: f64,
    /// Its precision may be at most this below the control's.
    pub precision_margin: f64,
    /// Windows before a promotion.
    pub min_windows: usize,
    /// Requests per arm for a window's latency to count.
    pub min_requests: u64,
    /// Labelled positive predictions per arm before realised precision is used.
    pub min_labels: u64,
    /// Whether the label-free precision estimate may pass or fail a canary.
    pub decide_on_estimate: bool,
}

impl Default for CanarySettings {
    fn default() -> Self {
        let j = JudgeConfig::default();
        CanarySettings {
            enabled: true,
            model: String::new(),
            window: "10m".into(),
            maturity: "2h".into(),
            max_duration: "24h".into(),
            threshold: 0.5,
            alpha: j.alpha,
            latency_margin: j.latency_ratio_margin,
            error_margin: j.error_margin,
            precision_margin: j.precision_margin,
            min_windows: j.min_windows,
            min_requests: j.min_requests,
            min_labels: j.min_labels,
            decide_on_estimate: j.decide_on_estimate,
        }
    }
}

impl CanarySettings {
    /// The controller's configuration, or the first setting that cannot work, named.
    pub fn config(&self) -> Result<CanaryConfig, String> {
        let ms = |v: &str, key: &str| {
            // No maturity at all is a meaningful setting, which the duration parser refuses.
            if key == "maturity" && matches!(v.trim(), "0" | "0s" | "0m" | "0h" | "0d") {
                return Ok(0);
            }
            crate::time::parse_duration(v).map_err(|e| format!("canary.{key}: {e}"))
        };
        let judge = JudgeConfig {
            alpha: self.alpha,
            latency_ratio_margin: self.latency_margin,
            error_margin: self.error_margin,
            precision_margin: self.precision_margin,
            min_windows: self.min_windows,
            min_requests: self.min_requests,
            min_labels: self.min_labels,
            max_duration_ms: ms(&self.max_duration, "max_duration")?,
            decide_on_estimate: self.decide_on_estimate,
            ..JudgeConfig::default()
        };
        let c = CanaryConfig {
            judge,
            window_ms: ms(&self.window, "window")?,
            maturity_ms: ms(&self.maturity, "maturity")?,
            threshold: self.threshold,
        };
        c.validate().map_err(|e| format!("canary: {e}"))?;
        Ok(c)
    }
}

/// Why a check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The configuration cannot work.
    #[error("canary configuration: {0}")]
    Config(String),
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Reading the store failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a check found and did.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// No challenger: nothing to judge.
    Idle,
    /// A challenger without a control: nothing to compare it with (promote it by hand,
    /// or let the retraining gate's first version become control).
    NoControl {
        /// The challenger.
        challenger: u32,
    },
    /// Not decided yet: keep watching.
    Watching {
        /// The control.
        control: u32,
        /// The challenger.
        challenger: u32,
        /// When the canary started, ms.
        started_ms: i64,
        /// The verdict.
        verdict: Verdict,
    },
    /// The challenger was promoted.
    Promoted {
        /// The control it replaced.
        control: u32,
        /// The promoted version.
        challenger: u32,
        /// When the canary started, ms.
        started_ms: i64,
        /// The verdict.
        verdict: Verdict,
    },
    /// The registry changed while this check judged (another check decided, an operator
    /// moved an alias): nothing done; the next check judges what is there then.
    Superseded {
        /// The challenger judged.
        challenger: u32,
        /// What the registry said.
        detail: String,
    },
    /// The challenger was rolled back (rejected).
    RolledBack {
        /// The control, still serving.
        control: u32,
        /// The rejected version.
        challenger: u32,
        /// When the canary started, ms.
        started_ms: i64,
        /// The verdict.
        verdict: Verdict,
    },
}

/// Judges canaries from a store and acts in a registry.
pub struct Canary<'a> {
    store: &'a Store,
    registry: &'a Registry,
    clock: Arc<dyn Clock>,
    config: CanaryConfig,
}

impl<'a> Canary<'a> {
    /// A controller reading `store` and acting in `registry`, by `clock`.
    pub fn new(
        store: &'a Store,
        registry: &'a Registry,
        clock: Arc<dyn Clock>,
        config: CanaryConfig,
    ) -> Result<Canary<'a>, CanaryError> {
        config.validate().map_err(CanaryError::Config)?;
        Ok(Canary { store, registry, clock, config })
    }

    /// One check of `model`'s canary: judge it as of now, and promote or roll back when the
    /// verdict says so.
    pub fn check(&self, model: &str) -> Result<Step, CanaryError> {
        self.step(model, true)
    }

    /// The verdict as of now, acting on nothing: [`Step::Watching`] whatever the decision
    /// (`modelwatch canary status`).
    pub fn peek(&self, model: &str) -> Result<Step, CanaryError> {
        self.step(model, false)
    }

    fn step(&self, model: &str, act: bool) -> Result<Step, CanaryError> {
        // What other writer slots (the scorer's) published since the last check.
        self.store.refresh()?;
        let seen = self.registry.state(model)?;
        if act {
            self.annotate_missed(model, seen.newest())?;
        }
        let aliases = seen.aliases().clone();
        let Some(challenger) = aliases.challenger else { return Ok(Step::Idle) };
        let Some(control) = aliases.control else { return Ok(Step::NoControl { challenger }) };
        let now = self.clock.now().as_millis() as i64;
        let info = self.registry.get(model, challenger)?;
        let started_ms = self.started(model, challenger)?.unwrap_or(info.meta.created_at_ms);
        // The evidence stops at max_duration: a check after it judges what the canary had
        // by then (the judge rolls back what it had not proved), and the query never grows
        // past `MAX_WINDOWS` however late the check comes.
        let until = now.min(started_ms.saturating_add(self.config.judge.max_duration_ms));
        let mut evidence = self.evidence(model, control, challenger, started_ms, until)?;
        evidence.elapsed_ms = (now - started_ms).max(0);
        let verdict = judge::judge(&self.config.judge, &evidence);
        let event_id = info.meta.training.event_id.clone();
        let action = |what: &str| {
            let reason = format!("{what}: {}", verdict.reason);
            let a = Action::new(ACTOR, &clip(&reason, 900));
            match &event_id {
                Some(id) => a.event(id),
                None => a,
            }
        };
        // Both moves are made from the state the evidence was read under: a change that
        // came in since (an operator's, another check's) wins, and this check does nothing.
        let moved = match verdict.decision {
            _ if !act => return Ok(Step::Watching { control, challenger, started_ms, verdict }),
            Decision::Inconclusive => return Ok(Step::Watching { control, challenger, started_ms, verdict }),
            Decision::Promote => self.registry.promote_from(&seen, challenger, &action("canary passed")),
            Decision::Rollback => self.registry.reject_from(&seen, challenger, &action("canary rolled back")),
        };
        let entry = match moved {
            Ok(entry) => entry,
            Err(e @ (RegistryError::Conflict { .. } | RegistryError::AlreadyControl { .. })) => {
                return Ok(Step::Superseded { challenger, detail: e.to_string() });
            }
            Err(e) => return Err(e.into()),
        };
        self.annotate(model, &entry, &verdict, control)?;
        Ok(match verdict.decision {
            Decision::Promote => Step::Promoted { control, challenger, started_ms, verdict },
            _ => Step::RolledBack { control, challenger, started_ms, verdict },
        })
    }

    /// When `challenger`'s canary started: the first audit entry that made it the
    /// challenger (moving the alias away and back does not restart the canary, nor its
    /// `max_duration`). Unreadable entries are skipped; none found: `None`, and the caller
    /// counts from the version's registration, which is earlier.
    fn started(&self, model: &str, challenger: u32) -> Result<Option<i64>, CanaryError> {
        let log = self.registry.log_each(model)?;
        Ok(log
            .into_iter()
            .flatten()
            .find(|e| e.op == Op::Challenger && e.version == Some(challenger))
            .map(|e| e.at_ms))
    }

    /// The evidence of `challenger` against `control` over the whole windows of
    /// `[started_ms, now_ms)`.
    pub fn evidence(
        &self,
        model: &str,
        control: u32,
        challenger: u32,
        started_ms: i64,
        now_ms: i64,
    ) -> Result<Evidence, CanaryError> {
        let w = self.config.window_ms;
        // Whole windows only: the first starts at the first boundary at or after the start,
        // so no window mixes traffic from before the canary.
        let from = started_ms.div_euclid(w) * w + if started_ms.rem_euclid(w) == 0 { 0 } else { w };
        let to = now_ms.div_euclid(w) * w;
        let mut windows = Vec::new();
        if to > from {
            let sel = format!(
                "latency{{model={},version=~\"{}|{}\"}} by (version)",
                quoted(model),
                control,
                challenger
            );
            let q = parse(&sel).map_err(|e| CanaryError::Config(e.to_string()))?;
            let range = Range { from_ms: from, to_ms: to, step_ms: w };
            let mut answers =
                run_each(self.store, &q, &[Func::Quantile(0.95), Func::Count], range, Limits::default())?;
            let counts = answers.pop().expect("two functions")?;
            let p95s = answers.pop().expect("two functions")?;
            let errors_q = parse(&format!(
                "sum(errors{{model={},version=~\"{}|{}\"}}) by (version)",
                quoted(model),
                control,
                challenger
            ))
            .map_err(|e| CanaryError::Config(e.to_string()))?;
            let errors = modelwatch_query::run(self.store, &errors_q, range, Limits::default())?;
            let by_version = |series: &[modelwatch_query::Series], v: u32| -> Points {
                let v = v.to_string();
                series
                    .iter()
                    .filter(|s| s.tags.get("version") == Some(&v))
                    .flat_map(|s| s.points.iter().copied())
                    .collect()
            };
            let arm = |v: u32| (by_version(&p95s, v), by_version(&counts, v), by_version(&errors, v));
            let (c, h) = (arm(control), arm(challenger));
            let mut t = from;
            while t < to {
                let side = |(p, n, e): &(Points, Points, Points)| {
                    let count = n.get(&t).copied().filter(|x| x.is_finite()).unwrap_or(0.0).max(0.0) as u64;
                    let errs = e.get(&t).copied().filter(|x| x.is_finite()).unwrap_or(0.0).max(0.0) as u64;
                    ArmWindow {
                        requests: count + errs,
                        errors: errs,
                        latency_p95_ms: p.get(&t).copied().filter(|_| count > 0).map(|ns| ns / 1e6),
                    }
                };
                windows.push(MatchedWindow {
                    start_ms: t,
                    end_ms: t + w,
                    control: side(&c),
                    challenger: side(&h),
                });
                t += w;
            }
        }
        let ([control_q, challenger_q], [control_conf, challenger_conf]) =
            self.arms_quality(model, [control, challenger], started_ms, now_ms)?;
        Ok(Evidence {
            windows,
            control: control_q,
            challenger: challenger_q,
            confidence_drift: confidence_psi(control_conf.as_ref(), challenger_conf.as_ref()),
            elapsed_ms: (now_ms - started_ms).max(0),
        })
    }

    /// Both arms' quality since the start, read once for the two versions: realised over
    /// the matured cohorts, the label-free precision over every prediction; and their
    /// confidence distributions.
    fn arms_quality(
        &self,
        model: &str,
        versions: [u32; 2],
        started_ms: i64,
        now_ms: i64,
    ) -> Result<([ArmQuality; 2], [Option<DistributionRow>; 2]), CanaryError> {
        let sel = format!(
            "confidence{{model={},version=~\"{}|{}\"}} by (version)",
            quoted(model),
            versions[0],
            versions[1]
        );
        let query = parse(&sel).map_err(|e| CanaryError::Config(e.to_string()))?;
        let of = |tags: &BTreeMap<String, String>| {
            versions.iter().position(|v| tags.get("version") == Some(&v.to_string()))
        };
        let mut q = [ArmQuality::default(); 2];
        let cut = now_ms.saturating_sub(self.config.maturity_ms);
        if cut > started_ms {
            let opts = QualityOptions { threshold: self.config.threshold, ..QualityOptions::default() };
            for row in quality(self.store, &query.matchers, &query.by, started_ms, cut, &opts)? {
                if let Some(i) = of(&row.tags) {
                    (q[i].tp, q[i].fp, q[i].fn_) = (row.realised.tp, row.realised.fp, row.realised.fn_);
                }
            }
        }
        let mut conf = [None, None];
        if now_ms > started_ms {
            for (tags, d) in merged(self.store, &query, started_ms, now_ms)? {
                if let Some(i) = of(&tags) {
                    conf[i] = Some(d);
                }
            }
        }
        for (q, d) in q.iter_mut().zip(&conf) {
            if let Some(d) = d {
                let (n, sum) = positives(d, self.config.threshold);
                q.predicted_positive = n;
                q.estimated_precision = (n > 0.0).then(|| sum / n);
            }
        }
        Ok((q, conf))
    }

    /// Appends the decision `entry` records to the store's events table (Grafana's
    /// annotations), at the entry's time, tagged with the challenger's version.
    fn annotate(
        &self,
        model: &str,
        entry: &AuditEntry,
        verdict: &Verdict,
        control: u32,
    ) -> Result<(), CanaryError> {
        // The reason names the guardrails it rests on; the others are added, so the
        // annotation carries every guardrail's figures once.
        let figures: Vec<String> = verdict
            .guardrails
            .iter()
            .filter(|g| !verdict.reason.contains(&g.name))
            .map(|g| {
                let v = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
                format!(
                    "{} {} [{}, {}] margin {:.4} {:?}{}",
                    g.name,
                    v(g.estimate),
                    v(g.lower),
                    v(g.upper),
                    g.margin,
                    g.status,
                    if g.estimated { " (label-free estimate)" } else { "" }
                )
            })
            .collect();
        let version = entry.version.unwrap_or(0);
        let mut message = format!("version {version} against control {control}: {}", verdict.reason);
        for f in figures {
            message.push_str("; ");
            message.push_str(&f);
        }
        self.write_event(model, entry, message)
    }

    /// A check stopped between its registry change and its annotation (killed, the store
    /// down) leaves the canary's entry newest in the head without its event: written by the
    /// next check a minute or more later, from the entry's reason. Nothing when the event is
    /// there, or when another change came after the entry (its annotation is then lost;
    /// the audit log keeps the decision).
    fn annotate_missed(&self, model: &str, newest: &AuditEntry) -> Result<(), CanaryError> {
        if newest.actor != ACTOR || !matches!(newest.op, Op::Promote | Op::Reject) {
            return Ok(());
        }
        // A check that has just decided writes its own annotation within moments: leave it
        // a minute, or two checks at once would both write it.
        if self.clock.now().as_millis() as i64 - newest.at_ms < 60_000 {
            return Ok(());
        }
        let (kind, version) = (event_kind(newest.op), newest.version.unwrap_or(0).to_string());
        let req = ReadRequest::new(Table::Events, newest.at_ms, newest.at_ms + 1, Resolution::Raw);
        let there = self.store.read(&req)?.events.iter().any(|e| &*e.kind == kind && *e.version == *version);
        if there {
            return Ok(());
        }
        let message = format!(
            "version {version}: {} (audit entry {}; written by a later check: the one that decided stopped before its annotation)",
            newest.reason, newest.seq
        );
        self.write_event(model, newest, message)
    }

    fn write_event(&self, model: &str, entry: &AuditEntry, message: String) -> Result<(), CanaryError> {
        let row = EventRow {
            time_ms: entry.at_ms,
            model: model.into(),
            version: entry.version.unwrap_or(0).to_string().into(),
            variant: "challenger".into(),
            kind: event_kind(entry.op).into(),
            message,
        };
        self.store.append(Rows { events: vec![row], ..Rows::default() })?;
        // Published at once: a server reading the store sees the annotation at its next refresh.
        self.store.flush()?;
        Ok(())
    }
}

/// The events-table kind of a canary's audit entry.
fn event_kind(op: Op) -> &'static str {
    if op == Op::Promote { "canary_promoted" } else { "canary_rolled_back" }
}

/// The predicted positives of a confidence distribution (1,000 bins of 0.001) and the sum of
/// their confidences (bin middles).
fn positives(d: &DistributionRow, threshold: f64) -> (f64, f64) {
    let first = modelwatch_query::quality::threshold_bin(threshold) as i64;
    let mut n = 0.0;
    let mut sum = 0.0;
    for &(k, c) in &d.buckets {
        if k >= first {
            n += c as f64;
            sum += c as f64 * (k.clamp(0, 999) as f64 + 0.5) / 1000.0;
        }
    }
    (n, sum)
}

/// PSI between two confidence distributions over 20 bins of 0.05 (shares floored at 1e-4 so
/// an empty bin on one side gives a large finite value, not infinity); None without
/// predictions on either side.
fn confidence_psi(a: Option<&DistributionRow>, b: Option<&DistributionRow>) -> Option<f64> {
    let shares = |d: &DistributionRow| {
        let mut bins = [0.0f64; 20];
        for &(k, c) in &d.buckets {
            bins[(k.clamp(0, 999) / 50) as usize] += c as f64;
        }
        let total: f64 = bins.iter().sum();
        (total > 0.0).then(|| bins.map(|x| (x / total).max(1e-4)))
    };
    let (p, q) = (shares(a?)?, shares(b?)?);
    Some(p.iter().zip(&q).map(|(&p, &q)| (q - p) * (q / p).ln()).sum())
}

/// A label value as a query string literal.
fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
