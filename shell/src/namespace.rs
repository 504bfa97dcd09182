//! Verbs on names and attributes: ls, mkdir, rm, rmdir, mv, ln, stat, du,
//! count, setrep, chmod, chown, touchz, test.

use std::io::Write;

use clap::{Args, Subcommand};
use dfs_client::CreateOptions;
use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::ErrorKind;
use serde_json::{json, Value};

use crate::fmt::{self, Names};
use crate::walk::{list_all, Walk};
use crate::{absolute, base_name, into_dfs_dir, join, Ctx, Failure, Show};

#[derive(Subcommand)]
pub enum Verb {
    /// List directories (or show files), like `ls -l`.
    #[command(disable_help_flag = true)]
    Ls {
        /// Recurse into subdirectories.
        #[arg(short = 'R')]
        recursive: bool,
        /// Show directories themselves, not their entries.
        #[arg(short = 'd')]
        directory: bool,
        #[command(flatten)]
        show: Show,
        #[arg(default_value = "/")]
        paths: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create missing parents; an existing directory is fine.
        #[arg(short = 'p')]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove files, and directories with -r.
    Rm {
        /// Remove directories and everything under them.
        #[arg(short = 'r', short_alias = 'R')]
        recursive: bool,
        /// No error for paths that do not exist.
        #[arg(short = 'f')]
        force: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove empty directories.
    Rmdir {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Move or rename; several sources go into a directory.
    Mv {
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Make links, as `ln`: TARGET gets the name LINK (a hard link), or
    /// LINK points at TARGET (-s); several targets go into a directory.
    Ln {
        /// A symbolic link, whose target is stored as given.
        #[arg(short = 's')]
        symbolic: bool,
        #[arg(required = true, num_args = 2.., value_names = ["TARGET", "LINK"])]
        paths: Vec<String>,
    },
    /// Show attributes.
    Stat {
        /// Format with %n name, %F type, %b size, %r replication, %o chunk
        /// size, %a/%A permissions, %u/%g owner/group, %i inode, %h links, %y/%Y mtime.
        #[arg(long, short = 'c')]
        format: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Space used: size, and size times replication, per entry.
    #[command(disable_help_flag = true)]
    Du {
        /// One total per path instead of one per entry.
        #[arg(short = 's')]
        summary: bool,
        #[command(flatten)]
        show: Show,
        #[arg(default_value = "/")]
        paths: Vec<String>,
    },
    /// Directories, files and bytes under each path.
    #[command(disable_help_flag = true)]
    Count {
        #[command(flatten)]
        show: Show,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Set the replication of files (every file under a directory).
    Setrep {
        /// Accepted for compatibility: directories are always walked.
        #[arg(short = 'R')]
        recursive: bool,
        replication: u16,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change permissions: octal (755) or symbolic (u+x,go-w).
    Chmod {
        #[arg(short = 'R')]
        recursive: bool,
        mode: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change owner and/or group: OWNER[:GROUP] or :GROUP, names or ids.
    Chown {
        #[arg(short = 'R')]
        recursive: bool,
        owner: String,
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create empty files (an existing empty file is fine).
    Touchz {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Exit 0 if the test holds, 1 if not.
    Test {
        #[command(flatten)]
        what: TestWhat,
        path: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct TestWhat {
    /// The path exists.
    #[arg(short = 'e')]
    exists: bool,
    /// The path is a directory.
    #[arg(short = 'd')]
    dir: bool,
    /// The path is a file.
    #[arg(short = 'f')]
    file: bool,
    /// The path is a file of non-zero length.
    #[arg(short = 's')]
    non_empty: bool,
    /// The path is a file of zero length.
    #[arg(short = 'z')]
    empty: bool,
}

pub async fn run(ctx: &mut Ctx, verb: Verb) -> u8 {
    match verb {
        Verb::Ls { recursive, directory, show, paths } => {
            ctx.verb = "ls";
            ls(ctx, &paths, recursive, show.human, directory, show.json).await;
        }
        Verb::Mkdir { parents, paths } => {
            ctx.verb = "mkdir";
            for p in paths.iter().map(|p| absolute(p)) {
                let r = ctx.client.mkdir(&p, parents, None).await.map_err(|e| Failure::dfs(&p, e));
                ctx.check(r);
            }
        }
        Verb::Rm { recursive, force, paths } => {
            ctx.verb = "rm";
            for p in paths.iter().map(|p| absolute(p)) {
                let r = rm(ctx, &p, recursive, force).await;
                ctx.check(r);
            }
        }
        Verb::Rmdir { paths } => {
            ctx.verb = "rmdir";
            for p in paths.iter().map(|p| absolute(p)) {
                let r = ctx.client.master().rmdir(dfs_proto::wire::namespace::EntryRef::path(&p)).await;
                ctx.check(r.map_err(|e| Failure::dfs(&p, e)));
            }
        }
        Verb::Mv { paths } => {
            ctx.verb = "mv";
            mv(ctx, &paths).await;
        }
        Verb::Ln { symbolic, paths } => {
            ctx.verb = "ln";
            ln(ctx, &paths, symbolic).await;
        }
        Verb::Stat { format, json, paths } => {
            ctx.verb = "stat";
            stat(ctx, &paths, format.as_deref(), json).await;
        }
        Verb::Du { summary, show, paths } => {
            ctx.verb = "du";
            du(ctx, &paths, summary, show.human, show.json).await;
        }
        Verb::Count { show, paths } => {
            ctx.verb = "count";
            count(ctx, &paths, show.human, show.json).await;
        }
        Verb::Setrep { replication, paths, .. } => {
            ctx.verb = "setrep";
            for (p, a) in targets(ctx, &paths, true).await {
                let r = setrep(ctx, &p, &a, replication).await;
                ctx.check(r);
            }
        }
        Verb::Chmod { recursive, mode, paths } => {
            ctx.verb = "chmod";
            for (p, a) in targets(ctx, &paths, recursive).await {
                let r = chmod(ctx, &p, &a, &mode).await;
                ctx.check(r);
            }
        }
        Verb::Chown { recursive, owner, paths } => {
            ctx.verb = "chown";
            match Names::load().parse_owner(&owner) {
                Ok((uid, gid)) => {
                    for (p, _) in targets(ctx, &paths, recursive).await {
                        let r = ctx.client.chown(&p, uid, gid).await.map_err(|e| Failure::dfs(&p, e));
                        ctx.check(r);
                    }
                }
                Err(reason) => ctx.fail(Failure::new(&owner, reason)),
            }
        }
        Verb::Touchz { paths } => {
            ctx.verb = "touchz";
            for p in paths.iter().map(|p| absolute(p)) {
                let r = touchz(ctx, &p).await;
                ctx.check(r);
            }
        }
        Verb::Test { what, path } => {
            ctx.verb = "test";
            return test(ctx, &what, &absolute(&path)).await;
        }
    }
    0
}

fn stat_failure(path: &str) -> impl FnOnce(dfs_client::ClientError) -> Failure + '_ {
    move |e| Failure::dfs(path, e)
}

/// One `ls -l` line.
fn ls_line(names: &Names, path: &str, a: &Attr, human: bool, link: Option<&str>) -> String {
    let repl = match a.kind {
        FileKind::File => a.replication.to_string(),
        _ => "-".into(),
    };
    let shown = match link {
        Some(target) => format!("{path} -> {target}"),
        None => path.to_string(),
    };
    format!(
        "{} {:>3} {:<8} {:<8} {:>10} {} {shown}",
        fmt::mode_string(a.kind, a.mode),
        repl,
        names.user(a.uid),
        names.group(a.gid),
        fmt::size(a.size, human),
        fmt::time(a.mtime_ns)
    )
}

/// An entry for `--json` output.
fn entry_json(names: &Names, path: &str, a: &Attr) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("path".into(), json!(path));
        m.insert("owner".into(), json!(names.user(a.uid)));
        m.insert("group".into(), json!(names.group(a.gid)));
        m.insert("permissions".into(), json!(fmt::mode_string(a.kind, a.mode)));
    }
    v
}

/// Output for listing verbs: text lines as they come, or one JSON array.
struct Out {
    json: bool,
    items: Vec<Value>,
    text: std::io::BufWriter<std::io::Stdout>,
}

impl Out {
    fn new(json: bool) -> Self {
        Out { json, items: Vec::new(), text: std::io::BufWriter::new(std::io::stdout()) }
    }

    fn line(&mut self, line: impl FnOnce() -> String, item: impl FnOnce() -> Value) {
        if self.json {
            self.items.push(item());
        } else {
            let _ = writeln!(self.text, "{}", line());
        }
    }

    /// A line shown only as text (a heading).
    fn text(&mut self, line: impl FnOnce() -> String) {
        if !self.json {
            let _ = writeln!(self.text, "{}", line());
        }
    }

    fn finish(mut self) {
        if self.json {
            let _ = writeln!(self.text, "{}", Value::Array(std::mem::take(&mut self.items)));
        }
        let _ = self.text.flush();
    }
}

async fn ls(ctx: &mut Ctx, paths: &[String], recursive: bool, human: bool, directory: bool, json: bool) {
    let names = Names::load();
    let mut out = Out::new(json);
    for p in paths.iter().map(|p| absolute(p)) {
        let Some(attr) = ctx.check(ctx.client.stat(&p).await.map_err(stat_failure(&p))) else { continue };
        if attr.kind != FileKind::Dir || directory {
            let link = link_target(ctx, &p, &attr).await;
            out.line(|| ls_line(&names, &p, &attr, human, link.as_deref()), || entry_json(&names, &p, &attr));
            continue;
        }
        if recursive {
            let client = ctx.client.clone();
            let mut walk = Walk::new(&client, &p, attr);
            let mut root = true;
            while let Some(next) = walk.next().await {
                let Some((path, a)) = ctx.check(next) else { continue };
                if std::mem::take(&mut root) {
                    continue;
                }
                let link = link_target(ctx, &path, &a).await;
                out.line(|| ls_line(&names, &path, &a, human, link.as_deref()), || entry_json(&names, &path, &a));
            }
            continue;
        }
        let Some(entries) = ctx.check(list_all(&ctx.client, &p).await) else { continue };
        out.text(|| format!("Found {} items", entries.len()));
        for e in entries {
            let path = join(&p, &e.name);
            let link = link_target(ctx, &path, &e.attr).await;
            out.line(|| ls_line(&names, &path, &e.attr, human, link.as_deref()), || entry_json(&names, &path, &e.attr));
        }
    }
    out.finish();
}

async fn link_target(ctx: &Ctx, path: &str, a: &Attr) -> Option<String> {
    match a.kind {
        FileKind::Symlink => ctx.client.readlink(path).await.ok(),
        _ => None,
    }
}

async fn rm(ctx: &Ctx, p: &str, recursive: bool, force: bool) -> Result<(), Failure> {
    let attr = match ctx.client.try_stat(p).await.map_err(stat_failure(p))? {
        Some(a) => a,
        None if force => return Ok(()),
        None => return Err(Failure::dfs(p, dfs_client::ClientError::new(ErrorKind::ENOENT, "no such file or directory"))),
    };
    if attr.kind == FileKind::Dir && !recursive {
        return Err(Failure::new(p, "Is a directory (use -r to remove it and everything under it)"));
    }
    match ctx.client.delete(p, recursive).await {
        Err(e) if force && e.kind == ErrorKind::ENOENT => Ok(()),
        other => other.map_err(|e| Failure::dfs(p, e)),
    }
}

async fn mv(ctx: &mut Ctx, paths: &[String]) {
    let Some((dst, srcs)) = paths.split_last() else { return };
    let dst = absolute(dst);
    let Some(into_dir) = into_dfs_dir(ctx, &dst, srcs.len()).await else { return };
    for src in srcs.iter().map(|s| absolute(s)) {
        let target = if into_dir { join(&dst, base_name(&src)) } else { dst.clone() };
        let r = ctx.client.rename(&src, &target, true).await.map_err(|e| Failure::dfs(&src, e));
        ctx.check(r);
    }
}

/// `ln [-s] TARGET... LINK`: into LINK when it is a directory (or there
/// are several targets), else as LINK.
async fn ln(ctx: &mut Ctx, paths: &[String], symbolic: bool) {
    let Some((dst, targets)) = paths.split_last() else { return };
    let dst = absolute(dst);
    let Some(into_dir) = into_dfs_dir(ctx, &dst, targets.len()).await else { return };
    for target in targets {
        let name = if into_dir { join(&dst, base_name(target)) } else { dst.clone() };
        let r = if symbolic { ctx.client.symlink(&name, target).await } else { ctx.client.link(&absolute(target), &name).await };
        ctx.check(r.map(|_| ()).map_err(|e| Failure::dfs(&name, e)));
    }
}

async fn stat(ctx: &mut Ctx, paths: &[String], format: Option<&str>, json: bool) {
    let names = Names::load();
    let mut out = Out::new(json);
    for p in paths.iter().map(|p| absolute(p)) {
        let Some(a) = ctx.check(ctx.client.stat(&p).await.map_err(stat_failure(&p))) else { continue };
        let text = || match format {
            Some(f) => stat_format(f, &names, &p, &a),
            None => stat_block(&names, &p, &a),
        };
        out.line(text, || entry_json(&names, &p, &a));
    }
    out.finish();
}

fn stat_block(names: &Names, p: &str, a: &Attr) -> String {
    format!(
        "  File: {p}\n  Type: {}  Size: {}  Replication: {}  Chunk size: {}\n Inode: {}  Mode: {:04o} ({})  Owner: {}  Group: {}  Links: {}\nAccess: {}\nModify: {}\nChange: {}",
        a.kind.describe(),
        a.size,
        a.replication,
        a.chunk_size_bytes,
        a.inode,
        a.mode,
        fmt::mode_string(a.kind, a.mode),
        names.user(a.uid),
        names.group(a.gid),
        a.nlink,
        fmt::time(a.atime_ns),
        fmt::time(a.mtime_ns),
        fmt::time(a.ctime_ns)
    )
}

/// `hdfs dfs -stat FORMAT`: the letters listed in the verb's help.
fn stat_format(f: &str, names: &Names, p: &str, a: &Attr) -> String {
    let mut out = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push_str(base_name(p)),
            Some('F') => out.push_str(a.kind.describe()),
            Some('b') => out.push_str(&a.size.to_string()),
            Some('r') => out.push_str(&a.replication.to_string()),
            Some('o') => out.push_str(&a.chunk_size_bytes.to_string()),
            Some('a') => out.push_str(&format!("{:o}", a.mode)),
            Some('A') => out.push_str(&fmt::mode_string(a.kind, a.mode)),
            Some('u') => out.push_str(&names.user(a.uid)),
            Some('g') => out.push_str(&names.group(a.gid)),
            Some('i') => out.push_str(&a.inode.to_string()),
            Some('h') => out.push_str(&a.nlink.to_string()),
            Some('y') => out.push_str(&fmt::time(a.mtime_ns)),
            Some('Y') => out.push_str(&(a.mtime_ns / 1_000_000).to_string()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Totals under a path: directories (itself included), files, bytes, and
/// bytes times replication.
#[derive(Default)]
struct Totals {
    dirs: u64,
    files: u64,
    bytes: u64,
    stored: u64,
}

async fn totals(ctx: &mut Ctx, path: &str, attr: Attr) -> Totals {
    let mut t = Totals::default();
    let client = ctx.client.clone();
    let mut walk = Walk::new(&client, path, attr);
    while let Some(next) = walk.next().await {
        let Some((_, a)) = ctx.check(next) else { continue };
        match a.kind {
            FileKind::Dir => t.dirs += 1,
            FileKind::File => {
                t.files += 1;
                t.bytes += a.size;
                t.stored += a.size.saturating_mul(a.replication as u64);
            }
            _ => t.files += 1,
        }
    }
    t
}

async fn du(ctx: &mut Ctx, paths: &[String], summary: bool, human: bool, json: bool) {
    let mut out = Out::new(json);
    for p in paths.iter().map(|p| absolute(p)) {
        let Some(attr) = ctx.check(ctx.client.stat(&p).await.map_err(stat_failure(&p))) else { continue };
        let targets = if summary || attr.kind != FileKind::Dir {
            vec![(p.clone(), attr)]
        } else {
            let Some(entries) = ctx.check(list_all(&ctx.client, &p).await) else { continue };
            entries.into_iter().map(|e| (join(&p, &e.name), e.attr)).collect()
        };
        for (path, a) in targets {
            let t = totals(ctx, &path, a).await;
            out.line(
                || format!("{:<12} {:<12} {path}", fmt::size(t.bytes, human), fmt::size(t.stored, human)),
                || json!({"path": path, "bytes": t.bytes, "stored_bytes": t.stored}),
            );
        }
    }
    out.finish();
}

async fn count(ctx: &mut Ctx, paths: &[String], human: bool, json: bool) {
    let mut out = Out::new(json);
    for p in paths.iter().map(|p| absolute(p)) {
        let Some(attr) = ctx.check(ctx.client.stat(&p).await.map_err(stat_failure(&p))) else { continue };
        let t = totals(ctx, &p, attr).await;
        out.line(
            || format!("{:>12} {:>12} {:>18} {p}", t.dirs, t.files, fmt::size(t.bytes, human)),
            || json!({"path": p, "directories": t.dirs, "files": t.files, "bytes": t.bytes}),
        );
    }
    out.finish();
}

/// The paths named, and with `recursive` everything under them.
async fn targets(ctx: &mut Ctx, paths: &[String], recursive: bool) -> Vec<(String, Attr)> {
    let mut out = Vec::new();
    let client = ctx.client.clone();
    for p in paths.iter().map(|p| absolute(p)) {
        let Some(attr) = ctx.check(client.stat(&p).await.map_err(stat_failure(&p))) else { continue };
        if !recursive {
            out.push((p, attr));
            continue;
        }
        let mut walk = Walk::new(&client, &p, attr);
        while let Some(next) = walk.next().await {
            if let Some(found) = ctx.check(next) {
                out.push(found);
            }
        }
    }
    out
}

async fn setrep(ctx: &Ctx, p: &str, a: &Attr, replication: u16) -> Result<(), Failure> {
    if a.kind != FileKind::File {
        return Ok(()); // directories are walked; their files get the replication
    }
    ctx.client.set_replication(p, replication).await.map_err(|e| Failure::dfs(p, e))?;
    println!("Replication {replication} set: {p}");
    Ok(())
}

async fn chmod(ctx: &Ctx, p: &str, a: &Attr, spec: &str) -> Result<(), Failure> {
    let mode = fmt::apply_mode(spec, a).map_err(|r| Failure::new(p, r))?;
    ctx.client.chmod(p, mode).await.map(|_| ()).map_err(|e| Failure::dfs(p, e))
}

async fn touchz(ctx: &Ctx, p: &str) -> Result<(), Failure> {
    match ctx.client.try_stat(p).await.map_err(stat_failure(p))? {
        Some(a) if a.kind == FileKind::File && a.size == 0 => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
            ctx.client.set_times(p, None, Some(now)).await.map(|_| ()).map_err(|e| Failure::dfs(p, e))
        }
        Some(a) if a.kind == FileKind::Dir => Err(Failure::new(p, "Is a directory")),
        Some(_) => Err(Failure::new(p, "Not a zero-length file")),
        None => {
            let w = ctx.client.create(p, &CreateOptions::default()).await.map_err(|e| Failure::dfs(p, e))?;
            w.close().await.map(|_| ()).map_err(|e| Failure::dfs(p, e))
        }
    }
}

async fn test(ctx: &mut Ctx, what: &TestWhat, p: &str) -> u8 {
    let attr = match ctx.client.try_stat(p).await {
        Ok(a) => a,
        Err(e) => {
            ctx.fail(Failure::dfs(p, e));
            return 1;
        }
    };
    let holds = match attr {
        None => false,
        Some(a) => {
            what.exists
                || (what.dir && a.kind == FileKind::Dir)
                || (what.file && a.kind == FileKind::File)
                || (what.non_empty && a.kind == FileKind::File && a.size > 0)
                || (what.empty && a.kind == FileKind::File && a.size == 0)
        }
    };
    (!holds) as u8
}
