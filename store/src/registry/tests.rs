use super::*;
use modelwatch_agent::{ManualClock, Timestamp};

const T0: u64 = 1_764_115_200;

struct Fixture {
    dir: tempfile::TempDir,
    art: tempfile::TempDir,
    clock: Arc<ManualClock>,
    reg: Registry,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let art = tempfile::tempdir().unwrap();
    std::fs::write(art.path().join("model.json"), b"{\"coef\":[1,2]}").unwrap();
    std::fs::create_dir(art.path().join("extra")).unwrap();
    std::fs::write(art.path().join("extra/vocab.txt"), b"a\nb\n").unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(T0)));
    let reg = Registry::open(RegistryConfig::new(dir.path(), clock.clone())).unwrap();
    Fixture { dir, art, clock, reg }
}

impl Fixture {
    fn register(&self) -> u32 {
        self.clock.advance(std::time::Duration::from_secs(60));
        self.reg.register(NewVersion::new("pii", "logistic", self.art.path())).unwrap().meta.version
    }
}

fn cli(reason: &str) -> Action {
    Action::new("cli", reason)
}

#[test]
fn promotions_move_control_and_latest_retire_the_old_control_and_are_logged() {
    let f = fixture();
    let (v1, v2) = (f.register(), f.register());
    assert_eq!((v1, v2), (1, 2));
    f.reg.promote("pii", v1, &cli("first")).unwrap();
    f.reg.set_challenger("pii", v2, &cli("try it")).unwrap();
    let e = f.reg.promote("pii", v2, &cli("better").event("evt-7")).unwrap();
    assert_eq!(
        (e.op, e.version, e.previous, e.event_id.as_deref()),
        (Op::Promote, Some(2), Some(1), Some("evt-7"))
    );
    let s = f.reg.state("pii").unwrap();
    assert_eq!(s.aliases(), &Aliases { control: Some(2), challenger: None, latest: Some(2) });
    assert_eq!(s.statuses(), vec![(1, Status::Retired), (2, Status::Control)]);
    let ops: Vec<_> = f.reg.log("pii").unwrap().iter().map(|e| (e.seq, e.op, e.version)).collect();
    assert_eq!(
        ops,
        vec![
            (1, Op::Register, Some(1)),
            (2, Op::Register, Some(2)),
            (3, Op::Promote, Some(1)),
            (4, Op::Challenger, Some(2)),
            (5, Op::Promote, Some(2)),
        ]
    );
    // Rollback goes back to version 1, recorded; a second has nowhere to go.
    let e = f.reg.rollback("pii", &cli("regression")).unwrap();
    assert_eq!((e.op, e.version, e.previous), (Op::Rollback, Some(1), Some(2)));
    assert_eq!(f.reg.alias("pii", Alias::Latest).unwrap(), Some(1));
    assert_eq!(f.reg.get("pii", 2).unwrap().status, Status::Retired);
    let err = f.reg.rollback("pii", &cli("again")).unwrap_err().to_string();
    assert!(err.contains("no previous control"), "{err}");
    assert_eq!(f.reg.log("pii").unwrap().len(), 6, "a refused operation records nothing");
}

#[test]
fn version_metadata_is_kept_as_registered() {
    let f = fixture();
    let mut new = NewVersion::new("pii", "command", f.art.path());
    new.training.training_window = TrainingWindow { from_ms: 10, to_ms: 20 };
    new.training.rows = 5_000;
    new.training.features = vec!["len".into(), "digits".into()];
    new.training.metrics.overall.insert("auc".into(), 0.91);
    new.training.metrics.segments.insert("email".into(), [("auc".to_string(), 0.88)].into());
    new.training.feature_importance = serde_json::json!({"len": 0.7});
    new.training.split = serde_json::json!({"seed": 7});
    new.training.event_id = Some("evt-1".into());
    new.trainer_output = Some("x".repeat(MAX_OUTPUT + 10));
    let v = f.reg.register(new).unwrap();
    let got = f.reg.get("pii", 1).unwrap();
    assert_eq!(got, v);
    assert_eq!(got.meta.created_at_ms, (T0 * 1000) as i64);
    assert_eq!(
        got.meta.training.artifact.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["extra/vocab.txt", "model.json"]
    );
    assert_eq!(got.meta.training.metrics.segments["email"]["auc"], 0.88);
    let log = f.reg.log("pii").unwrap();
    assert_eq!(log[0].output.as_ref().map(String::len), Some(MAX_OUTPUT));
    let mut orphan = NewVersion::new("pii", "command", f.art.path());
    orphan.training.parent = Some(9);
    let err = f.reg.register(orphan);
    assert!(matches!(err, Err(RegistryError::UnknownVersion { version: 9, .. })), "{err:?}");
}

#[test]
fn a_change_from_a_stale_read_is_a_conflict_naming_the_alias_and_model() {
    let f = fixture();
    let (v1, v2) = (f.register(), f.register());
    let seen = f.reg.state("pii").unwrap();
    let other = Registry::open(RegistryConfig::new(f.dir.path(), f.clock.clone())).unwrap();
    other.promote_from(&other.state("pii").unwrap(), v1, &cli("first")).unwrap();
    let err = f.reg.promote_from(&seen, v2, &cli("second")).unwrap_err();
    assert!(matches!(err, RegistryError::Conflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("control") && msg.contains("\"pii\"") && msg.contains("retry"), "{msg}");
    assert_eq!(f.reg.alias("pii", Alias::Control).unwrap(), Some(v1));
    assert_eq!(f.reg.log("pii").unwrap().len(), 3);
}

#[test]
fn an_entry_whose_file_was_never_written_is_read_from_the_head_and_written_by_the_next_change() {
    let f = fixture();
    f.register();
    f.register();
    // As if the process died between the head's rename and the entry's file.
    let last = f.dir.path().join("registry/pii/log/000000000002.json");
    std::fs::remove_file(&last).unwrap();
    assert_eq!(f.reg.log("pii").unwrap().len(), 2);
    f.reg.promote("pii", 2, &cli("go")).unwrap();
    assert!(last.exists(), "the next change writes the entry before it");
    let log = f.reg.log("pii").unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn status_rules_refuse_what_would_break_the_aliases() {
    let f = fixture();
    let (v1, v2) = (f.register(), f.register());
    f.reg.promote("pii", v1, &cli("first")).unwrap();
    let msg = f.reg.reject("pii", v1, &cli("no")).unwrap_err().to_string();
    assert!(msg.contains("version 1 is the control"), "{msg}");
    f.reg.set_challenger("pii", v2, &cli("try")).unwrap();
    f.reg.reject("pii", v2, &Action::new("auto", "AUC -0.01").event("evt-3")).unwrap();
    assert_eq!(f.reg.alias("pii", Alias::Challenger).unwrap(), None, "a rejected version is no challenger");
    let msg = f.reg.promote("pii", v2, &cli("anyway")).unwrap_err().to_string();
    assert!(msg.contains("rejected"), "{msg}");
    let msg = f.reg.set_status("pii", v1, Status::Canary, &cli("x")).unwrap_err().to_string();
    assert!(msg.contains("cannot go from control"), "{msg}");
    assert!(matches!(
        f.reg.promote("pii", 7, &cli("x")),
        Err(RegistryError::UnknownVersion { version: 7, .. })
    ));
    f.reg
        .set_gate_report("pii", v2, serde_json::json!({"verdict": "fail"}), &Action::new("auto", "gate"))
        .unwrap();
    assert_eq!(f.reg.get("pii", v2).unwrap().gate_report, Some(serde_json::json!({"verdict": "fail"})));
    let msg = f.reg.promote("pii", v1, &Action::new("bad\u{7}", "x")).unwrap_err().to_string();
    assert!(msg.contains("actor") && msg.contains("control character"), "{msg}");
}

#[test]
fn a_changed_or_missing_artifact_file_is_named() {
    let f = fixture();
    let v = f.register();
    let out = tempfile::tempdir().unwrap();
    f.reg.fetch_artifact("pii", v, out.path()).unwrap();
    assert_eq!(std::fs::read(out.path().join("extra/vocab.txt")).unwrap(), b"a\nb\n");
    let info = f.reg.get("pii", v).unwrap();
    let stored = f.dir.path().join(&info.meta.training.artifact.path);
    std::fs::write(stored.join("extra/vocab.txt"), b"a\nc\n").unwrap();
    let msg = f.reg.read_artifact("pii", v).unwrap_err().to_string();
    assert!(msg.contains("\"extra/vocab.txt\"") && msg.contains("changed after registration"), "{msg}");
    // Rewriting version.json to match the changed file is caught by the head's checksum.
    let meta_path = stored.parent().unwrap().join("version.json");
    let original = std::fs::read(&meta_path).unwrap();
    let mut meta: VersionMeta = serde_json::from_slice(&original).unwrap();
    meta.training.artifact.files[0].sha256 = sha256(b"a\nc\n");
    meta.training.artifact.sha256 = listing_sha256(&meta.training.artifact.files);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let msg = f.reg.read_artifact("pii", v).unwrap_err().to_string();
    assert!(msg.contains("\"version.json\" was changed after registration"), "{msg}");
    std::fs::write(&meta_path, original).unwrap();
    std::fs::write(stored.join("extra/vocab.txt"), b"a\nb\n").unwrap();
    f.reg.read_artifact("pii", v).unwrap();
    std::fs::remove_file(stored.join("model.json")).unwrap();
    let msg = f.reg.read_artifact("pii", v).unwrap_err().to_string();
    assert!(msg.contains("\"model.json\" is missing"), "{msg}");
}

#[test]
fn bad_names_and_artifact_directories_are_refused_before_anything_is_written() {
    let f = fixture();
    for bad in ["../x", "a/b", "a\u{0}b"] {
        let msg = f.reg.register(NewVersion::new(bad, "logistic", f.art.path())).unwrap_err().to_string();
        assert!(msg.contains("invalid model name"), "{msg}");
    }
    let mut backwards = NewVersion::new("pii", "logistic", f.art.path());
    backwards.training.training_window = TrainingWindow { from_ms: 20, to_ms: 10 };
    assert!(f.reg.register(backwards).unwrap_err().to_string().contains("ends before it starts"));
    let empty = tempfile::tempdir().unwrap();
    let msg = f.reg.register(NewVersion::new("pii", "logistic", empty.path())).unwrap_err().to_string();
    assert!(msg.contains("holds no files"), "{msg}");
    assert!(f.reg.models().unwrap().is_empty());
    assert!(matches!(f.reg.state("pii"), Err(RegistryError::UnknownModel { .. })));
}

#[test]
fn gate_reports_live_in_their_own_checksummed_documents_so_the_head_stays_small() {
    let f = fixture();
    let big: Vec<String> = (0..5_000).map(|i| format!("row {i}: precision held on segment {i}")).collect();
    for _ in 0..5 {
        let v = f.register();
        let report = serde_json::json!({"verdict": "pass", "version": v, "rows": big});
        assert!(serde_json::to_vec(&report).unwrap().len() > 150_000);
        f.reg.set_gate_report("pii", v, report, &Action::new("auto", "gate")).unwrap();
    }
    let head = std::fs::metadata(f.dir.path().join("registry/pii/head.json")).unwrap().len();
    assert!(head < 8 * 1024, "five 150 KB reports made a {head} B head");
    let got = f.reg.get("pii", 3).unwrap().gate_report.unwrap();
    assert_eq!((got["version"].as_u64(), got["rows"].as_array().unwrap().len()), (Some(3), 5_000));
    // Its document is tied to the head like the version's own.
    let vdir = f
        .dir
        .path()
        .join(&f.reg.get("pii", 3).unwrap().meta.training.artifact.path)
        .parent()
        .unwrap()
        .to_path_buf();
    let doc = std::fs::read_dir(&vdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("gate-report-"))
        .unwrap();
    let text = std::fs::read_to_string(&doc).unwrap();
    std::fs::write(&doc, text.replace("\"pass\"", "\"fail\"")).unwrap();
    let msg = f.reg.get("pii", 3).unwrap_err().to_string();
    assert!(msg.contains("gate-report-") && msg.contains("was changed after it was recorded"), "{msg}");
    f.reg.get("pii", 2).unwrap();
}

#[test]
fn every_head_carries_the_unique_id_of_the_write_that_made_it() {
    // What a writer whose reply was lost looks for (on S3 through a proxy that loses the
    // reply: tests/registry.rs).
    let f = fixture();
    f.register();
    let seen = f.reg.state("pii").unwrap();
    let mut head = seen.head.clone();
    head.seq += 1;
    head.last.seq = head.seq;
    f.reg.commit(Some(&seen), &mut head, "testing").unwrap();
    let id = head.write_id.clone();
    assert_eq!(f.reg.state("pii").unwrap().head.write_id, id, "the head carries its writer's ID");
    assert_ne!(nonce(), id, "IDs are unique");
}

/// `version.json` as commit 65414e8 wrote it, before a version's trained fields were one
/// struct ([`Training`]) shared by [`NewVersion`] and [`VersionMeta`]: the version
/// [`register_every_field`] makes. Registries on disk hold files like it, and
/// `docs/storage-format.md` documents its keys in this order.
const GOLDEN_META: &str = include_str!("testdata/version.json");
/// That version as [`VersionInfo`] serialised then (what `models list MODEL --format json`
/// prints for each version, pretty, in field order).
const GOLDEN_INFO: &str = include_str!("testdata/version-info.json");

/// Version 2 of `pii` with every trained field set (version 1 its parent), made the
/// challenger: what the golden files hold.
fn register_every_field(f: &Fixture) -> VersionInfo {
    let v1 = f.register();
    f.clock.advance(std::time::Duration::from_secs(60));
    let mut new = NewVersion::new("pii", "command", f.art.path());
    let t = &mut new.training;
    t.training_window = TrainingWindow { from_ms: 1_764_028_800_000, to_ms: 1_764_115_200_000 };
    t.rows = 5_000;
    t.features = vec!["len".into(), "digits".into()];
    t.metrics.overall.insert("auc".into(), 0.91);
    t.metrics.overall.insert("precision".into(), 0.8125);
    t.metrics.segments.insert("email".into(), [("auc".to_string(), 0.88)].into());
    t.feature_importance = serde_json::json!({"len": 0.7, "digits": {"mean": 0.1, "std": 0.02}});
    t.split = serde_json::json!({"seed": 7, "holdout": 0.25, "holdout_checksum": "abc"});
    t.parent = Some(v1);
    t.event_id = Some("pii-20261129T041000Z-1".into());
    new.actor = "cli".into();
    new.reason = "golden".into();
    let v = f.reg.register(new).unwrap();
    f.reg.set_challenger("pii", v.meta.version, &cli("try it")).unwrap();
    f.reg.get("pii", v.meta.version).unwrap()
}

#[test]
fn a_version_json_written_before_the_fields_were_shared_reads_and_writes_back_byte_for_byte() {
    let meta: VersionMeta = serde_json::from_str(GOLDEN_META).unwrap();
    assert_eq!(String::from_utf8(to_json(&meta)).unwrap(), GOLDEN_META, "same keys, same order, same values");
    let t = &meta.training;
    assert_eq!((meta.version, t.trainer_kind.as_str(), t.rows, t.parent), (2, "command", 5_000, Some(1)));
    assert_eq!(t.training_window, TrainingWindow { from_ms: 1_764_028_800_000, to_ms: 1_764_115_200_000 });
    assert_eq!((t.metrics.overall["precision"], t.metrics.segments["email"]["auc"]), (0.8125, 0.88));
    assert_eq!((t.split["seed"].as_u64(), t.event_id.as_deref()), (Some(7), Some("pii-20261129T041000Z-1")));
    assert_eq!(
        t.artifact.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["extra/vocab.txt", "model.json"]
    );
    let info: VersionInfo = serde_json::from_str(GOLDEN_INFO).unwrap();
    assert_eq!(info.meta, meta);
    assert_eq!(serde_json::to_string_pretty(&info).unwrap() + "\n", GOLDEN_INFO);
    // Written before versions had a correlation: none, and none written back.
    assert!(!GOLDEN_META.contains("correlation") && t.correlation.is_null());
}

#[test]
fn a_versions_correlation_is_stored_after_its_importance_and_read_back() {
    let f = fixture();
    let mut new = NewVersion::new("pii", "command", f.art.path());
    new.training.features = vec!["len".into(), "digits".into()];
    let correlation =
        serde_json::json!({"features": ["len", "digits"], "pearson": [0.25], "spearman": [null]});
    new.training.correlation = correlation.clone();
    let v = f.reg.register(new).unwrap();
    assert_eq!(f.reg.get("pii", v.meta.version).unwrap().meta.training.correlation, correlation);
    let path = f.dir.path().join(&v.meta.training.artifact.path).parent().unwrap().join("version.json");
    let written = std::fs::read_to_string(path).unwrap();
    let at = |k: &str| written.find(&format!("\"{k}\"")).unwrap();
    assert!(at("feature_importance") < at("correlation") && at("correlation") < at("split"), "{written}");
}

#[test]
fn a_version_registered_now_is_written_and_listed_as_before_and_an_old_file_reads_through_the_registry() {
    let f = fixture();
    let info = register_every_field(&f);
    // The version's directory name is random; everything else is as the golden files have it.
    let golden: VersionMeta = serde_json::from_str(GOLDEN_META).unwrap();
    let (ours, theirs) = (info.meta.training.artifact.path.as_str(), golden.training.artifact.path.as_str());
    assert_ne!(ours, theirs);
    let path = f.dir.path().join(ours).parent().unwrap().join("version.json");
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.replace(ours, theirs), GOLDEN_META);
    let listed = serde_json::to_string_pretty(&info).unwrap() + "\n";
    assert_eq!(listed.replace(ours, theirs), GOLDEN_INFO);
    // The old bytes, in this registry's directory, are what the registry reads back.
    std::fs::write(&path, GOLDEN_META.replace(theirs, ours)).unwrap();
    assert_eq!(f.reg.verify_artifact("pii", 2).unwrap(), info);
}
