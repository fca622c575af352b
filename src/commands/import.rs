//! `modelwatch import FILE`: replays prediction logs through the agent, with a manual clock
//! set to each row's timestamp, into the store; streaming, in bounded memory, and
//! idempotent.
//!
//! 1. The header is checked: the required columns must be there; columns the importer does
//!    not use are named (and refused under `--strict`, before anything is read).
//! 2. The file's SHA-256 names it. The store's `import` events say whether a run already
//!    imported it (then nothing is done) or how many of its records a run that stopped
//!    half-way stored (then they are skipped): `progress`.
//! 3. A first pass reads every record: it checks them (`--strict` stops at the first bad
//!    one, before anything is written) and learns the categorical features' vocabularies
//!    and each model variant's segments, which the agents need before the first row:
//!    `scan`.
//! 4. A second pass reads the records in batches; each batch goes through one agent per
//!    model variant into one set of store rows (`replay`), appended with its progress event
//!    as one WAL record: one fsync per batch, and a batch is in the store whole or not at
//!    all.
//!
//! Memory is one batch (at most `--batch-rows` parsed rows, fewer when they spread over
//! many intervals) plus the store's buffer, whatever the file's size.

mod columns;
mod input;
mod progress;
mod replay;
mod scan;

use super::UsageError;
use crate::cli::{Format, ImportArgs};
use anyhow::{Context, anyhow, bail};
use columns::{Columns, known_columns};
use input::Source;
use modelwatch::time::rfc3339;
use modelwatch_store::{Store, StoreConfig};
use progress::{Previous, Progress};
use replay::Batch;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Input rows in the first batch, before the rows' spread over intervals is known.
const FIRST_BATCH_ROWS: usize = 4_096;
/// Store rows a batch aims at: it bounds a batch's memory when input rows spread over many
/// intervals (each interval of each model variant, segment and feature is a store row).
const BATCH_STORE_ROWS: f64 = 50_000.0;
/// The fewest input rows in a batch (unless `--batch-rows` says fewer).
const MIN_BATCH_ROWS: usize = 256;
/// Rejected rows kept for the report (`--format json` lists them; the table shows 20).
const REJECTS_KEPT: usize = 1_000;
const REJECTS_SHOWN: usize = 20;

pub fn run(env: &super::Env, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let now = env.now_ms();
    let path = &args.file;
    let header = Source::open(path)?.header().to_vec();
    let columns = Columns::new(&header).map_err(|missing| {
        anyhow!(
            "{}: missing required column(s): {} (have: {})",
            path.display(),
            missing.join(", "),
            header.join(", ")
        )
    })?;
    if !columns.unknown.is_empty() {
        let n = columns.unknown.len();
        let list = format!(
            "{n} unknown column{}: {} (known: {})",
            if n == 1 { "" } else { "s" },
            columns.unknown.join(", "),
            known_columns()
        );
        if args.strict {
            return Err(UsageError(format!("{}: {list}; --strict imports nothing", path.display())).into());
        }
        eprintln!("ignoring {list}");
    }
    let stamp = FileStamp::of(path)?;
    let sha256 = input::content_hash(path)?;

    std::fs::create_dir_all(&args.data.data)
        .with_context(|| format!("creating {}", args.data.data.display()))?;
    let store =
        Store::open(StoreConfig { background: false, maintenance_every: None, ..args.data.store_config() })
            .with_context(|| format!("opening the store at {}", args.data.data.display()))?;
    let previous = progress::previous(&store, &sha256)?;
    if let Some(p) = previous.as_ref().filter(|p| p.progress.complete) {
        return already_imported(args, p, &sha256);
    }

    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("checking {}", path.display()));
    let scan = scan::scan(path, &columns, args.strict, now, |n| spinner.set_position(n))?;
    spinner.finish_and_clear();
    stamp.check(path)?;
    let skip = previous.as_ref().map_or(0, |p| p.progress.rows_done);
    if skip > scan.records {
        bail!(
            "{}: {} records, but an earlier import of the same bytes stored {skip}",
            path.display(),
            scan.records
        );
    }

    let name = path.display().to_string();
    let started = rfc3339(now);
    let mut done =
        previous.as_ref().map_or_else(|| Progress::start(&sha256, &name, &started), |p| p.progress.clone());
    done.file = name.clone();
    done.imported_at = started;
    // Events are placed at the latest row time stored so far (see `progress`).
    let mut event_ms = previous.as_ref().map(|p| p.time_ms);
    let schema = &scan.schema;
    let event_model = match schema.single_model() {
        Some(m) => (m.model.as_str(), m.version.as_str(), m.variant.as_str()),
        None => ("modelwatch", "", ""),
    };
    let feature_columns: Vec<usize> = columns.features.iter().map(|f| f.0).collect();
    let interval = Duration::from_secs(args.interval.max(1));
    let batch_limit = usize::try_from(args.batch_rows).unwrap_or(usize::MAX).max(1);

    let bar = indicatif::ProgressBar::new(scan.records).with_position(skip).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut source = Source::open(path)?;
    source.start(&columns.uses(), skip)?;
    let mut batch = Batch::default();
    let mut rejects = Rejects::default();
    let mut run = RunCounts::default();
    let mut offset = skip;
    let mut max_rows = FIRST_BATCH_ROWS.min(batch_limit);
    loop {
        batch.clear();
        let want = (max_rows as u64).min(scan.records - offset);
        while batch.records < want {
            let Some(record) = source.next()? else { return Err(changed(path)) };
            batch.records += 1;
            let parsed = match &record.cells {
                Ok(cells) => columns.parse(cells, now).map(|f| (f, cells)),
                Err(e) => Err(e.clone()),
            };
            match parsed {
                Ok((fields, cells)) => {
                    if !batch.push(schema, &fields, cells, &feature_columns) {
                        return Err(changed(path));
                    }
                }
                Err(reason) if args.strict => bail!("{}: line {}: {reason}", path.display(), record.line),
                Err(reason) => {
                    batch.rejected += 1;
                    rejects.add(record.line, reason);
                }
            }
            if batch.records.is_multiple_of(4_096) {
                bar.set_position(offset + batch.records);
            }
        }
        let replayed = batch.replay(schema, interval)?;
        offset += batch.records;
        done.rows_done = offset;
        done.imported += replayed.imported;
        done.rejected += batch.rejected;
        done.complete = offset == scan.records;
        done.total_rows = done.complete.then_some(scan.records);
        let mut rows = replayed.rows;
        let store_rows = rows.len();
        event_ms = event_ms.max(replayed.latest_ms);
        rows.events.push(done.event(event_ms.unwrap_or(now), event_model)?);
        stamp.check(path)?;
        store.append(rows).with_context(|| {
            format!("writing rows up to line {} of {} to the store", offset, path.display())
        })?;
        run.appends += 1;
        run.imported += replayed.imported;
        run.snapshots += replayed.snapshots;
        bar.set_position(offset);
        if done.complete {
            break;
        }
        // Keep the next batch near BATCH_STORE_ROWS store rows, at the rate of this one.
        let per_row = (store_rows as f64 / batch.records.max(1) as f64).max(1e-6);
        max_rows = ((BATCH_STORE_ROWS / per_row) as usize).max(MIN_BATCH_ROWS).min(batch_limit);
    }
    if source.next()?.is_some() {
        return Err(changed(path));
    }
    store.flush().context("publishing the imported rows")?;
    bar.finish_and_clear();
    report(args, &scan, previous.as_ref(), &run, &rejects, &sha256)
}

/// What this run did.
#[derive(Default)]
struct RunCounts {
    imported: u64,
    snapshots: u64,
    /// Store appends: WAL records, each one fsync.
    appends: u64,
}

/// Rejected rows: all counted, the first [`REJECTS_KEPT`] kept with their reason.
#[derive(Default)]
struct Rejects {
    total: u64,
    kept: Vec<(u64, String)>,
    by_field: BTreeMap<String, u64>,
}

impl Rejects {
    fn add(&mut self, line: u64, reason: String) {
        self.total += 1;
        let field = reason.split(' ').next().unwrap_or("").trim_end_matches(':').to_string();
        *self.by_field.entry(field).or_default() += 1;
        if self.kept.len() < REJECTS_KEPT {
            self.kept.push((line, reason));
        }
    }
}

/// The file's size and modification time: an import reads it several times, and stops if
/// it changes in between (its hash names the bytes the first read saw).
struct FileStamp(u64, Option<std::time::SystemTime>);

impl FileStamp {
    fn of(path: &Path) -> anyhow::Result<FileStamp> {
        let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(FileStamp(m.len(), m.modified().ok()))
    }

    fn check(&self, path: &Path) -> anyhow::Result<()> {
        let now = FileStamp::of(path)?;
        if (now.0, now.1) != (self.0, self.1) {
            return Err(changed(path));
        }
        Ok(())
    }
}

fn changed(path: &Path) -> anyhow::Error {
    anyhow!(
        "{}: the file changed during the import; the batches stored so far are recorded under its \
         old content's hash: import a file that no longer changes",
        path.display()
    )
}

fn already_imported(args: &ImportArgs, p: &Previous, sha256: &str) -> anyhow::Result<ExitCode> {
    let when = &p.progress.imported_at;
    if args.format == Format::Json {
        super::print_json(&serde_json::json!({
            "file": args.file.display().to_string(), "data": args.data.data.display().to_string(),
            "already_imported": true, "imported_rows": p.progress.imported,
            "rejected_total": p.progress.rejected, "imported_at": when, "sha256": sha256,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "already imported: {} rows on {when} (the same bytes as {}, sha256 {}); nothing to do",
        p.progress.imported,
        args.file.display(),
        &sha256[..16]
    );
    Ok(ExitCode::SUCCESS)
}

fn report(
    args: &ImportArgs,
    scan: &scan::Scan,
    previous: Option<&Previous>,
    run: &RunCounts,
    rejects: &Rejects,
    sha256: &str,
) -> anyhow::Result<ExitCode> {
    let skipped = previous.map_or(0, |p| p.progress.rows_done);
    let models = scan.schema.models.len();
    if args.format == Format::Json {
        let rejected: Vec<_> = rejects
            .kept
            .iter()
            .map(|(line, reason)| serde_json::json!({ "line": line, "reason": reason }))
            .collect();
        super::print_json(&serde_json::json!({
            "file": args.file.display().to_string(), "data": args.data.data.display().to_string(),
            "imported_rows": run.imported, "model_variants": models, "snapshots": run.snapshots,
            "rejected": rejected, "rejected_total": rejects.total, "store_appends": run.appends,
            "resumed_after_rows": skipped, "sha256": sha256,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(p) = previous {
        println!(
            "resumed: the first {skipped} rows of {} ({} imported, {} rejected) were stored by a run on {}",
            args.file.display(),
            p.progress.imported,
            p.progress.rejected,
            p.progress.imported_at
        );
    }
    println!(
        "imported {} rows from {} into {} ({} model variants, {} snapshots, {} store append{}); rejected {}",
        run.imported,
        args.file.display(),
        args.data.data.display(),
        models,
        run.snapshots,
        run.appends,
        if run.appends == 1 { "" } else { "s" },
        rejects.total
    );
    if rejects.total > 0 {
        for (line, reason) in rejects.kept.iter().take(REJECTS_SHOWN) {
            eprintln!("  line {line}: {reason}");
        }
        if rejects.total > REJECTS_SHOWN as u64 {
            eprintln!("  ... and {} more", rejects.total - REJECTS_SHOWN as u64);
        }
        let summary: Vec<String> = rejects.by_field.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("rejected by field: {}", summary.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
