//! The front door: one hyper server for apps and the admin API (SPEC §2, §9).
//! `route` decides who a request is for; `admin` answers the admin API;
//! `reply` builds the JSON envelopes.

mod admin;
mod api;
pub mod apps;
mod path;
mod reply;
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

use fazt_shared::{AppName, ErrorCode};

use crate::supervise::State;
use path::RequestPath;
pub use reply::Body;
use route::Route;

/// Serves until `shutdown` resolves, then stops accepting, calls `on_drain`,
/// and waits up to `drain` for connections in flight to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    on_drain: impl FnOnce(),
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, peer, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    on_drain();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain timed out; closing remaining connections"),
    }
}

async fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    // Decoded once; everything after this uses `path`, never the raw URI.
    let path = match RequestPath::parse(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return reply::app_error(ErrorCode::BadRequest, &e.to_string()),
    };
    match route::classify(&req, &path, peer, &state.domain) {
        Route::Admin => admin::handle(state, req).await,
        Route::App { name, path } => app(state, &name, path, req).await,
        Route::NotFound => reply::app_error(ErrorCode::NotFound, "not found"),
    }
}

/// An app's request: `/api` to a worker, anything else static.
async fn app(
    state: &State,
    name: &str,
    path: RequestPath,
    req: Request<Incoming>,
) -> Response<Body> {
    let no_app = || reply::app_error(ErrorCode::NotFound, &format!("no app named {name:?}"));
    let Ok(name) = AppName::parse(name) else {
        return no_app();
    };
    let row = match state.apps.lookup(&name).await {
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
        return api::handle(state, name, row, path.to_string(), req).await;
    }
    state
        .static_files
        .serve(row, req.method(), &path, req.headers())
        .await
}
