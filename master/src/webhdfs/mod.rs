//! WebHDFS on the master: `/webhdfs/v1/<path>?op=...`, Apache Hadoop's
//! REST API, so that HDFS's clients (HdfsCLI, fsspec, curl scripts) work
//! against dfs unchanged. The master answers the namespace operations
//! itself ([`ops`]) and sends data operations to a chunkserver with a
//! `307` ([`redirect`]); the data never passes through it. Who is calling
//! is [`auth`]'s; the permission checks are the store's, as for every other
//! client. Errors are Hadoop's `RemoteException`s
//! ([`dfs_proto::webhdfs::RemoteError`]).

mod auth;
mod ops;
mod redirect;
mod tokens;
mod truncate;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
pub use dfs_proto::webhdfs::Params;
use dfs_proto::webhdfs::{dfs_path, Op, RemoteError, PREFIX};
use dfs_proto::ErrorKind;

use crate::state::Master;
use crate::store::NsError;

/// The routes, for the master's router.
pub fn routes() -> Router<Master> {
    Router::new().route(PREFIX, any(serve)).route(&format!("{PREFIX}/"), any(serve)).route(&format!("{PREFIX}/{{*path}}"), any(serve))
}

/// One WebHDFS request: parsed, its caller found, then answered. The
/// body is never read here (data goes to a chunkserver).
async fn serve(State(s): State<Master>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let answer = async {
        let params = Params::parse(parts.uri.query())?;
        let op = Op::parse(parts.method.as_str(), params.get("op"))?;
        let path = dfs_path(parts.uri.path())?;
        let caller = auth::caller(&s, &parts, &params).await?;
        if op.is_data() {
            return redirect::answer(&s, &caller, op, &path, &params).await;
        }
        ops::answer(&s, &caller, op, &path, &params).await
    };
    answer.await.unwrap_or_else(error)
}

pub use dfs_server_kit::http::webhdfs::{empty, error, json};

/// A store error as WebHDFS's exception for `path`.
pub fn ns(path: &str) -> impl Fn(NsError) -> RemoteError + '_ {
    move |e| RemoteError::from_kind(e.kind, &e.message, path)
}

/// Runs a blocking store call on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, RemoteError> + Send + 'static) -> Result<T, RemoteError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(RemoteError::from_kind(ErrorKind::EIO, &format!("store task failed: {e}"), "")))
}
