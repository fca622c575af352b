//! `modelwatch crash-writer` (hidden): appends snapshots to the store forever and prints
//! `<writer slot> <sequence number>` for each one after the store acknowledged it. The
//! crash-loop and fleet tests kill it with SIGKILL at random moments and check that every
//! printed number survived, once. Each slot's numbers are a stream of their own: whoever
//! claims the slot next continues it.

use crate::cli::CrashWriterArgs;
use modelwatch::agent::{Clock, LabelledPrediction, ManualClock, Timestamp};
use modelwatch::{Agent, Feature, Prediction};
use modelwatch_store::{ReadRequest, Resolution, Store, StoreConfig, Table};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Name of the gauge that carries the writer's sequence number in each snapshot.
pub const SEQ_GAUGE: &str = "crash_writer_seq";

pub fn run(args: &CrashWriterArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data.data)?;
    let maintenance_every = (args.maintenance_ms > 0).then(|| Duration::from_millis(args.maintenance_ms));
    let store = Arc::new(Store::open(StoreConfig {
        buffer_rows: args.buffer_rows,
        maintenance_every,
        // Retention as of the data's own (simulated) dates, never the real one.
        clock: Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200))),
        ..args.data.store_config()
    })?);
    let writer = store.writer_id().unwrap_or_default().to_string();
    let done = store.read(
        &ReadRequest::new(Table::Scalars, 0, i64::MAX, Resolution::Raw)
            .tag("metric", SEQ_GAUGE)
            .tag("writer", &writer),
    )?;
    let mut seq = done.scalars.iter().map(|r| r.value as u64 + 1).max().unwrap_or(0);
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_764_115_200 + seq * 10)));
    let agent = Agent::builder("crash")
        .segments(["a", "b"])
        .features([Feature::numeric("x")])
        .interval(Duration::from_secs(10))
        .clock(clock.clone())
        .background_flush(false)
        .build(store.clone())?;
    let h = agent.handle();
    let gauge = h.gauge(SEQ_GAUGE, &[("writer", writer.as_str())]);
    let mut out = std::io::stdout().lock();
    loop {
        for i in 0..5u64 {
            h.record(
                &Prediction::new(if i % 2 == 0 { "a" } else { "b" }, Duration::from_micros(100 + i), 0.5)
                    .features(&[seq as f64]),
            );
        }
        gauge.record(seq as f64);
        // One labelled example per snapshot, named by slot and number: the examples crash
        // test checks each acknowledged one is stored once.
        let id = format!("{writer}-{seq}");
        h.example(&LabelledPrediction::new("a", clock.now(), &[seq as f64], 0.5, seq % 2 == 0).id(&id));
        clock.advance(Duration::from_secs(10));
        // flush_due returns only after the store acknowledged (WAL append + fsync).
        agent.flush_due()?;
        writeln!(out, "{writer} {seq}")?;
        out.flush()?;
        seq += 1;
    }
}
