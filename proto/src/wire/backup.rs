//! A metadata backup (`dfs admin backup DIR`, `dfs-master restore DIR`):
//! the files of a RocksDB checkpoint of the master's namespace, taken at
//! one point of its history, and a manifest naming each with its length
//! and CRC32.
//!
//! On the wire (`GET /v1/admin/backup`) it is a tar stream of plain files:
//! the checkpoint's files, then [`MANIFEST`] last, so that a stream cut
//! short is one without a manifest, never taken for a whole backup. On
//! disk it is a directory of the same files.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The manifest's file name, in the stream and in the directory.
pub const MANIFEST: &str = "BACKUP.json";
/// The manifest format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// Longest file name a backup may hold (ext4's limit).
const NAME_MAX: usize = 255;

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The cluster the namespace is of: a restored master serves the same
    /// chunkservers.
    pub cluster_id: String,
    /// The namespace's record format (the master's `FORMAT_VERSION`).
    pub metadata_format: u32,
    /// When the checkpoint was taken (Unix milliseconds).
    pub taken_at_ms: u64,
    pub files: Vec<BackupFile>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// Whether `name` may be a backup's file: a plain name in one directory
/// (no separator, not `.` or `..`), so extracting it can write nowhere
/// else.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= NAME_MAX && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl Manifest {
    /// The first thing wrong with the manifest itself: a format this build
    /// does not read, a name that is not plain, a name listed twice.
    pub fn check(&self) -> Result<(), String> {
        if self.format != BACKUP_FORMAT {
            return Err(format!("backup format {}, this build reads {BACKUP_FORMAT}", self.format));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            if !plain_name(&f.name) || f.name == MANIFEST {
                return Err(format!("the manifest names a file {:?} that a backup cannot hold", f.name));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("the manifest names {} twice", f.name));
            }
        }
        Ok(())
    }

    /// Checks every file the manifest names in `dir` (length and CRC32),
    /// and that `dir` holds no other file: the first difference.
    pub fn verify_dir(&self, dir: &Path) -> Result<(), String> {
        self.check()?;
        for f in &self.files {
            let path = dir.join(&f.name);
            let (bytes, crc32) = checksum(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if (bytes, crc32) != (f.bytes, f.crc32) {
                return Err(format!("{}: {bytes} bytes with CRC32 {crc32:08x}, the manifest says {} bytes with {:08x}", path.display(), f.bytes, f.crc32));
            }
        }
        let listed = |name: &str| name == MANIFEST || self.files.iter().any(|f| f.name == name);
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let name = entry.map_err(|e| format!("{}: {e}", dir.display()))?.file_name();
            if !listed(&name.to_string_lossy()) {
                return Err(format!("{} holds {} that the manifest does not name", dir.display(), name.to_string_lossy()));
            }
        }
        Ok(())
    }
}

/// A file's length and CRC32.
pub fn checksum(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let (mut hasher, mut bytes, mut buf) = (crc32fast::Hasher::new(), 0u64, vec![0u8; 1 << 16]);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((bytes, hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
}

/// Writes the files of `manifest`, read from `dir`, then the manifest
/// itself, as a tar stream into `out`.
pub fn write_tar(dir: &Path, manifest: &Manifest, out: impl Write) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    for f in &manifest.files {
        let mut file = File::open(dir.join(&f.name))?;
        tar.append_file(&f.name, &mut file)?;
    }
    let text = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(manifest.taken_at_ms / 1000);
    tar.append_data(&mut header, MANIFEST, text.as_slice())?;
    tar.into_inner()?.flush()
}

/// Writes the tar stream's files into `dir` (each made new, mode 0600 and
/// synced), then checks them against the manifest it ends with. Anything
/// but plain files with plain names, or a file after the manifest, is
/// refused.
pub fn unpack_tar(stream: impl Read, dir: &Path) -> std::io::Result<Manifest> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut manifest = None;
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if !plain_name(&name) || !entry.header().entry_type().is_file() {
            return Err(invalid(format!("the stream holds {name:?}, not a plain file")));
        }
        if manifest.is_some() {
            return Err(invalid(format!("{name} after the manifest")));
        }
        let path = dir.join(&name);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        std::io::copy(&mut entry, &mut file)?;
        file.sync_all()?;
        if name == MANIFEST {
            let text = std::fs::read(&path)?;
            manifest = Some(serde_json::from_slice::<Manifest>(&text).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?);
        }
    }
    let manifest = manifest.ok_or_else(|| invalid("the stream ended before the manifest".into()))?;
    manifest.verify_dir(dir).map_err(invalid)?;
    File::open(dir)?.sync_all()?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, &[u8])]) -> Manifest {
        let files = files.iter().map(|(n, b)| BackupFile { name: n.to_string(), bytes: b.len() as u64, crc32: crc32fast::hash(b) }).collect();
        Manifest { format: BACKUP_FORMAT, cluster_id: "c".into(), metadata_format: 1, taken_at_ms: 0, files }
    }

    #[test]
    fn names_outside_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "/etc", "a\\b", MANIFEST] {
            assert!(manifest(&[(bad, b"x")]).check().is_err(), "{bad:?}");
        }
        assert!(manifest(&[("000012.sst", b"x"), ("CURRENT", b"y")]).check().is_ok());
        assert!(manifest(&[("a", b"x"), ("a", b"x")]).check().is_err());
        let mut m = manifest(&[]);
        m.format = 2;
        assert!(m.check().is_err());
    }

    #[test]
    fn a_directory_is_checked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        std::fs::write(dir.path().join(MANIFEST), b"{}").unwrap();
        let m = manifest(&[("a", b"hello")]);
        assert_eq!(m.verify_dir(dir.path()), Ok(()));
        // A flipped byte, a missing file, a file nobody listed.
        std::fs::write(dir.path().join("a"), b"hellp").unwrap();
        assert!(m.verify_dir(dir.path()).unwrap_err().contains("CRC32"));
        std::fs::remove_file(dir.path().join("a")).unwrap();
        assert!(m.verify_dir(dir.path()).is_err());
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        assert!(m.verify_dir(dir.path()).unwrap_err().contains("does not name"));
    }
}
