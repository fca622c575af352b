//! The scorer's hot path against the peers a user would otherwise pick, in one run.
//!
//! Groups: `latency` (record one latency value), `prediction` (latency, confidence and 32
//! features), each at 1 thread and at 2 threads recording into the same series at once
//! (`iter_custom` + `Barrier`: the time is what each thread spends on its `iters` records
//! while the other records too), and `flush` (1,000 series written by 2 threads).
//!
//! Run: `cargo bench --bench hot_path`; figures go to BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use modelwatch::agent::NullSink;
use modelwatch::{Agent, Feature, Handle, Prediction};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const FEATURES: usize = 32;

/// Runs `per_thread(iters)` on `threads` threads at once; returns the slowest thread's time.
fn contended<F>(threads: usize, iters: u64, make: impl Fn() -> F) -> Duration
where
    F: FnOnce(u64) + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (b, f) = (barrier.clone(), make());
            std::thread::spawn(move || {
                b.wait();
                let t = Instant::now();
                f(iters);
                t.elapsed()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).max().unwrap()
}

fn agent(features: usize) -> Agent {
    Agent::builder("pii")
        .segments(["email", "phone", "ssn", "credit_card", "name", "address"])
        .features((0..features).map(|i| Feature::numeric(format!("f{i}"))))
        .interval(Duration::from_secs(3600))
        .build(NullSink)
        .unwrap()
}

/// A latency in nanoseconds that varies like a real one, without a random generator.
#[inline]
fn latency(i: u64) -> u64 {
    200_000 + (i.wrapping_mul(2_654_435_761) & 0xFFFF)
}

struct Peers {
    modelwatch: Handle,
    _agent: Arc<Agent>,
    prometheus: prometheus::Histogram,
    metrics: metrics::Histogram,
    otel: opentelemetry::metrics::Histogram<f64>,
    otel_attrs: [opentelemetry::KeyValue; 2],
    _otel_provider: opentelemetry_sdk::metrics::SdkMeterProvider,
    hdr_sync: Mutex<hdrhistogram::sync::SyncHistogram<u64>>,
    hdr_mutex: Mutex<hdrhistogram::Histogram<u64>>,
}

fn peers() -> Arc<Peers> {
    use opentelemetry::metrics::MeterProvider;
    let agent = Arc::new(agent(FEATURES));
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = metrics::with_local_recorder(&recorder, || metrics::histogram!("latency_seconds"));
    // The recorder must outlive the handle: leak it, as a global recorder would be.
    Box::leak(Box::new(recorder));
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::ManualReader::builder().build())
        .build();
    let otel = provider.meter("bench").f64_histogram("latency").build();
    Arc::new(Peers {
        modelwatch: agent.handle(),
        _agent: agent,
        prometheus: prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("latency", "latency"))
            .unwrap(),
        metrics,
        otel,
        otel_attrs: [
            opentelemetry::KeyValue::new("model", "pii"),
            opentelemetry::KeyValue::new("segment", "email"),
        ],
        _otel_provider: provider,
        hdr_sync: Mutex::new(hdrhistogram::Histogram::<u64>::new(2).unwrap().into()),
        hdr_mutex: Mutex::new(hdrhistogram::Histogram::new(2).unwrap()),
    })
}

thread_local! {
    static FLOOR: Cell<u64> = const { Cell::new(0) };
}

/// One peer's way of recording `iters` latencies on the calling thread.
fn run_peer(p: &Peers, name: &str, iters: u64) {
    match name {
        "modelwatch" => {
            let seg = p.modelwatch.segment("email");
            for i in 0..iters {
                p.modelwatch.record_latency(seg, Duration::from_nanos(black_box(latency(i))));
            }
        }
        "modelwatch_local" => {
            let local = p.modelwatch.local();
            let seg = p.modelwatch.segment("email");
            for i in 0..iters {
                local.record_latency(seg, Duration::from_nanos(black_box(latency(i))));
            }
        }
        "prometheus" => (0..iters).for_each(|i| p.prometheus.observe(black_box(latency(i)) as f64 * 1e-9)),
        "metrics" => (0..iters).for_each(|i| p.metrics.record(black_box(latency(i)) as f64 * 1e-9)),
        "opentelemetry" => {
            (0..iters).for_each(|i| p.otel.record(black_box(latency(i)) as f64 * 1e-9, &p.otel_attrs))
        }
        "hdrhistogram_sync" => {
            let mut r = p.hdr_sync.lock().unwrap().recorder();
            (0..iters).for_each(|i| r.saturating_record(black_box(latency(i))));
        }
        "mutex_hdrhistogram" => {
            (0..iters).for_each(|i| p.hdr_mutex.lock().unwrap().saturating_record(black_box(latency(i))))
        }
        "thread_local_floor" => {
            (0..iters).for_each(|i| FLOOR.with(|c| c.set(c.get().wrapping_add(black_box(latency(i))))))
        }
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

fn bench_latency(c: &mut Criterion) {
    let p = peers();
    for threads in [1usize, 2] {
        let mut g = c.benchmark_group(format!("latency/{threads}_threads"));
        g.throughput(Throughput::Elements(1));
        for name in PEERS {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                if threads == 1 {
                    b.iter_custom(|iters| {
                        let t = Instant::now();
                        run_peer(&p, name, iters);
                        t.elapsed()
                    })
                } else {
                    b.iter_custom(|iters| {
                        contended(threads, iters, || {
                            let p = p.clone();
                            move |n| run_peer(&p, name, n)
                        })
                    })
                }
            });
        }
        g.finish();
    }
}

/// 256 feature vectors, made before timing starts, that the prediction benches cycle through.
fn inputs() -> Vec<[f64; FEATURES]> {
    (0..256u64)
        .map(|i| std::array::from_fn(|j| ((i * 31 + j as u64 * 17) % 500) as f64 * 0.1 - 5.0))
        .collect()
}

/// A whole prediction: latency, confidence and 32 features; the peers record the same
/// values (34 histogram observations each, which is what they would need).
fn run_prediction(p: &Peers, name: &str, iters: u64) {
    let xs = inputs();
    let x = |i: u64| &xs[(i & 255) as usize];
    match name {
        "modelwatch" | "modelwatch_local" => {
            let seg = p.modelwatch.segment("email");
            let local = p.modelwatch.local();
            for i in 0..iters {
                let pred = Prediction::new(seg, Duration::from_nanos(latency(i)), (i % 1000) as f64 / 1000.0)
                    .features(black_box(x(i)));
                if name == "modelwatch" {
                    p.modelwatch.record(&pred);
                } else {
                    local.record(&pred);
                }
            }
        }
        "prometheus" => {
            let hs: Vec<prometheus::Histogram> = (0..FEATURES + 2)
                .map(|k| {
                    prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(format!("f{k}"), "f"))
                        .unwrap()
                })
                .collect();
            for i in 0..iters {
                hs[0].observe(latency(i) as f64 * 1e-9);
                hs[1].observe((i % 1000) as f64 / 1000.0);
                for (h, &v) in hs[2..].iter().zip(black_box(x(i))) {
                    h.observe(v);
                }
            }
        }
        "mutex_hdrhistogram" => {
            for i in 0..iters {
                let mut h = p.hdr_mutex.lock().unwrap();
                h.saturating_record(latency(i));
                h.saturating_record(i % 1000);
                for &v in black_box(x(i)) {
                    h.saturating_record(v.max(0.0) as u64);
                }
            }
        }
        _ => unreachable!("unknown peer {name}"),
    }
}

fn bench_prediction(c: &mut Criterion) {
    let p = peers();
    for threads in [1usize, 2] {
        let mut g = c.benchmark_group(format!("prediction_32_features/{threads}_threads"));
        g.throughput(Throughput::Elements(1));
        for name in ["modelwatch", "modelwatch_local", "prometheus", "mutex_hdrhistogram"] {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    contended(threads, iters, || {
                        let p = p.clone();
                        move |n| run_prediction(&p, name, n)
                    })
                })
            });
        }
        g.finish();
    }
}

/// Flush of 1,000 series (40 segments × 25 features) that 2 threads wrote since the last
/// flush.
fn bench_flush(c: &mut Criterion) {
    let segments: Vec<String> = (0..39).map(|i| format!("s{i}")).collect(); // + `other` = 40
    let agent = Agent::builder("pii")
        .segments(&segments)
        .features((0..25).map(|i| Feature::numeric(format!("f{i}"))))
        .background_flush(false)
        .build(NullSink)
        .unwrap();
    let names: Vec<String> = segments.iter().cloned().chain(["other".to_string()]).collect();
    let write = |round: u64| {
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let h = agent.handle();
                let names = &names;
                s.spawn(move || {
                    let x: Vec<f64> = (0..25).map(|j| (round * 7 + t + j) as f64).collect();
                    for n in names {
                        h.record(&Prediction::new(n.as_str(), Duration::from_micros(300), 0.8).features(&x));
                    }
                });
            }
        });
    };
    let mut g = c.benchmark_group("flush");
    g.bench_function("1000_series_2_threads", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for round in 0..iters {
                write(round);
                let t = Instant::now();
                agent.flush_now().unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = bench_latency, bench_prediction, bench_flush
}
criterion_main!(benches);
