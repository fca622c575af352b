//! Rows written straight into a store, for tests that know every row they compare with.
#![allow(dead_code)]

use modelwatch_store::{DistributionRow, Durability, Resolution, ScalarKind, ScalarRow, Scheme, SeriesKey};
use modelwatch_store::{Store, StoreConfig};
use std::sync::Arc;

/// 2025-11-26T00:00:00Z.
pub const T0: i64 = 1_764_115_200_000;
/// A minute, an hour and a day, in ms.
pub const MINUTE: i64 = 60_000;
/// See [`MINUTE`].
pub const HOUR: i64 = 3_600_000;
/// See [`MINUTE`].
pub const DAY: i64 = 86_400_000;

/// A store in a temporary directory: no background thread, no fsync, `retention` days per
/// resolution (raw, 1m, 1h).
pub fn store(retention: [u32; 3]) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        background: false,
        durability: Durability::None,
        retention_days: retention,
        ..StoreConfig::new(dir.path())
    };
    let store = Arc::new(Store::open(config).unwrap());
    (dir, store)
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A series key; `tags` are free tags as stored (`k=v,k2=v2`, sorted).
pub fn key(metric: &str, feature: &str, segment: &str, variant: &str, tags: &str) -> SeriesKey {
    SeriesKey {
        model: "m".into(),
        version: "1".into(),
        variant: variant.into(),
        instance: "i".into(),
        segment: segment.into(),
        metric: metric.into(),
        feature: feature.into(),
        tags: tags.into(),
    }
}

/// A raw distribution row of `values` with exact moments, buckets of `scheme` from the
/// values (keys as the scheme would give them, close enough for merging tests).
pub fn dist(start: i64, len: i64, series: SeriesKey, scheme: Scheme, values: &[f64]) -> DistributionRow {
    let mut d = DistributionRow::empty(start, start + len, Resolution::Raw, series, scheme);
    let mut keys: Vec<i64> = values
        .iter()
        .map(|&v| match scheme {
            Scheme::Confidence => (v.clamp(0.0, 0.999) * 1000.0) as i64,
            Scheme::LatencyHdr => modelwatch_agent::layout::latency_index(v.abs() as u64) as i64,
            Scheme::Sketch => (v * 8.0).floor() as i64,
        })
        .collect();
    keys.sort_unstable();
    for k in keys {
        match d.buckets.last_mut() {
            Some(b) if b.0 == k => b.1 += 1,
            _ => d.buckets.push((k, 1)),
        }
    }
    let n = values.len() as u64;
    d.count = n;
    if n > 0 {
        let sum: f64 = values.iter().sum();
        let mean = sum / n as f64;
        d.sum = Some(sum);
        d.min = values.iter().copied().reduce(f64::min);
        d.max = values.iter().copied().reduce(f64::max);
        if scheme == Scheme::LatencyHdr {
            d.mean = Some(mean);
        } else if scheme == Scheme::Sketch {
            d.mean = Some(mean);
            d.m2 = Some(values.iter().map(|v| (v - mean) * (v - mean)).sum());
        } else {
            d.sum = None;
            d.min = None;
            d.max = None;
        }
    }
    d
}

/// A raw counter or gauge row.
pub fn scalar(start: i64, len: i64, series: SeriesKey, kind: ScalarKind, value: f64) -> ScalarRow {
    ScalarRow { start_ms: start, end_ms: start + len, resolution: Resolution::Raw, series, kind, value }
}
