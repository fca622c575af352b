//! Python values into the agent's: the feature schema, one feature row without allocating,
//! a batch of rows read in place from NumPy arrays, times, and a snapshot as a dict.

use modelwatch_agent::{
    Feature, FeatureKind, FeatureStats, Handle, Latency, OTHER_SEGMENT, Prediction, SegmentId, Snapshot,
    Timestamp,
};
use pyo3::buffer::{Element, PyBuffer};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString, PyTuple};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The declared features, from `features=[...]`: a name is a numeric feature, a pair
/// `(name, [categories])` a categorical one.
pub fn schema(features: &Bound<'_, PyAny>) -> PyResult<Vec<Feature>> {
    if features.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "features={}: give a list of names (numeric features) and pairs (name, [categories]), not one string",
            features.repr()?
        )));
    }
    let mut out = Vec::new();
    for (i, item) in features.try_iter()?.enumerate() {
        let item = item?;
        if let Ok(name) = item.cast::<PyString>() {
            out.push(Feature::numeric(name.to_str()?));
            continue;
        }
        let pair: Option<(String, Vec<String>)> = item.extract().ok();
        match pair {
            Some((name, categories)) => out.push(Feature::categorical(name, categories)),
            None => {
                return Err(PyTypeError::new_err(format!(
                    "features[{i}] = {}: give a name (a numeric feature) or a pair (name, [categories]) \
                     (a categorical one)",
                    item.repr()?
                )));
            }
        }
    }
    Ok(out)
}

/// A record-time number: a float, or anything with `__float__` (ints, NumPy scalars);
/// anything else is NaN, which the agent counts as invalid where a number is required.
#[inline]
pub fn number(v: &Bound<'_, PyAny>) -> f64 {
    if let Ok(f) = v.cast::<PyFloat>() {
        return f.value();
    }
    v.extract::<f64>().unwrap_or(f64::NAN)
}

/// A record-time truth value: `bool(v)` (so NumPy's bools and ints, `clf.predict`'s output,
/// work); `None` for None or a value whose `__bool__` raises.
#[inline]
pub fn truth(v: &Bound<'_, PyAny>) -> Option<bool> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Some(b.is_true());
    }
    if v.is_none() {
        return None;
    }
    v.is_truthy().ok()
}

/// A record-time segment name; anything that is not a string (None, a lone surrogate)
/// records under `other`, as an undeclared name does.
#[inline]
pub fn segment_name<'a>(v: &'a Bound<'_, PyAny>) -> &'a str {
    match v.cast::<PyString>() {
        Ok(s) => s.to_str().unwrap_or(OTHER_SEGMENT),
        Err(_) => OTHER_SEGMENT,
    }
}

/// How a row of Python values maps onto the schema.
pub struct Shape {
    width: usize,
    /// The features' names as Python strings (their hashes cached), looked up in a dict row.
    keys: Vec<Py<PyString>>,
    /// Per feature: its vocabulary (code by string), for categorical features.
    vocab: Vec<Option<HashMap<String, f64>>>,
    /// Values that could not be read as their feature's kind (recorded as missing).
    pub bad_values: AtomicU64,
    /// Dict keys that name no declared feature (ignored).
    pub unknown_names: AtomicU64,
}

impl Shape {
    pub fn new(features: &[Feature]) -> Shape {
        Shape {
            width: features.len(),
            keys: Python::attach(|py| {
                features.iter().map(|f| PyString::intern(py, &f.name).unbind()).collect()
            }),
            vocab: features
                .iter()
                .map(|f| match &f.kind {
                    FeatureKind::Numeric => None,
                    FeatureKind::Categorical { categories } => {
                        Some(categories.iter().enumerate().map(|(c, s)| (s.to_string(), c as f64)).collect())
                    }
                })
                .collect(),
            bad_values: AtomicU64::new(0),
            unknown_names: AtomicU64::new(0),
        }
    }

    fn bad(&self) -> f64 {
        self.bad_values.fetch_add(1, Ordering::Relaxed);
        f64::NAN
    }

    /// One value at `position`: a number, or for a categorical feature a category (a string
    /// outside the vocabulary gets a code outside it, which the agent counts as `other`).
    fn value(&self, position: usize, v: &Bound<'_, PyAny>) -> f64 {
        if let Ok(f) = v.cast::<PyFloat>() {
            return f.value();
        }
        if let Ok(s) = v.cast::<PyString>() {
            let Some(Some(vocab)) = self.vocab.get(position) else { return self.bad() };
            let Ok(s) = s.to_str() else { return self.bad() };
            return vocab.get(s).copied().unwrap_or(vocab.len() as f64);
        }
        if v.is_none() {
            return f64::NAN;
        }
        // Ints, bools, NumPy scalars: anything with __float__.
        v.extract::<f64>().unwrap_or_else(|_| self.bad())
    }
}

thread_local! {
    /// One row of feature values per thread, reused: a record never allocates once its
    /// thread has recorded a row of this width.
    static ROW: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Reads one row of features and hands it to `f` in schema order (NaN for missing).
/// A list or tuple is positional, a dict by name, anything else is read as a buffer of
/// float64 (a NumPy array, in place) or, failing that, iterated.
pub fn feature_row(shape: &Shape, features: Option<&Bound<'_, PyAny>>, f: impl FnOnce(&[f64])) {
    let Some(obj) = features else { return f(&[]) };
    if let Ok(list) = obj.cast::<PyList>() {
        return with_row(
            list.len(),
            |row| {
                for (i, (slot, v)) in row.iter_mut().zip(list.iter()).enumerate() {
                    *slot = shape.value(i, &v);
                }
            },
            f,
        );
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return with_row(
            tuple.len(),
            |row| {
                for (i, (slot, v)) in row.iter_mut().zip(tuple.iter()).enumerate() {
                    *slot = shape.value(i, &v);
                }
            },
            f,
        );
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        // Looked up by the schema's names, not iterated: a value's __float__ that changes
        // the dict cannot upset the walk, and each lookup reuses the key's cached hash.
        let py = obj.py();
        return with_row(
            shape.width,
            |row| {
                let mut found = 0;
                for (i, (slot, key)) in row.iter_mut().zip(&shape.keys).enumerate() {
                    *slot = match dict.get_item(key.bind(py)) {
                        Ok(Some(v)) => {
                            found += 1;
                            shape.value(i, &v)
                        }
                        Ok(None) => f64::NAN,
                        Err(_) => shape.bad(),
                    };
                }
                let extra = dict.len().saturating_sub(found);
                if extra > 0 {
                    shape.unknown_names.fetch_add(extra as u64, Ordering::Relaxed);
                }
            },
            f,
        );
    }
    if let Ok(buf) = PyBuffer::<f64>::get(obj)
        && let Some(values) = contiguous(&buf)
    {
        return f(values);
    }
    let items: Vec<Bound<'_, PyAny>> = match obj.try_iter() {
        Ok(it) => it.filter_map(Result::ok).collect(),
        Err(_) => {
            shape.bad();
            return f(&[]);
        }
    };
    with_row(
        items.len(),
        |row| {
            for (i, (slot, v)) in row.iter_mut().zip(&items).enumerate() {
                *slot = shape.value(i, v);
            }
        },
        f,
    )
}

fn with_row(width: usize, fill: impl FnOnce(&mut [f64]), f: impl FnOnce(&[f64])) {
    ROW.with(|cell| {
        // A re-entrant call (a feature's __float__ recording) gets a row of its own.
        let Ok(mut row) = cell.try_borrow_mut() else {
            let mut own = vec![f64::NAN; width];
            fill(&mut own);
            return f(&own);
        };
        row.clear();
        row.resize(width, f64::NAN);
        fill(&mut row);
        f(&row);
    })
}

/// The values of a C-contiguous buffer, read in place.
fn contiguous<T: Element>(buf: &PyBuffer<T>) -> Option<&[T]> {
    if !buf.is_c_contiguous() {
        return None;
    }
    // SAFETY: the buffer is C-contiguous, holds `item_count` items of `T` (PyBuffer::get
    // checked the format), and stays valid while `buf` (which holds the exporter) lives;
    // the returned slice borrows `buf`. Another thread writing the array meanwhile would
    // make us read values mid-write, as NumPy's own operations do; it cannot make us read
    // outside the buffer.
    Some(unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const T, buf.item_count()) })
}

/// A time as epoch seconds (int or float) or a datetime; `None` when it is no time.
pub fn timestamp_of(t: &Bound<'_, PyAny>) -> Option<Timestamp> {
    let secs: f64 = if t.hasattr("timestamp").unwrap_or(false) && !t.is_instance_of::<PyFloat>() {
        t.call_method0("timestamp").ok()?.extract().ok()?
    } else {
        t.extract().ok()?
    };
    (0.0..1.0e10).contains(&secs).then(|| Timestamp::from_nanos((secs * 1e9) as u64))
}

/// A column of a batch: read in place from a buffer of `T`, or copied from a sequence.
enum Column<T: Element> {
    InPlace(PyBuffer<T>),
    Copied(Vec<T>),
}

impl<T: Element + Copy + for<'a, 'py> FromPyObject<'a, 'py>> Column<T> {
    fn of(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Column<T>> {
        if let Ok(buf) = PyBuffer::<T>::get(obj) {
            if buf.dimensions() > 1 {
                return Err(PyValueError::new_err(format!(
                    "{name}: a {}-D array of shape {:?}; give a 1-D one, a value per prediction",
                    buf.dimensions(),
                    buf.shape()
                )));
            }
            if buf.is_c_contiguous() {
                return Ok(Column::InPlace(buf));
            }
        }
        let v: Vec<T> = obj.extract().map_err(|e| {
            PyTypeError::new_err(format!("{name}: give a 1-D NumPy array or a sequence of numbers ({e})"))
        })?;
        Ok(Column::Copied(v))
    }

    fn values(&self) -> &[T] {
        match self {
            Column::InPlace(b) => contiguous(b).unwrap_or(&[]),
            Column::Copied(v) => v,
        }
    }
}

/// `Agent.record_batch`: every row recorded through the Rust hook, with the GIL released.
#[allow(clippy::too_many_arguments)]
pub fn record_batch(
    py: Python<'_>,
    shape: &Shape,
    handle: &Handle,
    segment: &Bound<'_, PyAny>,
    latency_s: &Bound<'_, PyAny>,
    confidence: &Bound<'_, PyAny>,
    features: Option<&Bound<'_, PyAny>>,
    predicted: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    let latency = Column::<f64>::of("latency_s", latency_s)?;
    let confidence = Column::<f64>::of("confidence", confidence)?;
    let n = latency.values().len();
    let check = |name: &str, len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "{name} has {len} rows, latency_s has {n}: give one per prediction"
            )))
        }
    };
    check("confidence", confidence.values().len())?;
    let segments: Vec<SegmentId> = if let Ok(s) = segment.cast::<PyString>() {
        vec![handle.segment(s.to_str()?)]
    } else {
        let names: Vec<String> = segment.extract().map_err(|_| {
            PyTypeError::new_err("segment: give one segment name, or a sequence of names, one per prediction")
        })?;
        check("segment", names.len())?;
        names.iter().map(|s| handle.segment(s)).collect()
    };
    // Labels are few bytes a row; NumPy's bool format has no buffer element type here.
    // Labels: a NumPy array (bool, int) read as bytes through `astype` (NumPy's bool has
    // no buffer element type here); any other sequence by the truth of each value.
    let predicted: Option<Column<u8>> = match predicted {
        None => None,
        Some(p) => {
            let bytes = p.call_method1("astype", ("u1",)).ok();
            match bytes.as_ref().map(|b| Column::<u8>::of("predicted", b)) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => return Err(e),
                None => {
                    let items: Vec<u8> = p
                        .try_iter()
                        .map_err(|e| {
                            PyTypeError::new_err(format!("predicted: give a sequence of labels ({e})"))
                        })?
                        .map(|x| x.ok().and_then(|x| truth(&x)).map_or(2, u8::from))
                        .collect();
                    Some(Column::Copied(items))
                }
            }
        }
    };
    if let Some(p) = &predicted {
        check("predicted", p.values().len())?;
    }
    let features = match features {
        None => None,
        Some(obj) => {
            let buf = PyBuffer::<f64>::get(obj).map_err(|e| {
                PyTypeError::new_err(format!(
                    "features: give a 2-D float64 NumPy array, one row per prediction ({e})"
                ))
            })?;
            if !(buf.dimensions() == 2 && buf.shape()[0] == n) {
                return Err(PyValueError::new_err(format!(
                    "features: shape {:?}, expected ({n}, {}): a row per prediction",
                    buf.shape(),
                    shape.width
                )));
            }
            if !buf.is_c_contiguous() {
                return Err(PyValueError::new_err(
                    "features: the array is not C-contiguous (a slice or Fortran order); pass np.ascontiguousarray(x, dtype=np.float64)",
                ));
            }
            Some((buf.shape()[1], buf))
        }
    };
    let width = features.as_ref().map_or(0, |f| f.0);
    py.detach(|| {
        let lat = latency.values();
        let conf = confidence.values();
        let feats = features.as_ref().and_then(|f| contiguous(&f.1)).unwrap_or(&[]);
        let pred = predicted.as_ref().map(|p| p.values());
        for i in 0..n {
            let segment = segments[if segments.len() == 1 { 0 } else { i }];
            let row = if width == 0 { &[][..] } else { &feats[i * width..(i + 1) * width] };
            let mut p = Prediction::new(segment, Latency::from_secs_f64(lat[i]), conf[i]).features(row);
            // 2: a label that was no truth value, recorded without one.
            if let Some(&label) = pred.and_then(|p| p.get(i))
                && label != 2
            {
                p = p.predicted(label != 0);
            }
            handle.record(&p);
        }
    });
    Ok(n)
}

/// One interval's snapshot as a dict, for a Python sink.
pub fn snapshot_dict<'py>(py: Python<'py>, s: &Snapshot) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("seq", s.seq)?;
    d.set_item("start", s.start.as_nanos() as f64 / 1e9)?;
    d.set_item("end", s.end.as_nanos() as f64 / 1e9)?;
    d.set_item("model", &*s.model.name)?;
    d.set_item("version", &*s.model.version)?;
    d.set_item("variant", &*s.model.variant)?;
    d.set_item("instance", &*s.model.instance)?;
    let segments = PyList::empty(py);
    for seg in &s.segments {
        let x = PyDict::new(py);
        x.set_item("segment", &*seg.segment)?;
        x.set_item("predictions", seg.predictions)?;
        x.set_item("predicted_positive", seg.predicted_positive)?;
        let q = |p: f64| (!seg.latency.is_empty()).then(|| seg.latency.value_at_quantile(p) as f64 / 1e9);
        x.set_item("latency_p50_s", q(0.50))?;
        x.set_item("latency_p95_s", q(0.95))?;
        x.set_item("latency_p99_s", q(0.99))?;
        x.set_item("latency_sum_s", seg.latency_sum_nanos as f64 / 1e9)?;
        x.set_item("mean_confidence", seg.confidence.mean())?;
        x.set_item("feedback", seg.feedback())?;
        x.set_item("errors", seg.errors.iter().map(|(k, n)| (k.to_string(), *n)).collect::<HashMap<_, _>>())?;
        let inv = PyDict::new(py);
        inv.set_item("latency", seg.invalid.latency)?;
        inv.set_item("latency_clamped", seg.invalid.latency_clamped)?;
        inv.set_item("confidence", seg.invalid.confidence)?;
        inv.set_item("feedback_confidence", seg.invalid.feedback_confidence)?;
        inv.set_item("schema", seg.invalid.schema)?;
        x.set_item("invalid", inv)?;
        segments.append(x)?;
    }
    d.set_item("segments", segments)?;
    let features = PyList::empty(py);
    for f in &s.features {
        let x = PyDict::new(py);
        x.set_item("segment", &*f.segment)?;
        x.set_item("feature", &*f.feature)?;
        match &f.stats {
            FeatureStats::Numeric(n) => {
                x.set_item("count", n.count)?;
                x.set_item("missing", n.missing)?;
                x.set_item("invalid", n.invalid)?;
                x.set_item("min", n.min)?;
                x.set_item("max", n.max)?;
                x.set_item("mean", (n.count > 0).then_some(n.mean))?;
            }
            FeatureStats::Categorical(c) => {
                x.set_item(
                    "counts",
                    c.counts.iter().map(|(k, n)| (k.to_string(), *n)).collect::<HashMap<_, _>>(),
                )?;
                x.set_item("missing", c.missing)?;
            }
        }
        features.append(x)?;
    }
    d.set_item("features", features)?;
    d.set_item("labels_for_earlier_predictions", s.cohorts.iter().map(|c| c.count()).sum::<u64>())?;
    Ok(d)
}
