//! The request id on the serving side. [`Traced`] (used by the server
//! loop for every request) takes the id from the request's header, or makes
//! one, and runs the request inside a `tracing` span carrying it, its
//! method and its path, so every line a handler logs names the operation it
//! serves; the id is also the task's [`current`] id and is echoed in the
//! answer. [`ClusterAuth::send`](super::internal::ClusterAuth::send) puts
//! the current id on the calls a daemon makes to its peers, and [`spawn`]
//! carries span and id into a task started for the request.
//!
//! Each answered request is one `debug` line under the target
//! [`REQUEST_LOG_TARGET`]: off by default (a heartbeat every second from
//! every chunkserver), on with `DFS_LOG=info,dfs_request=debug`.

use std::future::Future;
use std::time::Instant;

use axum::http::{HeaderValue, Request, Response};
use tracing::Instrument;

pub use dfs_proto::wire::request_id::{RequestId, HEADER_REQUEST_ID};

/// The log target of the one line per answered request.
pub const REQUEST_LOG_TARGET: &str = "dfs_request";
/// Most characters of a request's path put in its span: a path is the
/// client's input, and a log line should stay a line.
const PATH_MAX_CHARS: usize = 160;

tokio::task_local! {
    /// The id of the request this task serves.
    static CURRENT: RequestId;
}

/// The id of the request the calling task serves, if it serves one.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(RequestId::clone).ok()
}

/// The span of one request. At level ERROR, so that it is enabled whenever
/// any line is logged: a warning of a daemon run with `DFS_LOG=warn` still
/// names its request.
fn request_span(id: &RequestId, method: &str, path: &str) -> tracing::Span {
    let path = path.get(..PATH_MAX_CHARS).unwrap_or(path);
    tracing::error_span!("request", request_id = %id, method = %method, path = %path)
}

/// How one request is served: under its id, in its span.
pub struct Traced {
    id: RequestId,
    span: tracing::Span,
    started: Instant,
}

impl Traced {
    /// The id `req` names in its header (or a fresh one) and its span.
    pub fn of<B>(req: &Request<B>) -> Self {
        let id = RequestId::from_header(req.headers().get(HEADER_REQUEST_ID).map(HeaderValue::as_bytes));
        let span = request_span(&id, req.method().as_str(), req.uri().path());
        Traced { id, span, started: Instant::now() }
    }

    /// Runs `answer` (the request's handling) in the span, with the id as
    /// the task's [`current`] one, and puts the id on the answer.
    pub fn serve<RB, E>(self, answer: impl Future<Output = Result<Response<RB>, E>>) -> impl Future<Output = Result<Response<RB>, E>> {
        let Traced { id, span, started } = self;
        let echo = HeaderValue::from_str(id.as_str()).ok();
        let served = async move {
            let mut answer = answer.await;
            if let Ok(response) = &mut answer {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(target: REQUEST_LOG_TARGET, status = response.status().as_u16(), elapsed_ms, "answered");
                if let Some(echo) = echo {
                    response.headers_mut().insert(HEADER_REQUEST_ID, echo);
                }
            }
            answer
        };
        CURRENT.scope(id, served.instrument(span))
    }
}

/// `future` with the calling task's span and request id: for work started
/// on behalf of the request being served (a forwarded write, a call to a
/// chunkserver), so that its log lines and its own calls name it too.
pub fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let instrumented = future.instrument(tracing::Span::current());
    let id = current();
    async move {
        match id {
            Some(id) => CURRENT.scope(id, instrumented).await,
            None => instrumented.await,
        }
    }
}

/// `future` as one operation of the background worker `worker` (a pass):
/// under a fresh id, in a span naming the worker, so its log lines, the
/// tasks it spawns and its calls to other daemons name one id, as a
/// client's operation does.
pub fn background<F: Future>(worker: &'static str, future: F) -> impl Future<Output = F::Output> {
    let id = RequestId::fresh();
    let span = tracing::error_span!("background", request_id = %id, worker = worker);
    CURRENT.scope(id, future.instrument(span))
}

/// `tokio::spawn` of [`carry`]`(future)`.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(carry(future))
}

#[cfg(test)]
mod tests;
