//! The HTML reports in a real browser: `modelwatch report` on a store the demo wrote (and
//! `features_html` on a fixture written to the features report's contract), loaded in
//! headless Chromium. Each page must load without a console message, draw a mark per item
//! of its embedded data (a point per window, a bar per feature, a cell per pair, an event
//! per timeline entry), and embed exactly what the CLI prints for the same range. The
//! console capture is proved by a negative control that must be caught.
//!
//! Chromium comes from `MODELWATCH_CHROMIUM` (scripts/test installs Debian's and sets it),
//! else `chromium` on the PATH; without one these tests fail.

use crate::cli::{modelwatch, stderr, stdout};
use modelwatch::report::{audit_lane, bin_of, event_lane, features_html, series_name};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser, or a failure saying how to get one.
fn chromium() -> String {
    let path = std::env::var("MODELWATCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let ok = Command::new(&path).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Chromium at {path:?}: install Debian's `chromium` (scripts/test does) or set MODELWATCH_CHROMIUM"
    );
    path
}

/// A page as Chromium saw it: the DOM after load, and every console message.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

/// Loads `page` in headless Chromium with a fresh profile (TOOLING.md's flags), dumping
/// the DOM after load; console messages come from Chromium's log on stderr.
fn load(page: &Path) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let out = profile.path().join("dom.html");
    let err = profile.path().join("stderr.log");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish loading {} in 120 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "Chromium failed on {}: {log}", page.display());
    let console = log.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    Loaded { dom: std::fs::read_to_string(&out).unwrap(), console }
}

/// An element of the dumped DOM: its tag and attributes (entities decoded).
#[derive(Debug)]
struct Element {
    tag: String,
    attrs: BTreeMap<String, String>,
}

impl Element {
    fn get(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    fn is_mark(&self) -> bool {
        self.get("class").split_whitespace().any(|c| c == "mark")
    }
}

fn decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').filter(|&e| e <= 10);
        let (entity, len) = match end {
            Some(e) => (&tail[1..e], e + 1),
            None => ("", 0),
        };
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every start tag of a serialised DOM, with the text of each `<script>` (raw text: not
/// parsed for tags) beside it.
fn parse_dom(dom: &str) -> (Vec<Element>, Vec<(Element, String)>) {
    let b = dom.as_bytes();
    let (mut elements, mut scripts) = (Vec::new(), Vec::new());
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        i += off + 1;
        if dom[i..].starts_with("!--") {
            i += dom[i..].find("-->").map_or(dom.len() - i, |e| e + 3);
            continue;
        }
        if b.get(i).is_none_or(|c| !c.is_ascii_alphabetic()) {
            continue;
        }
        let name_end = i + dom[i..].find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap();
        let tag = dom[i..name_end].to_ascii_lowercase();
        i = name_end;
        let mut attrs = BTreeMap::new();
        loop {
            while b[i].is_ascii_whitespace() || b[i] == b'/' {
                i += 1;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let n_end =
                i + dom[i..].find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/').unwrap();
            let name = dom[i..n_end].to_ascii_lowercase();
            i = n_end;
            let mut value = String::new();
            if b[i] == b'=' {
                i += 1;
                if b[i] == b'"' || b[i] == b'\'' {
                    let q = b[i] as char;
                    let end = i + 1 + dom[i + 1..].find(q).unwrap();
                    value = decode(&dom[i + 1..end]);
                    i = end + 1;
                } else {
                    let end = i + dom[i..].find(|c: char| c.is_whitespace() || c == '>').unwrap();
                    value = decode(&dom[i..end]);
                    i = end;
                }
            }
            attrs.insert(name, value);
        }
        let e = Element { tag, attrs };
        if e.tag == "script" || e.tag == "style" {
            let close = format!("</{}", e.tag);
            let end = i + dom[i..].find(&close).unwrap();
            if e.tag == "script" {
                scripts.push((e, dom[i..end].to_string()));
            }
            i = end;
            continue;
        }
        elements.push(e);
    }
    (elements, scripts)
}

/// A page checked in the browser: its elements and the document it embeds.
struct Page {
    elements: Vec<Element>,
    data: Value,
}

impl Page {
    /// Loads `path`, asserting no console message, one script (the data block), nothing
    /// fetched from anywhere.
    fn open(path: &Path) -> Page {
        let loaded = load(path);
        assert!(loaded.console.is_empty(), "console messages on {}: {:#?}", path.display(), loaded.console);
        let (elements, scripts) = parse_dom(&loaded.dom);
        assert_eq!(
            scripts.len(),
            1,
            "only the data block is a script: {:?}",
            scripts.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        let (block, text) = &scripts[0];
        assert_eq!((block.get("type"), block.get("id")), ("application/json", "modelwatch-data"));
        for e in &elements {
            for a in ["src", "href"] {
                let v = e.get(a);
                assert!(
                    v.is_empty() || v.starts_with('#'),
                    "<{} {a}={v:?}>: a report fetches nothing",
                    e.tag
                );
            }
        }
        let data = serde_json::from_str(text).unwrap_or_else(|e| panic!("the data block: {e}"));
        Page { elements, data }
    }

    fn marks(&self, chart: &str) -> Vec<&Element> {
        self.elements.iter().filter(|e| e.is_mark() && e.get("data-chart") == chart).collect()
    }

    fn figure(&self, chart: &str) -> &Element {
        self.elements
            .iter()
            .find(|e| e.tag == "figure" && e.get("data-chart") == chart)
            .unwrap_or_else(|| panic!("no chart {chart}"))
    }
}

/// A number of a `data-*` attribute, read as the embedded JSON is read (serde_json's own
/// parser, which may differ from `str::parse` in the last bit): the same number drawn and
/// embedded reads back the same.
fn f64_of(s: &str) -> f64 {
    if s == "null" {
        f64::NAN
    } else {
        serde_json::from_str(s).unwrap_or_else(|_| panic!("{s:?} is not a number"))
    }
}

/// Points of a query answer's series (`SeriesJson`) by series name, values not null.
fn points(prefix: &str, series: &Value) -> BTreeMap<String, Vec<(String, f64)>> {
    series
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let pts = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| !p[1].is_null())
                .map(|p| (p[0].as_i64().unwrap().to_string(), p[1].as_f64().unwrap()))
                .collect();
            (series_name(prefix, &s["tags"]), pts)
        })
        .collect()
}

/// The marks of a line chart by series, as (data-x, data-y).
fn drawn_points(page: &Page, chart: &str) -> BTreeMap<String, Vec<(String, f64)>> {
    let mut out: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for m in page.marks(chart) {
        out.entry(m.get("data-series").to_string())
            .or_default()
            .push((m.get("data-x").to_string(), f64_of(m.get("data-y"))));
    }
    out
}

/// Runs a panel's command (`cli`, plus `--data`) and parses its JSON.
fn cli_json(cli: &Value, data: &Path) -> Value {
    let mut args: Vec<String> =
        cli.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    args.extend(["--data".into(), data.display().to_string()]);
    let o = modelwatch(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "modelwatch {args:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("modelwatch {args:?}: {e}"))
}

fn run_ok(args: &[&str]) -> String {
    let o = modelwatch(args);
    assert!(o.status.success(), "modelwatch {args:?}: {}", stderr(&o));
    stdout(&o)
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

#[test]
fn the_console_capture_catches_an_error_a_throw_and_a_blocked_script() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><p>control</p>\n<script>console.error('negative-control-error');\nthrow new Error('negative-control-throw');</script></body></html>",
    )
    .unwrap();
    let loaded = load(&bad);
    let console = loaded.console.join("\n");
    assert!(
        console.contains("negative-control-error") && console.contains("negative-control-throw"),
        "{console}"
    );
    // A script slipped into a report is blocked by its policy, and the block is logged.
    let mut page = modelwatch::report::html::Page::new("x");
    page.section("s", "s", "<script>document.title='ran'</script>");
    let injected = dir.path().join("injected.html");
    std::fs::write(&injected, page.finish(&Value::Null)).unwrap();
    let loaded = load(&injected);
    assert!(loaded.console.iter().any(|l| l.contains("Content Security Policy")), "{:?}", loaded.console);
    assert!(loaded.dom.contains("<title>x</title>"), "the script did not run");
    // And a quiet page is quiet.
    let quiet = dir.path().join("quiet.html");
    std::fs::write(&quiet, modelwatch::report::html::Page::new("quiet").finish(&Value::Null)).unwrap();
    assert!(load(&quiet).console.is_empty());
}

/// The demo's day ending 2026-11-29T04:10, then a forced retraining that passes a lenient
/// gate and a promotion by hand: the timeline has a drift trigger, a manual one, a
/// registration, the gate's entries and a promotion.
fn demo_store(data: &Path) {
    let d = data.to_str().unwrap();
    run_ok(&[
        "demo",
        "--no-loop",
        "--days",
        "1",
        "--end",
        "2026-11-29T04:10:00Z",
        "--seed",
        "7",
        "--data",
        d,
    ]);
    let config = data.parent().unwrap().join("modelwatch.toml");
    std::fs::write(
        &config,
        "[triggers]\nmodel = \"pii-confidence\"\n[gate]\nmin_auc_gain = -0.05\n[canary]\nenabled = false\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let now = ["--now", "2026-11-29T04:11:00Z"];
    run_ok(
        &[
            &[
                "retrain",
                "--force",
                "--reason",
                "report test",
                "--simulated-latency",
                "3,3",
                "--config",
                c,
                "--data",
                d,
            ][..],
            &now,
        ]
        .concat(),
    );
    run_ok(&[
        "models",
        "promote",
        "pii-confidence",
        "2",
        "--reason",
        "report test",
        "--data",
        d,
        "--now",
        "2026-11-29T04:12:00Z",
    ]);
}

#[test]
fn the_health_report_draws_what_the_cli_prints() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_store(&data);
    let d = data.to_str().unwrap();
    let out = dir.path().join("health.html");
    let (from, to) = ("2026-11-28T04:00:00Z", "2026-11-29T04:20:00Z");
    let reference = "2026-11-28T04:00:00Z..2026-11-28T12:00:00Z";
    run_ok(&[
        "report",
        "--data",
        d,
        "--from",
        from,
        "--to",
        to,
        "--reference",
        reference,
        "--output",
        out.to_str().unwrap(),
        "--now",
        "2026-11-29T05:00:00Z",
    ]);
    let page = Page::open(&out);
    let doc = &page.data;
    let panels = &doc["panels"];
    let windows: Vec<i64> = doc["windows"].as_array().unwrap().iter().map(|w| w.as_i64().unwrap()).collect();
    assert_eq!(windows.len(), 25, "hourly windows from 04:00 to 04:20 the next day");

    // Query panels: the CLI prints each answer; the chart draws a point per window with data.
    for id in [
        "latency",
        "error_rate",
        "predictions",
        "confidence_mean",
        "confidence",
        "model_age",
        "loaded_models",
    ] {
        let mut expected = BTreeMap::new();
        for q in panels[id]["queries"].as_array().unwrap() {
            assert_eq!(cli_json(&q["cli"], &data), q["series"], "{id}: {}", q["query"]);
            expected.extend(points(q["name"].as_str().unwrap(), &q["series"]));
        }
        assert!(!expected.is_empty(), "{id} has data");
        if ["latency", "error_rate", "predictions", "confidence_mean"].contains(&id) {
            let mut want = expected.clone();
            want.retain(|_, p| !p.is_empty());
            assert_eq!(drawn_points(&page, id), want, "{id}: the drawn points are the data's");
            assert_eq!(page.figure(id).get("data-series-drawn"), want.len().to_string());
        }
    }
    let control = &points("p50", &panels["latency"]["queries"][0]["series"])["p50 variant=control"];
    assert_eq!(control.len(), windows.len(), "the control serves in every window: a point per window");
    assert_eq!(control.iter().map(|p| p.0.parse::<i64>().unwrap()).collect::<Vec<_>>(), windows);

    // The confidence distribution: a cell per window and bin, and the histogram's bins
    // hold the stored buckets.
    let buckets = &panels["confidence"]["queries"][0]["series"][0];
    let n_windows = buckets["points"].as_array().unwrap().len();
    assert_eq!(page.marks("confidence").len(), 20 * n_windows);
    let mut bins = [0.0; 20];
    for w in buckets["buckets"].as_array().unwrap() {
        for b in w.as_array().unwrap() {
            bins[bin_of(b[0].as_f64().unwrap(), b[1].as_f64().unwrap())] += b[2].as_f64().unwrap();
        }
    }
    let hist = page.marks("confidence_histogram");
    assert_eq!(hist.len(), 20);
    for (m, want) in hist.iter().zip(bins) {
        assert_eq!(f64_of(m.get("data-y")), want, "bin from {}", m.get("data-x"));
    }
    let total: f64 = buckets["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert_eq!(bins.iter().sum::<f64>(), total, "every prediction counts in one bin");

    // Model age: a bar per series at its latest value; loaded models: a row per series.
    let ages = points("", &panels["model_age"]["queries"][0]["series"]);
    let bars = page.marks("model_age");
    assert_eq!(bars.len(), ages.len());
    for b in bars {
        assert_eq!(f64_of(b.get("data-y")), ages[b.get("data-x")].last().unwrap().1);
    }
    let table =
        page.elements.iter().position(|e| e.tag == "table" && e.get("class") == "loaded_models").unwrap();
    let rows = page.elements[table + 1..].iter().take_while(|e| e.tag != "table" && e.tag != "section");
    let loaded = points("", &panels["loaded_models"]["queries"][0]["series"]);
    assert_eq!(rows.filter(|e| e.tag == "tr").count(), 1 + loaded.len(), "a header and a row a series");

    // Drift: the document `drift` prints, a bar per feature, a point per window and feature.
    let drift = &panels["drift"];
    assert_eq!(cli_json(&drift["cli"], &data), drift["document"]);
    let verdicts = drift["document"]["feature_verdicts"].as_array().unwrap();
    assert!(verdicts.len() >= 16, "every feature and the confidence");
    let bars = page.marks("drift");
    assert_eq!(bars.len(), verdicts.len(), "a bar per feature");
    for v in verdicts {
        let bar = bars.iter().find(|b| b.get("data-x") == v["feature"].as_str().unwrap()).unwrap();
        let want = v["effect_value"].as_f64().unwrap_or(f64::NAN);
        let got = f64_of(bar.get("data-y"));
        assert!(got == want || (got.is_nan() && want.is_nan()), "{}: {got} vs {want}", v["feature"]);
    }
    assert_eq!(drawn_points(&page, "drift_trend"), points("", &drift["trend"]["series"]));

    // Quality: the document `quality` prints, two bars (realised, estimated) a segment.
    let quality = &panels["quality"];
    assert_eq!(cli_json(&quality["cli"], &data), quality["document"]);
    let groups = quality["document"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 6, "six segments");
    assert_eq!(page.marks("quality").len(), 2 * groups.len());
    let mut trend = points("", &quality["trend"]["series"]);
    trend.retain(|_, p| !p.is_empty());
    assert_eq!(drawn_points(&page, "quality_trend"), trend);

    // The timeline: the audit log and the trigger history as the CLI prints them (in the
    // range), an event mark for each entry in its lane.
    let (from_ms, to_ms) = (ms(from), ms(to));
    let log = cli_json(&serde_json::json!(["models", "log", "pii-confidence", "--format", "json"]), &data);
    let audit: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| (from_ms..to_ms).contains(&e["at_ms"].as_i64().unwrap()))
        .collect();
    assert_eq!(doc["timeline"]["audit"].as_array().unwrap().iter().collect::<Vec<_>>(), audit);
    let history = cli_json(&serde_json::json!(["triggers", "history", "--format", "json"]), &data);
    let fired: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| (from_ms..to_ms).contains(&r["event"]["fired_at_ms"].as_i64().unwrap()))
        .collect();
    assert_eq!(doc["timeline"]["triggers"].as_array().unwrap().iter().collect::<Vec<_>>(), fired);
    let mut lanes: BTreeMap<String, usize> = BTreeMap::new();
    for a in &audit {
        *lanes
            .entry(audit_lane(a["op"].as_str().unwrap(), a["actor"].as_str().unwrap()).into())
            .or_default() += 1;
    }
    *lanes.entry("trigger".into()).or_default() += fired.len();
    for e in doc["timeline"]["events"].as_array().unwrap() {
        if let Some(l) = event_lane(e["kind"].as_str().unwrap()) {
            *lanes.entry(l.into()).or_default() += 1;
        }
    }
    let mut drawn: BTreeMap<String, usize> = BTreeMap::new();
    for m in page.marks("timeline") {
        *drawn.entry(m.get("data-series").into()).or_default() += 1;
        assert!((from_ms..to_ms).contains(&m.get("data-x").parse().unwrap()));
    }
    assert_eq!(drawn, lanes);
    for lane in ["trigger", "retraining", "gate", "promotion"] {
        assert!(drawn.get(lane).is_some_and(|n| *n > 0), "{lane} in {drawn:?}");
    }
    assert!(fired.len() >= 2, "the demo's drift trigger and the forced one: {fired:?}");
}

#[test]
fn the_features_page_draws_its_document() {
    let doc: Value = serde_json::from_str(include_str!("report/features-report.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("features.html");
    std::fs::write(&path, features_html(&doc).unwrap()).unwrap();
    check_features_page(&doc, &path);
}

/// Loads a features page in Chromium and checks it draws `doc` chart by chart: a bar per
/// feature, a line point per version with a share, a cell per pair of each matrix, a drift
/// bar per feature and a point per window with a value.
pub(crate) fn check_features_page(doc: &Value, path: &Path) {
    let page = Page::open(path);
    assert_eq!(&page.data, doc, "the page embeds the document as given");
    let features: Vec<&str> =
        doc["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    // A bar per feature, at the report version's share (null: a bar of no data).
    let version = &doc["version"];
    let bars = page.marks("importance");
    assert_eq!(bars.len(), features.len());
    for imp in doc["importance"].as_array().unwrap() {
        let share = imp["by_version"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| &v["version"] == version)
            .map_or(f64::NAN, |v| v["share"].as_f64().unwrap_or(f64::NAN));
        let bar = bars.iter().find(|b| b.get("data-x") == imp["feature"].as_str().unwrap()).unwrap();
        let got = f64_of(bar.get("data-y"));
        assert!(got == share || (got.is_nan() && share.is_nan()), "{}: {got} vs {share}", imp["feature"]);
    }
    // A line per feature, a point per version with a share.
    let mut want: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for imp in doc["importance"].as_array().unwrap() {
        let pts: Vec<(String, f64)> = imp["by_version"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| !v["share"].is_null())
            .map(|v| (format!("{:?}", v["version"].as_f64().unwrap()), v["share"].as_f64().unwrap()))
            .collect();
        if !pts.is_empty() {
            want.insert(imp["feature"].as_str().unwrap().into(), pts);
        }
    }
    let mut got = drawn_points(&page, "importance_trend");
    for v in got.values_mut() {
        v.sort_by(|a, b| a.0.cmp(&b.0));
    }
    assert_eq!(got, want);
    // A cell per pair in both matrices, at the document's value.
    let c = &doc["correlation"];
    let names: Vec<&str> = c["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    for m in ["pearson", "spearman"] {
        let cells = page.marks(m);
        assert_eq!(cells.len(), names.len() * names.len(), "{m}");
        for cell in cells {
            let (i, j) = (
                names.iter().position(|n| *n == cell.get("data-y")).unwrap(),
                names.iter().position(|n| *n == cell.get("data-x")).unwrap(),
            );
            let want = c[m][i][j].as_f64().unwrap_or(f64::NAN);
            let got = f64_of(cell.get("data-v"));
            assert!(got == want || (got.is_nan() && want.is_nan()), "{m}[{i}][{j}]");
        }
    }
    // Drift: a bar per feature, a point per window with a value.
    assert_eq!(page.marks("drift").len(), doc["drift"].as_array().unwrap().len());
    let windows: usize = doc["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["windows"].as_array().unwrap().iter().filter(|w| !w["value"].is_null()).count())
        .sum();
    assert_eq!(page.marks("drift_trend").len(), windows);
}

/// A model, variant, segments and features named to break out of HTML, and a store of
/// three hours of them.
const HOSTILE_MODEL: &str = "m</script><script>alert(1)</script>\"'<!--";
const HOSTILE_SEGMENTS: [&str; 2] = ["seg\"<b>bold</b>", "</script><img src=x onerror=alert(2)>"];

fn hostile_store(dir: &Path) -> PathBuf {
    use modelwatch::{Agent, Feature, ManualClock, Prediction, Timestamp};
    use modelwatch_store::{EventRow, Rows, Store, StoreConfig};
    use std::sync::Arc;
    let data = dir.join("data");
    let store = Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(&data) }).unwrap());
    let t0 = ms("2026-11-28T00:00:00Z");
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(t0 as u64)));
    let agent = Agent::builder(HOSTILE_MODEL)
        .variant("<variant>")
        .segments(HOSTILE_SEGMENTS)
        .features([Feature::numeric("f</script>"), Feature::numeric("&amp;\"")])
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())
        .unwrap();
    let h = agent.handle();
    for i in 0..36i64 {
        for (k, seg) in HOSTILE_SEGMENTS.iter().enumerate() {
            for j in 0..20 {
                let conf = ((i * 7 + j * 13 + k as i64) % 100) as f64 / 100.0;
                h.record(
                    &Prediction::new(*seg, Duration::from_micros(500 + j as u64 * 10), conf)
                        .features(&[j as f64, (i % 5) as f64]),
                );
                h.feedback(*seg, conf, conf > 0.4);
            }
        }
        clock.set(Timestamp::from_millis((t0 + (i + 1) * 300_000) as u64));
        agent.flush_due().unwrap();
    }
    drop(agent);
    store
        .append(Rows {
            events: vec![EventRow {
                time_ms: t0 + 3_600_000,
                model: HOSTILE_MODEL.into(),
                version: "</title>".into(),
                variant: "<variant>".into(),
                kind: "model_loaded".into(),
                message: "<script>alert(3)</script>".into(),
            }],
            ..Rows::default()
        })
        .unwrap();
    store.flush().unwrap();
    data
}

#[test]
fn hostile_names_stay_text_in_the_report_and_the_features_page() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let out = dir.path().join("hostile.html");
    run_ok(&[
        "report",
        "--data",
        data.to_str().unwrap(),
        "--model",
        HOSTILE_MODEL,
        "--from",
        "2026-11-28T01:00:00Z",
        "--to",
        "2026-11-28T03:00:00Z",
        "--now",
        "2026-11-29T00:00:00Z",
        "--reference",
        "2026-11-28T00:00:00Z..2026-11-28T01:00:00Z",
        "--output",
        out.to_str().unwrap(),
    ]);
    let page = Page::open(&out);
    assert_eq!(page.data["model"], HOSTILE_MODEL, "the data block reads back the name as it is");
    // A model that is not there is an error naming those that are, not a page of "no data".
    let typo = modelwatch(&[
        "report",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "nope",
        "--from",
        "2026-11-28T01:00:00Z",
        "--to",
        "2026-11-28T03:00:00Z",
        "--now",
        "2026-11-29T00:00:00Z",
        "--output",
        dir.path().join("typo.html").to_str().unwrap(),
    ]);
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    assert!(stderr(&typo).contains("\"nope\"") && stderr(&typo).contains(HOSTILE_MODEL), "{}", stderr(&typo));
    assert!(!dir.path().join("typo.html").exists());
    // No element came from a name: no <b>, no <img>, the only script the data block.
    assert!(!page.elements.iter().any(|e| e.tag == "b" || e.tag == "img"));
    let segments: Vec<String> =
        page.marks("predictions").iter().map(|m| m.get("data-series").to_string()).collect();
    for s in HOSTILE_SEGMENTS {
        assert!(segments.contains(&format!("segment={s}")), "{segments:?}");
    }
    let drift: Vec<&str> = page.marks("drift").iter().map(|m| m.get("data-x")).collect();
    assert!(drift.contains(&"f</script>") && drift.contains(&"&amp;\""), "{drift:?}");
    assert_eq!(page.marks("timeline").len(), 1, "the hostile deployment event");
    // The same names through the features page.
    let mut doc: Value = serde_json::from_str(include_str!("report/features-report.json")).unwrap();
    doc["model"] = HOSTILE_MODEL.into();
    let text =
        serde_json::to_string(&doc).unwrap().replace("digit_ratio", "</script><script>alert(4)</script>");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let path = dir.path().join("features.html");
    std::fs::write(&path, features_html(&doc).unwrap()).unwrap();
    let page = Page::open(&path);
    assert_eq!(page.data, doc);
    assert!(page.marks("importance").iter().any(|m| m.get("data-x") == "</script><script>alert(4)</script>"));
}

#[test]
fn report_flags_and_missing_data_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let o = modelwatch(&["report", "--data", missing.to_str().unwrap(), "--now", "2026-11-29T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such data directory"), "{}", stderr(&o));
    let o = modelwatch(&[
        "report",
        "--data",
        missing.to_str().unwrap(),
        "--since",
        "fortnight",
        "--now",
        "2026-11-29T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--since"), "{}", stderr(&o));
    let o = modelwatch(&[
        "report",
        "--data",
        missing.to_str().unwrap(),
        "--reference",
        "now-1d..yesterday",
        "--now",
        "2026-11-29T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--reference"), "{}", stderr(&o));
    // An empty store still makes a page, every panel saying "no data".
    let data = dir.path().join("empty");
    modelwatch_store::Store::open(modelwatch_store::StoreConfig::new(&data)).unwrap();
    let o = modelwatch(&[
        "report",
        "--data",
        data.to_str().unwrap(),
        "--output",
        "-",
        "--now",
        "2026-11-29T00:00:00Z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = stdout(&o);
    assert!(html.starts_with("<!DOCTYPE html>") && html.matches("no data").count() >= 8, "{html}");
}
