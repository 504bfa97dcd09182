//! The daemons' HTTP server loop, in place of `axum::serve`, with the limits
//! a listener open to strangers needs:
//!
//! - **Header read timeout**: a client must send a request's whole head
//!   within it (slowloris). hyper starts the same timer when a kept-alive
//!   connection waits for its next request, so it is also the keep-alive
//!   idle timeout: an idle connection is closed after it.
//! - **Body idle timeout** ([`IdleBody`]): a handler waiting on a request
//!   body that stops or trickles gets an error after it and lets go of what
//!   it held; a response the client stops reading fails the connection
//!   after it ([`StallGuard`]).
//! - **Connection cap**: at the cap the server stops accepting. New
//!   connections wait in the kernel's backlog and are served as slots free
//!   (every held slot is bounded in time by the timeouts above), instead of
//!   being closed at once: a client that would have been served a little
//!   later is not failed, and a flood costs no accept-and-close work. Once
//!   the backlog is full the kernel drops new SYNs and clients retry.
//! - **TLS** (when configured): every connection must complete a TLS
//!   handshake within the header read timeout; a plaintext request gets one
//!   400 answer in plaintext saying so, and the connection is closed.
//! - **Graceful shutdown**: on the signal, stop accepting, close idle
//!   connections, let requests in flight finish, for at most `drain`.
//!
//! Every request is served in a span carrying its request id
//! ([`request_id::Traced`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::idle::{IdleBody, StallGuard};
use super::request_id;

/// Least time between two warnings that the connection cap is reached.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Limits of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest time to receive a request's head (and longest keep-alive idle).
    pub header_read_timeout: Duration,
    /// Longest wait on a client that moves too little body data (either way).
    pub body_idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for requests in flight after the shutdown signal.
    pub drain: Duration,
}

/// How long a daemon lets requests in flight finish at shutdown: within
/// systemd's and the test harness's stop timeouts (30 s and 10 s), with
/// room for the daemon's own clean-up after.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Limits {
    /// Limits from the daemons' config fields (milliseconds).
    pub fn from_config(header_read_timeout_ms: u64, body_idle_timeout_ms: u64, max_connections: usize) -> Self {
        Limits {
            header_read_timeout: Duration::from_millis(header_read_timeout_ms),
            body_idle_timeout: Duration::from_millis(body_idle_timeout_ms),
            max_connections,
            drain: DRAIN_TIMEOUT,
        }
    }

    /// Names the first setting that cannot work (every one must be non-zero).
    pub fn check(header_read_timeout_ms: u64, body_idle_timeout_ms: u64, max_connections: usize) -> Result<(), String> {
        match (header_read_timeout_ms, body_idle_timeout_ms, max_connections) {
            (0, _, _) => Err("header_read_timeout_ms must be at least 1".into()),
            (_, 0, _) => Err("body_idle_timeout_ms must be at least 1".into()),
            (_, _, 0) => Err("max_connections must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned: Option<tokio::time::Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        // Once a minute at most: under a flood the cap is reached over and over.
        if slots.available_permits() == 0 && warned.is_none_or(|w| w.elapsed() >= CAP_WARNING_INTERVAL) {
            tracing::warn!(max_connections = limits.max_connections, "connection cap reached; new connections wait in the backlog");
            warned = Some(tokio::time::Instant::now());
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        connections.spawn(connection(stream, tls.clone(), router.clone(), limits.clone(), slot, stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.drain, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            drain_ms = limits.drain.as_millis() as u64,
            "requests still in flight after the drain time; dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// After a failed accept: a connection that died in the backlog is nothing;
/// anything else (out of file descriptors) is worth a pause before the next
/// try, as hyper and axum do.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection, holding its `slot` until it closes.
async fn connection(stream: TcpStream, tls: Option<TlsAcceptor>, router: Router, limits: Limits, slot: OwnedSemaphorePermit, stop: watch::Receiver<bool>) {
    let _slot = slot;
    let Some(acceptor) = tls else {
        return http(stream, router, limits, stop).await;
    };
    // The handshake counts as the head of the first request: a client
    // that stalls in it is dropped as a slow head would be.
    match tokio::time::timeout(limits.header_read_timeout, handshake(stream, acceptor)).await {
        Ok(Ok(Some(stream))) => http(stream, router, limits, stop).await,
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// The answer to plaintext HTTP on a TLS port (as nginx's 400 "plain HTTP
/// request was sent to HTTPS port"): a client sees why it failed.
const PLAINTEXT_REFUSED: &str = r#"{"error":"EINVAL","message":"this port speaks TLS only: use an https:// URL"}"#;

/// A TLS handshake, or `None` after answering a plaintext request.
async fn handshake(mut stream: TcpStream, acceptor: TlsAcceptor) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    // 0x16: a TLS handshake record; anything else is not TLS.
    if stream.peek(&mut first).await? == 1 && first[0] != 0x16 {
        use tokio::io::AsyncWriteExt;
        let body = PLAINTEXT_REFUSED;
        let answer = format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Take in what the client sent (a little, for a moment): closing
        // with unread bytes resets the connection, which may destroy the
        // answer before the client reads it.
        let mut sink = [0u8; 4096];
        let drain = async {
            let mut left = 64 * 1024;
            while left > 0 {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left -= n.min(left),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
        return Ok(None);
    }
    acceptor.accept(stream).await.map(Some)
}

/// HTTP/1 over `io` until the client or the shutdown ends it.
async fn http<IO>(io: IO, router: Router, limits: Limits, mut stop: watch::Receiver<bool>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(StallGuard::new(io, limits.body_idle_timeout));
    let service = TowerToHyperService::new(router);
    let body_idle = limits.body_idle_timeout;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let req = req.map(|b| Body::new(IdleBody::new(b, body_idle)));
        request_id::Traced::of(&req).serve(hyper::service::Service::call(&service, req))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // Timeouts, resets and malformed requests: the client's doing.
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
