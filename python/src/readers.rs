//! The readers: `query`, `drift` and `quality` on a store, the CLI's own code with the GIL
//! released. `drift` and `quality` return the documents `--format json` prints (the same
//! keys, as Python dicts); `query` returns its points as records, a pandas DataFrame or a
//! pyarrow Table, in the columns `--format csv` prints.

use crate::agent::Location;
use modelwatch::time::{parse_duration, parse_range, parse_time};
use modelwatch_query::drift::DriftConfig;
use modelwatch_query::quality::{DEFAULT_MIN_BIN_LABELS, QualityOptions};
use modelwatch_query::{Limits, Matcher, Range, Series, answer, parse};
use modelwatch_store::Store;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString};
use std::path::PathBuf;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(drift, m)?)?;
    m.add_function(wrap_pyfunction!(quality, m)?)?;
    Ok(())
}

#[allow(clippy::disallowed_methods)] // the readers' `now` is the wall clock, as the CLI's
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn bad(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: {e}"))
}

/// A point in time: the CLI's grammar (RFC 3339, epoch s or ms, `now-6h`), epoch seconds as
/// a number, or a datetime.
fn instant(what: &str, t: &Bound<'_, PyAny>, now: i64) -> PyResult<i64> {
    if let Ok(s) = t.cast::<PyString>() {
        return parse_time(s.to_str()?, now).map_err(|e| bad(what, e));
    }
    let secs: f64 = if t.is_instance_of::<PyFloat>() || t.is_instance_of::<PyInt>() {
        t.extract()?
    } else if t.hasattr("timestamp")? {
        t.call_method0("timestamp")?.extract()?
    } else {
        return Err(bad(
            what,
            format!("{}: give a datetime, epoch seconds or a string such as now-6h", t.repr()?),
        ));
    };
    let ms = secs * 1e3;
    if !(ms.is_finite() && (modelwatch::time::EARLIEST as f64..modelwatch::time::LATEST as f64).contains(&ms))
    {
        return Err(bad(what, format!("{secs} is not a time between 1970 and 2500")));
    }
    Ok(ms as i64)
}

/// The window `[from, to)`: `start`/`end`, or `since` back from `end` (default now).
fn window(
    since: &str,
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
    now: i64,
) -> PyResult<(i64, i64)> {
    let to = match end {
        Some(e) => instant("end", e, now)?,
        None => now,
    };
    let from = match start {
        Some(s) => instant("start", s, now)?,
        None => to - parse_duration(since).map_err(|e| bad("since", e))?,
    };
    if to <= from {
        return Err(bad(
            "window",
            format!(
                "it ends ({}) before or when it starts ({})",
                modelwatch::time::rfc3339(to),
                modelwatch::time::rfc3339(from)
            ),
        ));
    }
    Ok((from, to))
}

fn open(at: &Location) -> PyResult<Store> {
    if at.objects.is_none() && !at.dir.exists() {
        return Err(PyRuntimeError::new_err(format!(
            "{}: no such data directory (record into it with modelwatch.Agent, or run `modelwatch demo`)",
            at.dir.display()
        )));
    }
    Store::open_read_only(at.config())
        .map_err(|e| PyRuntimeError::new_err(format!("opening the store at {}: {e}", at.dir.display())))
}

fn matchers(filters: Option<&Bound<'_, PyDict>>) -> PyResult<(Vec<Matcher>, Vec<String>)> {
    let mut m = Vec::new();
    let mut described = Vec::new();
    for (k, v) in filters.into_iter().flat_map(|d| d.iter()) {
        let (k, v): (String, String) = (k.extract()?, v.extract()?);
        if !matches!(k.as_str(), "model" | "version" | "variant" | "segment") {
            return Err(bad("filters", format!("{k:?}: filter by model, version, variant or segment")));
        }
        m.push(modelwatch_query::drift::eq(&k, &v));
        described.push(format!("{k}={v}"));
    }
    Ok((m, described))
}

/// A serde value as the Python structure `json.loads` would make of its JSON.
fn to_python<'py>(py: Python<'py>, doc: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(doc).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Runs a query (the language of `modelwatch query`, `docs/query-language.md`) over the
/// window and returns one row per series and window: `time` (UTC), the `by` labels, and the
/// value in the query's unit (`value_ns` for latencies, as `--format csv`).
/// `format`: `"records"` (a list of dicts, the default), `"pandas"` or `"arrow"`.
#[pyfunction]
#[pyo3(signature = (expr, *, since="1h", step="1m", start=None, end=None, data=None, objects=None, format="records"))]
#[allow(clippy::too_many_arguments)]
fn query<'py>(
    py: Python<'py>,
    expr: &str,
    since: &str,
    step: &str,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    data: Option<PathBuf>,
    objects: Option<String>,
    format: &str,
) -> PyResult<Bound<'py, PyAny>> {
    if !matches!(format, "records" | "pandas" | "arrow") {
        return Err(bad("format", format!("{format:?}: give \"records\", \"pandas\" or \"arrow\"")));
    }
    let q = parse(expr).map_err(|e| bad("bad query", e))?;
    let step_ms = parse_duration(step).map_err(|e| bad("step", e))?;
    let (from, to) = window(since, start, end, now_ms())?;
    // Windows start on multiples of the step, as the CLI and Grafana align them.
    let from = from.div_euclid(step_ms) * step_ms;
    let data = Location::new(data, objects)?;
    let series: Vec<Series> = py.detach(|| -> PyResult<Vec<Series>> {
        let store = open(&data)?;
        answer(&store, &q, Range { from_ms: from, to_ms: to, step_ms }, Limits::default())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    })?;
    let value = q.unit().suffixed("value");
    let rows = series.iter().map(|s| s.points.len()).sum::<usize>();
    // Columns first: pandas and pyarrow take them whole.
    let mut times: Vec<i64> = Vec::with_capacity(rows);
    let mut values: Vec<f64> = Vec::with_capacity(rows);
    let mut labels: Vec<(String, Vec<String>)> =
        q.by.iter().map(|l| (l.clone(), Vec::with_capacity(rows))).collect();
    for s in &series {
        for &(t, v) in &s.points {
            times.push(t);
            values.push(v);
            for (l, col) in &mut labels {
                col.push(s.tags.get(l).cloned().unwrap_or_default());
            }
        }
    }
    match format {
        "records" => {
            let datetime = py.import("datetime")?;
            let utc = datetime.getattr("timezone")?.getattr("utc")?;
            let from_ts = datetime.getattr("datetime")?.getattr("fromtimestamp")?;
            let out = PyList::empty(py);
            for i in 0..rows {
                let d = PyDict::new(py);
                d.set_item("time", from_ts.call1((times[i] as f64 / 1e3, &utc))?)?;
                for (l, col) in &labels {
                    d.set_item(l, &col[i])?;
                }
                d.set_item(&value, values[i])?;
                out.append(d)?;
            }
            Ok(out.into_any())
        }
        "pandas" => {
            let pd = py.import("pandas").map_err(|e| {
                PyRuntimeError::new_err(format!("format=\"pandas\" needs pandas (pip install pandas): {e}"))
            })?;
            let cols = PyDict::new(py);
            let kw = PyDict::new(py);
            kw.set_item("unit", "ms")?;
            kw.set_item("utc", true)?;
            cols.set_item("time", pd.call_method("to_datetime", (times,), Some(&kw))?)?;
            for (l, col) in labels {
                cols.set_item(l, col)?;
            }
            cols.set_item(&value, values)?;
            pd.call_method1("DataFrame", (cols,))
        }
        _ => {
            let pa = py.import("pyarrow").map_err(|e| {
                PyRuntimeError::new_err(format!("format=\"arrow\" needs pyarrow (pip install pyarrow): {e}"))
            })?;
            let ts = pa.call_method1("timestamp", ("ms", "UTC"))?;
            let arrays = PyList::empty(py);
            let names = PyList::empty(py);
            let kw = PyDict::new(py);
            kw.set_item("type", ts)?;
            arrays.append(pa.call_method("array", (times,), Some(&kw))?)?;
            names.append("time")?;
            for (l, col) in labels {
                arrays.append(pa.call_method1("array", (col,))?)?;
                names.append(l)?;
            }
            arrays.append(pa.call_method1("array", (values,))?)?;
            names.append(&value)?;
            let kw = PyDict::new(py);
            kw.set_item("names", names)?;
            pa.getattr("Table")?.call_method("from_arrays", (arrays,), Some(&kw))
        }
    }
}

/// Drift of the current window against a reference (a saved baseline's name, a range
/// `FROM..TO`, or a duration): the document `modelwatch drift --format json` prints.
/// `filters`: a dict of model, version, variant, segment.
#[pyfunction]
#[pyo3(signature = (reference, *, since="24h", start=None, end=None, data=None, objects=None, filters=None))]
#[allow(clippy::too_many_arguments)]
fn drift<'py>(
    py: Python<'py>,
    reference: &str,
    since: &str,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    data: Option<PathBuf>,
    objects: Option<String>,
    filters: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let now = now_ms();
    let window = window(since, start, end, now)?;
    let (m, described) = matchers(filters)?;
    let data = Location::new(data, objects)?;
    let doc = py.detach(|| {
        let store = open(&data)?;
        modelwatch::baseline::drift_document(
            &store,
            &data.dir,
            reference,
            &m,
            described,
            window,
            now,
            &DriftConfig::default(),
        )
        .map_err(|e| PyValueError::new_err(e.to_string()))
    })?;
    to_python(py, &doc)
}

/// Model quality per window, realised from labels and estimated without them: the
/// document `modelwatch quality --format json` prints. `by`: labels to group by
/// (e.g. `["segment"]`); `reference`: the range the estimate is calibrated on (default the
/// window as long just before).
#[pyfunction]
#[pyo3(signature = (
    *, since="7d", start=None, end=None, data=None, objects=None, by=None, reference=None, threshold=0.5,
    min_label_age="0s", min_bin_labels=DEFAULT_MIN_BIN_LABELS, filters=None,
))]
#[allow(clippy::too_many_arguments)]
fn quality<'py>(
    py: Python<'py>,
    since: &str,
    start: Option<&Bound<'py, PyAny>>,
    end: Option<&Bound<'py, PyAny>>,
    data: Option<PathBuf>,
    objects: Option<String>,
    by: Option<Vec<String>>,
    reference: Option<&str>,
    threshold: f64,
    min_label_age: &str,
    min_bin_labels: u64,
    filters: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(bad("threshold", format!("{threshold} is not a confidence in [0, 1]")));
    }
    let now = now_ms();
    let (from, to) = window(since, start, end, now)?;
    let reference = match reference {
        Some(r) => parse_range(r, now).map_err(|e| bad("reference", e))?,
        None => (from - (to - from), from),
    };
    let opts = QualityOptions {
        reference: Some(reference),
        threshold,
        min_label_age_ms: modelwatch::time::parse_age(min_label_age).map_err(|e| bad("min_label_age", e))?,
        min_bin_labels,
    };
    let (m, _) = matchers(filters)?;
    let by = by.unwrap_or_default();
    let data = Location::new(data, objects)?;
    let doc = py.detach(|| {
        let store = open(&data)?;
        modelwatch_query::quality::report(&store, &m, &by, (from, to), now, &opts)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    })?;
    to_python(py, &doc)
}
