//! What a label costs on the caller's thread: `feedback` (a prediction made now, into the
//! shard) against `feedback_for` (an earlier prediction, through the label queue), and what
//! grouping a million queued labels costs the flusher. One thread, a manual clock.
//!
//! `cargo run --release -p modelwatch-agent --example label_cost`

use modelwatch_agent::{Agent, ManualClock, NullSink, Timestamp};
use std::time::Instant;

fn main() {
    let now = 1_764_115_200;
    let agent = Agent::builder("m")
        .segments(["email"])
        .clock(ManualClock::new(Timestamp::from_secs(now)))
        .background_flush(false)
        .max_pending_labels(1 << 22)
        .build(NullSink)
        .expect("agent");
    let h = agent.handle();
    let email = h.segment("email");
    let an_hour_ago = Timestamp::from_secs(now - 3_600);
    let n = 1_000_000u64;
    for round in 0..3 {
        let t = Instant::now();
        for i in 0..n {
            h.feedback(email, (i % 1000) as f64 / 1000.0, i % 2 == 0);
        }
        let now_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for i in 0..n {
            h.feedback_for(an_hour_ago, email, (i % 1000) as f64 / 1000.0, i % 2 == 0);
        }
        let earlier_ns = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        agent.flush_now().expect("flush");
        println!(
            "round {round}: feedback {now_ns:.1} ns, feedback_for {earlier_ns:.1} ns per call; a flush grouping 1M labels {:?}",
            t.elapsed()
        );
    }
}
