//! `dfs admin backup DIR`: a consistent metadata backup from the running
//! master, written into DIR (`dfs_proto::wire::backup`), for
//! `dfs-master restore`.
//!
//! The files go into `DIR.partial` first, each synced; only once the
//! manifest (last in the stream) checks out against every one of them is
//! the directory renamed to DIR. So DIR is either a whole backup or absent.
//! It holds the namespace's secrets (users' stored keys, the delegation
//! token key), so it is made readable by its owner only.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use dfs_proto::wire::backup::unpack_tar;
use futures::TryStreamExt;

use crate::{Ctx, Failure};

pub async fn backup(ctx: &Ctx, dir: &Path) -> Result<u8, Failure> {
    let shown = dir.display().to_string();
    let fail = |reason: String| Failure::new(&shown, reason);
    // `bk/` and `bk` alike: the partial directory is a sibling, `bk.partial`.
    let dir: PathBuf = dir.components().collect();
    let Some(name) = dir.file_name() else { return Err(fail("names no directory".into())) };
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(fail("exists and is not empty; a backup goes into a new directory".into()));
    }
    let partial = dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| fail(format!("removing the unfinished {}: {e}", partial.display())))?;
    }
    // The namespace's secrets are in it (users' stored keys, the key of
    // delegation tokens): for its owner's eyes only. Made here, not found.
    std::fs::DirBuilder::new().mode(0o700).create(&partial).map_err(|e| fail(format!("making {}: {e}", partial.display())))?;
    let answer = ctx.client.master().backup().await.map_err(|e| Failure::dfs(&ctx.client.master().url(), e))?;
    let body = tokio_util::io::StreamReader::new(answer.bytes_stream().map_err(std::io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(body);
    let into = partial.clone();
    let manifest = tokio::task::spawn_blocking(move || unpack_tar(reader, &into))
        .await
        .map_err(|e| fail(format!("the unpacking task failed: {e}")))?
        .map_err(|e| fail(format!("the backup was not received whole: {e}")))?;
    if dir.exists() {
        std::fs::remove_dir(&dir).map_err(|e| fail(format!("replacing the empty directory: {e}")))?;
    }
    std::fs::rename(&partial, &dir).map_err(|e| fail(format!("renaming {} to it: {e}", partial.display())))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent).and_then(|d| d.sync_all()).map_err(|e| fail(format!("syncing its parent directory: {e}")))?;
    }
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "backup of cluster {} as of {} (Unix ms): {} files, {bytes} bytes, checked and synced in {shown}",
        manifest.cluster_id,
        manifest.taken_at_ms,
        manifest.files.len()
    );
    Ok(0)
}
