//! Mapping of every failure to an HTTP status and a JSON [`ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dfs_proto::endpoint::API_PREFIX;
use dfs_proto::{ErrorBody, ErrorKind};

#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError(ErrorBody { error: kind, message: message.into() })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.0.error.is_temporary() && self.0.error != ErrorKind::EIO {
            // Expected while a lease runs out or a node recovers; the caller retries.
            tracing::debug!(kind = %self.0.error, message = %self.0.message, "request refused for now");
        } else if status.is_server_error() {
            tracing::error!(kind = %self.0.error, message = %self.0.message, "request failed");
        }
        (status, Json(self.0)).into_response()
    }
}

/// The message of the 404 for an unknown path under the API.
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint";

/// The answer to an unknown path under the API ([`API_PREFIX`]): a JSON
/// `ENOENT`; `None` outside it, where a server answers with a page.
pub fn unknown_api_path(path: &str) -> Option<Response> {
    path.starts_with(API_PREFIX).then(|| ApiError::new(ErrorKind::ENOENT, NO_SUCH_ENDPOINT).into_response())
}

/// The answer to a known path asked with a method it does not take: 405,
/// with a JSON body like every other error (axum's own has none).
/// `Router::method_not_allowed_fallback(method_not_allowed)`.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let body = ErrorBody { error: ErrorKind::EINVAL, message: format!("{} does not take {method}", uri.path()) };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
