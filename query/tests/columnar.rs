//! The columnar engine against the row engine on random stores: the same answers, bit for
//! bit, for every query function, grouping and filter, and for `merged`; and several
//! functions evaluated together ([`run_each`]) as each alone.
//!
//! Each case builds a store from a seed: series of several schemes (HdrHistogram latency,
//! 1,000-bin confidence, sketch features, a distribution metric with free tags), counters
//! and gauges (some with free tags), raw intervals of 10 s to 10 min, maintenance passes at
//! random times (1m and 1h roll-ups), raw rows after the last pass, late rows for hours
//! already rolled up, rows acknowledged but not published, and a metric whose scheme
//! changes. Then random queries: every function, `by` nothing, one label, several, a free
//! tag; `=`, `!=`, `=~`, `!~` on fixed and free tags; ranges on and off the hour and the
//! minute, empty ones and ones holding a single row; steps from 10 s to a day and odd ones.
//!
//! **Bit-exact, no tolerance**: both engines merge a window's rows in the order they were
//! read, with the same arithmetic ([`DistributionRow::merge`] for moments, exact integer
//! sums for buckets and counts, the same float additions for scalars), so every value is
//! compared by its bits (through its `Debug` form, which round-trips an `f64`).
//!
//! Cases: 12 by default (CI); `MODELWATCH_COLUMNAR_CASES=300 cargo test -p
//! modelwatch-query --release --test columnar` runs the full count. A failing case prints
//! its seed; `MODELWATCH_COLUMNAR_SEED=<seed>` runs that case alone.

mod support;

use modelwatch_query::{Func, Limits, Query, Range, merged, merged_rows, parse, run, run_each, run_rows};
use modelwatch_store::{Rows, ScalarKind, Scheme, Store};
use support::{DAY, HOUR, MINUTE, Rng, T0, dist, key, scalar};

const VARIANTS: [&str; 2] = ["control", "canary"];
const SEGMENTS: [&str; 3] = ["email", "phone", ""];

/// The rows of one interval `[t, t + len)`: each series present with some probability.
fn interval(t: i64, len: i64, rng: &mut Rng, scheme_switch: i64) -> Rows {
    let mut out = Rows::default();
    let values =
        |rng: &mut Rng, n: usize, f: &dyn Fn(&mut Rng) -> f64| (0..n).map(|_| f(rng)).collect::<Vec<f64>>();
    for variant in VARIANTS {
        for seg in SEGMENTS {
            if rng.below(4) == 0 {
                continue;
            }
            let n = 1 + rng.below(5) as usize;
            let lat = values(rng, n, &|r| 1e5 + 1e7 * r.unit() * r.unit());
            out.distributions.push(dist(
                t,
                len,
                key("latency_ns", "", seg, variant, ""),
                Scheme::LatencyHdr,
                &lat,
            ));
            let conf = values(rng, n, &|r| r.unit());
            out.distributions.push(dist(
                t,
                len,
                key("confidence", "", seg, variant, ""),
                Scheme::Confidence,
                &conf,
            ));
            for (k, feature) in ["f0", "f1"].iter().enumerate() {
                if rng.below(3) == 0 {
                    continue;
                }
                let shift = k as f64 * 40.0 - 20.0;
                let mut v = values(rng, n, &|r| shift + 10.0 * (r.unit() - 0.5));
                if rng.below(20) == 0 {
                    v.clear(); // every value missing this interval
                }
                let mut d = dist(t, len, key("feature", feature, seg, variant, ""), Scheme::Sketch, &v);
                d.missing = rng.below(2);
                out.distributions.push(d);
            }
            out.scalars.push(scalar(
                t,
                len,
                key("predictions", "", seg, variant, ""),
                ScalarKind::Counter,
                n as f64,
            ));
            if rng.below(3) == 0 {
                let kind = ["kind=timeout", "kind=oom"][rng.below(2) as usize];
                let s = scalar(
                    t,
                    len,
                    key("errors", "", seg, variant, kind),
                    ScalarKind::Counter,
                    1.0 + rng.below(3) as f64,
                );
                out.scalars.push(s);
            }
        }
        // Model-wide series: a gauge, a distribution metric with free tags, and one whose
        // scheme changes (its layout changed in a new release).
        let g = scalar(
            t,
            len,
            key("queue_depth", "", "", variant, "pool=a"),
            ScalarKind::Gauge,
            rng.below(50) as f64,
        );
        out.scalars.push(g);
        for tags in ["region=eu,tier=1", "region=us,tier=2", "region=eu"] {
            if rng.below(2) == 0 {
                let n = 1 + rng.below(4) as usize;
                let v = values(rng, n, &|r| 100.0 * r.unit());
                out.distributions.push(dist(
                    t,
                    len,
                    key("payload_bytes", "", "", variant, tags),
                    Scheme::Sketch,
                    &v,
                ));
            }
        }
        let scheme = if t < scheme_switch { Scheme::Sketch } else { Scheme::LatencyHdr };
        let v = values(rng, 2, &|r| 50.0 + 10.0 * r.unit());
        out.distributions.push(dist(t, len, key("relayout", "", "", variant, ""), scheme, &v));
    }
    out
}

/// A random store; returns it with the span its rows cover.
fn random_store(rng: &mut Rng) -> (tempfile::TempDir, std::sync::Arc<Store>, i64, i64) {
    let retention = if rng.below(4) == 0 { [1, 90, 730] } else { [3650, 3650, 3650] };
    let (dir, store) = support::store(retention);
    let len = [10_000, 30_000, 60_000, 600_000][rng.below(4) as usize];
    let start = T0 + (rng.below(48) as i64) * 10 * MINUTE - DAY;
    let hours = 2 + rng.below(40) as i64;
    let end = start + hours * HOUR;
    let scheme_switch = start + rng.below(hours as u64) as i64 * HOUR;
    let maintain_at: Vec<i64> =
        (0..rng.below(3)).map(|_| start + rng.below(hours as u64 * 60) as i64 * MINUTE).collect();
    let mut t = start;
    let mut pending = Rows::default();
    while t < end {
        let mut rows = interval(t, len, rng, scheme_switch);
        pending.append(&mut rows);
        if pending.len() > 2_000 {
            store.append(std::mem::take(&mut pending)).unwrap();
        }
        if maintain_at.iter().any(|&m| m >= t && m < t + len) {
            store.append(std::mem::take(&mut pending)).unwrap();
            store.flush().unwrap();
            store.maintain(t + len).unwrap();
            // Late rows for the hours just rolled up (labels for old predictions).
            for _ in 0..rng.below(4) {
                let late = start + rng.below(((t - start) / len).max(1) as u64) as i64 * len;
                store.append(interval(late, len, rng, scheme_switch)).unwrap();
            }
        }
        t += len;
    }
    store.append(pending).unwrap();
    if rng.below(2) == 0 {
        store.flush().unwrap();
    }
    // Some rows acknowledged and not published (a buffer's worth).
    store.append(interval(end, len, rng, scheme_switch)).unwrap();
    (dir, store, start, end + len)
}

const FUNCS: [&str; 11] =
    ["count", "rate", "sum", "mean", "min", "max", "p50", "p95", "p99", "buckets", "p00"];
const METRICS: [&str; 8] =
    ["latency", "confidence", "feature", "payload_bytes", "relayout", "predictions", "errors", "queue_depth"];
const FILTERS: [&str; 12] = [
    "",
    r#"variant="canary""#,
    r#"segment!="phone""#,
    r#"segment=~"e.*|""#,
    r#"variant!~"can.*""#,
    r#"feature="f1""#,
    r#"region="eu""#,
    r#"tier!="2""#,
    r#"kind=~"time.*""#,
    r#"region!~"u.*",variant="control""#,
    r#"segment="nowhere""#,
    r#"model="m",instance=~"i|j""#,
];
const BY: [&str; 7] = [
    "",
    " by (variant)",
    " by (segment, variant)",
    " by (feature)",
    " by (region)",
    " by (kind, segment)",
    " by (region, tier)",
];

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

/// A random range around the rows: on or off the hour and the minute, possibly empty or
/// holding one interval, and a step that may or may not fit the roll-ups.
fn random_range(rng: &mut Rng, lo: i64, hi: i64) -> Range {
    let span = hi - lo;
    let mut from = lo - HOUR + rng.below((span + 2 * HOUR) as u64) as i64;
    from = match rng.below(4) {
        0 => from.div_euclid(HOUR) * HOUR,
        1 => from.div_euclid(MINUTE) * MINUTE,
        2 => from.div_euclid(10_000) * 10_000,
        _ => from,
    };
    let len = match rng.below(5) {
        0 => 10_000,                                   // about one interval
        1 => rng.below(3 * HOUR as u64) as i64 + 1,    // short
        2 => span,                                     // everything
        3 => (rng.below(30) as i64 + 1) * HOUR,        // whole hours
        _ => rng.below(span.max(1) as u64) as i64 + 1, // anything
    };
    let to = from + len;
    let step = match rng.below(7) {
        0 => 10_000,
        1 => MINUTE,
        2 => 5 * MINUTE,
        3 => HOUR,
        4 => DAY,
        5 => 7 * MINUTE + 13_000,
        _ => (to - from).max(1),
    };
    // Keep the number of windows reasonable for the row engine in a debug build.
    let step = step.max((to - from) / 2_000 + 1);
    Range { from_ms: from, to_ms: to, step_ms: step }
}

fn case(seed: u64) -> usize {
    let mut rng = Rng(seed | 1);
    let (_dir, store, lo, hi) = random_store(&mut rng);
    let mut answered = 0;
    for _ in 0..40 {
        let filter = pick(&mut rng, &FILTERS);
        let metric = pick(&mut rng, &METRICS);
        let text = format!(
            "{}({}{}){}",
            pick(&mut rng, &FUNCS),
            metric,
            if filter.is_empty() { String::new() } else { format!("{{{filter}}}") },
            pick(&mut rng, &BY)
        );
        let q = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let range = random_range(&mut rng, lo, hi);
        let rows = run_rows(&store, &q, range, Limits::default());
        let cols = run(&store, &q, range, Limits::default());
        let what = format!("seed {seed}: {text} over {range:?}");
        match (&rows, &cols) {
            (Ok(a), Ok(b)) => {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}");
                answered += usize::from(a.iter().any(|s| !s.points.is_empty()));
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
            _ => panic!("{what}: rows {rows:?}, columns {cols:?}"),
        }
        shared_equals_separate(&store, &q, range, &mut rng, &what);
        let (from, to) = (range.from_ms, range.to_ms);
        let a = merged_rows(&store, &q, from, to).map(|m| format!("{m:?}"));
        let b = merged(&store, &q, from, to).map(|m| format!("{m:?}"));
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "merged, {what}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "merged, {what}"),
            (a, b) => panic!("merged, {what}: rows {a:?}, columns {b:?}"),
        }
    }
    answered
}

/// [`run_each`] of the query's selector with one to four random functions (repeats
/// allowed, the query's own among them or not) answers for each function what [`run`] of
/// that function alone answers, bit for bit, errors included; also under limits that only
/// some of the answers fit.
fn shared_equals_separate(store: &Store, q: &Query, range: Range, rng: &mut Rng, what: &str) {
    let n = 1 + rng.below(4) as usize;
    let funcs: Vec<Func> =
        (0..n).map(|_| parse(&format!("{}(m)", pick(rng, &FUNCS))).unwrap().func).collect();
    let limits = if rng.below(3) == 0 {
        Limits { max_series: 1 + rng.below(3) as usize, max_points: 1 + rng.below(400) as usize }
    } else {
        Limits::default()
    };
    let alone = |f: &Func| run(store, &Query { func: f.clone(), ..q.clone() }, range, limits);
    let what = format!("shared {funcs:?} under {limits:?}, {what}");
    match run_each(store, q, &funcs, range, limits) {
        Ok(each) => {
            assert_eq!(each.len(), funcs.len(), "{what}");
            for (f, shared) in funcs.iter().zip(&each) {
                match (shared, alone(f)) {
                    (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{f:?}, {what}"),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{f:?}, {what}"),
                    (a, b) => panic!("{f:?}, {what}: shared {a:?}, alone {b:?}"),
                }
            }
        }
        Err(e) => {
            for f in &funcs {
                let b = alone(f).expect_err(&what);
                assert_eq!(e.to_string(), b.to_string(), "{f:?}, {what}");
            }
        }
    }
}

#[test]
fn the_columnar_engine_answers_as_the_row_engine_on_random_stores() {
    let seeds: Vec<u64> = match std::env::var("MODELWATCH_COLUMNAR_SEED") {
        Ok(s) => vec![s.parse().expect("MODELWATCH_COLUMNAR_SEED is a number")],
        Err(_) => {
            let n: u64 =
                std::env::var("MODELWATCH_COLUMNAR_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
            (0..n).map(|i| 0x00C0_FFEE ^ (i * 0x9E37_79B9)).collect()
        }
    };
    let mut answered = 0;
    for &seed in &seeds {
        answered += case(seed);
    }
    // The comparisons are worth something only if many queries find rows.
    assert!(answered * 4 >= seeds.len() * 40, "{answered} of {} queries found rows", seeds.len() * 40);
}
