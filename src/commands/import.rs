//! `modelwatch import FILE`: replays prediction logs through the agent, with a manual clock
//! set to each row's timestamp, into the store.

use crate::cli::{Format, ImportArgs};
use anyhow::{Context, bail};
use modelwatch::agent::{Feature, Latency, ManualClock, Timestamp};
use modelwatch::{Agent, Prediction};
use modelwatch_store::{Store, StoreConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const REQUIRED: [&str; 7] =
    ["timestamp", "model", "version", "variant", "segment", "latency_ms", "confidence"];
/// Most distinct categories kept per categorical feature (later ones count as `other`).
const MAX_CATEGORIES: usize = 1_000;
/// Most distinct segments kept per model (later ones go to `other`).
const MAX_SEGMENTS: usize = 1_000;

/// The input as text cells, with the line (CSV) or row (Parquet) number of each record.
struct Input {
    header: Vec<String>,
    records: Vec<(u64, Vec<String>)>,
    /// Records that could not even be split into cells.
    unreadable: Vec<(u64, String)>,
}

fn read_csv(path: &Path) -> anyhow::Result<Input> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // Line numbers from byte offsets: the csv crate's own line count is off by one on CRLF.
    let newlines: Vec<u64> = bytes.iter().enumerate().filter(|b| *b.1 == b'\n').map(|b| b.0 as u64).collect();
    let line_of = |pos: Option<&csv::Position>| {
        pos.map_or(0, |p| 1 + newlines.partition_point(|&n| n <= p.byte()) as u64)
    };
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(&bytes[..]);
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut input = Input { header, records: Vec::new(), unreadable: Vec::new() };
    for rec in r.records() {
        match rec {
            Ok(rec) => input.records.push((line_of(rec.position()), rec.iter().map(str::to_owned).collect())),
            Err(e) => input.unreadable.push((line_of(e.position()), e.to_string())),
        }
    }
    Ok(input)
}

fn read_parquet(path: &Path) -> anyhow::Result<Input> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .with_context(|| format!("{}: not a readable Parquet file", path.display()))?
            .build()?;
    let mut input = Input { header: Vec::new(), records: Vec::new(), unreadable: Vec::new() };
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.with_context(|| format!("{}: reading a row group", path.display()))?;
        if input.header.is_empty() {
            input.header = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        }
        // Each column once to text: timestamps as epoch milliseconds (whatever their unit
        // or zone), everything else through Arrow's own cast to strings.
        let columns: Vec<arrow_array::StringArray> = batch
            .columns()
            .iter()
            .map(|c| -> anyhow::Result<arrow_array::StringArray> {
                let c = if let arrow_schema::DataType::Timestamp(..) = c.data_type() {
                    let ms = arrow_cast::cast(
                        c,
                        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
                    )?;
                    arrow_cast::cast(
                        &arrow_cast::cast(&ms, &arrow_schema::DataType::Int64)?,
                        &arrow_schema::DataType::Utf8,
                    )?
                } else {
                    arrow_cast::cast(c, &arrow_schema::DataType::Utf8)?
                };
                Ok(c.as_string::<i32>().clone())
            })
            .collect::<anyhow::Result<_>>()?;
        for i in 0..batch.num_rows() {
            row += 1;
            input.records.push((
                row,
                columns
                    .iter()
                    .map(|c| if c.is_null(i) { String::new() } else { c.value(i).to_string() })
                    .collect(),
            ));
        }
    }
    Ok(input)
}

/// One parsed input row.
struct Row {
    line: u64,
    ts_ms: i64,
    model: (String, String, String),
    segment: String,
    latency_ms: f64,
    confidence: f64,
    label: Option<bool>,
    error: Option<String>,
    values: Vec<String>,
}

fn parse_number(name: &str, s: &str) -> Result<f64, String> {
    s.trim().parse::<f64>().map_err(|_| format!("{name} {s:?} is not a number"))
}

fn parse_label(s: &str) -> Result<Option<bool>, String> {
    match s.trim() {
        "" => Ok(None),
        "1" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "false" | "FALSE" | "False" => Ok(Some(false)),
        other => Err(format!("label {other:?} is not 0, 1 or empty")),
    }
}

pub fn run(env: &super::Env, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let now = env.now_ms();
    let ext = args.file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let input = match ext.as_str() {
        "csv" => read_csv(&args.file)?,
        "parquet" | "pq" => read_parquet(&args.file)?,
        _ => bail!("{}: unknown input format (expected .csv or .parquet)", args.file.display()),
    };
    let col = |name: &str| input.header.iter().position(|h| h == name);
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| col(c).is_none()).collect();
    if !missing.is_empty() {
        bail!(
            "{}: missing required column(s): {} (have: {})",
            args.file.display(),
            missing.join(", "),
            input.header.join(", ")
        );
    }
    let idx: Vec<usize> = REQUIRED.iter().map(|c| col(c).unwrap_or(0)).collect();
    let (label_col, error_col) = (col("label"), col("error"));
    let features: Vec<(usize, String)> = input
        .header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("f.").map(|n| (i, n.to_string())))
        .collect();

    let mut rejected: Vec<(u64, String)> = input.unreadable.clone();
    if args.strict && !rejected.is_empty() {
        bail!("line {}: {}", rejected[0].0, rejected[0].1);
    }
    let mut rows = Vec::with_capacity(input.records.len());
    for (line, rec) in &input.records {
        let cell = |i: usize| rec.get(i).map(String::as_str).unwrap_or("");
        let parsed = (|| -> Result<Row, String> {
            if rec.len() != input.header.len() {
                return Err(format!(
                    "fields: {} in the row, {} in the header",
                    rec.len(),
                    input.header.len()
                ));
            }
            Ok(Row {
                line: *line,
                ts_ms: modelwatch::time::parse_time(cell(idx[0]), now)
                    .map_err(|e| format!("timestamp {e}"))?,
                model: (cell(idx[1]).to_string(), cell(idx[2]).to_string(), cell(idx[3]).to_string()),
                segment: cell(idx[4]).to_string(),
                latency_ms: parse_number("latency_ms", cell(idx[5]))?,
                confidence: parse_number("confidence", cell(idx[6]))?,
                label: label_col.map(|c| parse_label(cell(c))).transpose()?.flatten(),
                error: error_col.map(|c| cell(c).trim().to_string()).filter(|e| !e.is_empty()),
                values: features.iter().map(|(i, _)| cell(*i).to_string()).collect(),
            })
        })();
        match parsed {
            Ok(r) => rows.push(r),
            Err(reason) if args.strict => bail!("{}: line {line}: {reason}", args.file.display()),
            Err(reason) => rejected.push((*line, reason)),
        }
    }
    rows.sort_by_key(|r| r.ts_ms);

    // A feature is categorical when any of its values is neither empty nor a number.
    let is_number = |v: &str| v.trim().is_empty() || v.trim().parse::<f64>().is_ok();
    let kinds: Vec<Option<Vec<String>>> = (0..features.len())
        .map(|f| {
            if rows.iter().all(|r| is_number(&r.values[f])) {
                return None;
            }
            let mut vocab: Vec<String> = Vec::new();
            for r in &rows {
                let v = r.values[f].trim();
                if !v.is_empty() && vocab.len() < MAX_CATEGORIES && !vocab.iter().any(|c| c == v) {
                    vocab.push(v.to_string());
                }
            }
            Some(vocab)
        })
        .collect();
    let schema: Vec<Feature> = features
        .iter()
        .zip(&kinds)
        .map(|((_, name), kind)| match kind {
            None => Feature::numeric(name.as_str()),
            Some(vocab) => Feature::categorical(name.as_str(), vocab.iter().map(String::as_str)),
        })
        .collect();

    let mut groups: BTreeMap<(String, String, String), Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        groups.entry(r.model.clone()).or_default().push(r);
    }
    std::fs::create_dir_all(&args.data.data)
        .with_context(|| format!("creating {}", args.data.data.display()))?;
    let store = Arc::new(
        Store::open(StoreConfig { background: false, maintenance_every: None, ..args.data.store_config() })
            .with_context(|| format!("opening the store at {}", args.data.data.display()))?,
    );
    let bar = indicatif::ProgressBar::new(rows.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut snapshots = 0;
    for ((model, version, variant), rows) in &groups {
        let mut segments: Vec<&str> = Vec::new();
        for r in rows {
            if segments.len() < MAX_SEGMENTS && !segments.contains(&r.segment.as_str()) {
                segments.push(&r.segment);
            }
        }
        let first = rows.first().map_or(0, |r| r.ts_ms.max(0) as u64);
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(first)));
        let agent = Agent::builder(model)
            .version(version)
            .variant(variant)
            .instance("import")
            .segments(&segments)
            .features(schema.clone())
            .interval(Duration::from_secs(args.interval.max(1)))
            .clock(clock.clone())
            .background_flush(false)
            .build(store.clone())?;
        let h = agent.handle();
        let mut numbers = vec![f64::NAN; features.len()];
        let mut categories: Vec<Option<&str>> = Vec::new();
        for r in rows {
            clock.set(Timestamp::from_millis(r.ts_ms.max(0) as u64));
            agent.flush_due().with_context(|| format!("line {}: writing to the store", r.line))?;
            if let Some(kind) = &r.error {
                h.error(r.segment.as_str(), h.error_kind(kind));
            } else {
                categories.clear();
                for (f, v) in r.values.iter().enumerate() {
                    let v = v.trim();
                    match &kinds[f] {
                        None => {
                            numbers[f] = if v.is_empty() { f64::NAN } else { v.parse().unwrap_or(f64::NAN) }
                        }
                        Some(_) => {
                            numbers[f] = f64::NAN;
                            categories.push((!v.is_empty()).then_some(v));
                        }
                    }
                }
                let p =
                    Prediction::new(r.segment.as_str(), Latency::from_millis_f64(r.latency_ms), r.confidence)
                        .features(&numbers)
                        .categories(&categories);
                h.record(&p);
                if let Some(label) = r.label {
                    h.feedback(r.segment.as_str(), r.confidence, label);
                }
            }
            bar.inc(1);
        }
        agent.flush_now()?;
        snapshots += agent.stats().snapshots;
        agent.shutdown().with_context(|| format!("model {model} {version} {variant}: final flush"))?;
    }
    store.flush().context("publishing the imported rows")?;
    bar.finish_and_clear();

    if args.format == Format::Json {
        let rejected: Vec<_> = rejected
            .iter()
            .map(|(line, reason)| serde_json::json!({ "line": line, "reason": reason }))
            .collect();
        super::print_json(&serde_json::json!({
            "file": args.file.display().to_string(), "data": args.data.data.display().to_string(),
            "imported_rows": rows.len(), "model_variants": groups.len(), "snapshots": snapshots,
            "rejected": rejected,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "imported {} rows from {} into {} ({} model variants, {} snapshots); rejected {}",
        rows.len(),
        args.file.display(),
        args.data.data.display(),
        groups.len(),
        snapshots,
        rejected.len()
    );
    if !rejected.is_empty() {
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for (_, reason) in &rejected {
            let kind = reason.split(' ').next().unwrap_or("").to_string();
            *by_reason.entry(kind).or_default() += 1;
        }
        for (line, reason) in rejected.iter().take(20) {
            eprintln!("  line {line}: {reason}");
        }
        if rejected.len() > 20 {
            eprintln!("  ... and {} more", rejected.len() - 20);
        }
        let summary: Vec<String> =
            by_reason.iter().map(|(k, n)| format!("{n} {}", k.trim_end_matches(':'))).collect();
        println!("rejected by field: {}", summary.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
