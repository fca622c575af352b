use super::chart::{self, Bar, BarChart, Heatmap, Line, LineChart, Tone, XAxis};
use super::html::{Page, escape, script_json};
use super::*;
use serde_json::{Value, json};

/// The fixture written to the features report's contract (tests/report/).
fn fixture() -> Value {
    serde_json::from_str(include_str!("../../tests/report/features-report.json")).unwrap()
}

/// Marks of `chart` in `html`: (class, data-series, data-x, data-y or data-v).
fn marks<'a>(html: &'a str, chart: &str) -> Vec<&'a str> {
    let needle = format!("data-chart=\"{chart}\"");
    html.match_indices("class=\"mark")
        .map(|(i, _)| &html[i..i + html[i..].find('>').unwrap()])
        .filter(|m| m.contains(&needle))
        .collect()
}

fn attr<'a>(mark: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let i = mark.find(&key).unwrap_or_else(|| panic!("{name} in {mark}")) + key.len();
    &mark[i..i + mark[i..].find('"').unwrap()]
}

const HOSTILE: &str = "</script><script>alert(1)</script><!-- \"quoted\" & 'single' <b>";

#[test]
fn hostile_text_neither_ends_the_data_block_nor_becomes_markup() {
    let data = json!({ "name": HOSTILE, "nested": [HOSTILE, { HOSTILE: "\u{2028}" }] });
    let block = script_json(&data);
    assert!(!block.contains('<') && !block.contains('>') && !block.contains('&'), "{block}");
    assert_eq!(serde_json::from_str::<Value>(&block).unwrap(), data, "the escapes mean the same text");
    let e = escape(HOSTILE);
    assert!(!e.contains('<') && !e.contains('"') && !e.contains('\''), "{e}");
    let mut page = Page::new(HOSTILE);
    page.lead(HOSTILE).section(HOSTILE, HOSTILE, &super::html::para("note", HOSTILE));
    let html = page.finish(&data);
    // The page's only script is the data block, and it ends where the page ends it.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert_eq!(html.matches("</script>").count(), 1);
    assert!(!html.contains("<!--") && !html.contains("<b>"));
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
}

#[test]
fn values_no_number_can_draw_make_gaps_and_never_a_bad_coordinate() {
    let step = 3_600_000.0;
    let lines = vec![
        Line {
            name: "wild".into(),
            points: vec![
                (0.0, 1.0),
                (step, f64::NAN),
                (2.0 * step, f64::INFINITY),
                (3.0 * step, 1e300),
                (4.0 * step, -1e300),
                (5.0 * step, f64::MAX),
                (6.0 * step, -f64::MAX),
                (7.0 * step, f64::NEG_INFINITY),
            ],
        },
        Line { name: "one point".into(), points: vec![(2.0 * step, 0.5)] },
        Line { name: "empty".into(), points: vec![] },
        Line { name: "constant".into(), points: (0..8).map(|i| (i as f64 * step, 7.0)).collect() },
    ];
    let html = chart::line_chart(&LineChart {
        id: "wild",
        x: XAxis::Time,
        x_range: Some((0.0, 8.0 * step)),
        step: Some(step),
        divide: 1.0,
        unit: "",
        threshold: Some(f64::NAN),
        lines: &lines,
        max_lines: 10,
    });
    // Every coordinate is a plain finite number.
    for attr_name in [" cx=\"", " cy=\"", " x1=\"", " y1=\"", " y=\"", " x=\""] {
        for (i, _) in html.match_indices(attr_name) {
            let v = &html[i + attr_name.len()..];
            let v = &v[..v.find('"').unwrap()];
            assert!(v.parse::<f64>().is_ok_and(|v| v.is_finite() && v.abs() < 1e4), "{attr_name}{v}");
        }
    }
    assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
    let m = marks(&html, "wild");
    let count = |s: &str| m.iter().filter(|x| attr(x, "data-series") == s).count();
    assert_eq!((count("wild"), count("one point"), count("empty"), count("constant")), (5, 1, 0, 8));
    assert!(m.iter().any(|x| attr(x, "data-y") == "1e300"), "data-y keeps the value as given");
    // The gap after the first point: the path starts again (M) after the missing windows.
    let wild_path = html.split("<path").nth(1).unwrap();
    assert_eq!(wild_path.matches('M').count(), 2, "{wild_path}");
    // Nothing finite at all: no chart, "no data".
    let nothing = vec![Line { name: "x".into(), points: vec![(0.0, f64::NAN)] }];
    let html =
        chart::line_chart(&LineChart { lines: &nothing, id: "none", x_range: None, ..chart_defaults() });
    assert!(html.contains("no data") && marks(&html, "none").is_empty(), "{html}");
}

fn chart_defaults() -> LineChart<'static> {
    LineChart {
        id: "",
        x: XAxis::Number,
        x_range: None,
        step: None,
        divide: 1.0,
        unit: "",
        threshold: None,
        lines: &[],
        max_lines: 20,
    }
}

#[test]
fn a_thousand_bars_and_a_bar_without_data_each_draw_a_mark() {
    let bars: Vec<Bar> = (0..1_000)
        .map(|i| Bar {
            label: format!("f{i}"),
            series: "share".into(),
            value: if i == 7 { f64::NAN } else { i as f64 * 1e297 },
            tone: Tone::Series(0),
        })
        .collect();
    let html =
        chart::bar_chart(&BarChart { id: "b", bars: &bars, divide: 1.0, unit: "", threshold: Some(0.5) });
    let m = marks(&html, "b");
    assert_eq!(m.len(), 1_000);
    assert_eq!(m.iter().filter(|x| x.contains("mark gap")).count(), 1);
    assert_eq!(attr(m[7], "data-y"), "null");
    assert!(!html.contains("NaN") && !html.contains("inf"));
    assert!(
        chart::bar_chart(&BarChart { id: "e", bars: &[], divide: 1.0, unit: "", threshold: None })
            .contains("no data")
    );
}

#[test]
fn a_heatmap_draws_every_cell_and_greys_those_without_a_value() {
    let names: Vec<(String, String)> =
        ["a", "b", "c"].iter().map(|s| (s.to_string(), s.to_string())).collect();
    let values = vec![vec![1.0, -0.5, f64::NAN], vec![-0.5, 1.0, 0.2], vec![f64::NAN, 0.2, 1.0]];
    let html = chart::heatmap(&Heatmap {
        id: "h",
        rows: &names,
        cols: &names,
        values: &values,
        colours: chart::Colours::Diverging,
    });
    let m = marks(&html, "h");
    assert_eq!(m.len(), 9);
    let cell =
        |x: &str, y: &str| m.iter().find(|c| attr(c, "data-x") == x && attr(c, "data-y") == y).unwrap();
    assert_eq!(attr(cell("b", "a"), "data-v"), "-0.5");
    assert_eq!(attr(cell("c", "a"), "data-v"), "null");
    assert!(cell("c", "a").contains("mark gap"));
}

#[test]
fn the_features_page_draws_a_bar_per_feature_a_cell_per_pair_and_a_point_per_window() {
    let doc = fixture();
    let html = features_html(&doc).unwrap();
    let features = doc["features"].as_array().unwrap().len();
    assert_eq!(marks(&html, "importance").len(), features);
    assert_eq!(marks(&html, "pearson").len(), features * features);
    assert_eq!(marks(&html, "spearman").len(), features * features);
    assert_eq!(marks(&html, "drift").len(), features);
    // The importance of version 4: constant_flag has none (null), the others their share.
    let m = marks(&html, "importance");
    let bar = |f: &str| attr(m.iter().find(|b| attr(b, "data-x") == f).unwrap(), "data-y");
    assert_eq!((bar("digit_ratio"), bar("has_at_sign"), bar("constant_flag")), ("0.33", "2.5e-6", "null"));
    // Trend lines: a point per version with a share, a point per window with a value.
    let trend = marks(&html, "importance_trend");
    assert_eq!(trend.iter().filter(|p| attr(p, "data-series") == "char_entropy").count(), 3, "v2 is null");
    assert_eq!(trend.len(), 4 + 4 + 4 + 4 + 3 + 1);
    let drift = marks(&html, "drift_trend");
    assert_eq!(drift.len(), 3 + 3 + 2 + 3 + 3, "doc_length's null window is a gap");
    for table in ["candidates", "kept", "versions", "pairs"] {
        assert!(html.contains(&format!("<table class=\"{table}\"")), "{table}");
    }
    // The document is embedded once, as it was given.
    let start = html.find("id=\"modelwatch-data\">").unwrap() + "id=\"modelwatch-data\">".len();
    let block = &html[start..start + html[start..].find("</script>").unwrap()];
    assert_eq!(serde_json::from_str::<Value>(block).unwrap(), doc);
}

#[test]
fn a_features_document_without_a_field_is_refused_naming_it() {
    for (field, needle) in [("features", "`features`"), ("model", "`model`"), ("drift", "`drift`")] {
        let mut doc = fixture();
        doc.as_object_mut().unwrap().remove(field);
        let e = features_html(&doc).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
    let mut doc = fixture();
    doc["correlation"]["pearson"].as_array_mut().unwrap().pop();
    let e = features_html(&doc).unwrap_err().to_string();
    assert!(e.contains("correlation.pearson") && e.contains("6 × 6"), "{e}");
    // No matrix stored: said, not failed.
    let mut doc = fixture();
    doc["correlation"] = Value::Null;
    assert!(features_html(&doc).unwrap().contains("no correlation matrix stored"));
}

/// A features document of `n` features, one version, every pair correlated 0.5.
pub(crate) fn wide_document(n: usize, name: impl Fn(usize) -> String) -> Value {
    let features: Vec<String> = (0..n).map(name).collect();
    let matrix: Vec<Vec<f64>> =
        (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.5 }).collect()).collect();
    json!({
        "model": "wide", "from": "2026-09-01T00:00:00Z", "to": "2026-11-30T00:00:00Z", "version": 1,
        "settings": { "min_share": 0.00001, "max_correlation": 0.95, "versions": 3 },
        "versions": [ { "version": 1, "created_at": "2026-09-02T10:00:00Z", "status": "control", "aliases": ["control"], "rows": 100 } ],
        "features": features,
        "importance": features.iter().enumerate().map(|(i, f)| json!({ "feature": f, "by_version": [ { "version": 1, "mean": i, "std": 0.0, "share": (i + 1) as f64 / (n * (n + 1) / 2) as f64 } ] })).collect::<Vec<_>>(),
        "correlation": { "version": 1, "rows": 100, "features": features, "pearson": matrix, "spearman": matrix },
        "candidates": [], "kept": [],
        "drift": features.iter().map(|f| json!({ "feature": f, "statistic": "psi", "value": 0.1, "threshold": 0.2, "drifted": false, "windows": [ { "start": "2026-09-01T00:00:00Z", "value": 0.1 } ] })).collect::<Vec<_>>(),
    })
}

#[test]
fn a_thousand_features_draw_a_bar_each_and_the_matrix_of_the_most_important() {
    let doc = wide_document(1_000, |i| format!("f{i:04}"));
    let html = features_html(&doc).unwrap();
    assert_eq!(marks(&html, "importance").len(), 1_000);
    assert_eq!(marks(&html, "pearson").len(), MATRIX_FEATURES * MATRIX_FEATURES);
    let drawn: std::collections::BTreeSet<&str> =
        marks(&html, "pearson").iter().map(|c| attr(c, "data-x")).collect();
    assert_eq!(drawn.first(), Some(&"f0940"), "the 60 most important are the last 60");
    assert!(html.contains("60 of 1000 features drawn"));
    assert_eq!(marks(&html, "importance_trend").len(), TREND_LINES, "one version: a point per drawn line");
    // The page embeds the drawn features' matrices only (the whole ones are two million
    // cells, 20 MB of page for a real registry's figures) and says so; the rest as given.
    let data = embedded_data(&html);
    let c = &data["correlation"];
    assert_eq!(c["features"].as_array().unwrap().len(), MATRIX_FEATURES);
    assert_eq!(c["features"][0], "f0940");
    assert_eq!(c["pearson"].as_array().unwrap().len(), MATRIX_FEATURES);
    assert!(c["pearson"].as_array().unwrap().iter().all(|r| r.as_array().unwrap().len() == MATRIX_FEATURES));
    assert_eq!(c["pearson"][0][0], 1.0);
    assert_eq!(c["pearson"][0][1], 0.5);
    assert_eq!(c["embedded"]["of"], 1_000);
    let mut rest = data.clone();
    let mut given = doc.clone();
    rest["correlation"] = Value::Null;
    given["correlation"] = Value::Null;
    // Both through the same text parser: serde_json's default float parsing can miss the
    // nearest double by one unit, on either side alike.
    let reparsed = |v: &Value| -> Value { serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap() };
    assert_eq!(rest, reparsed(&given));
    assert!(html.len() < 4 << 20, "a 1,000-feature page of {} bytes", html.len());
    // Up to the drawn size, the document is embedded whole.
    let small = wide_document(MATRIX_FEATURES, |i| format!("f{i:04}"));
    assert_eq!(embedded_data(&features_html(&small).unwrap()), reparsed(&small));
}

/// The document a page embeds in its `modelwatch-data` script.
fn embedded_data(html: &str) -> Value {
    let start =
        html.find(r#"id="modelwatch-data">"#).expect("the data script") + r#"id="modelwatch-data">"#.len();
    let end = start + html[start..].find("</script>").expect("its end");
    serde_json::from_str(&html[start..end]).expect("the embedded JSON")
}

#[test]
fn one_feature_and_no_versions_still_make_a_page() {
    let mut doc = wide_document(1, |_| "only".into());
    doc["versions"] = json!([]);
    doc["drift"][0]["windows"] = json!([]);
    doc["drift"][0]["value"] = Value::Null;
    let html = features_html(&doc).unwrap();
    assert_eq!(marks(&html, "pearson").len(), 1);
    assert_eq!(marks(&html, "drift").len(), 1);
    assert!(html.contains("no data"));
}
