//! Where a store's files live, what their names mean, and the crash-safe
//! file operations (replace by rename, move aside).
//!
//! ```text
//! <dir>/chunks/<handle as 16 hex digits>.data      chunk bytes, whole 4 KiB pages
//! <dir>/chunks/<handle as 16 hex digits>.meta      see meta.rs
//! <dir>/chunks/<handle as 16 hex digits>.meta.tmp  a metadata file being replaced
//! <dir>/quarantine/<original name>.<uuid>          moved aside, never served
//! ```

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use dfs_proto::ChunkHandle;

use super::error::ChunkError;

const DATA_SUFFIX: &str = ".data";
const META_SUFFIX: &str = ".meta";
const TEMP_SUFFIX: &str = ".tmp";

/// The two directories of a store.
pub(crate) struct DiskLayout {
    pub chunks: PathBuf,
    pub quarantine: PathBuf,
}

/// What a file name in `chunks/` stands for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileRole {
    Data(ChunkHandle),
    Meta(ChunkHandle),
    /// A temp file or anything else: never part of a replica.
    Stray,
}

pub(crate) fn file_role(name: &str) -> FileRole {
    let parse = |stem: &str| {
        let lower_hex = stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        lower_hex.then(|| u64::from_str_radix(stem, 16).ok()).flatten().map(ChunkHandle)
    };
    if let Some(h) = name.strip_suffix(DATA_SUFFIX).and_then(parse) {
        return FileRole::Data(h);
    }
    if let Some(h) = name.strip_suffix(META_SUFFIX).and_then(parse) {
        return FileRole::Meta(h);
    }
    FileRole::Stray
}

pub(crate) fn data_name(handle: ChunkHandle) -> String {
    format!("{:016x}{DATA_SUFFIX}", handle.0)
}

pub(crate) fn meta_name(handle: ChunkHandle) -> String {
    format!("{:016x}{META_SUFFIX}", handle.0)
}

impl DiskLayout {
    /// Creates `dir/chunks` and `dir/quarantine` if missing.
    pub fn create(dir: &Path) -> Result<DiskLayout, ChunkError> {
        let layout = DiskLayout { chunks: dir.join("chunks"), quarantine: dir.join("quarantine") };
        for d in [&layout.chunks, &layout.quarantine] {
            fs::create_dir_all(d).map_err(|e| ChunkError::io("create directory", d, e))?;
        }
        Ok(layout)
    }

    pub fn data_path(&self, handle: ChunkHandle) -> PathBuf {
        self.chunks.join(data_name(handle))
    }

    pub fn meta_path(&self, handle: ChunkHandle) -> PathBuf {
        self.chunks.join(meta_name(handle))
    }

    /// Replaces a replica's metadata file: write a temp file, fsync it
    /// (through the descriptor that wrote it), rename it over the old one,
    /// fsync the directory. After a crash the file is either wholly old or
    /// wholly new. A failed fsync is `SyncFailed` (after the rename the
    /// file on disk may be either): the caller sets the replica aside.
    pub fn replace_meta(&self, handle: ChunkHandle, bytes: &[u8]) -> Result<(), ChunkError> {
        let path = self.meta_path(handle);
        let temp = self.chunks.join(format!("{}{TEMP_SUFFIX}", meta_name(handle)));
        let sync_failed = |source| ChunkError::SyncFailed { handle, source };
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(|e| ChunkError::io("create", &temp, e))?;
        f.write_all(bytes).map_err(|e| ChunkError::io("write", &temp, e))?;
        f.sync_all().map_err(|e| sync_failed(io_context("fsync", &temp, e)))?;
        fs::rename(&temp, &path).map_err(|e| ChunkError::io("rename into place", &path, e))?;
        File::open(&self.chunks).and_then(|d| d.sync_all()).map_err(|e| sync_failed(io_context("fsync directory", &self.chunks, e)))
    }

    /// Moves files of `chunks/` (those that exist) to `quarantine/` under a
    /// common unique suffix, durably; returns one line describing the move.
    pub fn quarantine(&self, names: &[OsString], reason: &str) -> Result<String, ChunkError> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut moved = Vec::new();
        for name in names {
            let from = self.chunks.join(name);
            let mut to_name = name.clone();
            to_name.push(format!(".{suffix}"));
            let to = self.quarantine.join(to_name);
            match fs::rename(&from, &to) {
                Ok(()) => moved.push(name.to_string_lossy()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::io("move to quarantine", &from, e)),
            }
        }
        sync_dir(&self.quarantine)?;
        sync_dir(&self.chunks)?;
        Ok(format!("{} -> quarantine/*.{suffix}: {reason}", moved.join(", ")))
    }
}

fn io_context(action: &str, path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{action} {}: {e}", path.display()))
}

/// fsync a directory, so that creations, renames and removals in it persist.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ChunkError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ChunkError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strays_are_recognised() {
        let h = ChunkHandle(0xabc);
        assert_eq!(data_name(h), "0000000000000abc.data");
        assert_eq!(file_role(&data_name(h)), FileRole::Data(h));
        assert_eq!(file_role(&meta_name(h)), FileRole::Meta(h));
        for stray in ["0000000000000abc.meta.tmp", "0000000000000ABC.meta", "abc.meta", "x", "+000000000000abc.data"] {
            assert_eq!(file_role(stray), FileRole::Stray, "{stray}");
        }
    }
}
