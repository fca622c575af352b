//! modelwatch-query: the read side of modelwatch.
//!
//! One engine answers the CLI, the HTTP endpoints and the reports; the HTTP layer only
//! parses requests and formats what these functions compute.
//!
//! # Data flow
//!
//! 1. [`parse`] turns a query such as `p95(latency{model="pii"}) by (segment)` into a
//!    [`Query`]; a syntax error points at its position.
//! 2. [`run`] reads each part of every window at the coarsest stored resolution that fits
//!    it (whole hours from 1h roll-ups, edge minutes from 1m, the rest and everything after
//!    the last roll-up raw), as Arrow columns, filters by the matchers (once per distinct
//!    series of a file, not per row), groups by the `by` labels, merges rows per window
//!    exactly (a quantile is the quantile of the merged distribution, never an average of
//!    quantiles), and applies the function. [`run_rows`] answers the same from decoded rows
//!    (kept while a property test compares the two).
//!    [`error_ratio`] combines two such answers; [`answer`] evaluates either.
//! 3. [`drift`] reads a window's [`drift::Profile`] (every feature's distribution merged over
//!    the window, through the same engine), compares it with a reference profile (a range
//!    or a saved baseline) statistic by statistic, and gives each feature the verdict of
//!    its effect size; [`drift::series`] does it once per window of a panel
//!    ([`report_windows`]).
//! 4. [`quality`] computes precision, recall, F1 and AUC from the label-conditioned
//!    confidence histograms, realised from feedback and estimated from a calibration on a
//!    labelled reference; [`quality::series`] per window.
//! 5. [`detect`] runs online change detectors (CUSUM, Page–Hinkley) over a series' values,
//!    one per interval; [`stats`] holds the distribution functions and tests that the
//!    reports and the triggers share.
//! 6. [`judge`] decides a canary (promote, roll back, keep watching) from per-variant
//!    matched windows and matured label cohorts, valid however often it is asked.
//!
//! # Example
//!
//! ```
//! use modelwatch_agent::{Agent, ManualClock, Prediction, Timestamp};
//! use modelwatch_query::{Limits, Range, parse, run};
//! use modelwatch_store::{Store, StoreConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(StoreConfig::new(dir.path()))?);
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200)));
//! let agent = Agent::builder("pii").segments(["email"]).clock(clock).build(store.clone())?;
//! agent.handle().record(&Prediction::new("email", Duration::from_millis(3), 0.9));
//! agent.shutdown()?;
//!
//! let q = parse(r#"count(latency{model="pii"}) by (segment)"#)?;
//! let range = Range { from_ms: 1_764_115_200_000, to_ms: 1_764_115_260_000, step_ms: 60_000 };
//! let series = run(&store, &q, range, Limits::default())?;
//! assert_eq!(series[0].tags["segment"], "email");
//! assert_eq!(series[0].points, vec![(1_764_115_200_000, 1.0)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! `parse` (the language), `engine` (evaluation: the plan, the row engine), `columnar` (the
//! columnar engine), `catalog` (what is stored), [`cancel`]
//! (a deadline the engine checks),
//! `error_ratio`, `time` (window steps, RFC 3339), `names` (closed sets of names), `unit`
//! (the unit of an answer, and its JSON form), and
//! public [`drift`], [`quality`], [`detect`], [`stats`], [`judge`].
#![forbid(unsafe_code)]

pub mod cancel;
mod catalog;
mod columnar;
pub mod detect;
pub mod drift;
mod engine;
mod error_ratio;
pub mod judge;
mod names;
mod parse;
pub mod quality;
pub mod stats;
#[cfg(test)]
mod testing;
mod time;
mod unit;

pub use catalog::{MetricKind, catalog};
pub use engine::{
    Bucket, Limits, Merged, QueryError, Range, Series, check_limits, check_range, merged, merged_rows,
    resolution_for, run, run_each, run_rows,
};
pub use error_ratio::{ERROR_RATIO, answer, error_ratio};
pub use names::UnknownName;
pub use parse::{Func, Matcher, Op, ParseError, Query, parse};
pub use time::{NICE_STEPS, duration_words, report_windows, rfc3339, rfc3339_exact};
pub use unit::{SeriesJson, Unit};
