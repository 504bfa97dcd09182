//! Helpers for tests that drive a mount with real tools and raw system
//! calls: a watchdog for test bodies, commands killed after a limit, errno
//! extraction, running as another user.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Cluster, Mount};

pub fn cluster(master_args: &[&str]) -> Cluster {
    let c = Cluster::start_with(3, master_args).expect("cluster");
    block_on(c.wait_live(3, Duration::from_secs(15))).expect("3 live chunkservers");
    c
}

pub fn mount(c: &Cluster, args: &[&str]) -> Mount {
    Mount::start(&c.master.url, args).unwrap_or_else(|e| panic!("mount: {e:#}"))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Runs `body` on its own thread, failing the test if it takes over
/// `limit`: the test's mounts are then dropped, which stops their daemons
/// and so unblocks any system call stuck in them.
pub fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body took over {limit:?} (hung in the mount?)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => std::panic::resume_unwind(thread.join().unwrap_err()),
    }
}

/// Polls `done` every 20 ms until it holds; panics after `limit`.
pub fn poll(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long one external command may run.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(240);

/// Runs `cmd` (killed after [`COMMAND_LIMIT`]) and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_LIMIT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            crate::sys::signal(pid, libc::SIGKILL);
            panic!("{what} took over {COMMAND_LIMIT:?}")
        }
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert!(out.status.success(), "{what} failed ({}):\nstdout: {}\nstderr: {}", out.status, head(&out.stdout), head(&out.stderr));
    text(&out.stdout)
}

/// The first 40 lines of some output, and how many more there are.
pub fn head(b: &[u8]) -> String {
    let t = text(b);
    let lines: Vec<&str> = t.lines().collect();
    match lines.len() {
        n if n <= 40 => t,
        n => format!("{}\n... and {} more lines", lines[..40].join("\n"), n - 40),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `git -C repo` with no system or global configuration and a fixed identity.
pub fn git_cmd(home: &Path, repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(["-c", "user.name=Dfs Test", "-c", "user.email=test@dfs.invalid", "-c", "init.defaultBranch=main"]);
    cmd.env("HOME", home).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null").env("LC_ALL", "C");
    cmd
}

/// Runs a command as `uid` (its own gid) with the supplementary `groups`.
pub fn as_uid(uid: u32, groups: &[u32], args: &[&str]) -> Output {
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    let mut cmd = Command::new("setpriv");
    cmd.args([format!("--reuid={uid}"), format!("--regid={uid}")]);
    match groups.is_empty() {
        true => cmd.arg("--clear-groups"),
        false => cmd.arg(format!("--groups={}", groups.join(","))),
    };
    run(cmd.args(args).env("LC_ALL", "C"))
}

/// Runs a command as uid/gid 65534 with no supplementary groups.
pub fn as_nobody(args: &[&str]) -> Output {
    run(Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups"]).args(args).env("LC_ALL", "C"))
}

/// The errno of a failed call; panics if it succeeded.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.raw_os_error().unwrap_or_else(|| panic!("not an OS error: {e}")),
    }
}

/// The sorted names in a directory.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

pub fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// The master's full namespace check finds nothing wrong (every entry and
/// inode in place, link counts matching names, counters matching).
#[track_caller]
pub fn assert_namespace_consistent(c: &Cluster) {
    let check = block_on(crate::Api::new(&c.master.url).get("/v1/admin/check")).expect("admin check");
    assert_eq!(check.body["ok"], serde_json::Value::Bool(true), "namespace check: {}", check.body);
}
