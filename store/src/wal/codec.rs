//! A record's payload: one [`WalEntry`] as bytes.
//!
//! # Version 2 (binary, written by this build)
//!
//! Integers are little-endian. `varint` is unsigned LEB128 (at most 10 bytes, no bits above
//! 64); `zigzag` is a signed integer mapped to a varint (`0, -1, 1, -2, ...` → `0, 1, 2, 3,
//! ...`); `f64` is the 8 bytes of its IEEE 754 bits, so every value (NaN payloads, ±inf,
//! -0.0, subnormals) comes back bit for bit. Differences are taken with wrapping arithmetic,
//! so any `i64` round-trips.
//!
//! ```text
//! payload      = 0x01 (a WalEntry; other values are reserved)
//!                seq: varint
//!                strings: varint n, n × (varint len, len bytes of UTF-8)
//!                varint n, n × distribution
//!                varint n, n × scalar
//!                varint n, n × event
//!                optionally (only when the entry has examples): varint n, n × examples
//!                (nothing after that)
//! series       = 8 × varint: indices into `strings` of model, version, variant, instance,
//!                segment, metric, feature, tags
//! distribution = start_ms: zigzag, end_ms - start_ms: zigzag, resolution: u8, series,
//!                scheme: u8, count: varint, missing: varint, invalid: varint,
//!                present: u8 (bit 0 sum, 1 min, 2 max, 3 mean, 4 m2; other bits 0),
//!                one f64 per present bit in that order,
//!                varint n, n × (key - previous key: zigzag (the first from 0), count: varint)
//! scalar       = start_ms: zigzag, end_ms - start_ms: zigzag, resolution: u8, series,
//!                kind: u8, value: f64
//! event        = time_ms: zigzag, 5 × varint: indices into `strings` of model, version,
//!                variant, kind, message
//! examples     = model: varint (index into `strings`), varint f, f × varint (feature
//!                names' indices), varint n, n × example
//! example      = predicted_ms: zigzag, label_ms - predicted_ms: zigzag, prediction_id:
//!                varint (index), segment: varint (index), confidence: f64, label: u8 (0
//!                or 1), f × f64
//! resolution   = 0 raw, 1 one minute, 2 one hour
//! scheme       = 0 hdr_ns_2, 1 confidence_1000, 2 log_linear_5
//! kind         = 0 counter, 1 gauge
//! ```
//!
//! Records without examples are byte for byte those written before examples existed; a
//! build older than examples refuses a record with them ("bytes after the last row").
//!
//! The string table holds each distinct string once, in order of first use (so a
//! snapshot's repeated model, version and instance cost one varint each), and a decoded
//! record shares one `Arc<str>` per distinct string.
//!
//! Decoding never panics, rejects trailing bytes, and allocates in proportion to the
//! payload: a count is checked against the bytes left (each item takes at least a known
//! number of bytes) before anything is reserved for it.
//!
//! # Version 1 (JSON, read only)
//!
//! The payload is the JSON of [`WalEntry`] (`{"seq": ..., "rows": ...}`). JSON has no NaN or
//! infinity: a row holding one was written as `null` and cannot be decoded.

use super::WalEntry;
use crate::examples::{Example, ExampleSet, ModelExamples};
use crate::rows::{DistributionRow, EventRow, Resolution, Rows, ScalarKind, ScalarRow, Scheme, SeriesKey};
use std::collections::HashMap;
use std::sync::Arc;

/// The first byte of a version-2 payload.
const ENTRY_TAG: u8 = 0x01;
/// The fewest bytes each item can take, so a count is checked against the bytes left.
const MIN_STRING: usize = 1;
const MIN_DISTRIBUTION: usize = 17;
const MIN_SCALAR: usize = 20;
const MIN_EVENT: usize = 6;
const MIN_BUCKET: usize = 2;
const MIN_EXAMPLES: usize = 3;
const MIN_EXAMPLE: usize = 13;

/// Encodes an entry as a version-2 payload.
pub fn encode_v2(entry: &WalEntry) -> Vec<u8> {
    let rows = &entry.rows;
    let mut strings = Strings::default();
    let mut body = Vec::with_capacity(64 + 48 * rows.len());
    put_varint(&mut body, rows.distributions.len() as u64);
    for d in &rows.distributions {
        put_zigzag(&mut body, d.start_ms);
        put_zigzag(&mut body, d.end_ms.wrapping_sub(d.start_ms));
        body.push(resolution_code(d.resolution));
        strings.put_series(&mut body, &d.series);
        body.push(scheme_code(d.scheme));
        put_varint(&mut body, d.count);
        put_varint(&mut body, d.missing);
        put_varint(&mut body, d.invalid);
        let optional = [d.sum, d.min, d.max, d.mean, d.m2];
        let present = optional.iter().enumerate().fold(0u8, |p, (i, v)| p | (u8::from(v.is_some()) << i));
        body.push(present);
        for v in optional.into_iter().flatten() {
            body.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        put_varint(&mut body, d.buckets.len() as u64);
        let mut previous = 0i64;
        for &(key, count) in &d.buckets {
            put_zigzag(&mut body, key.wrapping_sub(previous));
            put_varint(&mut body, count);
            previous = key;
        }
    }
    put_varint(&mut body, rows.scalars.len() as u64);
    for s in &rows.scalars {
        put_zigzag(&mut body, s.start_ms);
        put_zigzag(&mut body, s.end_ms.wrapping_sub(s.start_ms));
        body.push(resolution_code(s.resolution));
        strings.put_series(&mut body, &s.series);
        body.push(match s.kind {
            ScalarKind::Counter => 0,
            ScalarKind::Gauge => 1,
        });
        body.extend_from_slice(&s.value.to_bits().to_le_bytes());
    }
    put_varint(&mut body, rows.events.len() as u64);
    for e in &rows.events {
        put_zigzag(&mut body, e.time_ms);
        for s in [&*e.model, &*e.version, &*e.variant, &*e.kind, e.message.as_str()] {
            strings.put(&mut body, s);
        }
    }
    if !rows.examples.is_empty() {
        put_varint(&mut body, rows.examples.len() as u64);
        for m in &rows.examples {
            strings.put(&mut body, &m.model);
            put_varint(&mut body, m.set.features.len() as u64);
            for f in &m.set.features {
                strings.put(&mut body, f);
            }
            put_varint(&mut body, m.set.rows.len() as u64);
            for e in &m.set.rows {
                put_zigzag(&mut body, e.predicted_ms);
                put_zigzag(&mut body, e.label_ms.wrapping_sub(e.predicted_ms));
                strings.put(&mut body, &e.prediction_id);
                strings.put(&mut body, &e.segment);
                body.extend_from_slice(&e.confidence.to_bits().to_le_bytes());
                body.push(u8::from(e.label));
                // The width is the set's: appends refuse ragged examples before the WAL.
                for v in &e.features {
                    body.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            }
        }
    }
    let mut out = Vec::with_capacity(16 + strings.bytes + body.len());
    out.push(ENTRY_TAG);
    put_varint(&mut out, entry.seq);
    put_varint(&mut out, strings.order.len() as u64);
    for s in &strings.order {
        put_varint(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// Decodes a version-2 payload.
pub fn decode_v2(payload: &[u8]) -> Result<WalEntry, String> {
    let mut r = Reader { buf: payload, at: 0 };
    decode_entry(&mut r).map_err(|what| format!("{what} at byte {} of the payload", r.at))
}

/// The sequence number of a version-2 payload, read without decoding the rest (to reject
/// most non-records cheaply while resynchronising).
pub fn peek_seq_v2(payload: &[u8]) -> Option<u64> {
    let mut r = Reader { buf: payload, at: 0 };
    (r.u8().ok()? == ENTRY_TAG).then_some(())?;
    r.varint().ok()
}

/// Decodes a version-1 (JSON) payload.
pub fn decode_v1(payload: &[u8]) -> Result<WalEntry, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// Whether a payload can be a version-1 record at all (a JSON object).
pub fn looks_like_v1(payload: &[u8]) -> bool {
    payload.first() == Some(&b'{')
}

/// The string table being built by the encoder.
#[derive(Default)]
struct Strings<'a> {
    index: HashMap<&'a str, u64>,
    order: Vec<&'a str>,
    bytes: usize,
}

impl<'a> Strings<'a> {
    fn put(&mut self, out: &mut Vec<u8>, s: &'a str) {
        let next = self.order.len() as u64;
        let i = *self.index.entry(s).or_insert_with(|| {
            self.order.push(s);
            self.bytes += s.len() + 2;
            next
        });
        put_varint(out, i);
    }

    fn put_series(&mut self, out: &mut Vec<u8>, k: &'a SeriesKey) {
        for s in [&k.model, &k.version, &k.variant, &k.instance, &k.segment, &k.metric, &k.feature, &k.tags] {
            self.put(out, s);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn resolution_code(r: Resolution) -> u8 {
    match r {
        Resolution::Raw => 0,
        Resolution::Minute => 1,
        Resolution::Hour => 2,
    }
}

fn scheme_code(s: Scheme) -> u8 {
    match s {
        Scheme::LatencyHdr => 0,
        Scheme::Confidence => 1,
        Scheme::Sketch => 2,
    }
}

/// A cursor over a payload; every read checks the bytes left.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

type Decoded<T> = Result<T, &'static str>;

impl Reader<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn u8(&mut self) -> Decoded<u8> {
        let b = *self.buf.get(self.at).ok_or("payload ends inside a field")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Decoded<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err("varint larger than 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn zigzag(&mut self) -> Decoded<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn f64(&mut self) -> Decoded<f64> {
        let b = self.buf.get(self.at..self.at + 8).ok_or("payload ends inside a float")?;
        self.at += 8;
        Ok(f64::from_bits(u64::from_le_bytes(b.try_into().map_err(|_| "short float")?)))
    }

    /// A count of items taking at least `min_each` bytes each, checked against the bytes
    /// left so that a corrupt count cannot make the decoder reserve memory.
    fn count(&mut self, min_each: usize) -> Decoded<usize> {
        let n = self.varint()?;
        if n > (self.left() / min_each) as u64 {
            return Err("count larger than the bytes left can hold");
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Decoded<Arc<str>> {
        let len = self.varint()?;
        if len > self.left() as u64 {
            return Err("string longer than the bytes left");
        }
        let bytes = &self.buf[self.at..self.at + len as usize];
        self.at += len as usize;
        std::str::from_utf8(bytes).map(Arc::from).map_err(|_| "string is not UTF-8")
    }
}

fn decode_entry(r: &mut Reader<'_>) -> Decoded<WalEntry> {
    if r.u8()? != ENTRY_TAG {
        return Err("not a WAL entry (unknown payload tag)");
    }
    let seq = r.varint()?;
    let n = r.count(MIN_STRING)?;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.string()?);
    }
    let string = |r: &mut Reader<'_>| -> Decoded<Arc<str>> {
        let i = r.varint()?;
        strings.get(i as usize).cloned().ok_or("string index outside the table")
    };
    let series = |r: &mut Reader<'_>| -> Decoded<SeriesKey> {
        Ok(SeriesKey {
            model: string(r)?,
            version: string(r)?,
            variant: string(r)?,
            instance: string(r)?,
            segment: string(r)?,
            metric: string(r)?,
            feature: string(r)?,
            tags: string(r)?,
        })
    };
    let mut rows = Rows::default();
    let n = r.count(MIN_DISTRIBUTION)?;
    rows.distributions.reserve(n);
    for _ in 0..n {
        let start_ms = r.zigzag()?;
        let end_ms = start_ms.wrapping_add(r.zigzag()?);
        let resolution = resolution(r.u8()?)?;
        let series = series(r)?;
        let scheme = match r.u8()? {
            0 => Scheme::LatencyHdr,
            1 => Scheme::Confidence,
            2 => Scheme::Sketch,
            _ => return Err("unknown scheme"),
        };
        let (count, missing, invalid) = (r.varint()?, r.varint()?, r.varint()?);
        let present = r.u8()?;
        if present >> 5 != 0 {
            return Err("unknown optional fields");
        }
        let mut optional = [None; 5];
        for (i, v) in optional.iter_mut().enumerate() {
            if present & (1 << i) != 0 {
                *v = Some(r.f64()?);
            }
        }
        let [sum, min, max, mean, m2] = optional;
        let nb = r.count(MIN_BUCKET)?;
        let mut buckets = Vec::with_capacity(nb);
        let mut key = 0i64;
        for _ in 0..nb {
            key = key.wrapping_add(r.zigzag()?);
            buckets.push((key, r.varint()?));
        }
        rows.distributions.push(DistributionRow {
            start_ms,
            end_ms,
            resolution,
            series,
            scheme,
            count,
            missing,
            invalid,
            sum,
            min,
            max,
            mean,
            m2,
            buckets,
        });
    }
    let n = r.count(MIN_SCALAR)?;
    rows.scalars.reserve(n);
    for _ in 0..n {
        let start_ms = r.zigzag()?;
        let end_ms = start_ms.wrapping_add(r.zigzag()?);
        let resolution = resolution(r.u8()?)?;
        let series = series(r)?;
        let kind = match r.u8()? {
            0 => ScalarKind::Counter,
            1 => ScalarKind::Gauge,
            _ => return Err("unknown scalar kind"),
        };
        let value = r.f64()?;
        rows.scalars.push(ScalarRow { start_ms, end_ms, resolution, series, kind, value });
    }
    let n = r.count(MIN_EVENT)?;
    rows.events.reserve(n);
    for _ in 0..n {
        let time_ms = r.zigzag()?;
        let (model, version, variant, kind) = (string(r)?, string(r)?, string(r)?, string(r)?);
        let message = string(r)?.to_string();
        rows.events.push(EventRow { time_ms, model, version, variant, kind, message });
    }
    if r.left() != 0 {
        let n = r.count(MIN_EXAMPLES)?;
        // The section is written only when there are examples: one encoding per entry.
        if n == 0 {
            return Err("bytes after the last row (an empty examples section)");
        }
        for _ in 0..n {
            let model = string(r)?;
            let f = r.count(1)?;
            let mut features = Vec::with_capacity(f);
            for _ in 0..f {
                features.push(string(r)?.to_string());
            }
            let mut set = ExampleSet::new(features);
            let n = r.count(MIN_EXAMPLE.saturating_add(f.saturating_mul(8)))?;
            set.rows.reserve(n);
            for _ in 0..n {
                let predicted_ms = r.zigzag()?;
                let label_ms = predicted_ms.wrapping_add(r.zigzag()?);
                let prediction_id = string(r)?.to_string();
                let segment = string(r)?.to_string();
                let confidence = r.f64()?;
                let label = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err("label is neither 0 nor 1"),
                };
                let mut values = Vec::with_capacity(f);
                for _ in 0..f {
                    values.push(r.f64()?);
                }
                set.rows.push(Example {
                    prediction_id,
                    predicted_ms,
                    label_ms,
                    segment,
                    features: values,
                    confidence,
                    label,
                });
            }
            rows.examples.push(ModelExamples { model, set });
        }
        if r.left() != 0 {
            return Err("bytes after the last row");
        }
    }
    Ok(WalEntry { seq, rows })
}

fn resolution(code: u8) -> Decoded<Resolution> {
    match code {
        0 => Ok(Resolution::Raw),
        1 => Ok(Resolution::Minute),
        2 => Ok(Resolution::Hour),
        _ => Err("unknown resolution"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(tags: &str) -> SeriesKey {
        SeriesKey {
            model: "fraud-ü".into(),
            version: "2".into(),
            variant: "".into(),
            instance: "pod-7".into(),
            segment: "".into(),
            metric: "mémoire 記憶".into(),
            feature: "".into(),
            tags: tags.into(),
        }
    }

    fn awkward_values() -> Vec<f64> {
        vec![
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
            f64::from_bits(0xfff0_0000_0000_0001), // a negative signalling NaN
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE / 4.0, // subnormal
            f64::from_bits(1),
            1e300,
            -1e-300,
            f64::MAX,
        ]
    }

    fn awkward_rows() -> Rows {
        let scalars = awkward_values()
            .into_iter()
            .enumerate()
            .map(|(i, value)| ScalarRow {
                start_ms: i64::MIN + i as i64,
                end_ms: i64::MAX - i as i64,
                resolution: Resolution::ALL[i % 3],
                series: key(&format!("n={i}")),
                kind: if i % 2 == 0 { ScalarKind::Gauge } else { ScalarKind::Counter },
                value,
            })
            .collect();
        let distributions = vec![
            DistributionRow {
                start_ms: 1_764_115_200_000,
                end_ms: 1_764_115_210_000,
                resolution: Resolution::Raw,
                series: key(""),
                scheme: Scheme::Sketch,
                count: u64::MAX,
                missing: 0,
                invalid: 3,
                sum: Some(f64::NAN),
                min: Some(f64::NEG_INFINITY),
                max: None,
                mean: Some(-0.0),
                m2: Some(f64::from_bits(1)),
                buckets: (-2049i64..=2049).map(|k| (k, (k.unsigned_abs() * 977) % 13)).collect(),
            },
            DistributionRow {
                // Not increasing, and the extremes: the deltas wrap.
                buckets: vec![(i64::MAX, 1), (i64::MIN, 2), (0, 0), (-1, u64::MAX)],
                ..DistributionRow::empty(-5, -7, Resolution::Hour, SeriesKey::default(), Scheme::LatencyHdr)
            },
        ];
        let events = vec![
            EventRow {
                time_ms: 0,
                model: "".into(),
                version: "".into(),
                variant: "".into(),
                kind: "model_loaded".into(),
                message: String::new(),
            },
            EventRow {
                time_ms: -1,
                model: "m".into(),
                version: "v".into(),
                variant: "canary".into(),
                kind: "retrain_triggered".into(),
                message: "drift ≥ 0.3 on \"amount\"\n\u{0}".into(),
            },
        ];
        Rows { distributions, scalars, events, ..Rows::default() }
    }

    /// Bit-for-bit equality, which `PartialEq` on `f64` is not (NaN, -0.0).
    fn same(a: &WalEntry, b: &WalEntry) -> bool {
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        a.seq == b.seq
            && a.rows.scalars.len() == b.rows.scalars.len()
            && a.rows.scalars.iter().zip(&b.rows.scalars).all(|(x, y)| {
                x.value.to_bits() == y.value.to_bits()
                    && ScalarRow { value: 0.0, ..x.clone() } == ScalarRow { value: 0.0, ..y.clone() }
            })
            && a.rows.distributions.len() == b.rows.distributions.len()
            && a.rows.distributions.iter().zip(&b.rows.distributions).all(|(x, y)| {
                [x.sum, x.min, x.max, x.mean, x.m2].map(bits) == [y.sum, y.min, y.max, y.mean, y.m2].map(bits)
                    && (x.start_ms, x.end_ms, x.resolution, &x.series, x.scheme)
                        == (y.start_ms, y.end_ms, y.resolution, &y.series, y.scheme)
                    && (x.count, x.missing, x.invalid, &x.buckets)
                        == (y.count, y.missing, y.invalid, &y.buckets)
            })
            && a.rows.events == b.rows.events
    }

    #[test]
    fn every_value_round_trips_bit_for_bit() {
        let entry = WalEntry { seq: u64::MAX, rows: awkward_rows() };
        let bytes = encode_v2(&entry);
        let back = decode_v2(&bytes).unwrap();
        assert!(same(&entry, &back), "{entry:?}\n{back:?}");
        assert_eq!(peek_seq_v2(&bytes), Some(u64::MAX));
        // The repeated series strings are stored once.
        assert_eq!(
            bytes.windows("mémoire 記憶".len()).filter(|w| *w == "mémoire 記憶".as_bytes()).count(),
            1
        );
    }

    #[test]
    fn json_cannot_carry_a_nan_and_binary_can() {
        let mut rows = awkward_rows();
        rows.scalars.truncate(1);
        let entry = WalEntry { seq: 3, rows };
        let json = serde_json::to_vec(&entry).unwrap();
        assert!(decode_v1(&json).is_err(), "version 1 loses the NaN");
        assert!(same(&entry, &decode_v2(&encode_v2(&entry)).unwrap()));
    }

    /// The format is pinned: a change to the encoding must come with a new version.
    #[test]
    fn golden_payload() {
        let entry = WalEntry {
            seq: 300,
            rows: Rows {
                scalars: vec![ScalarRow {
                    start_ms: 1000,
                    end_ms: 11_000,
                    resolution: Resolution::Raw,
                    series: SeriesKey { model: "m".into(), metric: "g".into(), ..SeriesKey::default() },
                    kind: ScalarKind::Gauge,
                    value: f64::NAN,
                }],
                events: vec![EventRow {
                    time_ms: -2,
                    model: "m".into(),
                    version: "".into(),
                    variant: "".into(),
                    kind: "k".into(),
                    message: "hi".into(),
                }],
                ..Rows::default()
            },
        };
        #[rustfmt::skip]
        let golden: &[u8] = &[
            0x01, 0xac, 0x02,                       // tag, seq 300
            0x05, 0x01, b'm', 0x00, 0x01, b'g',     // 5 strings: "m", "", "g",
            0x01, b'k', 0x02, b'h', b'i',           //   "k", "hi"
            0x00,                                   // no distributions
            0x01,                                   // 1 scalar:
            0xd0, 0x0f, 0xa0, 0x9c, 0x01, 0x00,     //   start 1000, +10000, raw
            0x00, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, // series
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x7f, // gauge, NaN
            0x01,                                   // 1 event:
            0x03, 0x00, 0x01, 0x01, 0x03, 0x04,     //   -2, m, "", "", k, hi
        ];
        assert_eq!(encode_v2(&entry), golden);
        assert!(same(&entry, &decode_v2(golden).unwrap()));
    }

    #[test]
    fn examples_round_trip_bit_for_bit_and_records_without_them_are_unchanged() {
        let plain = WalEntry { seq: 3, rows: awkward_rows() };
        let mut with = WalEntry { seq: 3, rows: awkward_rows() };
        let mut set = ExampleSet::new(vec!["len".into(), "ratio".into()]);
        for (i, v) in awkward_values().into_iter().enumerate() {
            set.rows.push(Example {
                prediction_id: format!("p{i}"),
                predicted_ms: i64::MIN.wrapping_add(i as i64 * 7),
                label_ms: i64::MAX - i as i64,
                segment: if i % 2 == 0 { "email".into() } else { String::new() },
                features: vec![v, -v],
                confidence: v,
                label: i % 3 == 0,
            });
        }
        with.rows.examples.push(ModelExamples { model: "pii".into(), set: set.clone() });
        with.rows.examples.push(ModelExamples { model: "none".into(), set: ExampleSet::new(vec![]) });
        let bytes = encode_v2(&with);
        let back = decode_v2(&bytes).unwrap();
        assert!(same(&with, &back));
        let (a, b) = (&with.rows.examples[0].set, &back.rows.examples[0].set);
        assert_eq!((a.features.clone(), a.len()), (b.features.clone(), b.len()));
        for (x, y) in a.rows.iter().zip(&b.rows) {
            let bits = |e: &Example| {
                (e.confidence.to_bits(), e.features.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            assert_eq!(bits(x), bits(y));
            assert_eq!(
                (&x.prediction_id, x.predicted_ms, x.label_ms, &x.segment, x.label),
                (&y.prediction_id, y.predicted_ms, y.label_ms, &y.segment, y.label)
            );
        }
        assert_eq!(back.rows.examples[1].model.as_ref(), "none");
        // Without examples, the record is the one written before examples existed (the
        // golden payload test pins those bytes): no examples section at all.
        let plain_bytes = encode_v2(&plain);
        assert!(plain_bytes.len() < bytes.len());
        assert!(decode_v2(&plain_bytes).unwrap().rows.examples.is_empty());
        // Every truncation of a record with examples is refused, never a panic, but one:
        // the cut before the (optional) section, which the record's frame (length and CRC)
        // refuses in the WAL.
        let decoded: Vec<usize> = (0..bytes.len()).filter(|&cut| decode_v2(&bytes[..cut]).is_ok()).collect();
        assert_eq!(decoded.len(), 1, "{decoded:?}");
        assert!(decode_v2(&bytes[..decoded[0]]).unwrap().rows.examples.is_empty());
    }

    #[test]
    fn corrupt_counts_are_refused_without_allocating() {
        // A string count of 2^62 with 3 bytes left.
        let mut b = vec![ENTRY_TAG, 1];
        put_varint(&mut b, 1 << 62);
        b.extend_from_slice(b"abc");
        assert!(decode_v2(&b).unwrap_err().contains("count larger"));
        // Overlong and overflowing varints.
        assert!(decode_v2(&[ENTRY_TAG, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err());
        assert!(
            decode_v2(&[ENTRY_TAG, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
                .is_err()
        );
        assert!(decode_v2(&[]).is_err());
        assert!(decode_v2(&[0x02, 0]).unwrap_err().contains("tag"));
        let mut trailing = encode_v2(&WalEntry { seq: 1, rows: Rows::default() });
        trailing.push(0);
        assert!(decode_v2(&trailing).unwrap_err().contains("after the last row"));
    }

    proptest! {
        #[test]
        fn any_bits_round_trip(seq: u64, values in proptest::collection::vec(any::<u64>(), 0..40),
                               times in proptest::collection::vec(any::<i64>(), 1..5),
                               tag in "\\PC{0,12}") {
            let scalars = values.iter().zip(times.iter().cycle()).map(|(&bits, &t)| ScalarRow {
                start_ms: t,
                end_ms: t.wrapping_mul(3),
                resolution: Resolution::Minute,
                series: key(&tag),
                kind: ScalarKind::Gauge,
                value: f64::from_bits(bits),
            }).collect();
            let entry = WalEntry { seq, rows: Rows { scalars, ..Rows::default() } };
            prop_assert!(same(&entry, &decode_v2(&encode_v2(&entry)).unwrap()));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_v2(&bytes);
            let mut tagged = vec![ENTRY_TAG];
            tagged.extend_from_slice(&bytes);
            let _ = decode_v2(&tagged);
        }

        #[test]
        fn every_truncation_and_bit_flip_is_handled(cut in 0usize..4000, at in 0usize..4000, bit in 0u8..8) {
            let full = encode_v2(&WalEntry { seq: 9, rows: awkward_rows() });
            let cut = cut % full.len();
            prop_assert!(decode_v2(&full[..cut]).is_err());
            let mut flipped = full.clone();
            flipped[at % full.len()] ^= 1 << bit;
            let _ = decode_v2(&flipped);
        }
    }
}
