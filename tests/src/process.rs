//! Starting and stopping dfs daemons as child processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::sys::signal;

/// How long a daemon may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster key file of each master this process started, by URL:
/// chunkservers started for a master get it (`--cluster-key-file`).
static KEY_FILES: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// The key file the master at `url` was started with, if this process
/// started it: its `--cluster-key-file`, else DATA_DIR/cluster.key; or
/// the one a chunkserver at `url` was given.
pub fn key_file_of(url: &str) -> Option<PathBuf> {
    let files = KEY_FILES.lock().unwrap_or_else(|p| p.into_inner());
    files.iter().rev().find(|(u, _)| u == url).map(|(_, f)| f.clone())
}

/// The admin credentials of each master this process started, by URL:
/// clients, shells and mounts of the tests log in with them.
/// With each, the number of the master start that recorded it (a restart
/// forgets sessions: callers keyed on it log in again).
static CREDENTIALS: Mutex<Vec<(String, PathBuf, u64)>> = Mutex::new(Vec::new());
static MASTER_STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The credentials file of the first admin of the master at `url`
/// (DATA_DIR/admin.credentials), if this process started it.
pub fn credentials_of(url: &str) -> Option<PathBuf> {
    let files = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    files.iter().rev().find(|(u, ..)| u == url.trim_end_matches('/')).map(|(_, f, _)| f.clone())
}

/// Which start of the master at `url` this is (see [`credentials_of`]).
pub fn master_start_of(url: &str) -> Option<u64> {
    let files = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    files.iter().rev().find(|(u, ..)| u == url.trim_end_matches('/')).map(|(.., n)| *n)
}

/// Records that the master at `url` keeps its data in `data_dir`.
pub fn note_credentials(url: &str, data_dir: &Path) {
    let mut files = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    files.retain(|(u, ..)| u != url);
    let start = MASTER_STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    files.push((url.to_string(), data_dir.join("admin.credentials"), start));
}

fn note_key_file(url: &str, data_dir: &Path, extra: &[String]) {
    let given = flag_value(extra, "--cluster-key-file").map(PathBuf::from);
    let file = given.unwrap_or_else(|| data_dir.join("cluster.key"));
    let mut files = KEY_FILES.lock().unwrap_or_else(|p| p.into_inner());
    files.retain(|(u, _)| u != url);
    files.push((url.to_string(), file));
}

/// The value of `--name VALUE` or `--name=VALUE` among `args`.
fn flag_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix(name) {
        Some("") => args.get(i + 1).map(String::as_str),
        Some(rest) => rest.strip_prefix('='),
        None => None,
    })
}

/// A daemon's log kept in a file for the test to read: the daemon's log
/// filter (`DFS_LOG`) and the file its stderr goes to (appended to, so a
/// restart keeps the lines before it). Without one, a daemon logs
/// warnings (or the test's own `DFS_LOG`) to the test's stderr.
#[derive(Clone, Debug)]
pub struct LogCapture {
    pub filter: String,
    pub file: PathBuf,
}

impl LogCapture {
    /// What the daemon has logged so far.
    pub fn read(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

/// The directory of the dfs binaries: `DFS_BIN_DIR` when set (benchmarks
/// run an older build's daemons and mount with this harness), else the
/// one this test or tool was built into.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DFS_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(2) {
        if dir.join("dfs-master").exists() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!("dfs-master not found next to {}; run `cargo build --workspace --bins` first", exe.display())
}

/// A running `dfs-master`, killed (SIGKILL) when dropped.
pub struct MasterProcess {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    log: Option<LogCapture>,
    /// The network namespace it runs in (`crate::netns`), if not the test's.
    netns: Option<String>,
}

impl MasterProcess {
    /// Starts a master on a free loopback port with its data in `data_dir`.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_log(data_dir, extra_args, None)
    }

    /// Starts a master listening on `listen` (`HOST:PORT`): one whose
    /// address its peers must know before it starts (a Raft group's).
    /// In network namespace `netns` when given (`crate::netns`).
    pub fn start_at(data_dir: &Path, listen: &str, extra_args: &[&str], netns: Option<&str>) -> anyhow::Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn_master(data_dir, listen, &extra_args, None, netns)?;
        Ok(MasterProcess { child, url, data_dir: data_dir.to_path_buf(), extra_args, log: None, netns: netns.map(str::to_string) })
    }

    /// Like [`MasterProcess::start`], with its log captured by `log`.
    pub fn start_with_log(data_dir: &Path, extra_args: &[&str], log: Option<LogCapture>) -> anyhow::Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn_master(data_dir, "127.0.0.1:0", &extra_args, log.as_ref(), None)?;
        Ok(MasterProcess { child, url, data_dir: data_dir.to_path_buf(), extra_args, log, netns: None })
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns its status code.
    pub fn terminate(&mut self) -> anyhow::Result<Option<i32>> {
        signal(self.child.id(), libc::SIGTERM);
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        bail!("master did not stop within 10 s of SIGTERM")
    }

    /// SIGSTOP: the master freezes (answers nothing, orders nothing) until
    /// [`MasterProcess::sigcont`]; a test holds it still while it checks
    /// a fault it set up before the master may act on it.
    pub fn sigstop(&self) {
        crate::sys::stop(self.child.id());
    }

    /// The master's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGHUP: the master re-reads its TLS files at once.
    pub fn sighup(&self) {
        signal(self.child.id(), libc::SIGHUP);
    }

    /// SIGCONT: a stopped master goes on where it was.
    pub fn sigcont(&self) {
        signal(self.child.id(), libc::SIGCONT);
    }

    /// Starts the master again on the same data directory and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let listen = self.url.trim_start_matches("http://").to_string();
        let (child, url) = spawn_master(&self.data_dir, &listen, &self.extra_args, self.log.as_ref(), self.netns.as_deref())?;
        self.child = child;
        self.url = url;
        Ok(())
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn_master(data_dir: &Path, listen: &str, extra: &[String], log: Option<&LogCapture>, netns: Option<&str>) -> anyhow::Result<(Child, String)> {
    let mut args = vec!["--listen".to_string(), listen.to_string(), "--data-dir".to_string(), data_dir.display().to_string()];
    args.extend_from_slice(extra);
    let (child, url) = spawn("dfs-master", &args, "dfs-master listening on ", log, netns)?;
    // The key file exists by now: the master makes it before it listens.
    note_key_file(&url, data_dir, extra);
    note_credentials(&url, data_dir);
    Ok((child, url))
}

/// Starts `binary` with `args` and waits for the line announcing its URL.
/// `DFS_MASTER_BIN` names another master binary (benchmarks compare an
/// older build against this one with the same harness).
/// In network namespace `netns` when given: through `ip netns exec`, which
/// execs the daemon (the child's pid is the daemon's).
fn spawn(binary: &str, args: &[String], marker: &'static str, log: Option<&LogCapture>, netns: Option<&str>) -> anyhow::Result<(Child, String)> {
    let bin = match std::env::var_os("DFS_MASTER_BIN") {
        Some(path) if binary == "dfs-master" => PathBuf::from(path),
        _ => bin_dir()?.join(binary),
    };
    let (filter, stderr) = match log {
        Some(log) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&log.file).with_context(|| format!("opening {}", log.file.display()))?;
            (log.filter.clone(), Stdio::from(file))
        }
        // openraft logs every unreachable peer (a master a test killed) as an error.
        None => (std::env::var("DFS_LOG").unwrap_or_else(|_| "warn,openraft=off".into()), Stdio::inherit()),
    };
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut child =
        command.args(args).env("DFS_LOG", filter).stdout(Stdio::piped()).stderr(stderr).spawn().with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    match read_url(stdout, marker) {
        Ok(url) => Ok((child, url)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// A running `dfs-chunkserver`, killed (SIGKILL) when dropped.
pub struct ChunkserverProcess {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    master: String,
    extra_args: Vec<String>,
    log: Option<LogCapture>,
    /// The network namespace it runs in, and its listening address there.
    netns: Option<(String, String)>,
}

impl ChunkserverProcess {
    /// The chunkserver's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a chunkserver on a free loopback port, reporting to `master`.
    pub fn start(master: &str, data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_log(master, data_dir, extra_args, None)
    }

    /// Like [`ChunkserverProcess::start`], with its log captured by `log`.
    pub fn start_with_log(master: &str, data_dir: &Path, extra_args: &[&str], log: Option<LogCapture>) -> anyhow::Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn_chunkserver(master, data_dir, "127.0.0.1:0", &extra_args, log.as_ref(), None)?;
        Ok(ChunkserverProcess { child, url, data_dir: data_dir.to_path_buf(), master: master.into(), extra_args, log, netns: None })
    }

    /// Starts a chunkserver in network namespace `netns`, listening on `listen`.
    pub fn start_in(netns: &str, listen: &str, master: &str, data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn_chunkserver(master, data_dir, listen, &extra_args, None, Some(netns))?;
        let netns = Some((netns.to_string(), listen.to_string()));
        Ok(ChunkserverProcess { child, url, data_dir: data_dir.to_path_buf(), master: master.into(), extra_args, log: None, netns })
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the chunkserver freezes (a partition: no heartbeats, no
    /// answers, connections stay open) until [`ChunkserverProcess::sigcont`].
    pub fn sigstop(&self) {
        crate::sys::stop(self.child.id());
    }

    /// SIGCONT: a stopped chunkserver goes on where it was.
    pub fn sigcont(&self) {
        signal(self.child.id(), libc::SIGCONT);
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts it again on the same data directory; `same_port` keeps its
    /// address, otherwise it comes back on a new free port.
    pub fn restart(&mut self, same_port: bool) -> anyhow::Result<()> {
        self.kill9();
        let listen = if same_port { self.url.trim_start_matches("http://").to_string() } else { "127.0.0.1:0".into() };
        let (listen, netns) = match &self.netns {
            Some((ns, at)) => (at.clone(), Some(ns.as_str())),
            None => (listen, None),
        };
        let (child, url) = spawn_chunkserver(&self.master, &self.data_dir, &listen, &self.extra_args, self.log.as_ref(), netns)?;
        self.child = child;
        self.url = url;
        Ok(())
    }
}

impl Drop for ChunkserverProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn_chunkserver(
    master: &str,
    data_dir: &Path,
    listen: &str,
    extra: &[String],
    log: Option<&LogCapture>,
    netns: Option<&str>,
) -> anyhow::Result<(Child, String)> {
    let mut args =
        vec!["--listen".to_string(), listen.to_string(), "--master".to_string(), master.to_string(), "--data-dir".to_string(), data_dir.display().to_string()];
    // The master's key, unless the test gives one (or none is known).
    if flag_value(extra, "--cluster-key-file").is_none() {
        if let Some(file) = key_file_of(master) {
            args.extend(["--cluster-key-file".to_string(), file.display().to_string()]);
        }
    }
    args.extend_from_slice(extra);
    let (child, url) = spawn("dfs-chunkserver", &args, "dfs-chunkserver listening on ", log, netns)?;
    // Its key by its own URL too: harness checks read its replicas as a peer (signed).
    if let Some(file) = flag_value(&args, "--cluster-key-file") {
        let mut files = KEY_FILES.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|(u, _)| *u != url);
        files.push((url.clone(), PathBuf::from(file)));
    }
    Ok((child, url))
}

/// Waits (bounded) for the line announcing the daemon's URL; keeps draining
/// stdout afterwards so the daemon never blocks on a full pipe.
fn read_url(stdout: std::process::ChildStdout, marker: &'static str) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(url) = line.strip_prefix(marker) {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    rx.recv_timeout(START_TIMEOUT).map_err(|_| anyhow!("daemon did not announce its address within {START_TIMEOUT:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_flags_are_found_in_both_spellings() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(flag_value(&args(&["--x", "1", "--cluster-key-file", "/k"]), "--cluster-key-file"), Some("/k"));
        assert_eq!(flag_value(&args(&["--cluster-key-file=/k"]), "--cluster-key-file"), Some("/k"));
        assert_eq!(flag_value(&args(&["--cluster-key-files", "/k"]), "--cluster-key-file"), None);
        assert_eq!(flag_value(&args(&["--cluster-key-file"]), "--cluster-key-file"), None);
        note_key_file("http://m:1", Path::new("/d"), &[]);
        assert_eq!(key_file_of("http://m:1"), Some(PathBuf::from("/d/cluster.key")));
        note_key_file("http://m:1", Path::new("/d"), &args(&["--cluster-key-file", "/e/k"]));
        assert_eq!(key_file_of("http://m:1"), Some(PathBuf::from("/e/k")));
        assert_eq!(key_file_of("http://m:2"), None);
    }
}
