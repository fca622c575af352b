//! Running the server: the runtime, the listener, the store refresher, the trigger worker
//! beside it, and a graceful stop on Ctrl-C or SIGTERM.

use super::{AppState, ServeConfig, router};
use modelwatch_agent::Clock;
use modelwatch_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    run_with(Arc::new(store), config, clock, None)
}

/// Runs the server, and the trigger engine beside it when given (evaluated every
/// `every`, on its own thread), until Ctrl-C or SIGTERM.
pub fn run_with(
    store: Arc<Store>,
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    triggers: Option<(crate::triggers::TriggerEngine, Duration)>,
) -> Result<(), ServeError> {
    let worker = triggers
        .map(|(engine, every)| crate::triggers::TriggerWorker::spawn(engine, store.clone(), every))
        .transpose()?;
    // The worker stops (and is joined) when dropped, after the server returns.
    serve_until_signal(store, config, clock, worker.as_ref().map(|w| w.commands()))
}

fn serve_until_signal(
    store: Arc<Store>,
    config: ServeConfig,
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
        let state = AppState::new(store, config, clock);
        if let Some(tx) = triggers {
            state.set_trigger_commands(tx);
        }
        spawn_refresher(state.clone());
        eprintln!("modelwatch: serving {} on http://{addr}", state.store.dir().display());
        eprintln!("  Grafana JSON datasource: http://{addr}/grafana   Prometheus: http://{addr}/metrics");
        axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
        Ok(())
    })
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
