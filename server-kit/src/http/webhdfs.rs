//! WebHDFS answers, for the master and the chunkservers alike: JSON
//! bodies, empty `200`s, and errors as Hadoop's `RemoteException`s
//! (`dfs_proto::webhdfs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dfs_proto::webhdfs::RemoteError;
use serde::Serialize;

/// A `200` with a JSON body.
pub fn json<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response(),
        Err(e) => error(RemoteError::from_kind(dfs_proto::ErrorKind::EIO, &e.to_string(), "")),
    }
}

/// A `200` with no body (the operations whose answer is nothing).
pub fn empty() -> Response {
    (StatusCode::OK, [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))]).into_response()
}

/// A `RemoteException` with its status.
pub fn error(e: RemoteError) -> Response {
    if e.status >= 500 {
        tracing::error!(exception = e.exception, message = %e.message, "WebHDFS request failed");
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
