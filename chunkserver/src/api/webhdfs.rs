//! WebHDFS's second step (HDFS's DataNode side): the master sends CREATE,
//! APPEND, OPEN and GETFILECHECKSUM here with its grant of the caller's
//! rights (`dfsgrant=`), and this node does them through the client
//! library as that caller: the bytes go from the client to this node and
//! on to the replicas, never through the master. Bodies stream (chunked
//! or not, empty ones too); an APPEND URL serves any number of POSTs until
//! its grant expires (fsspec posts each buffered block to the same URL).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dfs_client::auth::Login;
use dfs_client::{Client, ClientError, CreateOptions, DataConfig, FileReader, FileWriter};
use dfs_proto::webhdfs::*;
use dfs_proto::wire::namespace::FileKind;
use dfs_server_kit::http::webhdfs::{error, json};
use futures::StreamExt;

use crate::node::Node;

/// Bytes fetched per step of an OPEN's stream.
const PIECE: u64 = 8 << 20;

pub async fn serve(State(n): State<Arc<Node>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let answer = async {
        let params = Params::parse(parts.uri.query())?;
        let op = Op::parse(parts.method.as_str(), params.get("op"))?;
        let path = dfs_path(parts.uri.path())?;
        // The master's grant is who the caller is; without one, the master
        // decides (a cluster without users takes anyone).
        let login = match params.get(GRANT_PARAM).filter(|g| !g.is_empty()) {
            Some(g) => Login::granted(g.to_string()),
            None => Login::new(None),
        };
        let base = n.webhdfs.get_or_init(|| Client::with_login(&n.master, DataConfig::default(), Login::new(None)));
        let client = base.with_login_sharing(login);
        match op {
            Op::Create => create(&n, &client, &path, &params, body).await,
            Op::Append => append(&client, &path, body).await,
            Op::Open => open(&client, &path, &params).await,
            Op::GetFileChecksum => checksum(&client, &path).await,
            _ => Err(RemoteError::illegal_argument(format!("Invalid operation {} at a chunkserver: send it to the master", op.name()))),
        }
    };
    answer.await.unwrap_or_else(error)
}

fn failed(path: &str) -> impl Fn(ClientError) -> RemoteError + '_ {
    move |e| RemoteError::from_kind(e.kind, &e.message, path)
}

/// CREATE: the file (and, unless `createparent=false`, missing parents),
/// its bytes, a durable close; `201` with the file's `webhdfs://` URL.
async fn create(n: &Node, client: &Client, path: &str, p: &Params, body: Body) -> Result<Response, RemoteError> {
    let options = CreateOptions {
        overwrite: parse_bool("overwrite", p.get("overwrite"), false)?,
        replication: parse_int("replication", p.get("replication"), 1..=i16::MAX as i64)?.map(|r| r as u16),
        chunk_size_bytes: parse_int("blocksize", p.get("blocksize"), 1..=i64::MAX)?.map(|b| b as u64),
        mode: Some(parse_permission(p.get("permission"))?.unwrap_or(0o644)),
        uid: None,
        gid: None,
    };
    if parse_bool("createparent", p.get("createparent"), true)? {
        if let Some((parent, _)) = path.rsplit_once('/').filter(|(parent, _)| !parent.is_empty()) {
            client.mkdir(parent, true, Some(0o755)).await.map_err(failed(parent))?;
        }
    }
    let writer = client.create(path, &options).await.map_err(failed(path))?;
    write_body(writer, body, path).await?;
    let master = n.masters.current();
    let authority = master.split_once("://").map_or(master.as_str(), |(_, a)| a).trim_end_matches('/');
    let location = format!("webhdfs://{authority}{path}");
    let location = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("webhdfs:///"));
    Ok((StatusCode::CREATED, [(header::LOCATION, location), (header::CONTENT_LENGTH, HeaderValue::from_static("0"))]).into_response())
}

/// APPEND: the body after the file's end; `200` once it is durable.
async fn append(client: &Client, path: &str, body: Body) -> Result<Response, RemoteError> {
    let writer = client.open_write(path, true).await.map_err(failed(path))?;
    write_body(writer, body, path).await?;
    Ok((StatusCode::OK, [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))]).into_response())
}

/// Streams a request body into `writer` and closes it (a durable close:
/// the answer means the bytes are on every replica).
async fn write_body(mut writer: FileWriter, body: Body, path: &str) -> Result<(), RemoteError> {
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| RemoteError::illegal_argument(format!("reading the request body: {e}")))?;
        writer.write_bytes(piece).await.map_err(failed(path))?;
    }
    writer.close().await.map_err(failed(path))?;
    Ok(())
}

/// OPEN: `length` bytes (to the end without it) from `offset`, streamed.
async fn open(client: &Client, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let offset = parse_int("offset", p.get("offset"), 0..=i64::MAX)?.unwrap_or(0) as u64;
    let length = parse_int("length", p.get("length"), 0..=i64::MAX)?.map(|l| l as u64);
    let mut reader = client.open(path).await.map_err(failed(path))?;
    let size = reader.attr().size;
    if offset > size || (offset == size && size > 0) {
        return Err(RemoteError::from_kind(dfs_proto::ErrorKind::ESTALE, &format!("Offset={offset} out of the range [0, {size}); OPEN, path={path}"), path));
    }
    let end = length.map_or(size, |l| offset.saturating_add(l).min(size));
    reader.read_until(end);
    let stream = futures::stream::unfold(Some((reader, offset, end)), next_piece);
    let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")), (header::CONTENT_LENGTH, HeaderValue::from(end - offset))];
    Ok((headers, Body::from_stream(stream)).into_response())
}

type Range = (FileReader, u64, u64);

/// The next piece of an OPEN's range; a failure mid-stream ends the body
/// early (short of its length, which the client sees).
async fn next_piece(state: Option<Range>) -> Option<(Result<Bytes, std::io::Error>, Option<Range>)> {
    let (mut reader, at, end) = state?;
    if at >= end {
        return None;
    }
    match reader.read_at(at, (end - at).min(PIECE)).await {
        Ok(data) if data.is_empty() => None,
        Ok(data) => {
            let next = at + data.len() as u64;
            Some((Ok(data), Some((reader, next, end))))
        }
        Err(e) => {
            tracing::warn!(error = %e, "WebHDFS OPEN failed mid-stream");
            Some((Err(std::io::Error::other(e.to_string())), None))
        }
    }
}

/// GETFILECHECKSUM: HDFS's `COMPOSITE-CRC32C` of the file's bytes (the
/// same for the same bytes whatever the chunk size, in HDFS too).
async fn checksum(client: &Client, path: &str) -> Result<Response, RemoteError> {
    let mut reader = client.open(path).await.map_err(failed(path))?;
    if reader.attr().kind != FileKind::File {
        return Err(RemoteError::not_found(format!("Path is not a file: {path}")));
    }
    let mut crc = 0u32;
    loop {
        let data = reader.read(PIECE).await.map_err(failed(path))?;
        if data.is_empty() {
            break;
        }
        crc = crc32c::crc32c_append(crc, &data);
    }
    Ok(json(&FileChecksumBody { file_checksum: FileChecksum::composite_crc32c(crc) }))
}
