//! Every read takes the coarsest rows that fit each part of its window: a window with
//! ragged edges reads 1h roll-ups for its whole hours, 1m roll-ups for the minutes at its
//! edges and raw rows for the rest, after the last roll-up included, and answers exactly
//! what its raw rows merged give.
//!
//! The store keeps raw rows for one day only: a window reaching further back is answered
//! only if its whole hours and minutes come from the roll-ups (reading raw rows for any
//! window that does not start on the hour, as the engine once did, finds nothing there).

mod support;

use modelwatch_query::{Limits, Range, merged, parse, run};
use modelwatch_store::{DistributionRow, Rows, ScalarKind, Scheme, Store};
use support::{DAY, HOUR, MINUTE, Rng, T0, dist, key, scalar};

/// Rows every 30 s for two segments: a feature's distribution and a `predictions` counter.
fn rows(from: i64, to: i64, rng: &mut Rng) -> Rows {
    let mut out = Rows::default();
    let mut t = from;
    while t < to {
        for seg in ["a", "b"] {
            let n = 1 + rng.below(6) as usize;
            let values: Vec<f64> = (0..n).map(|_| 10.0 + 5.0 * rng.unit()).collect();
            out.distributions.push(dist(
                t,
                30_000,
                key("feature", "f", seg, "v", ""),
                Scheme::Sketch,
                &values,
            ));
            out.scalars.push(scalar(
                t,
                30_000,
                key("predictions", "", seg, "v", ""),
                ScalarKind::Counter,
                n as f64,
            ));
        }
        t += 30_000;
    }
    out
}

fn append(store: &Store, all: &mut Rows, rows: Rows) {
    all.distributions.extend(rows.distributions.iter().cloned());
    all.scalars.extend(rows.scalars.iter().cloned());
    store.append(rows).unwrap();
}

/// Exact where merging is (counts, buckets, extremes); the sum, mean and M2 within 1e-12
/// relative: roll-ups added them in another order.
fn assert_same(got: &DistributionRow, want: &DistributionRow, what: &str) {
    assert_eq!(got.count, want.count, "{what}: count");
    assert_eq!(got.buckets, want.buckets, "{what}: buckets");
    assert_eq!((got.min, got.max), (want.min, want.max), "{what}: min, max");
    for (g, w, name) in [(got.sum, want.sum, "sum"), (got.mean, want.mean, "mean"), (got.m2, want.m2, "m2")] {
        let (g, w) = (g.unwrap(), w.unwrap());
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{what}: {name} {g} vs {w}");
    }
}

fn truth(all: &Rows, seg: &str, from: i64, to: i64) -> DistributionRow {
    let rows: Vec<&DistributionRow> = all
        .distributions
        .iter()
        .filter(|r| &*r.series.segment == seg && r.start_ms >= from && r.start_ms < to)
        .collect();
    DistributionRow::merge_all(&rows).unwrap()
}

#[test]
fn windows_with_ragged_edges_read_roll_ups_and_answer_exactly() {
    // Raw rows kept for one day: the first day's are gone after maintenance.
    let (_dir, store) = support::store([1, 90, 730]);
    let mut rng = Rng(0x5EED);
    let mut all = Rows::default();
    for h in 0..60 {
        append(&store, &mut all, rows(T0 + h * HOUR, T0 + (h + 1) * HOUR, &mut rng));
    }
    store.flush().unwrap();
    let now = T0 + 2 * DAY + 12 * HOUR;
    store.maintain(now).unwrap();
    let raw_files =
        store.manifest().files.iter().filter(|f| f.resolution == modelwatch_store::Resolution::Raw).count();
    assert!(
        raw_files > 0
            && store
                .manifest()
                .files
                .iter()
                .all(|f| f.resolution != modelwatch_store::Resolution::Raw || f.min_ms >= T0 + DAY),
        "the first day's raw rows are dropped"
    );
    // Late rows not rolled up yet (labels for old predictions), published and pending, and
    // rows after the last roll-up.
    let late = |t: i64, rng: &mut Rng| {
        let v: Vec<f64> = (0..3).map(|_| 12.0 + rng.unit()).collect();
        Rows {
            distributions: vec![dist(t, 30_000, key("feature", "f", "a", "v", ""), Scheme::Sketch, &v)],
            scalars: vec![scalar(t, 30_000, key("predictions", "", "a", "v", ""), ScalarKind::Counter, 3.0)],
            ..Rows::default()
        }
    };
    for t in
        [T0 + 16 * HOUR + 10 * MINUTE, T0 + DAY + 3 * HOUR, T0 + 2 * DAY + 9 * HOUR + 41 * MINUTE + 10_000]
    {
        let r = late(t, &mut rng);
        append(&store, &mut all, r);
    }
    append(&store, &mut all, rows(now, now + 2 * HOUR, &mut rng));
    store.flush().unwrap();
    append(&store, &mut all, late(T0 + 20 * HOUR, &mut rng)); // acknowledged, not published

    let q = parse("count(feature{feature=\"f\"}) by (segment)").unwrap();
    for (from, to) in [
        // From 14:37 on the first day (its raw rows are gone) to the raw tail after the
        // last roll-up, at an odd second.
        (T0 + 14 * HOUR + 37 * MINUTE, now + HOUR + 20 * MINUTE + 30_000),
        // Minutes and seconds at the end, inside the rolled-up days.
        (T0 + 14 * HOUR + 37 * MINUTE, T0 + 2 * DAY + 9 * HOUR + 41 * MINUTE + 30_000),
        // Whole hours only, and less than an hour.
        (T0 + 15 * HOUR, T0 + 2 * DAY),
        (T0 + DAY + 5 * MINUTE, T0 + DAY + 17 * MINUTE),
    ] {
        let got = merged(&store, &q, from, to).unwrap();
        assert_eq!(got.len(), 2, "two segments in {from}..{to}");
        for (tags, row) in &got {
            let seg = &tags["segment"];
            assert_same(row, &truth(&all, seg, from, to), &format!("segment {seg}, {from}..{to}"));
        }
    }

    // Windows of a day from 14:37:45 (the seconds to the next row hold no row): raw rows
    // for the seconds, minute roll-ups to the hour, hours, and minutes again.
    let from = T0 + 14 * HOUR + 37 * MINUTE + 45_000;
    let range = Range { from_ms: from, to_ms: from + 2 * DAY, step_ms: DAY };
    let counts =
        run(&store, &parse("count(feature) by (segment)").unwrap(), range, Limits::default()).unwrap();
    let sums =
        run(&store, &parse("sum(predictions) by (segment)").unwrap(), range, Limits::default()).unwrap();
    for (c, s) in counts.iter().zip(&sums) {
        let seg = &c.tags["segment"];
        assert_eq!(c.points.len(), 2, "{seg}");
        for (&(w, n), &(w2, p)) in c.points.iter().zip(&s.points) {
            assert_eq!(w, w2);
            let want = truth(&all, seg, w, w + DAY);
            assert_eq!(n, want.count as f64, "count of {seg} from {w}");
            assert_eq!(p, want.count as f64, "predictions of {seg} from {w}");
        }
    }
}
