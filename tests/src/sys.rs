//! Safe wrappers of the few system calls the tests make on their own
//! (each unsafe call once, with why it holds), shared by the test files.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::IntoRawFd;
use std::path::Path;

/// Whether this runs as root (the loop-device and tmpfs tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// statvfs(2) of the file system holding `path`.
pub fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs is plain old data, for which all zero bytes is a value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs, both
    // live for the call.
    match unsafe { libc::statvfs(c.as_ptr(), &mut st) } {
        0 => Ok(st),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Space on the file system holding `path`, in bytes.
pub struct Space {
    /// Free blocks, with those ext4 keeps for root.
    pub free_bytes: u64,
    /// What an unprivileged writer can still take.
    pub available_bytes: u64,
}

/// [`Space`] on the file system holding `path`.
pub fn space(path: &Path) -> io::Result<Space> {
    let st = statvfs(path)?;
    // The field types differ between platforms (u32 on some 32-bit ones).
    let (frsize, bfree, bavail) = (st.f_frsize as u64, st.f_bfree as u64, st.f_bavail as u64);
    Ok(Space { free_bytes: bfree * frsize, available_bytes: bavail * frsize })
}

/// Closes `file` and returns close(2)'s error, which dropping a `File`
/// ignores: on a FUSE mount the close is a write's acknowledgement.
pub fn close(file: File) -> io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up ownership of `fd`, so it is closed once,
    // here, and used by nothing after.
    match unsafe { libc::close(fd) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// sync(2): writes every dirty page back.
pub fn sync() {
    // SAFETY: sync(2) takes nothing and cannot fail.
    unsafe { libc::sync() }
}

/// Sends `sig` to process `pid` (ignoring a process that is gone).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; the worst a wrong pid can do is
    // signal another process, and the callers pass their own children.
    unsafe { libc::kill(pid as i32, sig) };
}

/// SIGSTOP, returning once every thread of the process is stopped (at most
/// 2 s): kill(2) returns before that, and a thread running on another core
/// may still serve a request meanwhile (seen on a loaded 2-core machine).
pub fn stop(pid: u32) {
    signal(pid, libc::SIGSTOP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !all_threads_stopped(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether every thread of `pid` is stopped (`T` in its `/proc` stat);
/// false when that cannot be read.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['T', 't']))
    })
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat`; zero when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from 3 on.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15, here 11 and 12.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// CPU time (user + system) of this process and of its children it has
/// waited for.
pub fn own_and_children_cpu_seconds() -> f64 {
    let usage = |who| {
        // SAFETY: rusage is plain old data, for which all zero bytes is a value.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a writable rusage, which getrusage fills.
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}
