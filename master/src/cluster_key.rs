//! The master's cluster key file: found, or made when missing.
//!
//! Formatting a new data directory makes the cluster's key next to the
//! namespace (DATA_DIR/cluster.key unless `--cluster-key-file` names
//! another file); every chunkserver needs a copy. A data directory from
//! before keys existed gets one at its first start under this build, with a
//! warning: its chunkservers must be given the file before they can
//! register.

use std::path::{Path, PathBuf};

use dfs_proto::auth::{ClusterKey, KeyError, KeyRing, KeySource};

/// The key file's name in the data directory, unless configured.
pub const DEFAULT_FILE: &str = "cluster.key";

/// What opening the key file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// The file was there.
    Found,
    /// Made for a new data directory (the cluster's format).
    Created,
    /// Made for a data directory that already held a namespace.
    CreatedForExisting,
}

/// The key file of a master: `configured`, or the default in `data_dir`.
pub fn path(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    configured.map_or_else(|| data_dir.join(DEFAULT_FILE), Path::to_path_buf)
}

/// Opens the key file at `path`, making it with one new key if missing;
/// `had_namespace` says whether the data directory was formatted before.
/// Logs ids and paths, never secrets.
pub fn open(path: &Path, had_namespace: bool) -> Result<(KeySource, Opened), KeyError> {
    let opened = match path.exists() {
        true => Opened::Found,
        false => {
            KeyRing::single(ClusterKey::generate()).create_file(path)?;
            match had_namespace {
                true => Opened::CreatedForExisting,
                false => Opened::Created,
            }
        }
    };
    let source = KeySource::open(path)?;
    let ids = source.current().ids().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match opened {
        Opened::Found => tracing::info!(file = %path.display(), keys = ?ids, "cluster key loaded"),
        Opened::Created => {
            tracing::info!(file = %path.display(), "new cluster: cluster key created; give a copy (mode 0600) to every chunkserver (--cluster-key-file)")
        }
        Opened::CreatedForExisting => tracing::warn!(
            file = %path.display(),
            "this data directory had no cluster key: one was created; chunkservers cannot register until each is given a copy (--cluster-key-file)"
        ),
    }
    Ok((source, opened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_key_is_made_private_and_then_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(None, dir.path());
        assert_eq!(file, dir.path().join(DEFAULT_FILE));
        let (made, opened) = open(&file, false).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let (found, opened) = open(&file, true).unwrap();
        assert_eq!(opened, Opened::Found);
        assert_eq!(found.current(), made.current(), "a second start keeps the key");
        let other = dir.path().join("elsewhere.key");
        assert_eq!(path(Some(&other), dir.path()), other);
        assert_eq!(open(&other, true).unwrap().1, Opened::CreatedForExisting);
    }

    #[test]
    fn a_key_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DEFAULT_FILE);
        open(&file, false).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(open(&file, true), Err(KeyError::Exposed { .. })));
    }
}
