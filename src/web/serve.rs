//! The HTTP/1.1 connection loop. axum's own `serve` sets no timer, so a
//! client that sends half a request line (or one byte every few seconds)
//! could hold a connection for ever; here every connection has a deadline
//! for its request headers, which is also how long an idle keep-alive
//! connection is kept. Each request carries the client's address
//! ([`ConnectInfo`]), and shutdown waits for in-flight requests only so long.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Deadlines every connection lives by.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers, from the
    /// moment the server waits for them (so also an idle keep-alive).
    pub header_read: Duration,
    /// After shutdown starts, how long in-flight requests may still run.
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish within `limits.drain`, and
/// returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    limits: ConnectionLimits,
) {
    let connections = TaskTracker::new();
    let (closing, closing_seen) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait, never spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(client));
                request.map(Body::new)
            });
        connections.spawn(connection(
            stream,
            TowerToHyperService::new(service),
            limits.header_read,
            closing_seen.clone(),
        ));
    }
    drop(listener);
    let _ = closing.send(true);
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limits.drain.as_secs(),
            "requests still running after the shutdown drain period are abandoned"
        );
    }
}

async fn connection<S>(
    stream: tokio::net::TcpStream,
    service: TowerToHyperService<S>,
    header_read: Duration,
    mut closing: watch::Receiver<bool>,
) where
    S: tower::Service<Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .keep_alive(true);
    let served = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => log_end(result),
        _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
            served.as_mut().graceful_shutdown();
            log_end(served.await);
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended");
    }
}
