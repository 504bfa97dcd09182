//! A store call from a handler: run on the blocking pool, its error
//! (`NsError`) answered as the API's `{"error", "message"}`.

use dfs_proto::ErrorKind;
use dfs_server_kit::http::ApiError;

use crate::store::NsError;

impl From<NsError> for ApiError {
    fn from(e: NsError) -> Self {
        ApiError::new(e.kind, e.message)
    }
}

/// Runs a blocking store call on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, NsError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(ErrorKind::EIO, format!("store task failed: {e}"))),
    }
}
