//! `GET /files?path=/a/b`: a whole dfs file, streamed. The master's
//! dashboard redirects its download links here (as HDFS's NameNode UI
//! redirects to a DataNode), so the master never carries file data. The
//! file is read through the client library: located through the master,
//! read from whichever replicas hold each chunk, checksums verified.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use dfs_client::auth::Login;
use dfs_client::{Client, ClientError, DataConfig, FileReader};
use dfs_proto::wire::chunks::DownloadQuery;
use dfs_proto::ErrorKind;
use dfs_server_kit::http::html::url_encode;
use dfs_server_kit::http::{ApiError, ApiQuery};

use crate::node::Node;

/// Bytes fetched per step of the stream.
const PIECE: u64 = 8 << 20;

fn api_error(e: ClientError) -> ApiError {
    ApiError::new(e.kind, e.message)
}

/// Streams the file at `path`; errors before the first byte are JSON API
/// errors, a failure mid-stream ends the body early (the length is short).
pub async fn file(State(n): State<Arc<Node>>, ApiQuery(q): ApiQuery<DownloadQuery>) -> Result<Response, ApiError> {
    // Read with the rights of the dashboard's user, by the master's grant.
    let Some(grant) = q.grant else {
        return Err(ApiError::new(ErrorKind::EKEYREJECTED, "a download needs the master's grant: start it from the dashboard"));
    };
    let client = Client::with_login(&n.master, DataConfig::default(), Login::granted(grant));
    let attr = client.stat(&q.path).await.map_err(api_error)?;
    if attr.kind != dfs_proto::wire::namespace::FileKind::File {
        return Err(ApiError::new(ErrorKind::EISDIR, format!("{} is not a file", q.path)));
    }
    let reader = client.reader(attr.clone());
    let body = Body::from_stream(futures::stream::unfold(Some(reader), next_piece));
    let name = q.path.rsplit('/').next().unwrap_or("file");
    // RFC 6266: the UTF-8 name, percent-encoded (no quoting problems).
    let disposition = format!("attachment; filename*=UTF-8''{}", url_encode(name).replace('/', "%2F"));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
        (header::CONTENT_LENGTH, HeaderValue::from(attr.size)),
        (header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment"))),
    ];
    Ok((headers, body).into_response())
}

/// The next piece of the stream; `None` as state once the file ended or failed.
async fn next_piece(reader: Option<FileReader>) -> Option<(Result<bytes::Bytes, std::io::Error>, Option<FileReader>)> {
    let mut reader = reader?;
    match reader.read(PIECE).await {
        Ok(data) if data.is_empty() => None,
        Ok(data) => Some((Ok(data), Some(reader))),
        Err(e) => {
            tracing::warn!(error = %e, "download failed mid-stream");
            Some((Err(std::io::Error::other(e.to_string())), None))
        }
    }
}
