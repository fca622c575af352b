//! Running the server: the runtime, the listener and its accept loop (connection caps and
//! timeouts, see [`conn`]), the store refresher, the trigger worker beside it, and a
//! graceful stop on Ctrl-C or SIGTERM.

mod conn;

use super::{AppState, ServeConfig, router};
use conn::{Admission, HeadTimer, Watched};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use modelwatch_agent::Clock;
use modelwatch_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Largest request head (request line and headers) read, bytes: past it the answer is a
/// 431 (hyper's limit, made JSON). It also bounds what a connection buffers before its
/// request reaches a handler: 1,024 connections hold at most 64 MiB of heads.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request target (path and query), bytes: past it the answer is a 414.
pub(super) const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in a request (hyper's default): past it the answer is a 431.
pub(super) const MAX_HEADERS: usize = 100;
/// File descriptors kept for the store (Parquet files, WAL segments), the trigger sinks and
/// the runtime when the connection cap is sized to the process's limit.
const RESERVED_FDS: u64 = 256;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the connection loop failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(store: Store, config: ServeConfig, clock: Arc<dyn Clock>) -> Result<(), ServeError> {
    run_with(Arc::new(store), config, clock, None, None)
}

/// The retraining manager to run beside the trigger engine in `serve`: the manager, the
/// events the engine's channel sink sends, and the events found unacknowledged at start.
pub type RetrainSetup = (
    crate::retrain::RetrainManager,
    crossbeam_channel::Receiver<crate::triggers::RetrainEvent>,
    Vec<crate::triggers::RetrainEvent>,
);

/// Runs the server, and the trigger engine beside it when given (evaluated every
/// `every`, on its own thread) with the retraining manager on the events it fires (on a
/// thread of its own too), until Ctrl-C or SIGTERM.
pub fn run_with(
    store: Arc<Store>,
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    triggers: Option<(crate::triggers::TriggerEngine, Duration)>,
    retrain: Option<RetrainSetup>,
) -> Result<(), ServeError> {
    let worker = triggers
        .map(|(engine, every)| crate::triggers::TriggerWorker::spawn(engine, store.clone(), every))
        .transpose()?;
    // Dropped (stopped after its run in progress) before the trigger worker it acknowledges
    // through: locals drop in reverse order.
    let _retrain = match (retrain, &worker) {
        (Some((manager, events, pending)), Some(w)) => {
            Some(crate::retrain::RetrainWorker::spawn(manager, events, pending, w.commands())?)
        }
        _ => None,
    };
    // The worker stops (and is joined) when dropped, after the server returns.
    serve_until_signal(store, config, clock, worker.as_ref().map(|w| w.commands()))
}

fn serve_until_signal(
    store: Arc<Store>,
    mut config: ServeConfig,
    clock: Arc<dyn Clock>,
    triggers: Option<crossbeam_channel::Sender<crate::triggers::TriggerCommand>>,
) -> Result<(), ServeError> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("modelwatch-serve").build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && config.token.is_none() {
            tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach it can read the store");
        }
        config.max_connections = within_file_limit(config.max_connections);
        let state = AppState::new(store, config, clock);
        if let Some(tx) = triggers {
            state.set_trigger_commands(tx);
        }
        spawn_refresher(state.clone());
        eprintln!("modelwatch: serving {} on http://{addr}", state.store.dir().display());
        eprintln!("  Grafana JSON datasource: http://{addr}/grafana   Prometheus: http://{addr}/metrics");
        serve(listener, state, shutdown_signal()).await;
        Ok(())
    })
}

/// The connection cap, lowered to what the process may open beside the store's own files:
/// a server out of descriptors can neither accept nor refresh the store.
fn within_file_limit(max_connections: usize) -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(soft) = limit {
            let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
            if fit < max_connections {
                tracing::warn!(
                    max_connections,
                    open_files = soft,
                    "the process may open {soft} files: holding at most {fit} connections (raise `ulimit -n` for more)"
                );
                return fit;
            }
        }
    }
    max_connections
}

/// Accepts connections on `listener` and serves each over HTTP/1.1 until `stop` resolves;
/// then lets each connection finish its request (within [`ServeConfig::timeout`]).
///
/// Past [`ServeConfig::max_connections`] (or the per-address cap) a new connection is
/// accepted, answered 503 (429) with a JSON message and closed at once, rather than left
/// waiting in the kernel's backlog: a waiting client, a load balancer's health check
/// among them, would learn nothing until its own connect timeout, the backlog would fill
/// with connections their clients have given up on, and the server would hold them all.
/// Closing keeps the process at the cap (one descriptor more for an instant) and tells the
/// client at once to retry later.
async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>, stop: impl Future<Output = ()>) {
    let (header_read_timeout, idle_timeout) = (state.config.header_read_timeout, state.config.idle_timeout);
    let admission =
        Arc::new(Admission::new(state.config.max_connections, state.config.max_connections_per_address));
    let grace = state.config.timeout;
    // Around the whole router (as its fallback), so that the layer sees each answer as it
    // leaves, the `Allow` a 405 gets from its route included.
    let app = axum::Router::new()
        .fallback_service(router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state, super::error::json_everywhere));
    // `stop_tx` tells connections to finish; `done_rx` clones, one per connection, say
    // when all have.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                // A fresh socket's send buffer is empty: the short answer goes out whole
                // or not at all, without waiting for a client that may never read.
                let _ = stream.try_write(&refusal.to_http1());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, mut stop_rx, done_rx) = (app.clone(), stop_rx.clone(), done_rx.clone());
        tokio::spawn(async move {
            let (io, activity) = Watched::new(stream);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(HeadTimer::new(activity, header_read_timeout, idle_timeout))
                .header_read_timeout(header_read_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_header_size(MAX_HEAD_BYTES);
            let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop_rx.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop((slot, done_rx));
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop((stop_rx, done_rx));
    if tokio::time::timeout(grace, done_tx.closed()).await.is_err() {
        tracing::warn!("connections still open {} s after the stop: closing them", grace.as_secs());
    }
}

/// An accept that failed: a connection the client reset before it was accepted is nobody's
/// problem; out of descriptors (or memory), wait a little for connections to close rather
/// than spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Refreshes the read-only store and feeds the Prometheus exposition every interval.
pub fn spawn_refresher(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.refresh_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = state.clone();
            let done = tokio::task::spawn_blocking(move || {
                if let Err(e) = s.store.refresh() {
                    tracing::warn!(error = %e, "refreshing the store failed; serving what was read before");
                }
            })
            .await;
            if done.is_err() {
                return;
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
