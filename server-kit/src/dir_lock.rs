//! One process per data directory: a daemon takes an exclusive `flock` on
//! `DIR/lock` before it opens anything else there and holds it for its
//! whole life. Two masters (or chunkservers) on one directory would each
//! believe they own the files: interleaved metadata logs, two stores
//! writing one replica. The kernel drops the lock when the process ends,
//! however it ends (kill -9 included), so there is no stale lock to clean.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name inside a data directory.
pub const LOCK_FILE: &str = "lock";

/// Why a data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// Another process holds the lock (its pid, if it wrote one).
    #[error("data directory {dir} is in use by another process{} (it holds {lock}); refusing to start a second one", holder_text(*.holder))]
    Held { dir: PathBuf, lock: PathBuf, holder: Option<u32> },
    #[error("cannot lock data directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

fn holder_text(holder: Option<u32>) -> String {
    holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}

/// An exclusive lock on a data directory, released when dropped (or when
/// the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` if needed and locks it, without waiting: a directory
/// already locked is `DirLockError::Held`. The lock file then holds this
/// process's pid, for the message a second process prints.
pub fn lock_dir(dir: &Path) -> Result<DirLock, DirLockError> {
    let io = |source| DirLockError::Io { dir: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(LOCK_FILE);
    // Not truncated at open: the holder's pid stays readable to a loser.
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let holder = read_pid(&mut file);
            return Err(DirLockError::Held { dir: dir.to_path_buf(), lock: path, holder });
        }
        Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
    };
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())
    };
    // The pid only improves a message; failing to write it is no reason to stop.
    write_pid(&mut locked).ok();
    Ok(DirLock { _file: locked, path })
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));
        // flock locks belong to the open file, so a second open in the same
        // process conflicts just as another process would.
        match lock_dir(dir.path()) {
            Err(DirLockError::Held { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        lock_dir(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let _lock = lock_dir(&nested).unwrap();
        assert!(nested.join(LOCK_FILE).exists());
    }
}
