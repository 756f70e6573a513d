//! The front door: one hyper server for apps and the admin API (SPEC §2, §9).
//! `conn` bounds each connection (timeouts, the connection cap); `path`
//! decodes the request path once; `route` decides who a request is for;
//! `admin` answers the admin API; `api` hands app requests to the pool;
//! `request_body` reads bodies within bounds; `front_door` is the state
//! every request reads; `reply` and `body` build answers.

mod admin;
mod admin_limits;
mod admin_net;
mod admin_secrets;
pub mod admin_token;
mod admin_ui;
mod api;
pub mod apps;
mod body;
mod conn;
mod front_door;
mod path;
mod reply;
pub mod request_body;
mod route;
pub mod static_files;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use fazt_shared::{AppName, ErrorCode};

pub use conn::Timeouts;
use conn::{AcceptBackoff, ConnState, TimedIo};
pub use front_door::{FrontDoor, Parts};
use path::RequestPath;
pub use reply::Body;
use route::Route;

/// How the front door treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// Open connections at most (`capacity.max_connections`, clamped to
    /// what the open-files limit allows).
    pub max_connections: usize,
    /// Per-connection timeouts.
    pub timeouts: Timeouts,
    /// How long connections in flight get to finish at shutdown.
    pub drain: Duration,
}

/// Serves until `shutdown` resolves, then stops accepting, calls
/// `on_drain` with the drain's deadline (the one deadline the rest of the
/// shutdown keeps too), closes idle connections and waits until then for
/// the others.
pub async fn serve(
    listener: TcpListener,
    door: Arc<FrontDoor>,
    config: Listening,
    shutdown: impl Future<Output = ()>,
    on_drain: impl FnOnce(tokio::time::Instant),
) {
    // HTTP/1 only: an HTTP/2 stream can stall on flow control with nothing
    // read or written, outside every deadline here (h2c was never offered
    // on purpose; TLS termination, where h2 belongs, is in front of fazt).
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = builder.http1_only();
    let graceful = GracefulShutdown::new();
    let (draining, drain_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut backoff = AcceptBackoff::default();
    let mut cap_logged = false;
    tokio::pin!(shutdown);
    // The loop turns at least this often, idle or at the connection cap,
    // so its pulse says whether it is stuck (the systemd watchdog).
    let mut beat = tokio::time::interval(door.pulse.every());
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        door.pulse.beat();
        if slots.available_permits() == 0 && !cap_logged {
            tracing::warn!(
                max = config.max_connections,
                "connection cap reached; new connections wait until one closes"
            );
        }
        cap_logged = slots.available_permits() == 0;
        // Over the cap, connections wait in the kernel's listen queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = beat.tick() => continue,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => {
                    backoff.succeeded();
                    x
                }
                Err(e) => {
                    let wait = backoff.failed(&e);
                    drop(slot);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            _ = beat.tick() => continue,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn_state = ConnState::new();
        let io = TimedIo::new(
            stream,
            conn_state.clone(),
            config.timeouts,
            drain_rx.clone(),
        );
        let door = door.clone();
        let service = service_fn(move |req| {
            let door = door.clone();
            let in_flight = conn_state.enter();
            async move {
                let resp = handle(&door, peer, req).await;
                Ok::<_, Infallible>(resp.map(|b| b.hold(in_flight)))
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + config.drain;
    on_drain(deadline);
    draining.send_replace(true);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep_until(deadline) => tracing::warn!(drain = ?config.drain, "drain timed out; closing remaining connections"),
    }
}

async fn handle(door: &FrontDoor, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    door.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Decoded once; everything after this uses `path`, never the raw URI.
    let path = match RequestPath::parse(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return reply::app_error(ErrorCode::BadRequest, &e.to_string()),
    };
    let host = match route::host(&req) {
        Ok(h) => h,
        Err(e) => return reply::app_error(ErrorCode::BadRequest, &e.to_string()),
    };
    match route::classify(host.as_deref(), path, peer, &door.domain) {
        Route::Admin => admin::handle(door, req).await,
        Route::App { name, path } => app(door, &name, path, req).await,
        Route::AdminUi { file } => admin_ui::serve(&file),
        Route::NotFound => reply::app_error(ErrorCode::NotFound, "not found"),
    }
}

/// An app's request: `/api` to a worker, anything else static.
async fn app(
    door: &FrontDoor,
    name: &str,
    path: RequestPath,
    req: Request<Incoming>,
) -> Response<Body> {
    let no_app = || reply::app_error(ErrorCode::NotFound, &format!("no app named {name:?}"));
    let Ok(name) = AppName::parse(name) else {
        return no_app();
    };
    let row = match door.apps.lookup(&name).await {
        Ok(Some(row)) => row,
        Ok(None) => return no_app(),
        Err(e) => {
            if e.code() == ErrorCode::Internal {
                tracing::error!(app = %name, error = %e, "app lookup failed");
            }
            return reply::app_error(e.code(), e.public_message());
        }
    };
    if path.is_api() {
        return api::handle(door, name, row, path.to_string(), req).await;
    }
    door.static_files
        .serve(row, req.method(), &path, req.headers())
        .await
}
