use super::*;
use crate::registry::{MODELS_LOADED, ModelGauges};
use crate::{ManualClock, MemorySink, MetricValue, Prediction, Timestamp};
use modelwatch_store::registry::{Action, NewVersion, RegistryConfig};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const MODEL: &str = "pii";

/// A registry in a temporary directory, agents writing to one memory sink, a manual clock.
struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    sink: MemorySink,
    /// How many times the loader ran.
    loads: Arc<AtomicU64>,
    /// While set, the loader refuses every version.
    refuse: Arc<AtomicBool>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200))),
            sink: MemorySink::new(),
            loads: Arc::new(AtomicU64::new(0)),
            refuse: Arc::new(AtomicBool::new(false)),
        }
    }

    fn registry(&self) -> Registry {
        Registry::open(RegistryConfig::new(self.dir.path().join("data"), self.clock.clone())).unwrap()
    }

    /// Registers a version whose artifact is one file holding `weights`.
    fn register(&self, weights: &str) -> u32 {
        let art = tempfile::tempdir().unwrap();
        std::fs::write(art.path().join("weights.txt"), weights).unwrap();
        self.registry().register(NewVersion::new(MODEL, "text", art.path())).unwrap().meta.version
    }

    /// Registers a version and makes it the challenger.
    fn challenge(&self, weights: &str) -> u32 {
        let v = self.register(weights);
        self.registry().set_challenger(MODEL, v, &Action::new("test", "canary")).unwrap();
        v
    }

    fn promote(&self, v: u32) {
        self.registry().promote(MODEL, v, &Action::new("test", "promote")).unwrap();
    }

    fn watcher_with(&self, config: WatcherConfig) -> ModelWatcher<String> {
        let (sink, clock) = (self.sink.clone(), self.clock.clone());
        let agents: AgentFactory = Box::new(move |arm, version| {
            Agent::builder(MODEL)
                .variant(variant_tag(arm))
                .version(&version.to_string())
                .clock(clock.clone())
                .background_flush(false)
                .build(sink.clone())
        });
        let (loads, refuse) = (self.loads.clone(), self.refuse.clone());
        let loader: Loader<String> = Box::new(move |info, dir| {
            loads.fetch_add(1, Ordering::Relaxed);
            if refuse.load(Ordering::Relaxed) {
                return Err(format!("version {} refused by the test", info.meta.version));
            }
            std::fs::read_to_string(dir.join("weights.txt")).map_err(|e| e.to_string())
        });
        ModelWatcher::new(self.registry(), config, agents, loader).unwrap()
    }

    fn watcher(&self) -> ModelWatcher<String> {
        self.watcher_with(WatcherConfig::new(MODEL, self.dir.path().join("scratch")))
    }

    /// A watcher serving version 1 (weights `one`) as the control.
    fn serving_one(&self) -> (ModelWatcher<String>, u32) {
        let v1 = self.register("one");
        self.promote(v1);
        let w = self.watcher();
        w.refresh().unwrap();
        (w, v1)
    }

    /// Predictions the sink received per (variant, version).
    fn delivered(&self) -> std::collections::BTreeMap<(String, String), u64> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.sink.snapshots() {
            *out.entry((s.model.variant.to_string(), s.model.version.to_string())).or_insert(0) +=
                s.predictions();
        }
        out.retain(|_, n| *n > 0);
        out
    }
}

fn record(v: &Variant<String>) {
    v.handle.record(&Prediction::new("email", Duration::from_millis(2), 0.5));
}

fn key(i: usize) -> String {
    format!("doc-{i:08}")
}

#[test]
fn nothing_serves_before_a_control_and_without_a_challenger_every_key_goes_to_the_control() {
    let f = Fixture::new();
    let w = f.watcher();
    let r = w.refresh().unwrap();
    assert_eq!((r.seq, r.control, r.challenger, r.changed), (0, None, None, false), "no model yet");
    let mut reader = w.reader();
    assert!(reader.pick(b"doc-1").is_none());
    let v1 = f.register("one");
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.changed), (None, false), "a candidate alone does not serve");
    f.promote(v1);
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.challenger, r.changed), (Some(v1), None, true));
    assert!((0..1_000).all(|i| reader.pick(key(i).as_bytes()).unwrap().version == v1));
    assert_eq!(*reader.pick(b"x").unwrap().model, "one");
    let again = w.refresh().unwrap();
    assert!(!again.changed && again.failed.is_empty(), "{again:?}");
    assert_eq!(w.serving().generation(), 1, "an unchanged head publishes nothing");
    w.shutdown().unwrap();
    assert!(reader.pick(b"doc-1").is_none(), "a reader of a watcher shut down serves nothing");
}

#[test]
fn the_challenger_takes_about_the_fraction_of_keys_as_the_router_decides_them() {
    let f = Fixture::new();
    let (w, v1) = f.serving_one();
    let v2 = f.challenge("two");
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.challenger), (Some(v1), Some(v2)));
    let mut reader = w.reader();
    let salt = salt_of(&format!("{MODEL}/{v2}"));
    assert_eq!(w.serving().salt, salt);
    let n = 100_000;
    let mut to_challenger = 0;
    for i in 0..n {
        let k = key(i);
        let v = reader.pick(k.as_bytes()).unwrap();
        let arm = decide(salt, threshold(DEFAULT_FRACTION), k.as_bytes());
        assert_eq!(v.arm, arm, "{k}: the watcher routes as the router decides");
        assert_eq!(v.version, if arm == Arm::Challenger { v2 } else { v1 });
        assert_eq!(*v.model, if arm == Arm::Challenger { "two" } else { "one" });
        to_challenger += usize::from(arm == Arm::Challenger);
    }
    let share = to_challenger as f64 / n as f64;
    assert!((share - DEFAULT_FRACTION).abs() <= 0.01, "challenger share {share}");
    // Sticky: a refresh that changes nothing changes no key's variant.
    w.refresh().unwrap();
    assert!((0..1_000).all(|i| {
        let k = key(i);
        reader.pick(k.as_bytes()).unwrap().arm == decide(salt, threshold(DEFAULT_FRACTION), k.as_bytes())
    }));
    w.shutdown().unwrap();
}

#[test]
fn a_promotion_swaps_the_agents_and_every_count_of_the_old_ones_is_delivered() {
    let f = Fixture::new();
    let (w, v1) = f.serving_one();
    let v2 = f.challenge("two");
    w.refresh().unwrap();
    let mut reader = w.reader();
    let mut served = std::collections::BTreeMap::new();
    let mut serve = |reader: &mut Reader<String>, from: usize, to: usize| {
        for i in from..to {
            let v = reader.pick(key(i).as_bytes()).unwrap();
            record(v);
            *served.entry((variant_tag(v.arm).to_string(), v.version.to_string())).or_insert(0u64) += 1;
        }
    };
    serve(&mut reader, 0, 5_000);
    assert_eq!(f.loads.load(Ordering::Relaxed), 2);

    f.promote(v2);
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.challenger, r.changed), (Some(v2), None, true), "{r:?}");
    assert_eq!(f.loads.load(Ordering::Relaxed), 2, "the promoted challenger keeps its model");
    // The reader still holds the old serving (it has not picked since): its agents stay open.
    assert!(f.delivered().is_empty(), "no agent was shut down while a reader held it");
    serve(&mut reader, 5_000, 8_000);
    assert!(
        reader
            .serving()
            .control
            .as_ref()
            .is_some_and(|c| c.version == v2 && c.info.status == modelwatch_store::registry::Status::Control)
    );
    // The next refresh finds no reader on the old serving and shuts its agents down.
    w.refresh().unwrap();
    let (c1, ch2) = (("control".to_string(), v1.to_string()), ("challenger".to_string(), v2.to_string()));
    let delivered = f.delivered();
    assert_eq!(delivered.get(&c1), served.get(&c1), "the old control's counts, all delivered");
    assert_eq!(delivered.get(&ch2), served.get(&ch2), "the old challenger's counts, all delivered");
    assert!(served[&c1] > 0 && served[&ch2] > 0 && served[&("control".to_string(), v2.to_string())] == 3_000);
    w.shutdown().unwrap();
    assert_eq!(f.delivered(), served, "every prediction reached the sink under its variant and version");
}

#[test]
fn a_retired_agent_held_by_an_idle_reader_is_shut_down_after_the_grace() {
    let f = Fixture::new();
    let (w, _) = f.serving_one();
    let mut idle = w.reader();
    record(idle.pick(b"k").unwrap());
    let v2 = f.register("two");
    f.promote(v2);
    w.refresh().unwrap();
    for _ in 1..DEFAULT_GRACE {
        assert!(f.delivered().is_empty(), "held by the idle reader");
        w.refresh().unwrap();
    }
    assert!(f.delivered().is_empty(), "held by the idle reader");
    w.refresh().unwrap();
    assert_eq!(
        f.delivered().get(&("control".into(), "1".into())),
        Some(&1),
        "shut down {DEFAULT_GRACE} refreshes later"
    );
    assert_eq!(idle.pick(b"k").unwrap().version, v2);
    w.shutdown().unwrap();
}

#[test]
fn a_version_that_fails_to_load_keeps_the_old_serving_and_is_tried_again() {
    let f = Fixture::new();
    let (w, v1) = f.serving_one();
    let v2 = f.register("two");
    f.promote(v2);
    f.refuse.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        let r = w.refresh().unwrap();
        assert_eq!((r.control, r.changed), (Some(v1), false), "{r:?}");
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(
            r.failed[0].contains("control version 2") && r.failed[0].contains("refused by the test"),
            "{r:?}"
        );
    }
    assert_eq!(*w.reader().pick(b"k").unwrap().model, "one");
    let v3 = f.challenge("three");
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.challenger), (Some(v1), None), "a failed challenger takes no traffic: {r:?}");
    assert_eq!(r.failed.len(), 2, "{r:?}");
    f.refuse.store(false, Ordering::Relaxed);
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.challenger, r.changed, r.failed.len()), (Some(v2), Some(v3), true, 0), "{r:?}");
    assert_eq!(*w.reader().pick(key(0).as_bytes()).unwrap().model, "two");
    w.shutdown().unwrap();
}

#[test]
fn a_tampered_artifact_is_refused_and_the_old_control_keeps_serving() {
    let f = Fixture::new();
    let (w, v1) = f.serving_one();
    let v2 = f.register("two");
    let versions = f.dir.path().join("data/registry").join(MODEL).join("versions");
    let stored = std::fs::read_dir(&versions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{v2}-")))
        .unwrap();
    std::fs::write(stored.join("artifact/weights.txt"), "evil").unwrap();
    f.promote(v2);
    let loads = f.loads.load(Ordering::Relaxed);
    let r = w.refresh().unwrap();
    assert_eq!((r.control, r.changed), (Some(v1), false), "{r:?}");
    assert!(
        r.failed[0].contains("weights.txt") && r.failed[0].contains("changed after registration"),
        "{r:?}"
    );
    assert_eq!(f.loads.load(Ordering::Relaxed), loads, "a tampered artifact never reaches the loader");
    assert!(!w.config.scratch.join("v2/weights.txt").exists(), "nothing is fetched from it");
    w.shutdown().unwrap();
}

#[test]
fn a_fraction_outside_zero_to_one_or_nan_is_refused_naming_it() {
    let f = Fixture::new();
    for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        let mut config = WatcherConfig::new(MODEL, f.dir.path());
        config.fraction = bad;
        let agents: AgentFactory = Box::new(|_, _| Agent::builder(MODEL).build(MemorySink::new()));
        let loader: Loader<()> = Box::new(|_, _| Ok(()));
        let e = ModelWatcher::new(f.registry(), config, agents, loader).err().expect("refused");
        let msg = e.to_string();
        assert!(matches!(e, WatchError::Fraction { .. }), "{msg}");
        assert!(msg.contains(&bad.to_string()) && msg.contains(MODEL) && msg.contains("[0, 1]"), "{msg}");
    }
    for ok in [0.0, 1.0] {
        let mut config = WatcherConfig::new(MODEL, f.dir.path());
        config.fraction = ok;
        drop(f.watcher_with(config));
    }
}

#[test]
fn gauges_follow_the_versions_as_they_come_and_go() {
    let f = Fixture::new();
    let gauge_sink = MemorySink::new();
    let gauge_agent = Agent::builder("scorer")
        .clock(f.clock.clone())
        .background_flush(false)
        .build(gauge_sink.clone())
        .unwrap();
    let gauges = Arc::new(ModelGauges::new(gauge_agent.handle(), f.clock.clone()));
    let w = f.watcher().with_gauges(gauges);
    let loaded = || {
        gauge_agent.flush_now().unwrap();
        let snaps = gauge_sink.snapshots();
        snaps.last().unwrap().metrics.iter().find_map(|m| match (&*m.name == MODELS_LOADED, &m.value) {
            (true, MetricValue::Gauge(g)) => Some(*g),
            _ => None,
        })
    };
    let v1 = f.register("one");
    f.promote(v1);
    w.refresh().unwrap();
    assert_eq!(loaded(), Some(1.0));
    let v2 = f.challenge("two");
    w.refresh().unwrap();
    assert_eq!(loaded(), Some(2.0));
    f.promote(v2);
    w.refresh().unwrap();
    assert_eq!(loaded(), Some(1.0), "the old control unloaded");
    assert!(!w.config.scratch.join("v1").exists(), "its artifact is removed");
    w.shutdown().unwrap();
    assert_eq!(loaded(), Some(0.0));
}

#[test]
fn readers_on_many_threads_lose_no_prediction_while_the_control_moves_back_and_forth() {
    let f = Fixture::new();
    let (v1, v2) = (f.register("one"), f.register("two"));
    f.promote(v1);
    let mut config = WatcherConfig::new(MODEL, f.dir.path().join("scratch"));
    config.grace = u32::MAX; // retire only what no reader holds: exact under any schedule
    let w = Arc::new(f.watcher_with(config));
    w.refresh().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (w, stop) = (w.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reader = w.reader();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    record(reader.pick(key(t * 1_000_000 + n as usize).as_bytes()).unwrap());
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..12 {
        if round % 2 == 0 {
            f.promote(v2);
        } else {
            f.registry().rollback(MODEL, &Action::new("test", "back")).unwrap();
        }
        assert!(w.refresh().unwrap().changed);
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let recorded: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let w = Arc::into_inner(w).unwrap();
    w.shutdown().unwrap();
    let delivered: u64 = f.delivered().values().sum();
    assert_eq!(delivered, recorded, "every prediction recorded reached the sink");
    assert!(recorded > 0);
}
