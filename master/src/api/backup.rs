//! `GET /v1/admin/backup`: a consistent metadata backup, streamed as tar
//! (`dfs_proto::wire::backup`): the checkpoint's files, then the manifest.

use std::io::Write;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dfs_proto::wire::backup::write_tar;
use dfs_server_kit::http::ApiError;
use tokio::sync::mpsc;

use super::store_call::blocking;
use crate::state::Master;

/// Bytes sent per piece of the body.
const PIECE: usize = 256 << 10;
/// Pieces made ahead of the connection.
const AHEAD: usize = 4;

type Piece = Result<Bytes, std::io::Error>;

/// `GET /v1/admin/backup` → the tar stream. The checkpoint is taken before
/// the answer starts (a failure is a JSON error); a failure while sending
/// ends the stream early, without the manifest.
pub async fn backup(State(s): State<Master>) -> Result<Response, ApiError> {
    let store = s.store.clone();
    let checkpoint = blocking(move || store.checkpoint_for_backup()).await?;
    tracing::info!(files = checkpoint.manifest.files.len(), at_ms = checkpoint.manifest.taken_at_ms, "metadata backup taken; sending it");
    let (tx, rx) = mpsc::channel::<Piece>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let error_to = tx.clone();
        if let Err(e) = write_tar(&checkpoint.dir, &checkpoint.manifest, Pieces { tx, buf: Vec::with_capacity(PIECE) }) {
            tracing::warn!(error = %e, "a metadata backup was not sent whole");
            let _ = error_to.blocking_send(Err(e));
        }
        // The checkpoint's directory goes with it here.
    });
    let pieces = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-tar")], Body::from_stream(pieces)).into_response())
}

/// The body's writer: pieces of [`PIECE`] bytes into the channel, waiting
/// (on this blocking thread) while the connection is behind; a receiver
/// gone (the caller hung up) fails the write.
struct Pieces {
    tx: mpsc::Sender<Piece>,
    buf: Vec<u8>,
}

impl Write for Pieces {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx.blocking_send(Ok(piece)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the caller hung up"))
    }
}
