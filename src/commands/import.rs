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
//! 4. A second pass reads the records in batches on a thread of its own (`fill`); each
//!    batch goes through one agent per model variant into one set of store rows
//!    (`replay`), appended with its progress event as one WAL record: one fsync per batch,
//!    and a batch is in the store whole or not at all.
//! 5. A third thread publishes the appended rows as Parquet every few MiB (`publisher`).
//!
//! Memory is two batches of parsed rows (at most `--batch-rows` each, fewer when their store
//! rows would pass `BATCH_BYTES`) and the appended rows not yet published, whatever the
//! file's size.

mod columns;
mod fill;
mod input;
mod progress;
mod publisher;
mod replay;
mod scan;

use super::UsageError;
use crate::cli::{Format, ImportArgs};
use anyhow::{Context, anyhow, bail};
use columns::{Columns, known_columns};
use fill::Rejects;
use input::Source;
use modelwatch::time::rfc3339;
use modelwatch_store::{Rows, Store, StoreConfig};
use progress::{Previous, Progress};
use publisher::Publication;
use replay::{Agents, Batch};
use scan::Schema;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Input rows in the first batch, before the rows' spread over intervals is known (each
/// batch is at most four times the one before).
const FIRST_BATCH_ROWS: usize = 256;
/// The size a batch's store rows aim at ([`publisher::footprint`]). It bounds a batch when
/// its input rows make many store rows: rows spread over many intervals, many segments or
/// features, wide distributions.
const BATCH_BYTES: usize = 1 << 20;
/// The fewest input rows in a batch (unless `--batch-rows` says fewer).
const MIN_BATCH_ROWS: usize = 256;
/// Rejected rows the table lists (`--format json` lists the first 1,000).
const REJECTS_SHOWN: usize = 20;

pub fn run(env: &super::Env, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let now = env.now_ms();
    let path = &args.file;
    let header = Source::open(path)?.header().to_vec();
    let mut columns = Columns::new(&header).map_err(|missing| {
        anyhow!(
            "{}: missing required column(s): {} (have: {})",
            path.display(),
            missing.join(", "),
            header.join(", ")
        )
    })?;
    columns.max_label_delay_ms = env.duration(&args.max_label_delay, "max-label-delay")?;
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
    // Two imports of the same bytes at once would each find nothing stored yet and count
    // every row twice: the second waits for the first, then finds the file imported.
    let _same_file = lock_file_import(&args.data.data, &sha256)?;
    // The import publishes the store's buffer itself, by its size (see `publisher`).
    let config = StoreConfig {
        background: false,
        maintenance_every: None,
        buffer_rows: usize::MAX,
        ..args.data.store_config()
    };
    let store =
        Store::open(config).with_context(|| format!("opening the store at {}", args.data.data.display()))?;
    let previous = progress::previous(&store, &sha256)?;
    if let Some(p) = previous.as_ref().filter(|p| p.progress.complete) {
        return already_imported(args, p, &sha256);
    }

    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("checking {}", path.display()));
    let started_scan = std::time::Instant::now();
    let scan = scan::scan(path, &columns, args.strict, now, |n| spinner.set_position(n))?;
    spinner.finish_and_clear();
    tracing::debug!(records = scan.records, seconds = started_scan.elapsed().as_secs_f64(), "first pass");
    let started_import = std::time::Instant::now();
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
    let mut progress =
        previous.as_ref().map_or_else(|| Progress::start(&sha256, &name, &started), |p| p.progress.clone());
    progress.file = name;
    progress.imported_at = started;
    let bar = indicatif::ProgressBar::new(scan.records).with_position(skip).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let batch_limit = usize::try_from(args.batch_rows).unwrap_or(usize::MAX).max(1);
    let batch_rows = AtomicUsize::new(FIRST_BATCH_ROWS.min(batch_limit));
    let storing = Storing {
        store: &store,
        schema: &scan.schema,
        interval: Duration::from_secs(args.interval.max(1)),
        total: scan.records,
        now_ms: now,
        path,
        stamp: &stamp,
        bar: &bar,
        batch_rows: &batch_rows,
        batch_limit,
    };
    let reading = fill::Reading {
        path,
        columns: &columns,
        schema: &scan.schema,
        now_ms: now,
        strict: args.strict,
        skip,
        total: scan.records,
        batch_rows: &batch_rows,
        interval_ms: i64::try_from(storing.interval.as_millis()).unwrap_or(i64::MAX),
    };
    // Three threads: one reads and parses batches (two circulate), this one replays and
    // appends them, one publishes the appended rows as Parquet.
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(1);
    let (free_tx, free_rx) = mpsc::channel::<Batch>();
    for _ in 0..2 {
        free_tx.send(Batch::default()).context("starting the import")?;
    }
    let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
    let publication = Publication::default();
    let (run, rejects) = std::thread::scope(|s| -> anyhow::Result<_> {
        let reader = s.spawn(move || fill::read_batches(reading, free_rx, full_tx));
        let publisher = s.spawn(|| publication.run(&store, wake_rx));
        let stored = storing.run(
            progress,
            previous.as_ref().map(|p| p.time_ms),
            full_rx,
            free_tx,
            &publication,
            wake_tx,
        );
        // A reading error (a bad row under --strict, a changed file) is why storing stopped.
        let rejects = reader.join().map_err(|_| anyhow!("the reading thread panicked"))??;
        publisher.join().map_err(|_| anyhow!("the publishing thread panicked"))?;
        if let Some(e) = publication.error() {
            return Err(anyhow::Error::new(e).context("publishing the imported rows"));
        }
        Ok((stored?, rejects))
    })?;
    store.flush().context("publishing the imported rows")?;
    bar.finish_and_clear();
    tracing::debug!(
        appends = run.appends,
        seconds = started_import.elapsed().as_secs_f64(),
        waiting = run.waiting.as_secs_f64(),
        replaying = run.replaying.as_secs_f64(),
        appending = run.appending.as_secs_f64(),
        "second pass"
    );
    report(args, &scan, previous.as_ref(), &run, &rejects, &sha256)
}

/// The second pass's storing side: replays each batch and appends it with its progress.
struct Storing<'a> {
    store: &'a Store,
    schema: &'a Schema,
    interval: Duration,
    total: u64,
    now_ms: i64,
    path: &'a Path,
    stamp: &'a FileStamp,
    bar: &'a indicatif::ProgressBar,
    batch_rows: &'a AtomicUsize,
    batch_limit: usize,
}

impl Storing<'_> {
    /// Stores the batches from `full` until the file's last, handing each back to `free`:
    /// this thread replays them, an appending thread appends each with its progress event
    /// (so that its fsync overlaps replaying the next) and wakes the publisher.
    /// `event_ms` is the time of the last progress event stored (a resumed run's).
    fn run(
        &self,
        progress: Progress,
        event_ms: Option<i64>,
        full: mpsc::Receiver<Batch>,
        free: mpsc::Sender<Batch>,
        publication: &Publication,
        wake: mpsc::SyncSender<()>,
    ) -> anyhow::Result<RunCounts> {
        let (append_tx, append_rx) = mpsc::sync_channel::<Appended>(1);
        std::thread::scope(|s| {
            let appender = s.spawn(move || self.append(append_rx, publication, wake));
            let replayed = self.replay(progress, event_ms, full, free, append_tx);
            // An appending error is why replaying stopped.
            let (appends, appending) =
                appender.join().map_err(|_| anyhow!("the appending thread panicked"))??;
            let mut run = replayed?;
            run.appends = appends;
            run.appending = appending;
            Ok(run)
        })
    }

    fn replay(
        &self,
        mut progress: Progress,
        mut event_ms: Option<i64>,
        full: mpsc::Receiver<Batch>,
        free: mpsc::Sender<Batch>,
        append: mpsc::SyncSender<Appended>,
    ) -> anyhow::Result<RunCounts> {
        let event_model = match self.schema.single_model() {
            Some(m) => (m.model.as_str(), m.version.as_str(), m.variant.as_str()),
            None => ("modelwatch", "", ""),
        };
        let mut run = RunCounts::default();
        let mut agents = Agents::new(self.interval);
        while !progress.complete {
            let t = std::time::Instant::now();
            let Ok(mut batch) = full.recv() else { bail!("{}: reading stopped", self.path.display()) };
            run.waiting += t.elapsed();
            let t = std::time::Instant::now();
            let replayed = batch.replay(self.schema, &mut agents)?;
            run.replaying += t.elapsed();
            progress.rows_done += batch.records;
            progress.imported += replayed.imported;
            progress.rejected += batch.rejected;
            progress.complete = progress.rows_done == self.total;
            progress.total_rows = progress.complete.then_some(self.total);
            let mut rows = replayed.rows;
            // Keep the next batches near BATCH_BYTES of store rows, at the rate of this one.
            let bytes = publisher::footprint(&rows);
            let per_row = (bytes as f64 / batch.records.max(1) as f64).max(1.0);
            let next = ((BATCH_BYTES as f64 / per_row) as usize)
                .min(4 * batch.records as usize)
                .max(MIN_BATCH_ROWS)
                .min(self.batch_limit);
            self.batch_rows.store(next, Ordering::Relaxed);
            // Events are placed at the latest row time stored so far (see `progress`).
            event_ms = event_ms.max(replayed.latest_ms);
            rows.events.push(progress.event(event_ms.unwrap_or(self.now_ms), event_model)?);
            if append.send(Appended { rows, bytes, rows_done: progress.rows_done }).is_err() {
                bail!("{}: appending stopped", self.path.display());
            }
            run.imported += replayed.imported;
            run.snapshots += replayed.snapshots;
            // The reading thread may have finished: it no longer needs the batch.
            let _ = free.send(batch);
        }
        agents.finish()?;
        Ok(run)
    }

    /// The appending thread: appends each batch's rows (one WAL record, one fsync) in order,
    /// and wakes the publisher.
    fn append(
        &self,
        batches: mpsc::Receiver<Appended>,
        publication: &Publication,
        wake: mpsc::SyncSender<()>,
    ) -> anyhow::Result<(u64, Duration)> {
        let (mut appends, mut appending) = (0, Duration::ZERO);
        for a in batches {
            self.stamp.check(self.path)?;
            let t = std::time::Instant::now();
            self.store.append(a.rows).with_context(|| {
                format!("storing records up to {} of {}", a.rows_done, self.path.display())
            })?;
            appending += t.elapsed();
            appends += 1;
            publication.appended(self.store, a.bytes, &wake).context("publishing the imported rows")?;
            self.bar.set_position(a.rows_done);
        }
        Ok((appends, appending))
    }
}

/// A replayed batch on its way to the store.
struct Appended {
    rows: Rows,
    /// Its [`publisher::footprint`].
    bytes: usize,
    /// The records stored once it is.
    rows_done: u64,
}

/// What this run did.
#[derive(Default)]
struct RunCounts {
    /// Time this thread waited for batches, replayed them, appended them (for debugging).
    waiting: Duration,
    replaying: Duration,
    appending: Duration,
    imported: u64,
    snapshots: u64,
    /// Store appends: WAL records, each one fsync.
    appends: u64,
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
    say!(
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
        say!(
            "resumed: the first {skipped} rows of {} ({} imported, {} rejected) were stored by a run on {}",
            args.file.display(),
            p.progress.imported,
            p.progress.rejected,
            p.progress.imported_at
        );
    }
    say!(
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
        say!("rejected by field: {}", summary.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Holds `<data>/imports/<sha256>.lock` (an `flock`, released when the process ends) for
/// the import of one file's bytes, waiting while another process imports the same bytes.
fn lock_file_import(data: &std::path::Path, sha256: &str) -> anyhow::Result<std::fs::File> {
    let dir = data.join("imports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{sha256}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
        eprintln!("another process is importing the same file into this store; waiting for it to finish");
        file.lock().with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}
