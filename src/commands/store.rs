//! `modelwatch store inspect | verify | compact`.

use super::{Env, open_read_only, print_json};
use crate::cli::{DataArg, Format};
use anyhow::Context;
use comfy_table::Table as TextTable;
use modelwatch::time::rfc3339;
use modelwatch_store::{
    MaintenanceReport, Store, StoreConfig, StoreError, Table, list_writers, writer_slots,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

pub fn inspect(data: &DataArg, format: Format) -> anyhow::Result<ExitCode> {
    let dir = &data.data;
    let store = open_read_only(data)?;
    let m = store.manifest();
    let writers = list_writers(&data.store_config())?;
    #[derive(Default)]
    struct Part {
        files: u64,
        rows: u64,
        bytes: u64,
        min: i64,
        max: i64,
    }
    let mut parts: BTreeMap<(Table, String, &'static str), Part> = BTreeMap::new();
    for f in &m.files {
        let p = parts.entry((f.table, f.date.clone(), f.resolution.as_str())).or_insert(Part {
            min: i64::MAX,
            max: i64::MIN,
            ..Default::default()
        });
        p.files += 1;
        p.rows += f.rows;
        p.bytes += f.bytes;
        p.min = p.min.min(f.min_ms);
        p.max = p.max.max(f.max_ms);
    }
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let partitions: Vec<_> = parts
                .iter()
                .map(|((t, d, r), p)| {
                    serde_json::json!({
                        "table": t.as_str(), "date": d, "resolution": r, "files": p.files, "rows": p.rows,
                        "bytes": p.bytes, "from": rfc3339(p.min), "to": rfc3339(p.max),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "data": dir.display().to_string(),
                "partitions": partitions,
                "files": m.files.len(),
                "rows": m.files.iter().map(|f| f.rows).sum::<u64>(),
                "bytes": m.files.iter().map(|f| f.bytes).sum::<u64>(),
                "wal_bytes": store.wal_bytes(),
                "buffered_rows": store.buffered_rows(),
                "writers": writers.iter().map(|w| serde_json::json!({
                    "id": w.slot.id, "held": w.slot.held,
                    "holder": w.slot.holder.as_ref().map(|h| serde_json::json!({"pid": h.pid, "host": h.host, "since": h.since})),
                    "files": w.files, "rows": w.rows, "bytes": w.bytes,
                    "wal_bytes": w.wal_bytes, "unpublished_rows": w.unpublished_rows,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Table => {
            let mut t = TextTable::new();
            t.set_header(["table", "date", "resolution", "files", "rows", "bytes", "from", "to"]);
            for ((table, date, res), p) in &parts {
                t.add_row([
                    table.as_str().to_string(),
                    date.clone(),
                    res.to_string(),
                    p.files.to_string(),
                    p.rows.to_string(),
                    p.bytes.to_string(),
                    rfc3339(p.min),
                    rfc3339(p.max),
                ]);
            }
            writeln!(out, "{t}")?;
            let mut w = TextTable::new();
            w.set_header(["writer", "held by", "files", "rows", "bytes", "WAL bytes", "unpublished rows"]);
            for x in &writers {
                let by = match (&x.slot.holder, x.slot.held) {
                    (Some(h), _) => h.to_string(),
                    (None, true) => "a live process".into(),
                    (None, false) => "free".into(),
                };
                w.add_row([
                    x.slot.id.clone(),
                    by,
                    x.files.to_string(),
                    x.rows.to_string(),
                    x.bytes.to_string(),
                    x.wal_bytes.to_string(),
                    x.unpublished_rows.to_string(),
                ]);
            }
            writeln!(out, "{w}")?;
            writeln!(
                out,
                "{} files, {} rows, {} bytes; WAL {} bytes ({} rows not yet in Parquet)",
                m.files.len(),
                m.files.iter().map(|f| f.rows).sum::<u64>(),
                m.files.iter().map(|f| f.bytes).sum::<u64>(),
                store.wal_bytes(),
                store.buffered_rows()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(data: &DataArg, format: Format) -> anyhow::Result<ExitCode> {
    let dir = &data.data;
    if !dir.exists() {
        anyhow::bail!("{}: no such data directory", dir.display());
    }
    // Read-only: opening the store would cut a torn WAL tail before we could report it.
    let v = modelwatch_store::verify_dir(dir, data.store_config().objects.as_ref())
        .with_context(|| format!("verifying {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "files": v.files, "writers": v.writers, "ok": v.problems.is_empty(),
                "problems": v.problems, "notes": v.notes,
            }))?
        )?,
        Format::Table => {
            for p in &v.problems {
                writeln!(out, "damaged: {p}")?;
            }
            for n in &v.notes {
                writeln!(out, "note: {n}")?;
            }
            if v.problems.is_empty() {
                writeln!(
                    out,
                    "ok: {} files and the WAL of {} writer slot{} read back intact",
                    v.files,
                    v.writers,
                    if v.writers == 1 { "" } else { "s" }
                )?;
            }
        }
    }
    Ok(if v.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn repair(data: &DataArg, yes: bool, format: Format) -> anyhow::Result<ExitCode> {
    let dir = &data.data;
    if !dir.exists() {
        anyhow::bail!("{}: no such data directory", dir.display());
    }
    let r = modelwatch_store::repair_dir(&data.store_config(), yes)
        .with_context(|| format!("repairing the WAL of {}", dir.display()))?;
    let segments: Vec<(&String, &modelwatch_store::SegmentRepair)> =
        r.reports.iter().flat_map(|(id, rep)| rep.segments.iter().map(move |s| (id, s))).collect();
    match format {
        Format::Json => print_json(&serde_json::json!({
            "applied": yes,
            "segments": segments.iter().map(|(id, s)| serde_json::json!({
                "writer": id, "path": s.path.display().to_string(), "what": s.to_string(),
                "kept_before": s.kept_before, "kept_after": s.kept_after,
                "dropped": s.dropped.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
                "moved_to": s.moved_to.as_ref().map(|p| p.display().to_string()),
            })).collect::<Vec<_>>(),
            "skipped": r.skipped.iter().map(|(id, who)| serde_json::json!({"writer": id, "held_by": who})).collect::<Vec<_>>(),
        }))?,
        Format::Table => {
            for (id, who) in &r.skipped {
                say!("skipped writer slot {id}: held by {who}, whose writer opened its WAL intact");
            }
            for (id, s) in &segments {
                say!("{id}: {s}");
            }
            if segments.is_empty() {
                say!("nothing to repair: every WAL segment is intact");
            } else if !yes {
                say!("nothing changed; run again with --yes to repair");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn compact(
    env: &Env,
    data: &DataArg,
    as_of: Option<&str>,
    wait: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let now = match as_of {
        Some(t) => env.time(t, "as-of")?,
        None => env.now_ms(),
    };
    let dir = &data.data;
    if !dir.exists() {
        anyhow::bail!(
            "{}: no such data directory (run `modelwatch import` or `modelwatch demo` first)",
            dir.display()
        );
    }
    // The CLI's store does its work in the foreground and exits: no background thread.
    let config = StoreConfig { background: false, maintenance_every: None, ..data.store_config() };
    let mut skipped = Vec::new();
    let ids: Vec<String> = match &data.writer_id {
        Some(id) => vec![id.clone()],
        None => {
            let mut ids = Vec::new();
            for w in writer_slots(&config)? {
                // A slot with objects in the bucket but no lock or WAL here is written from
                // another host: adopting it could stop that live writer. Name it with
                // --writer-id to adopt it once its host is gone.
                if w.local {
                    ids.push(w.id);
                } else {
                    let why = "written from another host (no lock or WAL for it here; name it with --writer-id to adopt it once that host is gone)";
                    skipped.push((w.id, why.to_string()));
                }
            }
            ids
        }
    };
    let bar =
        indicatif::ProgressBar::new_spinner().with_message("compacting, rolling up, applying retention");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut done = Vec::new();
    for id in ids {
        // A slot a live process holds is that process's to maintain; a free one is adopted
        // (its WAL replayed and published) for the length of this pass.
        let opened =
            Store::open(StoreConfig { writer: Some(id.clone()), wait_for_writer: wait, ..config.clone() });
        match opened {
            Ok(store) => {
                let mut report =
                    store.maintain(now).with_context(|| format!("maintaining writer slot {id}"))?;
                // A pass rewrites at most 32 files of an older format (short passes in a
                // scorer's background); this command converts the slot whole.
                let mut last = report.rewritten_files;
                while last > 0 {
                    let more =
                        store.maintain(now).with_context(|| format!("maintaining writer slot {id}"))?;
                    last = more.rewritten_files;
                    report.rewritten_files += last;
                    report.compacted_files += more.compacted_files;
                    report.rolled_up_rows += more.rolled_up_rows;
                    report.dropped_files += more.dropped_files;
                }
                done.push((id, report));
            }
            Err(StoreError::WriterHeld { holder, .. }) => {
                let who = holder.map_or_else(|| "a live process".to_string(), |h| h.to_string());
                skipped.push((
                    id,
                    format!("held by {who}, whose own maintenance compacts it (or run with --wait)"),
                ));
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(
                    anyhow::Error::new(e).context(format!("opening writer slot {id} of {}", dir.display()))
                );
            }
        }
    }
    bar.finish_and_clear();
    let total = |f: fn(&MaintenanceReport) -> usize| done.iter().map(|(_, r)| f(r)).sum::<usize>();
    match format {
        Format::Json => print_json(&serde_json::json!({
            "as_of": rfc3339(now),
            "compacted_files": total(|r| r.compacted_files),
            "rolled_up_rows": total(|r| r.rolled_up_rows),
            "dropped_files": total(|r| r.dropped_files),
            "rewritten_files": total(|r| r.rewritten_files),
            "writers": done.iter().map(|(id, r)| serde_json::json!({
                "id": id, "compacted_files": r.compacted_files,
                "rolled_up_rows": r.rolled_up_rows, "dropped_files": r.dropped_files,
                "rewritten_files": r.rewritten_files,
            })).collect::<Vec<_>>(),
            "skipped": skipped.iter().map(|(id, why)| serde_json::json!({"id": id, "reason": why})).collect::<Vec<_>>(),
        }))?,
        Format::Table => {
            for (id, why) in &skipped {
                say!("skipped writer slot {id}: {why}");
            }
            say!(
                "compacted {} files, wrote {} roll-up rows, dropped {} files past retention, rewrote {} files of an older format (as of {}) in {} writer slot{}",
                total(|r| r.compacted_files),
                total(|r| r.rolled_up_rows),
                total(|r| r.dropped_files),
                total(|r| r.rewritten_files),
                rfc3339(now),
                done.len(),
                if done.len() == 1 { "" } else { "s" }
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}
