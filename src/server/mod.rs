//! The HTTP server: accepts connections up to a cap the open-file limit allows
//! ([`limits`]), puts each behind the [`guard`] (request deadlines, JSON answers to
//! requests that are not HTTP), and serves the actix-web app over actix-http's HTTP/1
//! dispatcher. Owns no route and no rule of the API.
//!
//! It is assembled from actix-web's own parts (actix-server, actix-http's `HttpService`,
//! the app) as `actix_web::HttpServer::listen` assembles them, because `HttpServer` has no
//! place to wrap a connection's I/O before the dispatcher reads it.

pub mod guard;
pub mod limits;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive, ServiceConfig};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Server, fn_service};
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};
use utoipa_actix_web::AppExt;

use crate::api::{self, AppState};
use crate::{dashboard, routes};

use self::guard::{Guarded, Load};
use self::limits::ConnectionBudget;

/// How long a graceful stop waits for requests in flight, in seconds.
const SHUTDOWN_GRACE_SECS: u64 = 10;

/// How long a stopped server waits for its workers to release the shared state.
const STATE_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle connection is kept open for its next request (actix-web's default).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long the dispatcher reads and drops what a client still sends after an answer
/// that closes the connection, so the close does not reset it before the client has read
/// the answer (actix-web's default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many connections may wait to be accepted, once the server holds its cap: they
/// wait in the kernel, not in the process (the kernel caps it at `net.core.somaxconn`).
/// A listener from `std` has 128, which a burst past the cap fills at once; further
/// clients then see their handshake unanswered and retry after seconds.
const LISTEN_BACKLOG: i32 = 2048;

/// The number of HTTP worker threads: one per core.
pub fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Serves the API and dashboard on `listener` until `shutdown` completes, then stops
/// gracefully: no new connections, requests in flight finish (up to a grace period), then
/// delivery attempts in flight finish and are recorded. Holds as many connections as the
/// open-file limit allows ([`ConnectionBudget::measure`]).
/// Must run inside an actix system (`actix_web::rt::System`).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let budget = ConnectionBudget::measure(&state.config, worker_count());
    serve_within(state, listener, shutdown, budget).await
}

/// Like [`serve`], holding at most the connections `budget` allows.
pub async fn serve_within(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + 'static,
    budget: ConnectionBudget,
) -> std::io::Result<()> {
    if budget.too_low() {
        tracing::warn!(
            "the open-file limit leaves too few descriptors: {}; raise it (LimitNOFILE, ulimit -n)",
            budget.describe()
        );
    }
    socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG)?;
    let address = listener.local_addr()?;
    let state = Arc::new(state);
    run_replays(&state);
    let data = web::Data::from(Arc::clone(&state));
    let portal_policy = web::Data::new(dashboard::PortalPolicy::new(&state.config.portal.frame_ancestors));
    let load = Arc::new(Load::new(state.config.server.request_timeout, budget.total()));
    // Built now, so the routes' document is ready before the first request needs it.
    api::openapi::document();

    let builder = Server::build();
    let stopping = builder.graceful_shutdown_signal();
    let server = builder
        .workers(budget.workers)
        .max_concurrent_connections(budget.per_worker)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .listen("stile-http", listener, move || {
            let app = App::new()
                .app_data(data.clone())
                .app_data(portal_policy.clone())
                .wrap(from_fn(api::boundary))
                .into_utoipa_app()
                .configure(routes::configure)
                .into_app();
            let stopping = stopping.clone();
            let http = HttpService::build()
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
                // The guard bounds the whole request, its head included, and answers in JSON.
                .client_request_timeout(Duration::ZERO)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(address)
                // On a graceful stop, idle kept-alive connections close at once instead of
                // holding the stop for their keep-alive (as `HttpServer` wires it).
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .on_connect_ext(|io: &Guarded<TcpStream>, data: &mut actix_http::Extensions| {
                    data.insert(io.connection());
                })
                .h1(map_config(app.into_factory(), |_| AppConfig::default()));
            // One per worker thread: its date service is the thread's.
            let config = ServiceConfig::default();
            let load = Arc::clone(&load);
            fn_service(move |io: TcpStream| {
                let peer = io.peer_addr().ok();
                let guarded = Guarded::new(io, peer, Arc::clone(&load), config.clone());
                std::future::ready(Ok((guarded, peer)))
            })
            .and_then(http)
        })?
        .run();
    let handle = server.handle();
    let listeners = Arc::clone(state.engine.listeners());
    actix_web::rt::spawn(async move {
        shutdown.await;
        // Open `stile listen` WebSockets would hold a graceful stop for its whole grace
        // period: close them first (the CLIs reconnect to the next start).
        listeners.close_all();
        handle.stop(true).await;
    });
    server.await?;
    // Worker threads drop their copies of the state as they wind down, a moment after the
    // server future ends. Wait for them, so the data file is closed when this returns and
    // a new server (or `stile keys`) can open it at once.
    let deadline = std::time::Instant::now() + STATE_RELEASE_TIMEOUT;
    while Arc::strong_count(&state) > 1 && std::time::Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    if Arc::strong_count(&state) > 1 {
        tracing::warn!("server state still referenced after shutdown; the data file may stay open");
    }
    // Attempts in flight finish (each within the delivery timeout) and are recorded;
    // what is still queued runs at the next start.
    state.engine.shutdown().await;
    Ok(())
}

/// Runs the replay task on the engine's runtime while the server's state lives: a pass
/// over every watched replay each [`service::replays::PASS`], and at once when one is
/// made. With many processes on one database, the one that leads does it for all.
fn run_replays(state: &Arc<AppState>) {
    let (weak, wake) = (Arc::downgrade(state), Arc::clone(&state.replay_wake));
    state.engine.spawn(async move {
        // Passes start a second apart however long each takes (a pass paces the replays:
        // a second's worth each), unless one ran past the next's time.
        let mut next = tokio::time::Instant::now();
        loop {
            next += crate::service::replays::PASS;
            let _ = tokio::time::timeout_at(next, wake.notified()).await;
            next = next.max(tokio::time::Instant::now() - crate::service::replays::PASS);
            let Some(state) = weak.upgrade() else { return };
            match state.store.lead().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot tell whether this process runs the replays");
                    continue;
                }
            }
            if let Err(err) = state.replays().pass().await {
                tracing::warn!(error = %err, "cannot look at the replays; trying again at the next pass");
            }
        }
    });
}
