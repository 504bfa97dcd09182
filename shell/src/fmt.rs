//! How the shell shows things: sizes, permission strings, times, owners,
//! and the parsing of modes and owners given on the command line.

use std::collections::HashMap;

use dfs_proto::wire::namespace::{Attr, FileKind};

/// `1.5 G` style with `human`, plain bytes otherwise (as `hdfs dfs -h`).
pub fn size(bytes: u64, human: bool) -> String {
    if !human {
        return bytes.to_string();
    }
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `drwxr-xr-x` from the kind and permission bits.
pub fn mode_string(kind: FileKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.type_letter());
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, who) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (mode >> who) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let (flag, on_x, on_no_x) = special[i];
        s.push(match (mode & flag != 0, bits & 1 != 0) {
            (true, true) => on_x,
            (true, false) => on_no_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `2026-11-21 10:04` in local time.
pub fn time(ns: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.format("%Y-%m-%d %H:%M").to_string(),
        chrono::LocalResult::None => ns.to_string(),
    }
}

/// Local user and group names (from /etc/passwd and /etc/group), so ids
/// show as names and names can be given for ids.
#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn load() -> Names {
        Names { users: id_file("/etc/passwd"), groups: id_file("/etc/group") }
    }

    pub fn user(&self, uid: u32) -> String {
        self.users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }

    pub fn group(&self, gid: u32) -> String {
        self.groups.get(&gid).cloned().unwrap_or_else(|| gid.to_string())
    }

    fn find(map: &HashMap<u32, String>, name: &str) -> Option<u32> {
        name.parse().ok().or_else(|| map.iter().find(|(_, n)| *n == name).map(|(id, _)| *id))
    }

    /// `OWNER`, `OWNER:GROUP` or `:GROUP` as ids; an unknown name is an error.
    pub fn parse_owner(&self, spec: &str) -> Result<(Option<u32>, Option<u32>), String> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let uid = match user {
            "" => None,
            u => Some(Self::find(&self.users, u).ok_or_else(|| format!("unknown user {u:?}"))?),
        };
        let gid = match group {
            None | Some("") => None,
            Some(g) => Some(Self::find(&self.groups, g).ok_or_else(|| format!("unknown group {g:?}"))?),
        };
        if uid.is_none() && gid.is_none() {
            return Err(format!("{spec:?} names no owner or group"));
        }
        Ok((uid, gid))
    }
}

/// `name:x:id:...` lines → id → name.
fn id_file(path: &str) -> HashMap<u32, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((id, name.to_string()))
        })
        .collect()
}

/// A chmod mode: octal (`755`), or symbolic clauses (`u+x,go-w,a=r`) applied
/// to the current mode (`X` adds execute only to directories or to files
/// that already have some execute bit).
pub fn apply_mode(spec: &str, attr: &Attr) -> Result<u32, String> {
    if !spec.is_empty() && spec.chars().all(|c| c.is_digit(8)) {
        return u32::from_str_radix(spec, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("bad mode {spec:?}"));
    }
    let bad = || format!("bad mode {spec:?}: use octal (755) or [ugoa][+-=][rwxXst] clauses");
    let mut mode = attr.mode;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let (who, rest) = clause.split_at(op_at);
        let (op, perms) = rest.split_at(1);
        let mut mask = 0;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return Err(bad()),
            };
        }
        if who.is_empty() {
            mask = 0o7777;
        }
        let mut bits = 0;
        for c in perms.chars() {
            bits |= match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                'X' if attr.kind == FileKind::Dir || attr.mode & 0o111 != 0 => 0o111,
                'X' => 0,
                's' => 0o6000,
                't' => 0o1000,
                _ => return Err(bad()),
            };
        }
        let bits = bits & mask;
        mode = match op {
            "+" => mode | bits,
            "-" => mode & !bits,
            _ => (mode & !(mask & 0o777)) | bits,
        };
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::InodeId;

    fn attr(kind: FileKind, mode: u32) -> Attr {
        Attr {
            inode: InodeId(2),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            nlink: 1,
            replication: 3,
            chunk_size_bytes: 1,
            parent: InodeId(1),
            rdev: 0,
            has_xattrs: false,
        }
    }

    #[test]
    fn sizes_and_modes_read_like_hdfs() {
        assert_eq!(size(1000, true), "1000");
        assert_eq!(size(1536, true), "1.5 K");
        assert_eq!(size(3 << 30, true), "3.0 G");
        assert_eq!(size(3 << 30, false), "3221225472");
        assert_eq!(mode_string(FileKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileKind::File, 0o4644), "-rwSr--r--");
        assert_eq!(mode_string(FileKind::Dir, 0o1777), "drwxrwxrwt");
    }

    #[test]
    fn chmod_takes_octal_and_symbolic_modes() {
        let f = attr(FileKind::File, 0o644);
        assert_eq!(apply_mode("755", &f), Ok(0o755));
        assert_eq!(apply_mode("u+x", &f), Ok(0o744));
        assert_eq!(apply_mode("go-r", &f), Ok(0o600));
        assert_eq!(apply_mode("a=r", &f), Ok(0o444));
        assert_eq!(apply_mode("u+x,g+w", &f), Ok(0o764));
        assert_eq!(apply_mode("+X", &f), Ok(0o644));
        assert_eq!(apply_mode("+X", &attr(FileKind::Dir, 0o644)), Ok(0o755));
        assert!(apply_mode("99", &f).is_err());
        assert!(apply_mode("u*x", &f).is_err());
        assert!(apply_mode("77777", &f).is_err());
    }

    #[test]
    fn owners_take_ids_or_names() {
        let names = Names { users: HashMap::from([(7, "ann".to_string())]), groups: HashMap::from([(9, "ops".to_string())]) };
        assert_eq!(names.parse_owner("ann:ops"), Ok((Some(7), Some(9))));
        assert_eq!(names.parse_owner("12"), Ok((Some(12), None)));
        assert_eq!(names.parse_owner(":ops"), Ok((None, Some(9))));
        assert!(names.parse_owner("bob").is_err());
        assert!(names.parse_owner(":").is_err());
        assert_eq!(names.user(7), "ann");
        assert_eq!(names.group(3), "3");
    }
}
