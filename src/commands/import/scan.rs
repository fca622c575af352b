//! The first pass over the input: counts its records, checks every row (stopping at the
//! first bad one under `--strict`), and learns what the agents must be told before the
//! first row is replayed: which features are categorical and their vocabularies, and the
//! segments of each model variant. It keeps no row: its memory is the vocabularies and
//! segment lists, each bounded.

use super::columns::{Columns, Fields, is_number, trim};
use super::input::{Cell, Cells, Source};
use anyhow::bail;
use modelwatch::agent::Feature;
use std::collections::HashMap;
use std::path::Path;

/// Most distinct categories kept per categorical feature (later ones count as `other`).
const MAX_CATEGORIES: usize = 1_000;
/// Most distinct segments kept per model variant (later ones go to `other`).
const MAX_SEGMENTS: usize = 1_000;

/// A segment the agent is not told of (beyond [`MAX_SEGMENTS`]): recorded as `other`.
pub(super) const OTHER_SEGMENT: u32 = u32::MAX;

/// One model, version and variant of the input, with its segments in order of appearance.
pub(super) struct ModelVariant {
    pub(super) model: String,
    pub(super) version: String,
    pub(super) variant: String,
    pub(super) segments: Vec<String>,
    segment_index: HashMap<String, u32>,
}

/// What the agents are built with, learnt from the whole input.
pub(super) struct Schema {
    /// The agents' features, in column order.
    pub(super) features: Vec<Feature>,
    /// Per feature: `None` when numeric, else the code of each category.
    pub(super) codes: Vec<Option<HashMap<Box<str>, u32>>>,
    pub(super) models: Vec<ModelVariant>,
    model_index: HashMap<String, u32>,
}

/// What the first pass found.
pub(super) struct Scan {
    /// Records in the file, readable or not.
    pub(super) records: u64,
    pub(super) schema: Schema,
}

/// A feature while the input is read: numeric until a value is neither empty nor a number.
struct FeatureScan {
    numeric: bool,
    vocabulary: HashMap<Box<str>, u32>,
}

impl Schema {
    /// The model variant of a row, by its name, version and variant (`key` is scratch).
    pub(super) fn model_of(&self, key: &mut String, f: &Fields<'_>) -> Option<u32> {
        model_key(key, f);
        self.model_index.get(key.as_str()).copied()
    }

    /// The index of a segment among its model variant's, or [`OTHER_SEGMENT`].
    pub(super) fn segment_of(&self, model: u32, segment: &str) -> u32 {
        self.models[model as usize].segment_index.get(segment).copied().unwrap_or(OTHER_SEGMENT)
    }

    /// Feature `f`'s value for the agent: the number (NaN when empty or not a number), or
    /// for a categorical feature its code (the vocabulary's length for `other`, NaN when
    /// empty).
    pub(super) fn value(&self, f: usize, cell: Cell<'_>) -> f64 {
        match (cell, &self.codes[f]) {
            (Cell::Number(x), _) => x,
            (Cell::Text(s), None) => {
                let s = trim(s);
                if s.is_empty() { f64::NAN } else { s.parse().unwrap_or(f64::NAN) }
            }
            (Cell::Text(s), Some(codes)) => {
                let s = trim(s);
                if s.is_empty() { f64::NAN } else { codes.get(s).map_or(codes.len(), |&c| c as usize) as f64 }
            }
        }
    }

    /// The one model variant of the input, if there is only one.
    pub(super) fn single_model(&self) -> Option<&ModelVariant> {
        match &self.models[..] {
            [one] => Some(one),
            _ => None,
        }
    }
}

fn model_key(key: &mut String, f: &Fields<'_>) {
    key.clear();
    for part in [f.model, f.version, f.variant] {
        key.push_str(part);
        key.push('\0');
    }
}

/// Reads the whole input once. `tick` is told the records read so far, now and then.
pub(super) fn scan(
    path: &Path,
    columns: &Columns,
    strict: bool,
    now_ms: i64,
    mut tick: impl FnMut(u64),
) -> anyhow::Result<Scan> {
    let mut source = Source::open(path)?;
    source.start(&columns.uses(), 0)?;
    let mut features: Vec<FeatureScan> =
        columns.features.iter().map(|_| FeatureScan { numeric: true, vocabulary: HashMap::new() }).collect();
    let mut models: Vec<ModelVariant> = Vec::new();
    let mut model_index: HashMap<String, u32> = HashMap::new();
    let mut key = String::new();
    let mut records = 0u64;
    while let Some(record) = source.next()? {
        records += 1;
        if records.is_multiple_of(4_096) {
            tick(records);
        }
        let fields = match &record.cells {
            Ok(cells) => columns.parse(cells, now_ms),
            Err(e) => Err(e.clone()),
        };
        let (fields, cells) = match (fields, &record.cells) {
            (Ok(f), Ok(cells)) => (f, cells),
            (Err(reason), _) if strict => {
                let at = record.at;
                bail!("{}: line {}: {reason}", path.display(), source.line(at)?)
            }
            _ => continue,
        };
        model_key(&mut key, &fields);
        let m = match model_index.get(key.as_str()) {
            Some(&m) => m,
            None => {
                models.push(ModelVariant {
                    model: fields.model.to_string(),
                    version: fields.version.to_string(),
                    variant: fields.variant.to_string(),
                    segments: Vec::new(),
                    segment_index: HashMap::new(),
                });
                model_index.insert(key.clone(), (models.len() - 1) as u32);
                (models.len() - 1) as u32
            }
        };
        let mv = &mut models[m as usize];
        if mv.segments.len() < MAX_SEGMENTS && !mv.segment_index.contains_key(fields.segment) {
            mv.segment_index.insert(fields.segment.to_string(), mv.segments.len() as u32);
            mv.segments.push(fields.segment.to_string());
        }
        observe_features(&mut features, columns, cells);
    }
    tick(records);
    let schema = Schema {
        features: columns
            .features
            .iter()
            .zip(&features)
            .map(|((_, name), f)| {
                if f.numeric {
                    return Feature::numeric(name.as_str());
                }
                let mut vocabulary: Vec<(&str, u32)> = f.vocabulary.iter().map(|(k, v)| (&**k, *v)).collect();
                vocabulary.sort_by_key(|c| c.1);
                Feature::categorical(name.as_str(), vocabulary.into_iter().map(|c| c.0))
            })
            .collect(),
        codes: features.into_iter().map(|f| (!f.numeric).then_some(f.vocabulary)).collect(),
        models,
        model_index,
    };
    Ok(Scan { records, schema })
}

/// A valid row's feature values: a feature stays numeric while every value is empty or a
/// number; the first [`MAX_CATEGORIES`] distinct values make its vocabulary in case it is not.
fn observe_features(features: &mut [FeatureScan], columns: &Columns, cells: &Cells<'_>) {
    for (f, (col, _)) in features.iter_mut().zip(&columns.features) {
        let Cell::Text(v) = cells.get(*col) else { continue };
        let v = trim(v);
        if f.numeric && !v.is_empty() && !is_number(v) {
            f.numeric = false;
        }
        if !v.is_empty() && f.vocabulary.len() < MAX_CATEGORIES && !f.vocabulary.contains_key(v) {
            let code = f.vocabulary.len() as u32;
            f.vocabulary.insert(v.into(), code);
        }
    }
}
