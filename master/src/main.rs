//! `dfs-master --listen HOST:PORT --data-dir DIR [--config FILE]`, or
//! `dfs-master --data-dir DIR recover-log [--yes]` (README: "Recovering a
//! damaged metadata log"), or `dfs-master --data-dir DIR restore BACKUP_DIR`
//! (README: "Backups"), or `dfs-master keygen` (a new cluster key line,
//! README: "Rotating the cluster key").

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use dfs_master::config::{MasterCommand, MasterConfig};
use dfs_master::store::db::{inspect_log, LogRecovery, StoreOptions};
use dfs_master::store::metalog::{Damage, LOG_FILE};
use dfs_master::store::Store;
use dfs_server_kit::http::daemon::daemon_main;

#[tokio::main]
async fn main() -> ExitCode {
    daemon_main::<MasterConfig, _, _>("dfs-master", |config: MasterConfig| async move {
        match config.command {
            Some(MasterCommand::RecoverLog { yes }) => {
                let dir = config.data_dir.clone();
                tokio::task::spawn_blocking(move || recover_log(&dir, yes)).await?
            }
            Some(MasterCommand::Restore { backup }) => {
                let dir = config.data_dir.clone();
                tokio::task::spawn_blocking(move || restore(&backup, &dir)).await?
            }
            Some(MasterCommand::Keygen) => {
                // The secret goes to stdout only, for the operator to put in the key files.
                println!("{}", dfs_proto::auth::ClusterKey::generate().to_line());
                Ok(())
            }
            None => dfs_master::server::run(config).await,
        }
    })
    .await
}

/// Makes the namespace in `dir` from the backup in `from` (README:
/// "Backups").
fn restore(from: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    // Not while a master runs there.
    let _lock = dfs_server_kit::dir_lock::lock_dir(dir)?;
    let manifest = dfs_master::store::backup::restore(from, dir).with_context(|| format!("restoring {} into {}", from.display(), dir.display()))?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "restored the namespace of cluster {} as of {} (Unix ms) into {}: {} files, {bytes} bytes checked and synced",
        manifest.cluster_id,
        manifest.taken_at_ms,
        dir.display(),
        manifest.files.len()
    );
    println!("give the master its cluster key (--cluster-key-file, or cluster.key in the data directory) and start it as usual");
    Ok(())
}

/// Shows what truncating the metadata log at its damaged record would
/// lose; with `yes`, keeps a copy of the log, then opens the store
/// truncating there (the records before it are replayed and checkpointed).
/// Truncating rather than skipping the damaged record: the records after it
/// were applied on top of it (a file created in a directory it made, a
/// counter it moved), so replaying them without it could leave a namespace
/// that contradicts itself; the state just before it is one that existed.
fn recover_log(dir: &Path, yes: bool) -> anyhow::Result<()> {
    anyhow::ensure!(dir.is_dir(), "no data directory at {}", dir.display());
    // Not while a master runs there: it would be appending to the log.
    let _lock = dfs_server_kit::dir_lock::lock_dir(dir)?;
    let (epoch, kept, damage) = inspect_log(dir).with_context(|| format!("reading the metadata store in {}", dir.display()))?;
    let file = dir.join(LOG_FILE);
    let l = match damage {
        Damage::Middle(l) => l,
        Damage::TornTail(l) => {
            println!(
                "{}: epoch {epoch}, {kept} records, then a torn last group ({} records, {} bytes at offset {}) that every start drops: nothing to recover",
                file.display(),
                l.records(),
                l.bytes,
                l.offset
            );
            return Ok(());
        }
        Damage::None => {
            println!("{}: epoch {epoch}, {kept} records, no damage: nothing to recover", file.display());
            return Ok(());
        }
    };
    println!("{}: epoch {epoch}: record {} at offset {} does not check out", file.display(), l.first_seq, l.offset);
    println!("kept: records 1..={kept} (before the damaged one)");
    println!(
        "lost: records {}..={} ({} records, {} bytes from offset {}), {} of which still check out but were written after the damaged one",
        l.first_seq,
        l.last_seq,
        l.records(),
        l.bytes,
        l.offset,
        l.readable
    );
    if !yes {
        println!("nothing changed; `dfs-master --data-dir {} recover-log --yes` truncates the log there", dir.display());
        return Ok(());
    }
    let copy = keep_copy(&file, epoch).with_context(|| format!("keeping a copy of {}", file.display()))?;
    println!("kept a copy of the damaged log as {}", copy.display());
    let options = StoreOptions { recovery: LogRecovery::Truncate, ..Default::default() };
    drop(Store::open_with(dir, options).with_context(|| format!("opening the metadata store in {}", dir.display()))?);
    println!("truncated at offset {}: the namespace is as of record {kept} of epoch {epoch}; start the master as usual", l.offset);
    Ok(())
}

/// Copies the log next to itself (temp file, fsync, rename, directory
/// fsync), for whoever wants to look at the lost records later.
fn keep_copy(file: &Path, epoch: u64) -> std::io::Result<PathBuf> {
    let copy = file.with_file_name(format!("{LOG_FILE}.damaged-epoch{epoch}"));
    let tmp = file.with_file_name(format!("{LOG_FILE}.damaged-epoch{epoch}.tmp"));
    std::fs::copy(file, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &copy)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(copy)
}
