//! Running `dfs-mount` (the FUSE daemon) against a test cluster.
//!
//! A [`Mount`] owns a fresh temp directory holding the mountpoint and the
//! daemon's log. Dropping it (also while a test panics) stops the daemon,
//! makes sure nothing stays mounted, and only then removes the directory,
//! so a failing test never leaves a mount behind or deletes through one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::bin_dir;

/// How long the daemon may take to show up in the mount table.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The file-system types a `dfs-mount` shows as: `fuse` when it mounts with
/// mount(2) itself (as root, as in the tests), `fuse.dfs` through fusermount3.
pub const FSTYPES: [&str; 2] = ["fuse", "fuse.dfs"];

/// A running `dfs-mount --foreground`, unmounted and stopped when dropped.
pub struct Mount {
    child: Child,
    /// Taken (and so not removed) when the mount could not be undone.
    dir: Option<tempfile::TempDir>,
    mountpoint: PathBuf,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Mount {
    /// Mounts the cluster at `master_url` on a fresh temp directory:
    /// `dfs-mount --foreground --master URL DIR EXTRA_ARGS...`, and waits
    /// (bounded) until the mount table shows it.
    pub fn start(master_url: &str, extra_args: &[&str]) -> anyhow::Result<Mount> {
        if !Path::new("/dev/fuse").exists() {
            bail!("/dev/fuse does not exist: FUSE is not available here (load the fuse module, or give the container --device /dev/fuse)");
        }
        let bin = bin_dir()?.join("dfs-mount");
        if !bin.exists() {
            bail!("{} not found; run `cargo build --workspace --bins` first", bin.display());
        }
        let dir = tempfile::Builder::new().prefix("dfs-mount-").tempdir()?;
        // Other users (the permission tests) must be able to reach the mountpoint.
        set_mode(dir.path(), 0o755)?;
        std::fs::create_dir(dir.path().join("mnt"))?;
        // The mount table names the real path (no symlinks).
        let mountpoint = dir.path().join("mnt").canonicalize()?;
        let log = dir.path().join("dfs-mount.log");
        let log_file = File::create(&log)?;
        let child = Command::new(&bin)
            .arg("--foreground")
            .arg("--master")
            .arg(master_url)
            .arg(&mountpoint)
            // As the cluster's first admin (a proxy), unless the test names a principal.
            .args(
                crate::process::credentials_of(master_url)
                    .filter(|_| !extra_args.iter().any(|a| a.starts_with("--credentials")))
                    .map(|f| format!("--credentials={}", f.display())),
            )
            .args(extra_args)
            .env("DFS_LOG", std::env::var("DFS_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut mount = Mount { child, dir: Some(dir), mountpoint, log, exited: None };
        let start = Instant::now();
        loop {
            match mount_fstype(&mount.mountpoint) {
                Some(t) if FSTYPES.contains(&t.as_str()) => return Ok(mount),
                Some(t) => bail!("{} is mounted as type {t}, not one of {FSTYPES:?}; log:\n{}", mount.mountpoint.display(), mount.log()),
                None => {}
            }
            if let Some(status) = mount.child.try_wait()? {
                mount.exited = Some(status);
                bail!("dfs-mount exited ({status}) before mounting {}; its log:\n{}", mount.mountpoint.display(), mount.log());
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                bail!("{} did not show up in /proc/self/mountinfo within {MOUNT_TIMEOUT:?}; log:\n{}", mount.mountpoint.display(), mount.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Sends SIGTERM and waits (bounded) for the daemon to exit; its status.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        crate::sys::signal(self.child.id(), libc::SIGTERM);
        self.wait_exit(STOP_TIMEOUT).context("after SIGTERM")
    }

    /// Waits (bounded) for the daemon to exit on its own; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited {
                return Ok(status);
            }
            if let Some(status) = self.child.try_wait()? {
                self.exited = Some(status);
                return Ok(status);
            }
            if start.elapsed() > timeout {
                bail!("dfs-mount (pid {}) still running after {timeout:?}", self.child.id());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon (SIGTERM, then SIGKILL) and undoes the mount if the
    /// daemon left it behind; true when nothing is mounted at the end.
    fn stop_and_unmount(&mut self) -> bool {
        if self.exited.is_none() && self.terminate().is_err() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        if mount_fstype(&self.mountpoint).is_some() {
            eprintln!("dfs-mount left {} mounted; unmounting lazily", self.mountpoint.display());
            let _ = quiet(Command::new("umount").arg("-l").arg(&self.mountpoint));
        }
        if mount_fstype(&self.mountpoint).is_some() {
            let _ = quiet(Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mountpoint));
        }
        // Whatever the type: the directory must not be removed through a mount.
        mount_fstype(&self.mountpoint).is_none()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let unmounted = self.stop_and_unmount();
        if panicking {
            eprintln!("---- dfs-mount log ({}) ----\n{}---- end of dfs-mount log ----", self.mountpoint.display(), tail(&self.log(), 200));
        }
        if !unmounted {
            // Removing the directory now would delete through the mount.
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("{} is still mounted; leaving {} in place", self.mountpoint.display(), kept.display());
            }
        }
        // Otherwise `dir` drops here and removes the (empty) mountpoint and the log.
    }
}

/// The file-system type mounted at `path` (the last mount there), if any.
/// `path` is compared as the mount table spells it (absolute, no symlinks);
/// it is never accessed, so a hung mount cannot hang this.
pub fn mount_fstype(path: &Path) -> Option<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in table.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        if fields.len() < 5 || sep + 1 >= fields.len() {
            continue;
        }
        if Path::new(&unescape(fields[4])) == path {
            found = Some(fields[sep + 1].to_string());
        }
    }
    found
}

/// True when a FUSE file system ([`FSTYPES`]) is mounted at `path`.
pub fn is_mounted(path: &Path) -> bool {
    mount_fstype(path).is_some_and(|t| FSTYPES.contains(&t.as_str()))
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Runs a clean-up command with its output discarded, killed after 10 s.
fn quiet(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > STOP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    out.push('\n');
    out
}
