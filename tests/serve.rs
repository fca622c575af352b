//! `modelwatch serve`'s routes, in process, with request bodies shaped as Grafana and the
//! simpod JSON datasource send them (specs/grafana-json-datasource/CONTRACT.md), checked
//! against the response shapes there and against what was recorded.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use modelwatch::serve::{AppState, ServeConfig, router};
use modelwatch_agent::layout::new_latency_histogram;
use modelwatch_agent::{Agent, Feature, ManualClock, Prediction, Timestamp};
use modelwatch_store::{EventRow, Rows, Store, StoreConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Start of the recorded hour (ms, on a whole hour, six hours ago).
    pub t0: i64,
    /// Latencies recorded per (variant, minute start), ns.
    pub latencies: HashMap<(String, i64), Vec<u64>>,
    /// Predictions and errors recorded per segment.
    pub predictions: HashMap<String, u64>,
    pub errors: u64,
}

/// The server's `now` in these tests: 2025-11-26T06:00:00Z, whatever the hour they run at.
pub const NOW: i64 = 1_764_136_800_000;

/// A clock stopped at [`NOW`].
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_millis(NOW as u64)))
}

/// Two variants on two instances, two segments, one hour of 10 s intervals starting six
/// hours before [`NOW`], every prediction labelled, a timeout now and then, and two events.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let t0 = NOW - 6 * 3_600_000;
    let store =
        Arc::new(Store::open(StoreConfig { background: false, ..StoreConfig::new(dir.path()) }).unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(t0 as u64)));
    let agents: Vec<(String, Agent)> = [("control", "1.4.0"), ("canary", "1.5.0")]
        .iter()
        .map(|(v, version)| {
            let a = Agent::builder("pii")
                .version(version)
                .variant(v)
                .instance(&format!("host-{v}"))
                .segments(["email", "phone"])
                .features([Feature::numeric("len")])
                .clock(clock.clone())
                .background_flush(false)
                .build(store.clone())
                .unwrap();
            a.handle().model_loaded();
            (v.to_string(), a)
        })
        .collect();
    let mut f = Fixture { dir, t0, latencies: HashMap::new(), predictions: HashMap::new(), errors: 0 };
    for i in 0..360i64 {
        let t = t0 + i * 10_000;
        for (vi, (v, a)) in agents.iter().enumerate() {
            let h = a.handle();
            for (k, seg) in ["email", "phone"].iter().enumerate() {
                for j in 0..(1 + (i as usize + k + vi) % 3) {
                    let lat = 200_000 + ((i as u64 * 7919 + j as u64 * 104_729 + k as u64 * 31) % 3_000_000);
                    let conf = ((i as usize * 37 + j * 11 + k * 5) % 100) as f64 / 100.0;
                    h.record(
                        &Prediction::new(*seg, Duration::from_nanos(lat), conf).features(&[j as f64 + 1.0]),
                    );
                    // Every prediction labelled, one in five wrongly: the estimate has a
                    // calibration to rest on.
                    h.feedback(*seg, conf, (conf >= 0.5) != (j % 5 == 4));
                    f.latencies.entry((v.clone(), t - t % 60_000)).or_default().push(lat);
                    *f.predictions.entry(seg.to_string()).or_default() += 1;
                }
            }
            if i % 50 == 7 {
                h.error("email", h.error_kind("timeout"));
                f.errors += 1;
            }
        }
        clock.set(Timestamp::from_millis((t + 10_000) as u64));
        for (_, a) in &agents {
            a.flush_due().unwrap();
        }
    }
    drop(agents);
    let event = |t: i64, kind: &str, message: &str| EventRow {
        time_ms: t,
        model: "pii".into(),
        version: "1.5.0".into(),
        variant: "canary".into(),
        kind: kind.into(),
        message: message.into(),
    };
    store
        .append(Rows {
            events: vec![
                event(t0 + 600_000, "model_loaded", "canary up"),
                event(t0 + 1_800_000, "retrain", "drift"),
            ],
            ..Rows::default()
        })
        .unwrap();
    store.flush().unwrap();
    store.maintain(NOW).unwrap();
    f
}

fn app(f: &Fixture, config: ServeConfig) -> axum::Router {
    let store = Arc::new(Store::open_read_only(StoreConfig::new(f.dir.path())).unwrap());
    router(AppState::new(store, config, clock()))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Option<String>) -> (StatusCode, Value) {
    call_with(app, method, path, body, &[]).await
}

async fn call_with(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 26).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// A `/grafana/query` of `targets` over `[from, to)` at 1-minute intervals, 500 points at most.
async fn panel_query(
    app: &axum::Router,
    from: i64,
    to: i64,
    targets: Value,
    extra: Value,
) -> (StatusCode, Value) {
    call(app, "POST", "/grafana/query", Some(grafana_query(from, to, 60_000, 500, targets, extra))).await
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A `/query` body as Grafana 10/11 sends it through the plugin (CONTRACT.md 1.4).
pub(crate) fn grafana_query(
    from: i64,
    to: i64,
    interval_ms: i64,
    max_points: i64,
    targets: Value,
    extra: Value,
) -> String {
    let mut body = json!({
        "app": "dashboard",
        "requestId": "SQR101",
        "timezone": "browser",
        "panelId": 2,
        "panelName": "p95 latency",
        "panelPluginId": "timeseries",
        "dashboardUID": "ml-health",
        "range": { "from": iso(from), "to": iso(to), "raw": { "from": "now-6h", "to": "now" } },
        "rangeRaw": { "from": "now-6h", "to": "now" },
        "timeInfo": "",
        "interval": format!("{}s", interval_ms / 1000),
        "intervalMs": interval_ms,
        "maxDataPoints": max_points,
        "startTime": NOW,
        "cacheTimeout": null,
        "queryCachingTTL": null,
        "liveStreaming": false,
        "targets": targets,
        "scopedVars": {
            "__interval": { "text": "1m", "value": "1m" },
            "__interval_ms": { "text": "60000", "value": 60000 }
        },
        "filters": []
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body.to_string()
}

pub(crate) fn target(ref_id: &str, target: &str, payload: Value) -> Value {
    json!({ "refId": ref_id, "datasource": { "type": "simpod-json-datasource", "uid": "P0A2B3C4" },
            "editorMode": "builder", "target": target, "payload": payload })
}

fn field<'a>(frame: &'a Value, name: &str) -> &'a Vec<Value> {
    frame["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {frame}"))["values"]
        .as_array()
        .unwrap()
}

#[test]
fn test_connection_discovery_and_variables_answer_the_contract_shapes() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    rt().block_on(async {
        let (s, v) = call(&app, "GET", "/grafana/", None).await;
        assert_eq!((s, v), (StatusCode::OK, json!("ok")));

        // Code mode sends `{}`; builder mode the current metric and payload.
        for body in [json!({}), json!({"metric": "latency", "payload": {"model": "pii"}})] {
            let (s, v) = call(&app, "POST", "/grafana/metrics", Some(body.to_string())).await;
            assert_eq!(s, StatusCode::OK);
            let metrics = v.as_array().unwrap();
            let latency = metrics.iter().find(|m| m["value"] == "latency").expect("latency listed");
            assert!(latency["label"].is_string());
            let names: Vec<&str> =
                latency["payloads"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
            for n in ["statistic", "model", "version", "variant", "segment", "by", "format"] {
                assert!(names.contains(&n), "{n} in {names:?}");
            }
            for p in latency["payloads"].as_array().unwrap() {
                assert!(["select", "multi-select", "input", "textarea"].contains(&p["type"].as_str().unwrap()));
            }
            let feature = metrics.iter().find(|m| m["value"] == "feature").unwrap();
            assert!(feature["payloads"].as_array().unwrap().iter().any(|p| p["name"] == "feature"));
            assert!(metrics.iter().any(|m| m["value"] == "predictions"));
            assert!(metrics.iter().any(|m| m["value"] == "events"));
        }

        let body = json!({"metric": "latency", "payload": {"model": "pii", "variant": "canary"}, "name": "version"});
        let (s, v) = call(&app, "POST", "/grafana/metric-payload-options", Some(body.to_string())).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!([{"label": "1.5.0", "value": "1.5.0"}]), "narrowed by the other payload fields");
        let body = json!({"metric": "latency", "payload": {}, "name": "segment"});
        let (_, v) = call(&app, "POST", "/grafana/metric-payload-options", Some(body.to_string())).await;
        assert_eq!(v, json!([{"label": "email", "value": "email"}, {"label": "phone", "value": "phone"}]));

        // Query variables, "Raw JSON" off and on (issue #231's wire shape).
        let range = json!({"from": iso(f.t0 - 3_600_000), "to": iso(NOW), "raw": {"from": "now-7d", "to": "now"}});
        let (s, v) =
            call(&app, "POST", "/grafana/variable", Some(json!({"payload": {"target": "variants"}, "range": range}).to_string()))
                .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, json!([{"__text": "canary", "__value": "canary"}, {"__text": "control", "__value": "control"}]));
        let body = json!({"payload": {"target": "label_values(latency, version)", "variant": "control"}, "range": range});
        let (_, v) = call(&app, "POST", "/grafana/variable", Some(body.to_string())).await;
        assert_eq!(v, json!([{"__text": "1.4.0", "__value": "1.4.0"}]));
        let (s, v) =
            call(&app, "POST", "/grafana/variable", Some(json!({"payload": {"target": "colours"}}).to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["message"].as_str().unwrap().contains("colours"));

        // Ad hoc filter keys and values: older Grafana posts nothing, newer the options object.
        for body in [None, Some("{}".to_string()), Some(json!({"filters": [], "timeRange": range}).to_string())] {
            let (s, v) = call(&app, "POST", "/grafana/tag-keys", body).await;
            assert_eq!(s, StatusCode::OK);
            let keys: Vec<&str> = v.as_array().unwrap().iter().map(|k| k["text"].as_str().unwrap()).collect();
            for k in ["model", "variant", "segment", "feature", "kind"] {
                assert!(keys.contains(&k), "{k} in {keys:?}");
            }
        }
        let (_, v) = call(&app, "POST", "/grafana/tag-values", Some(json!({"key": "variant"}).to_string())).await;
        assert_eq!(v, json!([{"text": "canary"}, {"text": "control"}]));
        let body = json!({"key": "version", "filters": [{"key": "variant", "operator": "=", "value": "canary"}]});
        let (_, v) = call(&app, "POST", "/grafana/tag-values", Some(body.to_string())).await;
        assert_eq!(v, json!([{"text": "1.5.0"}]));
    });
}

#[test]
fn panels_get_exact_quantiles_counts_and_rates_cut_to_max_data_points() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        // A code-mode expression and a builder target with a multi-value payload.
        let targets = json!([
            { "refId": "A", "editorMode": "code", "target": "p95(latency{model=\"pii\"}) by (variant)", "payload": {} },
            target("B", "latency", json!({"statistic": "count", "variant": ["control", "canary"], "by": "segment"})),
            target("C", "predictions", json!({"statistic": "rate", "segment": "(email|phone)"})),
            { "refId": "D", "target": "latency", "hide": true },
        ]);
        let (s, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 60_000, 1_000, targets, json!({})))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let frames = v.as_array().expect("a top-level JSON array");
        assert_eq!(frames.iter().filter(|fr| fr["refId"] == "D").count(), 0, "hidden targets are dropped");

        // A: p95 per variant and minute equals hdrhistogram's over the merged raw values, in ms.
        let a: Vec<&Value> = frames.iter().filter(|fr| fr["refId"] == "A").collect();
        assert_eq!(a.len(), 2);
        for frame in a {
            let variant = frame["fields"][1]["labels"]["variant"].as_str().unwrap();
            assert_eq!(frame["fields"][1]["config"]["unit"], "ms");
            let times = field(frame, "Time");
            let values = field(frame, "Value");
            assert_eq!(times.len(), 60, "one point per minute");
            for (t, v) in times.iter().zip(values) {
                let mut h = new_latency_histogram();
                for x in &f.latencies[&(variant.to_string(), t.as_i64().unwrap())] {
                    h.record(*x).unwrap();
                }
                let expected = h.value_at_quantile(0.95) as f64 / 1e6;
                let got = v.as_f64().unwrap();
                assert!((got - expected).abs() <= expected * 1e-9, "{variant} at {t}: {got} vs {expected}");
            }
        }
        // B: counts per segment add up to what was recorded.
        for frame in frames.iter().filter(|fr| fr["refId"] == "B") {
            let seg = frame["fields"][1]["labels"]["segment"].as_str().unwrap();
            let total: f64 = field(frame, "Value").iter().map(|v| v.as_f64().unwrap()).sum();
            assert_eq!(total as u64, f.predictions[seg], "{seg}");
        }
        // C: a rate is the count per second of each window.
        let c = frames.iter().find(|fr| fr["refId"] == "C").unwrap();
        let total: f64 = field(c, "Value").iter().map(|v| v.as_f64().unwrap() * 60.0).sum();
        assert!((total - f.predictions.values().sum::<u64>() as f64).abs() < 1e-6);

        // maxDataPoints cuts the series: 6 h at most 100 points -> 5 min windows.
        let targets = json!([target("A", "latency", json!({"statistic": "p99"}))]);
        let body = grafana_query(from - 3_600_000, to + 7_200_000, 10_000, 100, targets, json!({}));
        let (_, v) = call(&app, "POST", "/grafana/query", Some(body)).await;
        let times = field(&v[0], "Time");
        assert!(times.len() <= 101 && times.len() >= 12, "{} points", times.len());
        assert_eq!(times[1].as_i64().unwrap() - times[0].as_i64().unwrap(), 300_000);
    });
}

/// Targets of one selector with different functions (a panel's p50, p95 and p99, here with
/// a count, a mean and a table among them, and a target of another selector between them)
/// are evaluated together; each target's frames are what the target alone gets, value for
/// value, with the answer cache off and on.
#[test]
fn targets_of_one_selector_are_answered_together_as_each_alone() {
    let f = fixture();
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    let targets = [
        target("A", "latency", json!({"statistic": "p50", "by": "variant"})),
        target("B", "latency", json!({"statistic": "count", "by": "segment"})),
        target("C", "latency", json!({"statistic": "p95", "by": "variant"})),
        json!({ "refId": "D", "editorMode": "code", "target": "p99(latency) by (variant)", "payload": {} }),
        target("E", "latency", json!({"statistic": "mean", "by": "variant", "format": "table"})),
        target("F", "latency", json!({"statistic": "count", "by": "variant"})),
    ];
    for cache_answers in [false, true] {
        let app = app(&f, ServeConfig { cache_answers, ..ServeConfig::default() });
        rt().block_on(async {
            let (s, all) = panel_query(&app, from, to, json!(targets), json!({})).await;
            assert_eq!(s, StatusCode::OK, "{all}");
            let all = all.as_array().unwrap();
            assert_eq!(all.len(), 2 + 2 + 2 + 2 + 2 + 2, "two series per target: {all:?}");
            for t in &targets {
                let r = t["refId"].as_str().unwrap();
                let (s, alone) = panel_query(&app, from, to, json!([t]), json!({})).await;
                assert_eq!(s, StatusCode::OK, "{alone}");
                let together: Vec<&Value> = all.iter().filter(|fr| fr["refId"] == r).collect();
                let alone: Vec<&Value> = alone.as_array().unwrap().iter().collect();
                assert_eq!(together, alone, "target {r}, cache {cache_answers}");
                assert!(field(alone[0], "Value").iter().any(|v| v.as_f64().unwrap() > 0.0), "{r}");
            }
        });
    }
}

#[test]
fn a_shared_target_is_refused_by_its_windows_as_it_would_be_alone() {
    // Six hours at a minute step: 361 windows, data in the first hour only (60 points a
    // target). Under 400 points, A spends 60 and leaves 340: B's 361 windows are refused
    // alone, though its 60 points would fit. Shared with A, B must be refused the same.
    let f = fixture();
    let (from, to) = (f.t0, f.t0 + 6 * 3_600_000);
    let code = |r: &str, e: &str| json!({ "refId": r, "editorMode": "code", "target": e, "payload": {} });
    let limits = modelwatch_query::Limits { max_series: 1_000, max_points: 400 };
    let app = app(&f, ServeConfig { limits, cache_answers: false, ..ServeConfig::default() });
    rt().block_on(async {
        let ask = |targets: Value| {
            call(
                &app,
                "POST",
                "/grafana/query",
                Some(grafana_query(from, to, 60_000, 10_000, targets, json!({}))),
            )
        };
        let (s, alone) =
            ask(json!([code("A", "p50(latency)"), code("B", "p99(latency{model!=\"zz\"})")])).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{alone}");
        assert!(alone["message"].as_str().unwrap().contains("361 windows, at most 340"), "{alone}");
        let (s, shared) = ask(json!([code("A", "p50(latency)"), code("B", "p99(latency)")])).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{shared}");
        // The same refusal, naming the target as it was written.
        let alone = alone["message"].as_str().unwrap().replace("{model!=\"zz\"}", "");
        assert_eq!(shared["message"].as_str().unwrap(), alone);
        // Each alone fits.
        let (s, v) = ask(json!([code("B", "p99(latency)")])).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    });
}

#[test]
fn heatmaps_tables_annotations_filters_and_error_ratios() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        let targets = json!([target("H", "confidence", json!({"statistic": "buckets", "format": "heatmap", "bins": "10"}))]);
        let (s, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 600_000, 1_000, targets, json!({})))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let h = &v[0];
        assert_eq!(h["meta"]["type"], "heatmap-rows");
        let fields = h["fields"].as_array().unwrap();
        assert_eq!(fields[0]["type"], "time");
        assert_eq!(fields.len(), 11, "time and ten rows");
        let bounds: Vec<f64> = fields[1..].iter().map(|f| f["name"].as_str().unwrap().parse().unwrap()).collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]) && bounds[9] == 1.0, "{bounds:?}");
        // Per window (not cumulative) the rows add up to the predictions of the window.
        let windows = field(h, "Time").len();
        let mut total = 0;
        for w in 0..windows {
            total += fields[1..].iter().map(|f| f["values"][w].as_u64().unwrap()).sum::<u64>();
        }
        assert_eq!(total, f.predictions.values().sum::<u64>());

        // Table format: time, the group labels, the value.
        let targets = json!([target("T", "latency", json!({"statistic": "count", "by": ["variant"], "format": "table"}))]);
        let (_, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 3_600_000, 10, targets, json!({})))).await;
        let names: Vec<&str> = v[0]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Time", "variant", "Value"]);

        // Annotations are a `/query` target with refId "Anno".
        let targets = json!([{ "refId": "Anno", "target": "events", "payload": {"kind": "retrain"} }]);
        let (_, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 60_000, 1_000, targets, json!({})))).await;
        assert_eq!(field(&v[0], "time"), &vec![json!(f.t0 + 1_800_000)]);
        assert_eq!(field(&v[0], "title"), &vec![json!("retrain")]);
        assert!(field(&v[0], "text")[0].as_str().unwrap().contains("drift"));

        // Ad hoc filters, current (`filters`) and older (`adhocFilters`) names, and group-by keys.
        let count_of = |v: &Value| -> f64 {
            v.as_array().unwrap().iter().flat_map(|fr| field(fr, "Value").clone()).map(|x| x.as_f64().unwrap()).sum()
        };
        for name in ["filters", "adhocFilters"] {
            let targets = json!([target("A", "latency", json!({"statistic": "count"}))]);
            let extra = json!({ name: [{"key": "segment", "operator": "=", "value": "phone"}], "groupByKeys": ["variant"] });
            let (s, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 60_000, 1_000, targets, extra))).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(v.as_array().unwrap().len(), 2, "grouped by variant");
            assert_eq!(count_of(&v) as u64, f.predictions["phone"], "{name}");
        }

        // The error ratio: errors / (predictions + errors).
        let targets = json!([target("E", "error_ratio", json!({}))]);
        let (_, v) = call(&app, "POST", "/grafana/query", Some(grafana_query(from, to, 3_600_000, 10, targets, json!({})))).await;
        let ratio = field(&v[0], "Value")[0].as_f64().unwrap();
        let n = f.predictions.values().sum::<u64>() as f64;
        assert!((ratio - f.errors as f64 / (n + f.errors as f64)).abs() < 1e-12, "{ratio}");
    });
}

#[test]
fn bad_requests_get_a_4xx_with_a_json_message_naming_the_problem() {
    let f = fixture();
    let config = ServeConfig {
        max_body_bytes: 4_096,
        limits: modelwatch_query::Limits { max_series: 3, max_points: 100_000 },
        ..ServeConfig::default()
    };
    let app = app(&f, config);
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        let cases: Vec<(String, StatusCode, &str)> = vec![
            ("{\"range\": ".into(), StatusCode::BAD_REQUEST, "malformed JSON body"),
            (json!({"targets": []}).to_string(), StatusCode::BAD_REQUEST, "range.from"),
            (
                grafana_query(
                    from,
                    to,
                    60_000,
                    100,
                    json!([target("A", "p95(latency", json!({}))]),
                    json!({}),
                ),
                StatusCode::BAD_REQUEST,
                "position",
            ),
            (
                grafana_query(
                    from,
                    to,
                    60_000,
                    100,
                    json!([target("A", "latency", json!({"statistic": "p95"}))]),
                    json!({"filters": [{"key": "segment", "operator": "<", "value": "3"}]}),
                ),
                StatusCode::BAD_REQUEST,
                "operator \"<\"",
            ),
            (
                grafana_query(
                    from,
                    to,
                    60_000,
                    100,
                    json!([target("A", "predictions", json!({"statistic": "p95"}))]),
                    json!({}),
                ),
                StatusCode::BAD_REQUEST,
                "needs a distribution",
            ),
            (
                grafana_query(
                    from,
                    to,
                    60_000,
                    100,
                    json!([target("A", "latency", json!({"statistic": "count", "by": "variant,segment"}))]),
                    json!({}),
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
                "at most 3",
            ),
            (
                json!({"range": {"from": "yesterday", "to": "now"}, "targets": []}).to_string(),
                StatusCode::BAD_REQUEST,
                "yesterday",
            ),
            (
                format!("{{\"pad\": \"{}\"}}", "x".repeat(10_000)),
                StatusCode::PAYLOAD_TOO_LARGE,
                "length limit",
            ),
        ];
        for (body, status, needle) in cases {
            let (s, v) = call(&app, "POST", "/grafana/query", Some(body.clone())).await;
            assert_eq!(s, status, "{v} for {}", &body[..body.len().min(200)]);
            let m = v["message"].as_str().unwrap_or_else(|| panic!("a JSON message, got {v}"));
            assert!(m.contains(needle), "{m:?} should name {needle:?}");
        }
        let (s, v) = call(&app, "GET", "/api/v1/query?query=count(latency)&from=now-500d", None).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(v["message"].as_str().unwrap().contains("days"));
        let (s, v) = call(&app, "GET", "/nowhere", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(v["message"].is_string());
        // Every answer is JSON with the status a client can act on, whatever it sends.
        let hostile = [
            ("GET", "/api/v1/triggers/fire".to_string(), StatusCode::METHOD_NOT_ALLOWED, "method"),
            ("POST", "/api/v1/triggers/ack/%FF%FE".to_string(), StatusCode::BAD_REQUEST, "UTF-8"),
            ("GET", "/api/v1/labels/%FF/values".to_string(), StatusCode::BAD_REQUEST, "UTF-8"),
            (
                "GET",
                "/api/v1/query?query=count(latency)&from=-9223372036854775808&to=9223372036854775807".to_string(),
                StatusCode::BAD_REQUEST,
                "1970 to 2500",
            ),
            ("GET", "/api/v1/quality?from=-9223372036854775808".to_string(), StatusCode::BAD_REQUEST, "out of range"),
            ("GET", "/api/v1/drift?reference=1..2&current=now-99999999999d..now".to_string(), StatusCode::BAD_REQUEST, "current"),
        ];
        for (method, path, status, needle) in hostile {
            let (s, v) = call(&app, method, &path, None).await;
            assert_eq!(s, status, "{method} {path}: {v}");
            let m = v["message"].as_str().unwrap_or_else(|| panic!("{path}: a JSON message, got {v}"));
            assert!(m.contains(needle), "{path}: {m:?} should name {needle:?}");
        }
        // Steps and point counts from a hostile panel neither overflow nor panic.
        for (interval, points) in [(1e300, 1e300), (-1.0, 0.0), (f64::MAX, 1.0)] {
            let body = json!({"range": {"from": iso(from), "to": iso(to)}, "intervalMs": interval, "maxDataPoints": points,
                              "targets": [target("A", "latency", json!({"statistic": "p95"}))]});
            let (s, v) = call(&app, "POST", "/grafana/query", Some(body.to_string())).await;
            assert_eq!(s, StatusCode::OK, "intervalMs {interval}, maxDataPoints {points}: {v}");
        }
        let extreme = json!({"range": {"from": "-9223372036854775808", "to": "9223372036854775807"}, "targets": []});
        let (s, v) = call(&app, "POST", "/grafana/query", Some(extreme.to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    });
}

#[test]
fn a_request_past_the_time_limit_is_answered_with_an_error_not_left_hanging() {
    let f = fixture();
    let app = app(&f, ServeConfig { timeout: Duration::ZERO, ..ServeConfig::default() });
    rt().block_on(async {
        let targets = json!([target("A", "latency", json!({"statistic": "p95"}))]);
        let started = std::time::Instant::now();
        let (s, v) = call(
            &app,
            "POST",
            "/grafana/query",
            Some(grafana_query(f.t0, f.t0 + 3_600_000, 60_000, 100, targets, json!({}))),
        )
        .await;
        // 503, as Prometheus answers a timed-out query: the request itself was acceptable.
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["message"].as_str().unwrap().contains("ran past the server's"), "{v}");
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn a_timed_out_evaluation_keeps_its_slot_until_its_work_stops() {
    use modelwatch::serve::ApiError;
    use std::sync::Mutex;
    use std::time::Instant;
    let f = fixture();
    let store = Arc::new(Store::open_read_only(StoreConfig::new(f.dir.path())).unwrap());
    let state = AppState::new(store, ServeConfig { max_concurrent: 1, ..ServeConfig::default() }, clock());
    rt().block_on(async {
        let t0 = Instant::now();
        // Work that cannot be interrupted for 600 ms (a big serialisation, say), past a
        // 100 ms deadline: the client hears of the timeout at once...
        let r = state
            .run_limited(t0 + Duration::from_millis(100), |_| {
                std::thread::sleep(Duration::from_millis(600));
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(ApiError::TimedOut(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_millis(450), "answered after {:?}", t0.elapsed());
        // ...but its slot is held until the work stops: the next evaluation starts only then.
        let started = Arc::new(Mutex::new(None));
        let s = started.clone();
        state
            .run_limited(Instant::now() + Duration::from_secs(10), move |_| {
                *s.lock().unwrap() = Some(Instant::now());
                Ok(())
            })
            .await
            .unwrap();
        let waited = started.lock().unwrap().unwrap() - t0;
        assert!(waited >= Duration::from_millis(600), "the second evaluation started after {waited:?}");
        // Work that checks the deadline (as the engine does while it reads) stops soon after
        // it, and frees its slot then.
        let t1 = Instant::now();
        let r: Result<(), ApiError> = state
            .run_limited(t1 + Duration::from_millis(100), |_| {
                loop {
                    modelwatch_query::cancel::check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .await;
        assert!(matches!(r, Err(ApiError::TimedOut(_))), "{r:?}");
        state.run_limited(Instant::now() + Duration::from_secs(10), |_| Ok(())).await.unwrap();
        assert!(t1.elapsed() < Duration::from_secs(2), "the cancelled work held its slot {:?}", t1.elapsed());
        assert_eq!(state.evaluations(), (0, 1), "never more than max_concurrent at once");
    });
}

#[test]
fn one_request_is_bounded_as_a_whole_in_targets_series_points_and_bytes() {
    let f = fixture();
    let config = ServeConfig {
        max_targets: 10,
        limits: modelwatch_query::Limits { max_series: 1_000, max_points: 5_000 },
        max_response_bytes: 100_000,
        ..ServeConfig::default()
    };
    let app = app(&f, config);
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        let post = |targets: Value, interval: i64, points: i64| {
            let app = app.clone();
            async move {
                call(
                    &app,
                    "POST",
                    "/grafana/query",
                    Some(grafana_query(from, to, interval, points, targets, json!({}))),
                )
                .await
            }
        };
        // Targets: eleven are refused before anything is evaluated; hidden ones do not count.
        let many = |n: usize| {
            Value::Array(
                (0..n)
                    .map(|i| target(&format!("T{i}"), &format!("p{}(latency)", 50 + i), json!({})))
                    .collect(),
            )
        };
        let (s, v) = post(many(11), 60_000, 100).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains("11 targets, at most 10"), "{v}");
        let mut hidden = many(11);
        hidden[10]["hide"] = json!(true);
        assert_eq!(post(hidden, 60_000, 100).await.0, StatusCode::OK);
        // Points are summed over targets: each of these alone fits (2 series x 360 windows
        // of 10 s), ten of them do not.
        let one = json!([target("A", "p95(latency) by (variant)", json!({}))]);
        assert_eq!(post(one, 10_000, 360).await.0, StatusCode::OK);
        let (s, v) = post(
            many(10)
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t["target"] = json!(format!("{} by (variant)", t["target"].as_str().unwrap()));
                    t
                })
                .collect(),
            10_000,
            360,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains("targets together need more than its limits of 1000 series and 5000 points"),
            "{v}"
        );
        // A heatmap's cells count: 2 series x 60 windows x 100 bins is past 5,000 points.
        let heat = json!([target(
            "H",
            "buckets(latency) by (variant)",
            json!({"format": "heatmap", "bins": "100"})
        )]);
        let (s, v) = post(heat, 60_000, 60).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        // Response bytes: tables of 2,880 rows are larger than 100 kB.
        let table = json!([
            target("A", "count(latency) by (variant, segment, instance)", json!({"format": "table"})),
            target("B", "mean(feature) by (variant, segment, instance)", json!({"format": "table"}))
        ]);
        let (s, v) = post(table, 10_000, 360).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains("bytes, at most 100000"), "{v}");
    });
}

#[test]
fn a_token_guards_everything_but_health() {
    let f = fixture();
    let app = app(&f, ServeConfig { token: Some("s3cret".into()), ..ServeConfig::default() });
    rt().block_on(async {
        assert_eq!(call(&app, "GET", "/healthz", None).await.0, StatusCode::OK);
        assert_eq!(call(&app, "GET", "/readyz", None).await.0, StatusCode::OK);
        for path in ["/grafana/", "/metrics", "/api/v1/series"] {
            let (s, v) = call(&app, "GET", path, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
            assert!(v["message"].as_str().unwrap().contains("Bearer"));
            let wrong = call_with(&app, "GET", path, None, &[("authorization", "Bearer nope")]).await;
            assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
            let ok = call_with(&app, "GET", path, None, &[("authorization", "Bearer s3cret")]).await;
            assert_eq!(ok.0, StatusCode::OK, "{path}: {}", ok.1);
            let key = call_with(&app, "GET", path, None, &[("x-api-key", "s3cret")]).await;
            assert_eq!(key.0, StatusCode::OK);
            // The scheme is case-insensitive.
            let lower = call_with(&app, "GET", path, None, &[("authorization", "bearer s3cret")]).await;
            assert_eq!(lower.0, StatusCode::OK, "{path}: {}", lower.1);
        }
    });
}

#[test]
fn rest_endpoints_answer_what_the_engine_and_cli_answer() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        let path = format!("/api/v1/query?query=count(latency)%20by%20(segment)&from={from}&to={to}&step=1h");
        let (s, v) = call(&app, "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for series in v.as_array().unwrap() {
            let seg = series["tags"]["segment"].as_str().unwrap();
            assert_eq!(series["points"], json!([[from, f.predictions[seg] as f64]]));
        }
        let (_, v) =
            call(&app, "GET", &format!("/api/v1/labels/segment/values?from={from}&to={to}"), None).await;
        assert_eq!(v, json!(["email", "phone"]));
        let (_, v) =
            call(&app, "GET", &format!("/api/v1/series?from={from}&to={to}&match=errors"), None).await;
        let kinds: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
        assert!(!kinds.is_empty() && kinds.iter().all(|k| *k == "counter"), "{v}");
        let (_, v) =
            call(&app, "GET", &format!("/api/v1/events?from={from}&to={to}&kind=model_loaded"), None).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["message"], "canary up");
        let (s, v) = call(&app, "GET", "/api/v1/query?from=now-1h", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["message"].as_str().unwrap().contains("query"));
    });
}

#[test]
fn every_panel_of_the_provisioned_dashboard_answers_with_data() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/dashboards/ml-system-health.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["title"], "ML System Health");
    // Variables as Grafana interpolates them in builder mode: the regex format, which escapes
    // regex syntax (Grafana's `escapeRegex`: \^$*+?.()|[]{}/ get a backslash; "All" is
    // `.*`), unless the dashboard asks for `${name:raw}`.
    let reference = format!("{}..{}", iso(f.t0), iso(f.t0 + 1_800_000));
    let regex_escaped = |s: &str| -> String {
        s.chars().flat_map(|c| if "\\^$*+?.()|[]{}/".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
    };
    // A selection of the multi-value variables, in the regex format: one value escaped,
    // several as `(a|b)` of escaped values, "All" as the variables' custom `allValue` `.*`.
    let regex_format = |values: &[String]| -> String {
        match values {
            [] => ".*".to_string(),
            [one] => regex_escaped(one),
            many => format!("({})", many.iter().map(|v| regex_escaped(v)).collect::<Vec<_>>().join("|")),
        }
    };
    let interpolate_with = |v: &Value, variant: &str, feature: &str| -> Value {
        // Inside JSON text a backslash is written twice.
        let json_text = |s: &str| s.replace('\\', "\\\\");
        let text = v
            .to_string()
            .replace("${reference:raw}", &reference)
            .replace("$model", "pii")
            .replace("$variant", &json_text(variant))
            .replace("$feature", &json_text(feature))
            .replace("$reference", &json_text(&regex_escaped(&reference)));
        serde_json::from_str(&text).unwrap()
    };
    let interpolate = |v: &Value| interpolate_with(v, "(control|canary)", ".*");
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        // The variables' options, as Grafana asks for them.
        let mut options: HashMap<String, Vec<String>> = HashMap::new();
        for var in dashboard["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
            let body = json!({"payload": {"target": var["query"]["query"]}, "range": {"from": iso(from), "to": iso(to)}});
            let (s, v) = call(&app, "POST", "/grafana/variable", Some(body.to_string())).await;
            assert_eq!(s, StatusCode::OK, "{}", var["name"]);
            let values: Vec<String> =
                v.as_array().unwrap().iter().map(|o| o["__value"].as_str().unwrap().to_string()).collect();
            assert!(!values.is_empty(), "{}", var["name"]);
            options.insert(var["name"].as_str().unwrap().to_string(), values);
        }
        let (variants, features) = (&options["variant"], &options["feature"]);
        let selections = [
            ("one value each", regex_format(&variants[..1]), regex_format(&features[..1])),
            ("every value selected", regex_format(variants), regex_format(features)),
            ("All", regex_format(&[]), regex_format(&[])),
        ];
        let panels = dashboard["panels"].as_array().unwrap();
        let titles: Vec<&str> = panels.iter().map(|p| p["title"].as_str().unwrap()).collect();
        for wanted in [
            "Confidence score distribution",
            "Error rate",
            "Predictions per second",
            "Feature means",
            "Model age",
            "Loaded models",
            "Drift by feature (normed Wasserstein vs $reference)",
            "Precision: realised vs estimated without labels",
        ] {
            assert!(titles.contains(&wanted), "{wanted} in {titles:?}");
        }
        for (how, variant, feature) in &selections {
            for panel in panels {
                let title = format!("{} ({how}: variant {variant}, feature {feature})", panel["title"]);
                let targets = interpolate_with(&panel["targets"], variant, feature);
                let body = grafana_query(from, to, 60_000, 500, targets, json!({}));
                let (s, v) = call(&app, "POST", "/grafana/query", Some(body)).await;
                assert_eq!(s, StatusCode::OK, "{title}: {v}");
                let frames = v.as_array().unwrap();
                assert!(!frames.is_empty(), "{title} has no data");
                // Data, not just empty frames (a feature that did not drift may be all zeros).
                let positive = |frame: &Value| {
                    frame["fields"][1]["values"].as_array().unwrap().iter().any(|x| x.as_f64().is_some_and(|x| x > 0.0))
                };
                assert!(frames.iter().any(positive), "{title}: {v}");
                if panel["type"] == "heatmap" {
                    assert_eq!(frames[0]["meta"]["type"], "heatmap-rows");
                }
            }
        }
        // A panel of one's own that says `$reference` gets it regex-escaped, and still answers.
        let escaped = interpolate(&json!([{"refId": "A", "target": "drift", "payload": {"reference": "$reference"}}]));
        assert!(escaped[0]["payload"]["reference"].as_str().unwrap().contains("\\.\\."), "{escaped}");
        let (s, v) = panel_query(&app, from, to, escaped, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(!v.as_array().unwrap().is_empty(), "{v}");
        let anno = interpolate(&dashboard["annotations"]["list"][0]["target"]);
        let (s, v) = panel_query(&app, from, to, json!([anno]), json!({})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(field(&v[0], "time").len(), 2, "both events as annotations");
    });
}

#[test]
fn drift_and_quality_are_grafana_series_and_rest_reports() {
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    let reference = format!("{}..{}", iso(f.t0), iso(f.t0 + 1_800_000));
    rt().block_on(async {
        let targets = json!([
            target("D", "drift", json!({"reference": reference, "statistic": "psi", "feature": "len"})),
            target("S", "drift", json!({"reference": reference, "statistic": "share"})),
            target(
                "Q",
                "quality",
                json!({"statistic": "auc", "show": "estimated", "by": "variant", "reference": reference}),
            ),
        ]);
        let (s, v) = panel_query(&app, from, to, targets, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let frames = v.as_array().unwrap();
        let d: Vec<&Value> = frames.iter().filter(|fr| fr["refId"] == "D").collect();
        assert_eq!(d.len(), 1, "only the feature asked for: {v}");
        assert_eq!(d[0]["fields"][1]["labels"]["feature"], "len");
        assert!(field(d[0], "Value")[0].as_f64().unwrap() < 0.01, "len is stationary");
        assert!(frames.iter().any(|fr| fr["refId"] == "S"));
        let q: Vec<&Value> = frames.iter().filter(|fr| fr["refId"] == "Q").collect();
        assert_eq!(q.len(), 2, "one estimated series per variant: {v}");
        assert!(q.iter().all(|fr| fr["fields"][1]["labels"]["kind"] == "estimated"));
        let bad = json!([target("D", "drift", json!({"statistic": "vibes"}))]);
        let (s, v) = panel_query(&app, from, to, bad, json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["message"].as_str().unwrap().contains("vibes"));

        let path = format!("/api/v1/drift?reference={}&current={}..{}", reference, f.t0 + 1_800_000, to);
        let (s, v) = call(&app, "GET", &path.replace(':', "%3A"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["statistics"].as_array().unwrap().iter().any(|r| r["feature"] == "confidence"), "{v}");
        let (s, v) =
            call(&app, "GET", &format!("/api/v1/quality?from={from}&to={to}&by=segment"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["groups"].as_array().unwrap().len(), 2);
        let (s, _) = call(&app, "GET", "/api/v1/drift", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn trigger_events_show_as_annotations_and_the_trigger_state_over_rest() {
    let f = fixture();
    let store = Arc::new(Store::open_read_only(StoreConfig::new(f.dir.path())).unwrap());
    let fired_at = Arc::new(ManualClock::new(Timestamp::from_millis((f.t0 + 3_000_000) as u64)));
    let mut engine = modelwatch::triggers::TriggerEngine::open(
        modelwatch::triggers::TriggerConfig::default(),
        store.clone(),
        f.dir.path(),
        fired_at,
        Vec::new(),
    )
    .unwrap();
    let event = engine.fire("new data from the labelling team", false).unwrap();
    let app = router(AppState::new(store, ServeConfig::default(), clock()));
    rt().block_on(async {
        let targets =
            json!([{ "refId": "Anno", "target": "events", "payload": {"kind": "retrain_triggered"} }]);
        let body = grafana_query(f.t0, f.t0 + 3_600_000, 60_000, 500, targets, json!({}));
        let (s, v) = call(&app, "POST", "/grafana/query", Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(field(&v[0], "time"), &vec![json!(f.t0 + 3_000_000)]);
        assert!(field(&v[0], "text")[0].as_str().unwrap().contains(&event.id));
        let (s, v) = call(&app, "GET", "/api/v1/triggers", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["history"][0]["event"]["id"], json!(event.id));
        let path = format!("/api/v1/events?from={}&to={}&kind=retrain_triggered", f.t0, f.t0 + 3_600_000);
        let (_, v) = call(&app, "GET", &path, None).await;
        assert_eq!(v.as_array().unwrap().len(), 1);
    });
}

#[test]
fn every_route_that_reads_a_range_refuses_one_past_the_limit() {
    // 1,000 days against the 400-day default: each route used to read it all (only /query
    // refused it).
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (to, from) = (f.t0 + 3_600_000, f.t0 + 3_600_000 - 1_000 * 86_400_000);
    let long = format!("{from}..{to}");
    let rest = [
        format!("/api/v1/query?query=count(latency)&from={from}&to={to}&step=2592000000"),
        format!("/api/v1/series?from={from}&to={to}"),
        format!("/api/v1/labels/segment/values?from={from}&to={to}"),
        format!("/api/v1/events?from={from}&to={to}"),
        format!("/api/v1/drift?reference={long}&current={}..{to}", f.t0),
        format!("/api/v1/quality?from={from}&to={to}"),
        format!("/api/v1/quality?from={}&to={to}&reference={long}", f.t0),
    ];
    let grafana = [
        (
            "/grafana/query",
            grafana_query(
                f.t0,
                to,
                60_000,
                500,
                json!([{"refId": "A", "target": "drift", "payload": {"reference": long}}]),
                json!({}),
            ),
        ),
        (
            "/grafana/query",
            grafana_query(
                f.t0,
                to,
                60_000,
                500,
                json!([{"refId": "A", "target": "quality", "payload": {"reference": long}}]),
                json!({}),
            ),
        ),
        (
            "/grafana/query",
            grafana_query(from, to, 86_400_000, 1_000, json!([{"refId": "A", "target": "drift"}]), json!({})),
        ),
        (
            "/grafana/variable",
            json!({"payload": {"target": "segment"}, "range": {"from": iso(from), "to": iso(to)}})
                .to_string(),
        ),
        // (Review: these two targets answered over any range.)
        (
            "/grafana/query",
            grafana_query(
                from,
                to,
                86_400_000,
                1,
                json!([{"refId": "A", "target": "error_ratio"}]),
                json!({}),
            ),
        ),
        (
            "/grafana/query",
            grafana_query(
                from,
                to,
                86_400_000,
                1,
                json!([{"refId": "A", "target": " annotations"}]),
                json!({}),
            ),
        ),
    ];
    rt().block_on(async {
        for path in &rest {
            let (s, v) = call(&app, "GET", path, None).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
            assert!(
                v["message"].as_str().unwrap_or_default().contains(" days, at most 400 are allowed"),
                "{path}: {v}"
            );
        }
        for (path, body) in grafana {
            let (s, v) = call(&app, "POST", path, Some(body.clone())).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {v}");
            assert!(v["message"].as_str().unwrap_or_default().contains("at most 400"), "{path}: {v}");
        }
        // Within the limit, the same routes answer.
        let (s, v) = call(&app, "GET", &format!("/api/v1/events?from={}&to={to}", f.t0), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    });
}

#[test]
fn the_reviewers_hostile_requests_are_refused_or_answered_right() {
    let f = fixture();
    let config = ServeConfig { max_response_bytes: 20_000, cache_bytes: 4 << 20, ..ServeConfig::default() };
    let store = Arc::new(Store::open_read_only(StoreConfig::new(f.dir.path())).unwrap());
    let state = AppState::new(store, config, clock());
    let app = router(state.clone());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    rt().block_on(async {
        // 40,000 labels to group by (380 KB) held a slot for 24 s past its timeout.
        let keys: Vec<String> = (0..40_000).map(|i| format!("l{i}")).collect();
        let body = grafana_query(
            from,
            to,
            60_000,
            100,
            json!([target("A", "count(latency)", json!({}))]),
            json!({"groupByKeys": keys}),
        );
        let (s, v) = call(&app, "POST", "/grafana/query", Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{}", &v.to_string()[..200.min(v.to_string().len())]);
        assert!(v["message"].as_str().unwrap().contains("40000 labels to group by, at most 32"), "{v}");
        // REST answers are held to --max-response too.
        let path = format!(
            "/api/v1/query?query=buckets(latency)%20by%20(segment,variant)&from={from}&to={to}&step=60000"
        );
        let (s, v) = call(&app, "GET", &path, None).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains("at most 20000 are sent"), "{v}");
        // Annotations asked as " annotations" are answered for their exact range: a cached
        // answer for another range must not be served (the key used to hold the exact range
        // only for the target `events`).
        let events = |to: i64| {
            let app = app.clone();
            async move {
                let body = grafana_query(
                    from,
                    to,
                    3_600_000,
                    1,
                    json!([{"refId": "A", "target": " annotations"}]),
                    json!({}),
                );
                let (s, v) = call(&app, "POST", "/grafana/query", Some(body)).await;
                assert_eq!(s, StatusCode::OK, "{v}");
                field(&v[0], "time").len()
            }
        };
        // Both windows snap to the same hour step; the second holds the second event.
        assert_eq!(events(f.t0 + 1_000_000).await, 1);
        assert_eq!(events(f.t0 + 3_000_000).await, 2);
        // A cached answer's key is weighed: 300 requests with distinct 50 KB filter values
        // (empty answers) keep the caches within their budget.
        for i in 0..300 {
            let value = format!("{i}-{}", "x".repeat(50_000));
            let t = json!([target("A", "count(latency)", json!({"segment": value}))]);
            let (s, _) = call(
                &app,
                "POST",
                "/grafana/query",
                Some(grafana_query(from, to, 60_000, 100, t, json!({}))),
            )
            .await;
            assert_eq!(s, StatusCode::OK);
        }
        assert!(state.cache_bytes() <= 4 << 20, "{} bytes cached", state.cache_bytes());
        assert!(state.cache_bytes() >= 1 << 20, "the keys are weighed: {} bytes", state.cache_bytes());
    });
}

#[test]
fn a_crafted_label_name_is_refused_and_cannot_poison_the_answer_cache() {
    // A payload key that prints like two matchers: `p95(latency{segment="email",variant="canary"})`.
    // Printed answer-cache keys let it take the place of the real query's answer.
    let f = fixture();
    let app = app(&f, ServeConfig::default());
    let (from, to) = (f.t0, f.t0 + 3_600_000);
    let target = |payload: Value| json!([{"refId": "A", "target": "latency", "payload": payload}]);
    rt().block_on(async {
        let crafted = target(json!({"statistic": "p95", "segment=\"email\",variant": "canary"}));
        let (s, v) = panel_query(&app, from, to, crafted, json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["message"].as_str().unwrap().contains("not a label name"), "{v}");
        let adhoc = json!({"adhocFilters": [{"key": "segment\"} or", "operator": "=", "value": "x"}]});
        let (s, v) = panel_query(&app, from, to, target(json!({})), adhoc).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // The real query answers with data.
        let real = target(json!({"statistic": "p95", "segment": "email", "variant": "canary"}));
        let (s, v) = panel_query(&app, from, to, real, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let values = v[0]["fields"][1]["values"].as_array().cloned().unwrap_or_default();
        assert!(values.iter().any(|x| x.as_f64().is_some_and(|x| x > 0.0)), "{v}");
    });
}
