//! `dfs`: the shell of the dfs file system, with the verbs of `hdfs dfs`.
//!
//! - [`namespace`]: ls, mkdir, rm, rmdir, mv, stat, du, count, setrep, chmod,
//!   chown, touchz, test.
//! - [`transfer`]: put, get, cp, cat, tail, appendToFile.
//! - [`admin`]: df, fsck, admin report.
//! - [`fmt`]: sizes, modes, times and owners as people read them.
//!
//! Paths in dfs are absolute; a relative one is taken from the root. Every
//! failure prints one line on stderr (`dfs VERB: PATH: reason`) and makes the
//! exit status non-zero; other paths of the same command are still done.

mod admin;
mod backup;
mod certs;
mod fmt;
mod masters;
mod namespace;
mod transfer;
mod users;
mod walk;
mod xattrs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dfs_client::{Client, ClientError, DataConfig};

#[derive(Parser)]
#[command(name = "dfs", version, about = "The dfs shell: the verbs of `hdfs dfs` for a dfs cluster")]
struct Cli {
    /// The master's URL; with several masters, all of them, comma-separated
    /// (calls go to the one that leads).
    #[arg(long, env = "DFS_MASTER", default_value = "http://127.0.0.1:9870", global = true)]
    master: String,
    /// How long to wait for a master that cannot be reached (restarting)
    /// before giving up, in seconds.
    #[arg(long, env = "DFS_MASTER_WAIT_SECS", default_value_t = 10, global = true)]
    master_wait_secs: u64,
    /// The credentials file to log in with (mode 0600); default
    /// ~/.config/dfs/credentials when it exists.
    #[arg(long, env = "DFS_CREDENTIALS", global = true)]
    credentials: Option<std::path::PathBuf>,
    /// The cluster CA's certificate, to verify https:// masters and
    /// chunkservers against; default ~/.config/dfs/ca.pem when it exists.
    #[arg(long, env = "DFS_TLS_CA", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    #[command(flatten)]
    Namespace(namespace::Verb),
    #[command(flatten)]
    Transfer(transfer::Verb),
    #[command(flatten)]
    Admin(admin::Verb),
    #[command(flatten)]
    Xattrs(xattrs::Verb),
}

/// Why one path of a verb failed.
#[derive(Debug)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

impl Failure {
    pub fn new(path: &str, reason: impl Into<String>) -> Self {
        Failure { path: path.to_string(), reason: reason.into() }
    }

    pub fn dfs(path: &str, e: ClientError) -> Self {
        Failure::new(path, e.describe())
    }

    pub fn local(path: &str, e: std::io::Error) -> Self {
        Failure::new(path, e.to_string())
    }
}

/// What every verb works with: the client, and whether anything failed.
pub struct Ctx {
    pub client: Client,
    pub verb: &'static str,
    failed: bool,
}

impl Ctx {
    /// Prints a failure as one line on stderr; the exit status will be 1.
    pub fn fail(&mut self, f: Failure) {
        eprintln!("dfs {}: {}: {}", self.verb, f.path, f.reason);
        self.failed = true;
    }

    /// Runs `r`'s failure through [`Ctx::fail`].
    pub fn check<T>(&mut self, r: Result<T, Failure>) -> Option<T> {
        r.map_err(|f| self.fail(f)).ok()
    }
}

/// How several sources meet one destination (mv, cp, put, get): they go
/// into `dst` when it is a directory, else the one source becomes `dst`.
/// Several sources with no directory to go into are reported: `None`.
pub fn into_dir(ctx: &mut Ctx, dst: &str, sources: usize, dst_is_dir: bool) -> Option<bool> {
    if sources > 1 && !dst_is_dir {
        ctx.fail(Failure::new(dst, "Not a directory (several sources need a directory target)"));
        return None;
    }
    Some(dst_is_dir)
}

/// [`into_dir`] for a dfs destination.
pub async fn into_dfs_dir(ctx: &mut Ctx, dst: &str, sources: usize) -> Option<bool> {
    match ctx.client.try_stat(dst).await {
        Ok(a) => into_dir(ctx, dst, sources, a.is_some_and(|a| a.kind == dfs_proto::wire::namespace::FileKind::Dir)),
        Err(e) => {
            ctx.fail(Failure::dfs(dst, e));
            None
        }
    }
}

/// Flags of the verbs that print sizes and can answer in JSON.
#[derive(clap::Args)]
pub struct Show {
    /// Sizes in K, M, G...
    #[arg(short = 'h')]
    pub human: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// Print help (`-h` means human-readable sizes, as in HDFS).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// A dfs path as given: relative paths are taken from the root.
pub fn absolute(path: &str) -> String {
    let p = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    if p.len() > 1 {
        p.trim_end_matches('/').to_string()
    } else {
        p
    }
}

/// The last component of a path (local or dfs).
pub fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

/// `dir/name` without a doubled slash.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dfs: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let config = DataConfig { master_wait: std::time::Duration::from_secs(cli.master_wait_secs), ..DataConfig::default() };
    let credentials = match dfs_client::auth::load_credentials(cli.credentials.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dfs: credentials: {e}");
            return ExitCode::from(2);
        }
    };
    // Making certificates needs no trust (and must work when a default
    // CA file is broken).
    let makes_certs = matches!(cli.verb, Verb::Admin(admin::Verb::Admin { cmd: admin::AdminCmd::Certs { .. } }));
    if let Err(e) = dfs_client::tls::init(cli.tls_ca.as_deref()) {
        if !makes_certs {
            eprintln!("dfs: TLS CA: {e}");
            return ExitCode::from(2);
        }
    }
    let client = Client::with_login(&cli.master, config, dfs_client::auth::Login::new(credentials));
    runtime.block_on(async move {
        let mut ctx = Ctx { client, verb: "", failed: false };
        let status = match cli.verb {
            Verb::Namespace(v) => namespace::run(&mut ctx, v).await,
            Verb::Transfer(v) => transfer::run(&mut ctx, v).await,
            Verb::Admin(v) => admin::run(&mut ctx, v).await,
            Verb::Xattrs(v) => xattrs::run(&mut ctx, v).await,
        };
        match (ctx.failed, status) {
            (true, _) => ExitCode::from(1),
            (false, code) => ExitCode::from(code),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_without_trailing_slashes() {
        assert_eq!(absolute("a/b/"), "/a/b");
        assert_eq!(absolute("/"), "/");
        assert_eq!(absolute(""), "/");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
    }
}
