//! Reading /proc/self/mountinfo: is a dfs file system mounted here?

use std::path::Path;

/// Whether `mountpoint` (canonical) carries a FUSE mount. Its type is
/// `fuse` when mounted directly (as root) and `fuse.dfs` through fusermount3.
pub fn is_fuse_mount(mountpoint: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let Some(want) = mountpoint.to_str() else { return false };
    text.lines().any(|line| mounted_here(line, want))
}

/// One mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE OPTS`,
/// with spaces and the like escaped as octal (`\040`).
fn mounted_here(line: &str, want: &str) -> bool {
    let mut parts = line.split(" - ");
    let (Some(head), Some(tail)) = (parts.next(), parts.next()) else { return false };
    let point = head.split(' ').nth(4).map(unescape);
    let fstype = tail.split(' ').next();
    point.as_deref() == Some(want) && matches!(fstype, Some("fuse" | "fuse.dfs"))
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_dfs_mount_with_an_escaped_mount_point() {
        let line = "36 25 0:32 / /tmp/my\\040mnt rw,nosuid,nodev,relatime shared:1 - fuse.dfs dfs:http://127.0.0.1:9870 rw,user_id=0";
        assert!(mounted_here(line, "/tmp/my mnt"));
        assert!(!mounted_here(line, "/tmp/my"));
        let other = "36 25 0:32 / /tmp/my\\040mnt rw - fuse.sshfs x rw";
        assert!(!mounted_here(other, "/tmp/my mnt"));
    }
}
