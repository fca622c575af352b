//! `modelwatch._modelwatch`: the native half of the Python package `modelwatch`.
//!
//! # Data flow
//!
//! A Python scorer thread calls `Agent.record` → [`agent::Agent::record`] turns the Python
//! arguments into a [`modelwatch_agent::Prediction`] without allocating (features from a
//! list, a tuple, a dict by name, or any buffer of float64 such as a NumPy array, read in
//! place) → the Rust agent's lock-free hook, exactly as a Rust scorer's call → the agent's
//! flusher thread → the store in the data directory (or a Python sink). The readers
//! (`query`, `drift`, `quality`) run the CLI's own code on that store, with the GIL released.
//!
//! # Forks
//!
//! Pre-forked servers (gunicorn, uwsgi) fork after the application is loaded, so an
//! `Agent` made in the parent is used in every child. A child has none of the parent's
//! threads (the agent's flusher, the store's publisher), and the locks they held stay held
//! forever. `modelwatch/__init__.py` registers [`after_fork_in_child`] with
//! `os.register_at_fork`; it bumps [`FORK_GENERATION`], and the next call on an agent in
//! the child sees the change and builds a fresh agent over a fresh store handle (its own
//! writer slot). The parent's copy is leaked, never dropped: dropping it would join threads
//! that do not exist, and flush the parent's counts a second time.

mod agent;
mod convert;
mod deployment;
mod readers;

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped in every child process right after a fork; an agent built in an older generation
/// rebuilds itself before its next call.
pub(crate) static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called by `os.register_at_fork(after_in_child=...)`; not for users.
#[pyfunction]
fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The Rust hook's own cost in this build, for the benchmark's same-run comparison: `threads`
/// Rust threads each record `per_thread` predictions into an agent with a null sink, on the
/// data the benchmark's `record_batch` gets: rows of `features` values (column `j` holds
/// `j / 2`) read in turn from a matrix of 100,000 rows, a latency of 1 ms and a confidence
/// of 0.5. Returns nanoseconds per call as each thread sees it (the slowest thread's time /
/// `per_thread`). Not part of the API.
#[pyfunction]
fn _bench_rust_record(py: Python<'_>, per_thread: u64, threads: usize, features: usize) -> PyResult<f64> {
    use modelwatch_agent::{Agent, Feature, NullSink, Prediction};
    const ROWS: usize = 100_000;
    let agent = Agent::builder("bench")
        .segments(["all"])
        .features((0..features).map(|i| Feature::numeric(format!("f{i}"))))
        .build(NullSink)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let handle = agent.handle();
    let elapsed = py.detach(|| {
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            let joins: Vec<_> = (0..threads)
                .map(|_| {
                    let (handle, barrier) = (handle.clone(), &barrier);
                    s.spawn(move || {
                        let matrix: Vec<f64> =
                            (0..ROWS * features).map(|k| (k % features) as f64 * 0.5).collect();
                        let seg = handle.segment("all");
                        let latency = std::time::Duration::from_millis(1);
                        handle.record(&Prediction::new(seg, latency, 0.5).features(&matrix[..features]));
                        barrier.wait();
                        let start = std::time::Instant::now();
                        for i in 0..per_thread as usize {
                            let at = (i % ROWS) * features;
                            handle.record(
                                &Prediction::new(seg, latency, 0.5).features(&matrix[at..at + features]),
                            );
                        }
                        start.elapsed()
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap_or_default()).max().unwrap_or_default()
        })
    });
    drop(agent);
    Ok(elapsed.as_nanos() as f64 / per_thread.max(1) as f64)
}

#[pymodule]
fn _modelwatch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_rust_record, m)?)?;
    m.add_function(wrap_pyfunction!(agent::close_all_at_exit, m)?)?;
    m.add_class::<agent::Agent>()?;
    m.add_class::<agent::Timer>()?;
    m.add_class::<deployment::Deployment>()?;
    m.add_class::<deployment::Variant>()?;
    m.add_function(wrap_pyfunction!(deployment::close_deployments, m)?)?;
    readers::register(m)?;
    Ok(())
}
