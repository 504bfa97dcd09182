//! The node id: a uuid created on first start and kept in the data
//! directory, so the master recognises this node whatever its address.

use std::io::Write;
use std::path::Path;

use dfs_proto::NodeId;

const FILE: &str = "node_id";

/// Reads the node id, creating it crash-safely (temp file, fsync, rename,
/// fsync of the directory) on first start.
pub fn load_or_create(dir: &Path) -> std::io::Result<NodeId> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            uuid::Uuid::parse_str(text.trim()).map(NodeId).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let id = uuid::Uuid::new_v4();
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{id}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(NodeId(id))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::load_or_create(dir.path()).unwrap();
        assert_eq!(super::load_or_create(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("node_id"), "garbage").unwrap();
        assert!(super::load_or_create(dir.path()).is_err());
    }
}
