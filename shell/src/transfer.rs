//! Verbs that move bytes: put, get, cp, cat, tail, appendToFile.
//!
//! Local files are read and written on blocking threads that hand buffers
//! to and from the async side, so disk and network overlap. Trees go file
//! by file, small files many at once; large files one at a time, each with
//! the client's pieces in flight. A progress bar shows on a terminal.
//!
//! A file that put or cp makes is written as `NAME._COPYING_` and renamed
//! to NAME once complete (as `hdfs dfs -put` does), so an interrupted copy
//! never leaves a partial file under NAME nor destroys the file `-f`
//! replaces. Closing it makes it durable on every replica unless
//! `--no-sync` is given.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Subcommand;
use dfs_client::{Client, ClientError, CreateOptions, FileWriter};
use dfs_proto::wire::namespace::{Attr, FileKind};
use futures::{stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::walk::Walk;
use crate::{absolute, base_name, into_dfs_dir, into_dir, join, Ctx, Failure};

#[derive(Subcommand)]
pub enum Verb {
    /// Copy local files or directories (or stdin, `-`) into dfs.
    Put {
        /// Overwrite existing files.
        #[arg(short = 'f')]
        force: bool,
        /// Replicas per chunk of the new files (the master's default otherwise).
        #[arg(long)]
        replication: Option<u16>,
        /// Chunk size of the new files, in bytes (a multiple of 64 KiB).
        #[arg(long)]
        chunk_size: Option<u64>,
        #[command(flatten)]
        sync: CloseSync,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Copy files or directories out of dfs to the local file system.
    Get {
        /// Overwrite existing local files.
        #[arg(short = 'f')]
        force: bool,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Copy within dfs.
    Cp {
        /// Overwrite existing files.
        #[arg(short = 'f')]
        force: bool,
        #[command(flatten)]
        sync: CloseSync,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Print files to stdout.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Print the last kilobyte of a file; with -f, keep printing what is appended.
    Tail {
        #[arg(short = 'f')]
        follow: bool,
        /// How often -f looks for new bytes.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        path: String,
    },
    /// Append local files (or stdin, `-`) to a dfs file, creating it if needed.
    #[command(name = "appendToFile")]
    AppendToFile {
        #[command(flatten)]
        sync: CloseSync,
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
}

/// Whether a written file is made durable when it is closed.
#[derive(clap::Args, Clone, Copy)]
pub struct CloseSync {
    /// Return once every replica has the bytes in memory, without waiting
    /// for them to reach disk (by default a file is synced on every replica
    /// before the command ends; a power cut may lose unsynced bytes).
    #[arg(long)]
    no_sync: bool,
}

impl CloseSync {
    fn on(self) -> bool {
        !self.no_sync
    }
}

/// Size of the buffers passed between local I/O threads and the client.
const BUF_BYTES: usize = 8 << 20;
/// Small files copied at once when copying a tree.
const SMALL_FILES_AT_ONCE: usize = 16;

pub async fn run(ctx: &mut Ctx, verb: Verb) -> u8 {
    match verb {
        Verb::Put { force, replication, chunk_size, sync, paths } => {
            ctx.verb = "put";
            let opts = CreateOptions { overwrite: force, replication, chunk_size_bytes: chunk_size, ..Default::default() };
            put(ctx, &paths, &opts, sync.on()).await;
        }
        Verb::Get { force, paths } => {
            ctx.verb = "get";
            get(ctx, &paths, force).await;
        }
        Verb::Cp { force, sync, paths } => {
            ctx.verb = "cp";
            cp(ctx, &paths, force, sync.on()).await;
        }
        Verb::Cat { paths } => {
            ctx.verb = "cat";
            for p in paths.iter().map(|p| absolute(p)) {
                let r = cat(&ctx.client, &p).await;
                ctx.check(r);
            }
        }
        Verb::Tail { follow, interval_ms, path } => {
            ctx.verb = "tail";
            let p = absolute(&path);
            let r = tail(&ctx.client, &p, follow, Duration::from_millis(interval_ms.max(10))).await;
            ctx.check(r);
        }
        Verb::AppendToFile { sync, paths } => {
            ctx.verb = "appendToFile";
            let r = append_to_file(&ctx.client, &paths, sync.on()).await;
            ctx.check(r);
        }
    }
    0
}

/// A progress bar over `total` bytes when stdout is a terminal and the
/// copy is large enough to be worth watching; hidden otherwise.
fn progress(total: u64) -> ProgressBar {
    if !std::io::stdout().is_terminal() || total < 16 << 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

// ---- put ----------------------------------------------------------------

/// A local source: a file, or stdin.
enum Source {
    File(PathBuf),
    Stdin,
}

/// Reads a local source on a blocking thread, in full buffers.
fn read_local(source: Source) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut input: Box<dyn Read> = match source {
            Source::Stdin => Box::new(std::io::stdin().lock()),
            Source::File(p) => match std::fs::File::open(&p) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            },
        };
        loop {
            // Filled to BUF_BYTES unless the input ends (read_to_end retries
            // short reads and EINTR, and does not zero the buffer first).
            let mut buf = Vec::with_capacity(BUF_BYTES);
            if let Err(e) = input.by_ref().take(BUF_BYTES as u64).read_to_end(&mut buf) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let filled = buf.len();
            if filled == 0 || tx.blocking_send(Ok(Bytes::from(buf))).is_err() || filled < BUF_BYTES {
                return;
            }
        }
    });
    rx
}

/// Streams a local source into a new dfs file (through its temporary name).
async fn copy_in(client: &Client, source: Source, local: &str, dst: &str, opts: &CreateOptions, sync: bool, bar: &ProgressBar) -> Result<(), Failure> {
    let mut input = read_local(source);
    let (mut writer, staged) = Staged::create(client, dst, opts, sync).await?;
    let filled = async {
        while let Some(buf) = input.recv().await {
            let buf = buf.map_err(|e| Failure::local(local, e))?;
            bar.inc(buf.len() as u64);
            writer.write_bytes(buf).await.map_err(|e| Failure::dfs(dst, e))?;
        }
        Ok(())
    }
    .await;
    staged.finish(client, writer, filled).await
}

/// The name a file is written under until complete: `NAME._COPYING_`, as
/// HDFS names it, with NAME cut (at a character boundary) when the whole
/// would pass the longest name allowed.
fn copying_name(dst: &str) -> String {
    const SUFFIX: &str = "._COPYING_";
    let (dir, name) = dst.rsplit_once('/').unwrap_or(("", dst));
    let mut keep = name.len().min(dfs_proto::names::NAME_MAX_BYTES - SUFFIX.len());
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{dir}/{}{SUFFIX}", &name[..keep])
}

/// A new dfs file being written under its temporary name.
struct Staged {
    tmp: String,
    dst: String,
    /// `-f`: the final rename replaces a file at `dst`.
    replace: bool,
}

impl Staged {
    /// Checks that `dst` may be written (absent, or a file with `-f`), then
    /// creates the temporary file (replacing one an interrupted copy left).
    async fn create(client: &Client, dst: &str, opts: &CreateOptions, sync: bool) -> Result<(FileWriter, Staged), Failure> {
        let fail = |e: ClientError| Failure::dfs(dst, e);
        match client.try_stat(dst).await.map_err(fail)? {
            Some(a) if a.kind == FileKind::Dir => return Err(fail(ClientError::new(dfs_proto::ErrorKind::EISDIR, format!("{dst} is a directory")))),
            Some(_) if !opts.overwrite => return Err(fail(ClientError::new(dfs_proto::ErrorKind::EEXIST, format!("{dst} exists")))),
            _ => {}
        }
        let tmp = copying_name(dst);
        let mut writer = client.create(&tmp, &CreateOptions { overwrite: true, ..opts.clone() }).await.map_err(fail)?;
        writer.set_sync_on_close(sync);
        Ok((writer, Staged { tmp, dst: dst.to_string(), replace: opts.overwrite }))
    }

    /// Closes the file and renames it to its final name (atomically
    /// replacing the old file with `-f`; without, a file that appeared
    /// meanwhile is not replaced). On any failure the temporary is removed.
    async fn finish(self, client: &Client, writer: FileWriter, filled: Result<(), Failure>) -> Result<(), Failure> {
        let result = match filled {
            Ok(()) => self.commit(client, writer).await,
            Err(f) => Err(f),
        };
        if result.is_err() {
            match client.delete(&self.tmp, false).await {
                Err(e) if e.kind != dfs_proto::ErrorKind::ENOENT => {
                    eprintln!("dfs: {}: could not remove the partial copy: {}", self.tmp, e.describe())
                }
                _ => {}
            }
        }
        result
    }

    async fn commit(&self, client: &Client, writer: FileWriter) -> Result<(), Failure> {
        writer.close().await.map_err(|e| Failure::dfs(&self.dst, e))?;
        client.rename(&self.tmp, &self.dst, !self.replace).await.map_err(|e| Failure::dfs(&self.dst, e))
    }
}

/// A local tree as (local path, dfs path, size) of directories (parents
/// first) and files.
#[derive(Default)]
struct Plan {
    dirs: Vec<String>,
    files: Vec<(PathBuf, String, u64)>,
}

fn plan_local(local: &Path, dst: &str, plan: &mut Plan) -> std::io::Result<()> {
    let meta = std::fs::metadata(local)?;
    if !meta.is_dir() {
        plan.files.push((local.to_path_buf(), dst.to_string(), meta.len()));
        return Ok(());
    }
    plan.dirs.push(dst.to_string());
    let mut entries: Vec<_> = std::fs::read_dir(local)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        plan_local(&e.path(), &join(dst, &name), plan)?;
    }
    Ok(())
}

async fn put(ctx: &mut Ctx, paths: &[String], opts: &CreateOptions, sync: bool) {
    let Some((dst, srcs)) = paths.split_last() else { return };
    let dst = absolute(dst);
    let Some(into_dir) = into_dfs_dir(ctx, &dst, srcs.len()).await else { return };
    if srcs.iter().any(|s| s == "-") {
        if srcs.len() > 1 || into_dir {
            return ctx.fail(Failure::new("-", "stdin goes to one file path"));
        }
        let r = copy_in(&ctx.client, Source::Stdin, "-", &dst, opts, sync, &ProgressBar::hidden()).await;
        ctx.check(r);
        return;
    }
    let mut plan = Plan::default();
    for src in srcs {
        let target = if into_dir { join(&dst, base_name(src)) } else { dst.clone() };
        if let Err(e) = plan_local(Path::new(src), &target, &mut plan) {
            ctx.fail(Failure::local(src, e));
        }
    }
    for d in &plan.dirs {
        // With -f, merging into an existing directory is fine.
        let r = ctx.client.mkdir(d, false, None).await;
        match r {
            Err(e) if opts.overwrite && e.kind == dfs_proto::ErrorKind::EEXIST => {}
            other => {
                ctx.check(other.map_err(|e| Failure::dfs(d, e)));
            }
        }
    }
    let bar = progress(plan.files.iter().map(|f| f.2).sum());
    let client = ctx.client.clone();
    let (small, large): (Vec<_>, Vec<_>) = plan.files.into_iter().partition(|f| f.2 < BUF_BYTES as u64);
    let copies = stream::iter(small.into_iter().chain(large).map(|(local, target, size)| {
        let (client, bar) = (client.clone(), bar.clone());
        async move {
            let name = local.display().to_string();
            (size, copy_in(&client, Source::File(local), &name, &target, opts, sync, &bar).await)
        }
    }));
    let mut results = copies.buffered(SMALL_FILES_AT_ONCE);
    while let Some((_, r)) = results.next().await {
        ctx.check(r);
    }
    bar.finish_and_clear();
}

// ---- get ----------------------------------------------------------------

/// Writes buffers to a local file on a blocking thread: to `NAME._COPYING_`
/// first, renamed to NAME once complete.
fn write_local(target: PathBuf) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(2);
    let task = tokio::task::spawn_blocking(move || {
        let tmp = PathBuf::from(format!("{}._COPYING_", target.display()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            while let Some(buf) = rx.blocking_recv() {
                f.write_all(&buf)?;
            }
            f.flush()?;
            std::fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    });
    (tx, task)
}

async fn copy_out(client: &Client, src: &str, target: PathBuf, force: bool, bar: &ProgressBar) -> Result<(), Failure> {
    let shown = target.display().to_string();
    if !force && target.exists() {
        return Err(Failure::new(&shown, "File exists (use -f to overwrite)"));
    }
    let mut reader = client.open(src).await.map_err(|e| Failure::dfs(src, e))?;
    let (tx, task) = write_local(target);
    let mut failure = None;
    loop {
        match reader.read(BUF_BYTES as u64).await {
            Ok(buf) if buf.is_empty() => break,
            Ok(buf) => {
                bar.inc(buf.len() as u64);
                if tx.send(buf).await.is_err() {
                    break; // the writer failed; its error is below
                }
            }
            Err(e) => {
                failure = Some(Failure::dfs(src, e));
                break;
            }
        }
    }
    drop(tx);
    if let Some(f) = failure {
        task.abort();
        return Err(f);
    }
    match task.await {
        Ok(r) => r.map_err(|e| Failure::local(&shown, e)),
        Err(e) => Err(Failure::new(&shown, e.to_string())),
    }
}

async fn get(ctx: &mut Ctx, paths: &[String], force: bool) {
    let Some((dst, srcs)) = paths.split_last() else { return };
    let Some(into_dir) = into_dir(ctx, dst, srcs.len(), Path::new(dst).is_dir()) else { return };
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    for src in srcs.iter().map(|s| absolute(s)) {
        let Some(attr) = ctx.check(ctx.client.stat(&src).await.map_err(|e| Failure::dfs(&src, e))) else { continue };
        let target = if into_dir { Path::new(dst).join(base_name(&src)) } else { PathBuf::from(dst) };
        let client = ctx.client.clone();
        let mut walk = Walk::new(&client, &src, attr);
        while let Some(next) = walk.next().await {
            let Some((path, a)) = ctx.check(next) else { continue };
            let rel = path.strip_prefix(&src).unwrap_or("").trim_start_matches('/');
            let local = if rel.is_empty() { target.clone() } else { target.join(rel) };
            match a.kind {
                FileKind::Dir => dirs.push(local),
                FileKind::File => files.push((path, local, a.size)),
                // As `hdfs dfs -get`: data only, no links or special files.
                _ => {}
            }
        }
    }
    for d in &dirs {
        if let Err(e) = std::fs::create_dir(d) {
            if !(e.kind() == std::io::ErrorKind::AlreadyExists && (force || d.is_dir())) {
                ctx.fail(Failure::local(&d.display().to_string(), e));
            }
        }
    }
    let bar = progress(files.iter().map(|f| f.2).sum());
    let client = ctx.client.clone();
    let (small, large): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.2 < BUF_BYTES as u64);
    let copies = stream::iter(small.into_iter().chain(large).map(|(src, local, _)| {
        let (client, bar) = (client.clone(), bar.clone());
        async move { copy_out(&client, &src, local, force, &bar).await }
    }));
    let mut results = copies.buffered(SMALL_FILES_AT_ONCE);
    while let Some(r) = results.next().await {
        ctx.check(r);
    }
    bar.finish_and_clear();
}

// ---- cp, cat, tail, appendToFile ----------------------------------------

async fn copy_within(client: &Client, src: &str, a: &Attr, dst: &str, force: bool, sync: bool) -> Result<(), Failure> {
    let mut reader = client.open(src).await.map_err(|e| Failure::dfs(src, e))?;
    let opts = CreateOptions { overwrite: force, replication: Some(a.replication), mode: Some(a.mode), ..Default::default() };
    let (mut writer, staged) = Staged::create(client, dst, &opts, sync).await?;
    let filled = async {
        loop {
            let buf = reader.read(BUF_BYTES as u64).await.map_err(|e| Failure::dfs(src, e))?;
            if buf.is_empty() {
                return Ok(());
            }
            writer.write_bytes(buf).await.map_err(|e| Failure::dfs(dst, e))?;
        }
    }
    .await;
    staged.finish(client, writer, filled).await
}

async fn cp(ctx: &mut Ctx, paths: &[String], force: bool, sync: bool) {
    let Some((dst, srcs)) = paths.split_last() else { return };
    let dst = absolute(dst);
    let Some(into_dir) = into_dfs_dir(ctx, &dst, srcs.len()).await else { return };
    for src in srcs.iter().map(|s| absolute(s)) {
        let Some(attr) = ctx.check(ctx.client.stat(&src).await.map_err(|e| Failure::dfs(&src, e))) else { continue };
        let target = if into_dir { join(&dst, base_name(&src)) } else { dst.clone() };
        if target == src || target.starts_with(&format!("{src}/")) {
            ctx.fail(Failure::new(&src, "cannot copy a path into itself"));
            continue;
        }
        let client = ctx.client.clone();
        let mut walk = Walk::new(&client, &src, attr);
        while let Some(next) = walk.next().await {
            let Some((path, a)) = ctx.check(next) else { continue };
            let to = format!("{target}{}", &path[src.len()..]);
            let r = match a.kind {
                FileKind::Dir => ctx.client.mkdir(&to, force, Some(a.mode)).await.map(|_| ()).map_err(|e| Failure::dfs(&to, e)),
                FileKind::File => copy_within(&ctx.client, &path, &a, &to, force, sync).await,
                FileKind::Symlink => match ctx.client.readlink(&path).await {
                    Ok(t) => ctx.client.symlink(&to, &t).await.map(|_| ()).map_err(|e| Failure::dfs(&to, e)),
                    Err(e) => Err(Failure::dfs(&path, e)),
                },
                kind => ctx.client.mknod(&to, kind, a.mode, a.rdev).await.map(|_| ()).map_err(|e| Failure::dfs(&to, e)),
            };
            ctx.check(r);
        }
    }
}

async fn cat(client: &Client, p: &str) -> Result<(), Failure> {
    let mut reader = client.open(p).await.map_err(|e| Failure::dfs(p, e))?;
    let mut out = tokio::io::stdout();
    loop {
        let buf = reader.read(BUF_BYTES as u64).await.map_err(|e| Failure::dfs(p, e))?;
        if buf.is_empty() {
            break;
        }
        tokio::io::AsyncWriteExt::write_all(&mut out, &buf).await.map_err(|e| Failure::local("stdout", e))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut out).await.map_err(|e| Failure::local("stdout", e))
}

/// The last KiB, then (with `follow`) whatever is appended, polling.
async fn tail(client: &Client, p: &str, follow: bool, every: Duration) -> Result<(), Failure> {
    let mut reader = client.open(p).await.map_err(|e| Failure::dfs(p, e))?;
    let mut shown = reader.attr().size.saturating_sub(1024);
    let mut out = tokio::io::stdout();
    loop {
        let size = reader.attr().size;
        while shown < size {
            let buf = reader.read_at(shown, BUF_BYTES as u64).await.map_err(|e| Failure::dfs(p, e))?;
            if buf.is_empty() {
                break;
            }
            shown += buf.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut out, &buf).await.map_err(|e| Failure::local("stdout", e))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await.map_err(|e| Failure::local("stdout", e))?;
        if !follow {
            return Ok(());
        }
        loop {
            tokio::time::sleep(every).await;
            let attr = client.stat(p).await.map_err(|e| Failure::dfs(p, e))?;
            if attr.size < shown {
                shown = 0; // truncated: start over, as tail -f does
            }
            if attr.size != size || attr.size > shown {
                reader.refresh(attr);
                break;
            }
        }
    }
}

async fn append_to_file(client: &Client, paths: &[String], sync: bool) -> Result<(), Failure> {
    let Some((dst, srcs)) = paths.split_last() else { return Ok(()) };
    let dst = absolute(dst);
    let mut writer = match client.open_write(&dst, true).await {
        Ok(w) => w,
        Err(e) if e.kind == dfs_proto::ErrorKind::ENOENT => client.create(&dst, &CreateOptions::default()).await.map_err(|e| Failure::dfs(&dst, e))?,
        Err(e) => return Err(Failure::dfs(&dst, e)),
    };
    writer.set_sync_on_close(sync);
    for src in srcs {
        let source = if src == "-" { Source::Stdin } else { Source::File(PathBuf::from(src)) };
        let mut input = read_local(source);
        while let Some(buf) = input.recv().await {
            let buf = buf.map_err(|e| Failure::local(src, e))?;
            writer.write_bytes(buf).await.map_err(|e| Failure::dfs(&dst, e))?;
        }
    }
    writer.close().await.map(|_| ()).map_err(|e| Failure::dfs(&dst, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copying_name_sits_beside_the_target_and_stays_a_valid_name() {
        assert_eq!(copying_name("/a/b.txt"), "/a/b.txt._COPYING_");
        assert_eq!(copying_name("/top"), "/top._COPYING_");
        let long = format!("/d/{}", "é".repeat(127)); // 254 bytes
        let tmp = copying_name(&long);
        let name = tmp.rsplit('/').next().unwrap();
        assert!(name.len() <= dfs_proto::names::NAME_MAX_BYTES && name.ends_with("._COPYING_"), "{name}");
        assert!(dfs_proto::names::validate_name(name).is_ok());
    }
}
