//! The cluster this node's replicas belong to: recorded in the data
//! directory from the first signed heartbeat answer, sent with every
//! heartbeat after, so a master of another cluster (or one started on an
//! empty directory, which formats a new cluster) is refused instead of
//! being obeyed, and never told to delete the old cluster's replicas.

use std::io::Write;
use std::path::Path;

const FILE: &str = "cluster_id";
/// Longest cluster id taken (ids are uuids in practice).
const MAX_CHARS: usize = 128;

/// Whether `id` can be a cluster id: 1 to 128 of `A-Za-z0-9._-`.
pub fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The recorded id; `None` before the first registration.
pub fn load(dir: &Path) -> std::io::Result<Option<String>> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if valid(text.trim()) => Ok(Some(text.trim().to_string())),
        Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: not a cluster id", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records `id` crash-safely: temp file, fsync, rename, fsync of the directory.
pub fn store(dir: &Path, id: &str) -> std::io::Result<()> {
    if !valid(id) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a cluster id"));
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{id}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_recorded_and_read_back_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        store(dir.path(), "c-3f2a.1").unwrap();
        assert_eq!(load(dir.path()).unwrap().as_deref(), Some("c-3f2a.1"));
        assert!(!dir.path().join("cluster_id.tmp").exists());
        for bad in ["", "a b", "../x", &"x".repeat(129)] {
            assert!(store(dir.path(), bad).is_err(), "{bad:?}");
        }
        std::fs::write(dir.path().join(FILE), "not/an id\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
