//! The scorer's hot path against the peers a user would otherwise pick, in one run.
//!
//! Groups:
//!
//! - `latency/{1,2}_threads`: record one latency value.
//! - `prediction_32_features/{1,2}_threads`: record one whole prediction: latency,
//!   confidence and 32 numeric features, 34 values into 34 series.
//! - `flush/1000_series_{2,8,64}_threads`: the flush (collect) of 1,000 series (40 segments
//!   × 25 features) that 2, 8 or 64 long-lived recording threads wrote since the last flush.
//!
//! The same values go to every peer: latencies of 200 to 266 µs, confidences cycling through
//! [0, 1), 256 feature vectors made before timing starts. Every series is labelled
//! `model=pii, segment=email` where the peer has labels.
//!
//! # Two threads
//!
//! The 2-thread rows are contended for every peer: both threads write the same series of
//! one shared instance at once (one agent, the same prometheus histograms, the same
//! `metrics` handles, the same OpenTelemetry instruments and attribute set, the same
//! `SyncHistogram`s, the same mutex), and the time is the slower thread's for its `iters`
//! records while the other records too (`iter_custom` + `Barrier`). What a thread resolves
//! once (a segment id, a `LocalRecorder`, hdrhistogram `Recorder`s) is resolved before the
//! barrier, outside the time. Only the thread-local floor has nothing to share.
//!
//! # What each peer does per value
//!
//! A prediction is 34 of these, one per series (the prediction group's peers hold 34
//! histograms each; the mutex peer locks once per prediction).
//!
//! - `modelwatch`: `Handle::record_latency` / `Handle::record`: the thread's shard (found
//!   through a thread-local), an exact HDR latency bucket and sum; per feature: count,
//!   missing, invalid, shifted sum and sum of squares, min and max, a 1.5 %-relative-error
//!   sketch bucket; one `SeqCst` fence per prediction (the epoch hand-shake of
//!   `agent/src/shard.rs`), none for a latency.
//! - `modelwatch_local`: the same through `Handle::local()`, bound to the thread's shard.
//! - `prometheus` 0.14: `Histogram::observe` on a child resolved once from a `HistogramVec`
//!   (default 11 buckets: a linear bucket search, atomic bucket, sum and count in a
//!   hot/cold shard pair shared by all threads).
//! - `metrics` 0.24 + `metrics-exporter-prometheus` 0.18: `Histogram::record`: the raw value
//!   and a timestamp pushed onto the handle's shared lock-free block list; bucketing (the
//!   same 11 default buckets) happens when the list is drained.
//! - `opentelemetry_sdk` 0.33: `Histogram::record` with the 2 attributes (its API takes them
//!   on every call: a lookup of the attribute set, then the default explicit-bucket
//!   histogram behind that set's lock).
//! - `hdrhistogram_sync` 7.5: `Recorder::saturating_record` into the thread's own histogram
//!   (features and confidence as `|v|` in billionths, HDR takes integers).
//! - `mutex_hdrhistogram`: lock one shared `Mutex<Histogram>` (one for 34 histograms in the
//!   prediction group) and `saturating_record`.
//! - `thread_local_floor`: add the value to a thread-local `Cell`, the cost of a call that
//!   keeps nothing.
//!
//! # Draining
//!
//! Every peer is drained the way the agent is while it records: on a background thread
//! every [`DRAIN`] (the agent's flush interval here), so that no peer piles up what it
//! recorded and every peer pays, in the same run, for the reader it needs:
//!
//! - `modelwatch`: the agent's own flusher (`interval(DRAIN)`): reads every shard into the
//!   interval's deltas and hands the snapshot to a `NullSink`.
//! - `prometheus`: `Registry::gather()` (swaps each histogram's hot and cold shards, waits
//!   for the observes in flight, reads the buckets).
//! - `metrics`: `PrometheusHandle::run_upkeep()` (what the exporter's upkeep task runs every
//!   5 s): moves the raw values pushed since the last drain into the bucketed histograms and
//!   frees them. Never drained, it kept about 0.7 GB of raw values per case.
//! - `opentelemetry`: `ManualReader::collect` with delta temporality.
//! - `hdrhistogram_sync`: `SyncHistogram::refresh_timeout` (each recorder hands its
//!   histogram over at its next record).
//! - `mutex_hdrhistogram`: under the lock, add into an accumulator and reset.
//!
//! On a 2-core machine the drain thread shares the cores with the recording threads, so a
//! peer whose drain works per value (`metrics`) also pays for it in the 2-thread rows, as it
//! would in a scorer.
//!
//! - `router/*`: the canary router's decision for a 12- and a 36-byte key, the same through
//!   a `ModelWatcher`'s `Reader::pick`, and std's SipHash over the same keys (see
//!   `bench_router`). Run beside the latency record with
//!   `cargo bench --bench hot_path -- 'router|latency/1_threads/modelwatch$'`.
//!
//! Run: `cargo bench --bench hot_path`; figures go to BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use modelwatch::agent::NullSink;
use modelwatch::{Agent, Feature, Handle, Prediction};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FEATURES: usize = 32;
/// Values per prediction: latency, confidence, features.
const VALUES: usize = FEATURES + 2;
/// How often every peer is drained while it records (the agent's flush interval here).
const DRAIN: Duration = Duration::from_millis(100);
const LABELS: [(&str, &str); 2] = [("model", "pii"), ("segment", "email")];

/// A latency in nanoseconds that varies like a real one, without a random generator.
#[inline]
fn latency(i: u64) -> u64 {
    200_000 + (i.wrapping_mul(2_654_435_761) & 0xFFFF)
}

#[inline]
fn confidence(i: u64) -> f64 {
    (i % 1000) as f64 / 1000.0
}

/// 256 feature vectors, made before timing starts, that the prediction benches cycle through.
fn inputs() -> Vec<[f64; FEATURES]> {
    (0..256u64)
        .map(|i| std::array::from_fn(|j| ((i * 31 + j as u64 * 17) % 500) as f64 * 0.1 - 5.0))
        .collect()
}

/// Prediction `i`'s feature vector.
#[inline]
fn pick(xs: &[[f64; FEATURES]], i: u64) -> &[f64; FEATURES] {
    &xs[(i & 255) as usize]
}

/// The 34 values of prediction `i`, in the order of the peers' 34 histograms: latency in
/// seconds, confidence, features.
#[inline]
fn values(i: u64, x: &[f64; FEATURES]) -> impl Iterator<Item = f64> + '_ {
    [latency(i) as f64 * 1e-9, confidence(i)].into_iter().chain(black_box(x).iter().copied())
}

/// A value as the integer an HDR histogram takes: `|v|` in billionths.
#[inline]
fn hdr_int(v: f64) -> u64 {
    (v.abs() * 1e9) as u64
}

fn hdr() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 1 << 40, 2).unwrap()
}

/// The OpenTelemetry reader, shared between the provider and the drain thread.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// One instance of every peer, shared by all recording threads. Index 0 of each `*_pred`
/// holds latency, 1 confidence, 2.. the features.
struct Peers {
    _agent: Agent,
    modelwatch: Handle,
    prometheus_registry: prometheus::Registry,
    prometheus: prometheus::Histogram,
    prometheus_pred: Vec<prometheus::Histogram>,
    metrics_handle: metrics_exporter_prometheus::PrometheusHandle,
    metrics: metrics::Histogram,
    metrics_pred: Vec<metrics::Histogram>,
    otel_reader: SharedReader,
    otel: opentelemetry::metrics::Histogram<f64>,
    otel_pred: Vec<opentelemetry::metrics::Histogram<f64>>,
    otel_attrs: [opentelemetry::KeyValue; 2],
    _otel_provider: SdkMeterProvider,
    hdr_sync: Mutex<hdrhistogram::sync::SyncHistogram<u64>>,
    hdr_sync_pred: Vec<Mutex<hdrhistogram::sync::SyncHistogram<u64>>>,
    hdr_mutex: Mutex<hdrhistogram::Histogram<u64>>,
    hdr_mutex_pred: Mutex<Vec<hdrhistogram::Histogram<u64>>>,
}

fn series_names() -> Vec<String> {
    ["latency_seconds".to_string(), "confidence".to_string()]
        .into_iter()
        .chain((0..FEATURES).map(|k| format!("f{k}")))
        .collect()
}

fn prometheus_histogram(registry: &prometheus::Registry, name: &str) -> prometheus::Histogram {
    let opts = prometheus::HistogramOpts::new(name, name);
    let vec = prometheus::HistogramVec::new(opts, &LABELS.map(|(k, _)| k)).unwrap();
    registry.register(Box::new(vec.clone())).unwrap();
    vec.with_label_values(&LABELS.map(|(_, v)| v))
}

fn peers() -> Arc<Peers> {
    let agent = Agent::builder("pii")
        .segments(["email", "phone", "ssn", "credit_card", "name", "address"])
        .features((0..FEATURES).map(|i| Feature::numeric(format!("f{i}"))))
        .interval(DRAIN)
        .build(NullSink)
        .unwrap();

    let prometheus_registry = prometheus::Registry::new();
    let prometheus = prometheus_histogram(&prometheus_registry, "single_latency_seconds");
    let prometheus_pred =
        series_names().iter().map(|n| prometheus_histogram(&prometheus_registry, n)).collect();

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(prometheus::DEFAULT_BUCKETS)
        .unwrap()
        .build_recorder();
    let metrics_handle = recorder.handle();
    let (metrics, metrics_pred): (metrics::Histogram, Vec<_>) =
        metrics::with_local_recorder(&recorder, || {
            let h =
                |name: String| metrics::histogram!(name, "model" => LABELS[0].1, "segment" => LABELS[1].1);
            (h("single_latency_seconds".into()), series_names().into_iter().map(h).collect())
        });
    // The recorder must outlive the handles: leak it, as a global recorder would be.
    Box::leak(Box::new(recorder));

    let otel_reader =
        SharedReader(Arc::new(ManualReader::builder().with_temporality(Temporality::Delta).build()));
    let provider = SdkMeterProvider::builder().with_reader(otel_reader.clone()).build();
    let meter = provider.meter("bench");

    Arc::new(Peers {
        modelwatch: agent.handle(),
        _agent: agent,
        prometheus_registry,
        prometheus,
        prometheus_pred,
        metrics_handle,
        metrics,
        metrics_pred,
        otel_reader,
        otel: meter.f64_histogram("single_latency_seconds").build(),
        otel_pred: series_names().into_iter().map(|n| meter.f64_histogram(n).build()).collect(),
        otel_attrs: LABELS.map(|(k, v)| opentelemetry::KeyValue::new(k, v)),
        _otel_provider: provider,
        hdr_sync: Mutex::new(hdr().into()),
        hdr_sync_pred: (0..VALUES).map(|_| Mutex::new(hdr().into())).collect(),
        hdr_mutex: Mutex::new(hdr()),
        hdr_mutex_pred: Mutex::new((0..VALUES).map(|_| hdr()).collect()),
    })
}

/// Drains every peer except the agent (its own flusher does) every [`DRAIN`] until dropped.
struct Drainer {
    /// Dropping it wakes the drain thread at once and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    fn start(p: Arc<Peers>) -> Drainer {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut acc = hdr();
            let mut rm = ResourceMetrics::default();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(DRAIN) {
                black_box(p.prometheus_registry.gather());
                p.metrics_handle.run_upkeep();
                p.otel_reader.collect(&mut rm).unwrap();
                for h in std::iter::once(&p.hdr_sync).chain(&p.hdr_sync_pred) {
                    h.lock().unwrap().refresh_timeout(Duration::from_millis(5));
                }
                let mut h = p.hdr_mutex.lock().unwrap();
                acc.add(&*h).unwrap();
                h.reset();
                drop(h);
                for h in p.hdr_mutex_pred.lock().unwrap().iter_mut() {
                    acc.add(&*h).unwrap();
                    h.reset();
                }
            }
        });
        Drainer { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

thread_local! {
    static FLOOR: Cell<u64> = const { Cell::new(0) };
}

/// A recording thread's loop: records `iters` calls.
type Run<'a> = Box<dyn FnMut(u64) + 'a>;
/// Makes a [`Run`] for one peer on the recording thread (what it resolves once per thread).
type Setup = for<'a> fn(&'a Peers, &str) -> Run<'a>;

/// Runs `setup`'s loop for `iters` calls on `threads` threads at once, set up before a
/// shared start; returns the slowest thread's time. One thread runs on the caller's.
fn timed(p: &Peers, name: &str, threads: usize, iters: u64, setup: Setup) -> Duration {
    let one = |barrier: Option<&Barrier>| {
        let mut run = setup(p, name);
        if let Some(b) = barrier {
            b.wait();
        }
        let t = Instant::now();
        run(iters);
        t.elapsed()
    };
    if threads == 1 {
        return one(None);
    }
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(|| one(Some(&barrier)))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

/// One peer's way of recording one latency value.
fn latency_run<'a>(p: &'a Peers, name: &str) -> Run<'a> {
    match name {
        "modelwatch" => {
            let seg = p.modelwatch.segment("email");
            Box::new(move |n| {
                for i in 0..n {
                    p.modelwatch.record_latency(seg, Duration::from_nanos(black_box(latency(i))));
                }
            })
        }
        "modelwatch_local" => {
            let (local, seg) = (p.modelwatch.local(), p.modelwatch.segment("email"));
            Box::new(move |n| {
                for i in 0..n {
                    local.record_latency(seg, Duration::from_nanos(black_box(latency(i))));
                }
            })
        }
        "prometheus" => {
            Box::new(|n| (0..n).for_each(|i| p.prometheus.observe(black_box(latency(i)) as f64 * 1e-9)))
        }
        "metrics" => Box::new(|n| (0..n).for_each(|i| p.metrics.record(black_box(latency(i)) as f64 * 1e-9))),
        "opentelemetry" => Box::new(|n| {
            (0..n).for_each(|i| p.otel.record(black_box(latency(i)) as f64 * 1e-9, &p.otel_attrs))
        }),
        "hdrhistogram_sync" => {
            let mut r = p.hdr_sync.lock().unwrap().recorder();
            Box::new(move |n| (0..n).for_each(|i| r.saturating_record(black_box(latency(i)))))
        }
        "mutex_hdrhistogram" => Box::new(|n| {
            (0..n).for_each(|i| p.hdr_mutex.lock().unwrap().saturating_record(black_box(latency(i))))
        }),
        "thread_local_floor" => Box::new(|n| {
            (0..n).for_each(|i| FLOOR.with(|c| c.set(c.get().wrapping_add(black_box(latency(i))))))
        }),
        _ => unreachable!("unknown peer {name}"),
    }
}

/// One peer's way of recording one whole prediction: the same 34 values into 34 series.
fn prediction_run<'a>(p: &'a Peers, name: &str) -> Run<'a> {
    let xs = inputs();
    match name {
        "modelwatch" => {
            let seg = p.modelwatch.segment("email");
            Box::new(move |n| {
                for i in 0..n {
                    let x = pick(&xs, i);
                    let pred = Prediction::new(seg, Duration::from_nanos(latency(i)), confidence(i))
                        .features(black_box(x));
                    p.modelwatch.record(&pred);
                }
            })
        }
        "modelwatch_local" => {
            let (local, seg) = (p.modelwatch.local(), p.modelwatch.segment("email"));
            Box::new(move |n| {
                for i in 0..n {
                    let x = pick(&xs, i);
                    local.record(
                        &Prediction::new(seg, Duration::from_nanos(latency(i)), confidence(i))
                            .features(black_box(x)),
                    );
                }
            })
        }
        "prometheus" => Box::new(move |n| {
            for i in 0..n {
                p.prometheus_pred.iter().zip(values(i, pick(&xs, i))).for_each(|(h, v)| h.observe(v));
            }
        }),
        "metrics" => Box::new(move |n| {
            for i in 0..n {
                p.metrics_pred.iter().zip(values(i, pick(&xs, i))).for_each(|(h, v)| h.record(v));
            }
        }),
        "opentelemetry" => Box::new(move |n| {
            for i in 0..n {
                p.otel_pred.iter().zip(values(i, pick(&xs, i))).for_each(|(h, v)| h.record(v, &p.otel_attrs));
            }
        }),
        "hdrhistogram_sync" => {
            let mut rs: Vec<_> = p.hdr_sync_pred.iter().map(|h| h.lock().unwrap().recorder()).collect();
            Box::new(move |n| {
                for i in 0..n {
                    rs.iter_mut()
                        .zip(values(i, pick(&xs, i)))
                        .for_each(|(r, v)| r.saturating_record(hdr_int(v)));
                }
            })
        }
        "mutex_hdrhistogram" => Box::new(move |n| {
            for i in 0..n {
                let mut hs = p.hdr_mutex_pred.lock().unwrap();
                hs.iter_mut().zip(values(i, pick(&xs, i))).for_each(|(h, v)| h.saturating_record(hdr_int(v)));
            }
        }),
        _ => unreachable!("unknown peer {name}"),
    }
}

const PEERS: [&str; 8] = [
    "modelwatch",
    "modelwatch_local",
    "prometheus",
    "metrics",
    "opentelemetry",
    "hdrhistogram_sync",
    "mutex_hdrhistogram",
    "thread_local_floor",
];

/// Benches `names` at 1 and 2 threads in groups `{group}/{threads}_threads`.
fn bench_peers(c: &mut Criterion, group: &str, names: &[&str], setup: Setup) {
    let p = peers();
    let _drainer = Drainer::start(p.clone());
    for threads in [1usize, 2] {
        let mut g = c.benchmark_group(format!("{group}/{threads}_threads"));
        g.throughput(Throughput::Elements(1));
        for &name in names {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| timed(&p, name, threads, iters, setup))
            });
        }
        g.finish();
    }
}

fn bench_latency(c: &mut Criterion) {
    bench_peers(c, "latency", &PEERS, latency_run);
}

fn bench_prediction(c: &mut Criterion) {
    // The floor keeps nothing: a prediction of it says nothing more than a latency.
    bench_peers(c, "prediction_32_features", &PEERS[..7], prediction_run);
}

/// Flush of 1,000 series (40 segments × 25 features) that 2, 8 and 64 long-lived threads
/// wrote since the last flush: each thread records one prediction per segment per round,
/// then waits; the flush runs while every thread waits, as a scorer's threads between
/// requests. Default builder settings (memory budget included) but for the background
/// flusher; the agent's stats are printed after each case.
fn bench_flush(c: &mut Criterion) {
    let segments: Vec<String> = (0..39).map(|i| format!("s{i}")).collect(); // + `other` = 40
    let names: Vec<String> = segments.iter().cloned().chain(["other".to_string()]).collect();
    let mut g = c.benchmark_group("flush");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for threads in [2u64, 8, 64] {
        let agent = Agent::builder("pii")
            .segments(&segments)
            .features((0..25).map(|i| Feature::numeric(format!("f{i}"))))
            .background_flush(false)
            .build(NullSink)
            .unwrap();
        let (go, done) = (Barrier::new(threads as usize + 1), Barrier::new(threads as usize + 1));
        let (round, stop) = (AtomicU64::new(0), AtomicBool::new(false));
        std::thread::scope(|s| {
            for t in 0..threads {
                let (h, names, go, done, round, stop) = (agent.handle(), &names, &go, &done, &round, &stop);
                s.spawn(move || {
                    let segs: Vec<_> = names.iter().map(|n| h.segment(n)).collect();
                    loop {
                        go.wait();
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = round.load(Ordering::Relaxed);
                        let x: [f64; 25] = std::array::from_fn(|j| ((r * 7 + t + j as u64) % 1000) as f64);
                        let lat = Duration::from_micros(200 + (r * 13 + t) % 900);
                        for &seg in &segs {
                            h.record(&Prediction::new(seg, lat, 0.8).features(&x));
                        }
                        done.wait();
                    }
                });
            }
            g.bench_function(format!("1000_series_{threads}_threads"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        round.fetch_add(1, Ordering::Relaxed);
                        go.wait();
                        done.wait();
                        let t = Instant::now();
                        agent.flush_now().unwrap();
                        total += t.elapsed();
                    }
                    total
                })
            });
            stop.store(true, Ordering::Relaxed);
            go.wait();
        });
        // Past the budget's share, threads write a shared shard: say how many shards the
        // flush read, so that a row is not taken for `threads` exclusive shards.
        let stats = agent.stats();
        if stats.snapshots > 0 {
            eprintln!("flush/1000_series_{threads}_threads: {stats:?}");
        }
    }
    g.finish();
}

/// The canary router's decision (`modelwatch_agent::router`), beside the record it comes
/// with: 1,024 keys made before timing (`doc-00000042`, 12 bytes; a UUID string, 36 bytes),
/// cycled through. The peer is what a scorer would otherwise write: std's `DefaultHasher`
/// (SipHash-1-3, fixed keys so it is sticky across processes) modulo 2^31 against the same
/// threshold.
fn bench_router(c: &mut Criterion) {
    use modelwatch::agent::router::{Arm, Router, threshold};
    use std::hash::Hasher;
    let short: Vec<[u8; 12]> =
        (0..1024).map(|i| format!("doc-{i:08}").into_bytes().try_into().unwrap()).collect();
    let uuid: Vec<[u8; 36]> = (0..1024u64)
        .map(|i| {
            let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                h >> 32,
                h & 0xffff,
                i & 0xfff,
                (h >> 20) & 0xfff,
                h >> 16
            )
            .into_bytes()
            .try_into()
            .unwrap()
        })
        .collect();
    let router = Router::new(0x5eed, 0.10);
    let limit = threshold(0.10);
    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    fn run<const N: usize>(b: &mut criterion::Bencher, keys: &[[u8; N]], f: impl Fn(&[u8]) -> bool) {
        b.iter_custom(|iters| {
            let t = Instant::now();
            let mut hits = 0u64;
            for i in 0..iters {
                hits += u64::from(f(black_box(&keys[(i & 1023) as usize])));
            }
            black_box(hits);
            t.elapsed()
        })
    }
    let std_hash = |k: &[u8]| {
        let mut h = std::hash::DefaultHasher::new();
        h.write(k);
        ((h.finish() >> 33) as u32) < limit
    };
    g.bench_function("modelwatch/12_byte_key", |b| run(b, &short, |k| router.route(k) == Arm::Challenger));
    g.bench_function("modelwatch/36_byte_key", |b| run(b, &uuid, |k| router.route(k) == Arm::Challenger));
    // What a scorer that embeds the `ModelWatcher` pays: `Reader::pick`, the serving's
    // generation (an acquire load) and the router's decision, over a control and a
    // challenger loaded from a registry.
    let dir = tempfile::tempdir().unwrap();
    let clock =
        std::sync::Arc::new(modelwatch::ManualClock::new(modelwatch::Timestamp::from_secs(1_764_115_200)));
    let open = || {
        modelwatch::store::registry::Registry::open(modelwatch::store::registry::RegistryConfig::new(
            dir.path(),
            clock.clone(),
        ))
        .unwrap()
    };
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.txt"), "1").unwrap();
    let reg = open();
    let auto = modelwatch::store::registry::Action::new("bench", "bench");
    for _ in 0..2 {
        reg.register(modelwatch::store::registry::NewVersion::new("pii", "text", art.path())).unwrap();
    }
    reg.promote("pii", 1, &auto).unwrap();
    reg.set_challenger("pii", 2, &auto).unwrap();
    let agents: modelwatch::canary::AgentFactory = Box::new(|arm, version| {
        Agent::builder("pii")
            .variant(modelwatch::canary::variant_tag(arm))
            .version(&version.to_string())
            .background_flush(false)
            .build(NullSink)
    });
    let config = modelwatch::canary::WatcherConfig::new("pii", dir.path().join("scratch"));
    let watcher =
        modelwatch::canary::ModelWatcher::new(open(), config, agents, Box::new(|_: &_, _: &_| Ok(())))
            .unwrap();
    watcher.refresh().unwrap();
    let reader = std::cell::RefCell::new(watcher.reader());
    g.bench_function("watcher_pick/12_byte_key", |b| {
        run(b, &short, |k| reader.borrow_mut().pick(k).is_some_and(|v| v.arm == Arm::Challenger))
    });
    g.bench_function("std_siphash/12_byte_key", |b| run(b, &short, std_hash));
    g.bench_function("std_siphash/36_byte_key", |b| run(b, &uuid, std_hash));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = bench_latency, bench_router, bench_prediction, bench_flush
}
criterion_main!(benches);
