//! The cluster key file: the secret every master and chunkserver of one
//! cluster holds, and nobody else.
//!
//! Format (text, mode 0600): comment lines start with `#`; each key is a
//! line `key ID HEX`, where ID names the key (1 to 32 of `A-Za-z0-9._-`)
//! and HEX is its 32 secret bytes. The first key signs; every key listed
//! verifies. Rotation without downtime is three edits copied to every node:
//! add the new key second (all nodes accept it), move it first (nodes sign
//! with it), remove the old one. Daemons reload the file when it changes.

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rand::RngCore;

/// Bytes of a cluster key's secret.
pub const SECRET_BYTES: usize = 32;
const ID_MAX_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cluster key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cluster key file {path}, line {line}: {why}")]
    Syntax { path: PathBuf, line: usize, why: String },
    #[error("cluster key file {0} holds no key")]
    Empty(PathBuf),
    #[error("cluster key file {path} is readable by others (mode {mode:o}); run chmod 600 on it")]
    Exposed { path: PathBuf, mode: u32 },
}

/// One named secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    pub id: String,
    pub(crate) secret: [u8; SECRET_BYTES],
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: keys end up in logs through Debug.
        write!(f, "ClusterKey({})", self.id)
    }
}

impl ClusterKey {
    /// A new random key with a random id.
    pub fn generate() -> Self {
        let mut secret = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let id = format!("k{:08x}", rand::rng().next_u32());
        ClusterKey { id, secret }
    }

    /// A UUID that only holders of this key can compute, the same for each
    /// of them, and that says nothing of the secret (an HMAC of `purpose`):
    /// the masters of a Raft group name their cluster with it, each on its
    /// own, before they have talked.
    pub fn derived_uuid(&self, purpose: &str) -> uuid::Uuid {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// The key's line in a key file.
    pub fn to_line(&self) -> String {
        format!("key {} {}", self.id, hex(&self.secret))
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// The keys of a key file, in order: the first signs, all verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<ClusterKey>,
}

impl KeyRing {
    /// A ring of one key (tests, and formatting a new cluster).
    pub fn single(key: ClusterKey) -> Self {
        KeyRing { keys: vec![key] }
    }

    pub fn signing(&self) -> &ClusterKey {
        &self.keys[0]
    }

    pub fn get(&self, id: &str) -> Option<&ClusterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Parses a key file's text; `path` is for messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let mut keys: Vec<ClusterKey> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: &str| KeyError::Syntax { path: path.to_path_buf(), line: i + 1, why: why.to_string() };
            let key = parse_line(line).map_err(|why| err(&why))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(err("a key id is listed twice"));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty(path.to_path_buf()));
        }
        Ok(KeyRing { keys })
    }

    /// Reads a key file, refusing one that others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path: path.to_path_buf(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        KeyRing::parse(&text, path)
    }

    /// The file's text.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# dfs cluster key: keep it secret (mode 0600). The first key signs, every key verifies.\n\
             # Give this file to every master and chunkserver of the cluster (--cluster-key-file).\n",
        );
        for k in &self.keys {
            text.push_str(&k.to_line());
            text.push('\n');
        }
        text
    }

    /// Writes a new key file (never replacing one), mode 0600, synced
    /// with its directory: a cluster's key must survive a power cut.
    pub fn create_file(&self, path: &Path) -> Result<(), KeyError> {
        super::secret_file::create(path, self.to_file_text().as_bytes()).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })
    }
}

fn parse_line(line: &str) -> Result<ClusterKey, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [kw, id, secret] = words[..] else {
        return Err("expected `key ID HEX`".into());
    };
    if kw != "key" {
        return Err("expected `key ID HEX`".into());
    }
    let id_ok = !id.is_empty() && id.len() <= ID_MAX_CHARS && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !id_ok {
        return Err(format!("a key id is 1 to {ID_MAX_CHARS} of A-Z a-z 0-9 . _ -"));
    }
    let bytes = unhex(secret).ok_or("the secret is not hex")?;
    let secret: [u8; SECRET_BYTES] = bytes.try_into().map_err(|_| format!("the secret must be {SECRET_BYTES} bytes ({} hex digits)", 2 * SECRET_BYTES))?;
    Ok(ClusterKey { id: id.to_string(), secret })
}

/// A key file that daemons re-read when it changes, so keys rotate
/// without a restart.
#[derive(Debug)]
pub struct KeySource {
    path: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    /// (mtime ns, size, inode) of the file last loaded.
    seen: Mutex<(i128, u64, u64)>,
}

pub(crate) fn stamp(path: &Path) -> std::io::Result<(i128, u64, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128, m.size(), m.ino()))
}

impl KeySource {
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let seen = stamp(path).map_err(|source| KeyError::Io { path: path.to_path_buf(), source })?;
        let ring = KeyRing::load(path)?;
        Ok(KeySource { path: path.to_path_buf(), ring: RwLock::new(Arc::new(ring)), seen: Mutex::new(seen) })
    }

    /// Keys held in memory only (tests).
    pub fn fixed(ring: KeyRing) -> Self {
        KeySource { path: PathBuf::new(), ring: RwLock::new(Arc::new(ring)), seen: Mutex::new((0, 0, 0)) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn current(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Loads the file again if it changed: `Ok(Some(ids))` when it did. A
    /// broken new file keeps the old keys (the error says why).
    pub fn reload_if_changed(&self) -> Result<Option<Vec<String>>, KeyError> {
        if self.path.as_os_str().is_empty() {
            return Ok(None);
        }
        let now = stamp(&self.path).map_err(|source| KeyError::Io { path: self.path.clone(), source })?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return Ok(None);
        }
        let ring = KeyRing::load(&self.path)?;
        *seen = now;
        let ids = ring.ids().iter().map(|s| s.to_string()).collect();
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(Some(ids))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone would also take a sign ("+f").
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_ring_round_trips_through_its_file_text() {
        let ring = KeyRing::single(ClusterKey::generate());
        let parsed = KeyRing::parse(&ring.to_file_text(), Path::new("k")).unwrap();
        assert_eq!(parsed, ring);
        assert!(!format!("{ring:?}").contains(&hex(&ring.signing().secret)), "Debug must not show the secret");
    }

    #[test]
    fn the_first_key_signs_and_every_key_is_found() {
        let (a, b) = (ClusterKey::generate(), ClusterKey::generate());
        let text = format!("# c\n\n{}\n{}\n", b.to_line(), a.to_line());
        let ring = KeyRing::parse(&text, Path::new("k")).unwrap();
        assert_eq!(ring.signing().id, b.id);
        assert_eq!(ring.get(&a.id), Some(&a));
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        let good = ClusterKey::generate().to_line();
        for bad in ["", "# only comments\n", "key", "key a", "key a zz", "key a 00", "lock a 00", "key bad/id 00"] {
            assert!(KeyRing::parse(bad, Path::new("k")).is_err(), "{bad:?}");
        }
        let twice = format!("{good}\n{good}\n");
        let e = KeyRing::parse(&twice, Path::new("k")).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn files_readable_by_others_are_refused_and_changes_are_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        KeyRing::single(ClusterKey::generate()).create_file(&path).unwrap();
        let source = KeySource::open(&path).unwrap();
        assert_eq!(source.reload_if_changed().unwrap(), None);
        let (old, new) = (source.current().signing().clone(), ClusterKey::generate());
        std::fs::write(&path, format!("{}\n{}\n", new.to_line(), old.to_line())).unwrap();
        let ids = source.reload_if_changed().unwrap().expect("changed");
        assert_eq!(ids, vec![new.id.clone(), old.id.clone()]);
        assert_eq!(source.current().signing().id, new.id);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(KeyError::Exposed { .. })));
    }

    #[test]
    fn hex_is_digits_only() {
        assert_eq!(unhex("0aFf"), Some(vec![0x0a, 0xff]));
        for bad in ["+f", "-1", " a", "0", "zz"] {
            assert_eq!(unhex(bad), None, "{bad:?}");
        }
    }
}
