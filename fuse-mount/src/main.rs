//! `dfs-mount`: mounts a dfs cluster as a local file system (FUSE).
//!
//! Without `--foreground` it checks what it can (the master answers, the
//! mount point is a directory), starts itself again in the background and
//! returns once the mount is in place. SIGTERM or SIGINT commit open files'
//! writes and unmount; `umount MOUNTPOINT` ends the process too.

mod attr;
mod cached;
mod callers;
mod dir_attrs;
mod dirs;
mod files;
mod fs;
mod here;
mod mountinfo;
mod names;
mod xattrs;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use dfs_client::{Client, DataConfig};
use fuser::{Config, MountOption, SessionACL};

#[derive(Parser, Debug)]
#[command(name = "dfs-mount", version, about = "Mount a dfs cluster with FUSE")]
struct Args {
    /// The master's URL; with several masters, all of them, comma-separated
    /// (calls go to the one that leads).
    #[arg(long, env = "DFS_MASTER", default_value = "http://127.0.0.1:9870")]
    master: String,
    /// Where to mount (an existing directory).
    mountpoint: PathBuf,
    /// Stay in the foreground and log to stderr.
    #[arg(short, long)]
    foreground: bool,
    /// Mount options, comma-separated: allow_other (the default when
    /// mounted by root; noallow_other turns it off), allow_root, ro,
    /// auto_unmount, noatime, fsname=NAME, ... (default_permissions is always on).
    /// nosync_close: a close(2) of a file written through it returns once
    /// every replica has the bytes in memory, without syncing them to disk
    /// (by default it waits until they are on disk on every replica).
    #[arg(short = 'o', value_delimiter = ',')]
    options: Vec<String>,
    /// How long names (and a directory's known absence of a name) are
    /// trusted without asking the master (ms); as NFS's lookup cache.
    #[arg(long, default_value_t = 10_000)]
    entry_ttl_ms: u64,
    /// How long the kernel trusts attributes (ms); an open always asks the
    /// master (close-to-open), as NFS does with its attribute cache.
    #[arg(long, default_value_t = 10_000)]
    attr_ttl_ms: u64,
    /// How long a failing write, or a read no replica serves, keeps
    /// retrying before it returns EIO (s).
    #[arg(long, default_value_t = 60)]
    retry_secs: u64,
    /// How long a restarting (unreachable) master is waited for (s).
    #[arg(long, default_value_t = 60)]
    master_wait_secs: u64,
    /// Longest wait for one request to a server (s).
    #[arg(long, default_value_t = 30)]
    io_timeout_secs: u64,
    /// Write-back buffer per open file, in MiB (sent in pieces of a quarter).
    #[arg(long, default_value_t = 16)]
    write_buffer_mib: u64,
    /// Read-ahead per open file, in MiB.
    #[arg(long, default_value_t = 16)]
    readahead_mib: u64,
    /// Read replicas on this host directly, through descriptors their
    /// chunkservers pass, instead of over HTTP.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    local_reads: bool,
    /// The credentials file of the mount's principal (a user with the
    /// proxy role, see `dfs admin user add --proxy`); default
    /// ~/.config/dfs/credentials when it exists.
    #[arg(long, env = "DFS_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// The cluster CA's certificate, to verify an https:// master and its
    /// chunkservers against; default ~/.config/dfs/ca.pem when it exists.
    #[arg(long, env = "DFS_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// In the background, log here instead of nowhere.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dfs-mount: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.foreground {
        let filter = tracing_subscriber::EnvFilter::try_from_env("DFS_LOG").unwrap_or_else(|_| "info,fuser=error".into());
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let mountpoint = std::fs::canonicalize(&args.mountpoint).with_context(|| format!("mount point {}", args.mountpoint.display()))?;
    if !mountpoint.is_dir() {
        bail!("mount point {} is not a directory", mountpoint.display());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let credentials = dfs_client::auth::load_credentials(args.credentials.as_deref()).context("credentials")?;
    dfs_client::tls::init(args.tls_ca.as_deref()).context("TLS CA")?;
    let client = Client::with_login(&args.master, data_config(&args), dfs_client::auth::Login::new(credentials));
    rt.block_on(client.master().cluster()).map_err(|e| anyhow::anyhow!("master {}: {}", args.master, e.describe()))?;
    if !args.foreground {
        return start_in_background(&args, &mountpoint);
    }
    serve(&args, &mountpoint, client, &rt)
}

fn data_config(args: &Args) -> DataConfig {
    let piece = (args.write_buffer_mib.max(1) << 20) / 4;
    let read_piece = (args.readahead_mib.max(1) << 20) / 4;
    DataConfig {
        write_piece_bytes: piece.max(1 << 20),
        read_piece_bytes: read_piece.max(1 << 20),
        pieces_in_flight: 4,
        readahead_pieces: 4,
        retry_for: Duration::from_secs(args.retry_secs),
        master_wait: Duration::from_secs(args.master_wait_secs),
        request_timeout: Duration::from_secs(args.io_timeout_secs.max(1)),
        local_reads: args.local_reads,
        sync_on_close: sync_on_close(&args.options),
        ..DataConfig::default()
    }
}

/// Options of the mount itself (not passed to the kernel).
const NOSYNC_CLOSE: &str = "nosync_close";

/// Whether a close makes a file's writes durable: unless `-o nosync_close`.
fn sync_on_close(options: &[String]) -> bool {
    !options.iter().any(|o| o == NOSYNC_CLOSE)
}

fn mount_config(args: &Args) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName(format!("dfs:{}", args.master)), MountOption::Subtype("dfs".into()), MountOption::DefaultPermissions];
    // Mounted by root, every local user may use it (as mfsmount): the
    // kernel and the master check each one's permissions.
    let by_root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    config.acl = if by_root { SessionACL::All } else { SessionACL::Owner };
    // Device nodes and setuid bits another host's root made in dfs are not
    // honoured here unless asked (`-o dev`, `-o suid`): as NFS advice and
    // fusermount have it, the trust of one host does not carry to all.
    let (mut dev, mut suid) = (false, false);
    for o in args.options.iter().map(String::as_str) {
        match o {
            "allow_other" => config.acl = SessionACL::All,
            "noallow_other" => config.acl = SessionACL::Owner,
            "allow_root" => config.acl = SessionACL::RootAndOwner,
            "default_permissions" | "" | NOSYNC_CLOSE => {}
            "ro" => config.mount_options.push(MountOption::RO),
            "rw" => config.mount_options.push(MountOption::RW),
            "auto_unmount" => config.mount_options.push(MountOption::AutoUnmount),
            "noatime" => config.mount_options.push(MountOption::NoAtime),
            "nosuid" => suid = false,
            "nodev" => dev = false,
            "suid" => suid = true,
            "dev" => dev = true,
            "noexec" => config.mount_options.push(MountOption::NoExec),
            o if o.starts_with("fsname=") => config.mount_options[0] = MountOption::FSName(o[7..].into()),
            o => config.mount_options.push(MountOption::CUSTOM(o.into())),
        }
    }
    config.mount_options.push(if dev { MountOption::Dev } else { MountOption::NoDev });
    config.mount_options.push(if suid { MountOption::Suid } else { MountOption::NoSuid });
    // Requests are read by four threads. One-call namespace requests and
    // small random reads are served on them (they block there, see
    // `here.rs`); everything else runs on the runtime.
    config.n_threads = Some(here::FUSE_THREADS);
    config.clone_fd = true;
    config
}

/// Mounts and serves until a signal or an unmount.
fn serve(args: &Args, mountpoint: &Path, client: Client, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let ttl = fs::CacheTtls { entry: Duration::from_millis(args.entry_ttl_ms), attr: Duration::from_millis(args.attr_ttl_ms) };
    let filesystem = fs::DfsFs::new(client, ttl, rt.handle().clone());
    let inner = filesystem.inner();
    let session = fuser::Session::new(filesystem, mountpoint, &mount_config(args)).with_context(|| format!("mount {}", mountpoint.display()))?;
    let _ = inner.notifier.set(session.notifier());
    let keeping = rt.spawn(inner.clone().keep_open_files());
    let session = session.spawn()?;
    tracing::info!(master = %args.master, mountpoint = %mountpoint.display(), "mounted");
    let signalled = rt.block_on(wait_for_end(&session));
    if let Some(signal) = signalled {
        tracing::info!(signal, "unmounting");
        rt.block_on(inner.flush_all(Duration::from_secs(args.retry_secs.max(10))));
        unmount(mountpoint);
    }
    // The session ends once the kernel lets go of the mount.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.guard.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if session.guard.is_finished() {
        session.join()?;
    }
    keeping.abort();
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    Ok(())
}

/// Waits for SIGTERM or SIGINT (returns its name) or for the session to end
/// by itself (someone ran `umount`).
async fn wait_for_end(session: &fuser::BackgroundSession) -> Option<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for signals");
        return None;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = term.recv() => return Some("SIGTERM"),
            _ = int.recv() => return Some("SIGINT"),
            _ = tick.tick() => if session.guard.is_finished() { return None },
        }
    }
}

/// Unmounts; a mount still in use is detached (it goes once unused).
fn unmount(mountpoint: &Path) {
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes()) else { return };
    let done = umount2(&path, 0) || {
        let busy = std::io::Error::last_os_error();
        tracing::warn!(error = %busy, "mount busy; detaching it");
        umount2(&path, libc::MNT_DETACH)
    };
    if !done {
        // Not root: the setuid helper can unmount.
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(mountpoint).status();
    }
}

/// umount2(2); whether it unmounted.
fn umount2(path: &std::ffi::CStr, flags: libc::c_int) -> bool {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::umount2(path.as_ptr(), flags) == 0 }
}

/// Starts `dfs-mount --foreground` detached and waits until it has mounted.
fn start_in_background(args: &Args, mountpoint: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let stderr = match &args.log_file {
        Some(p) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(p).with_context(|| format!("log file {}", p.display()))?),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1)).arg("--foreground").stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    // SAFETY: setsid is async-signal-safe; it detaches from the terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("start the mount in the background")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if mountinfo::is_fuse_mount(mountpoint) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the mount process exited ({status}); run with --foreground to see why");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} was not mounted within 60 s", mountpoint.display())
}
