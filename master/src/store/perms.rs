//! The POSIX permission rules, as pure functions of who asks and the
//! attributes involved: the store's reads and mutations call them for
//! every operation, whatever the client (HDFS checks on the NameNode too).

use dfs_proto::wire::namespace::{Attr, FileKind};
use dfs_proto::ErrorKind;

use super::error::{fail, NsError};

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;
pub const SET_UID: u32 = 0o4000;
pub const SET_GID: u32 = 0o2000;
pub const STICKY: u32 = 0o1000;

/// Who an operation acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    /// Primary group first.
    pub gids: Vec<u32>,
    /// Passes every permission check (uid 0, or the supergroup).
    pub superuser: bool,
}

impl Who {
    /// The master itself, and callers of a cluster without users.
    pub fn root() -> Who {
        Who { uid: 0, gids: vec![0], superuser: true }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gids.contains(&gid)
    }

    pub fn owns(&self, a: &Attr) -> bool {
        self.superuser || self.uid == a.uid
    }

    /// The group new inodes get when nothing else decides.
    fn primary_gid(&self) -> u32 {
        self.gids.first().copied().unwrap_or(self.uid)
    }
}

/// True when `who` has every bit of `want` (a mix of READ, WRITE, EXEC) on `a`.
/// The superuser has read and write always, and execute on a directory or a
/// file with some execute bit (as root on Linux).
pub fn may(who: &Who, a: &Attr, want: u32) -> bool {
    if who.superuser {
        return want & EXEC == 0 || a.kind == FileKind::Dir || a.mode & 0o111 != 0;
    }
    let bits = if who.uid == a.uid {
        a.mode >> 6
    } else if who.in_group(a.gid) {
        a.mode >> 3
    } else {
        a.mode
    } & 7;
    bits & want == want
}

fn what(want: u32) -> &'static str {
    match want {
        READ => "read",
        WRITE => "write",
        EXEC => "search",
        _ if want == WRITE | EXEC => "write and search",
        _ if want == READ | EXEC => "read and search",
        _ => "access",
    }
}

/// EACCES unless [`may`].
pub fn check(who: &Who, a: &Attr, want: u32, name: &str) -> Result<(), NsError> {
    if may(who, a, want) {
        return Ok(());
    }
    fail(ErrorKind::EACCES, format!("{name}: permission denied (no {} permission for uid {})", what(want), who.uid))
}

/// Reading or writing the data of a file opened already: as [`check`], but
/// its owner passes whatever the mode (NFS servers' "owner override"). A
/// process may write a file it made with mode 0444 through the descriptor
/// that made it (git writes its objects so); the mount's kernel checked
/// the permission at open, and dfs has no open call to check it at.
pub fn check_io(who: &Who, a: &Attr, want: u32, name: &str) -> Result<(), NsError> {
    if a.uid == who.uid && a.kind == FileKind::File {
        return Ok(());
    }
    check(who, a, want, name)
}

/// The sticky rule: in a sticky directory only the owner of an entry, the
/// owner of the directory or the superuser may remove or rename it (EPERM,
/// as Linux).
pub fn check_sticky(who: &Who, dir: &Attr, entry: &Attr, name: &str) -> Result<(), NsError> {
    if dir.mode & STICKY == 0 || who.owns(entry) || who.owns(dir) {
        return Ok(());
    }
    fail(ErrorKind::EPERM, format!("{name}: the directory is sticky and uid {} owns neither it nor the entry", who.uid))
}

/// Removing entry `entry` of `dir`: write and search on the directory, and the sticky rule.
pub fn check_remove(who: &Who, dir: &Attr, entry: &Attr, name: &str) -> Result<(), NsError> {
    check(who, dir, WRITE | EXEC, name)?;
    check_sticky(who, dir, entry, name)
}

/// A hard link to `a` (Linux with `fs.protected_hardlinks`, Debian's
/// default): its owner or the superuser may link anything; others only a
/// regular file they may read and write that is neither setuid nor
/// setgid-and-group-executable. Directories are never linked.
pub fn check_link(who: &Who, a: &Attr, name: &str) -> Result<(), NsError> {
    if a.kind == FileKind::Dir {
        return fail(ErrorKind::EPERM, format!("{name}: directories cannot be hard linked"));
    }
    if who.owns(a) {
        return Ok(());
    }
    let privileged = a.mode & SET_UID != 0 || a.mode & (SET_GID | 0o010) == SET_GID | 0o010;
    if a.kind != FileKind::File || privileged || !may(who, a, READ | WRITE) {
        return fail(ErrorKind::EPERM, format!("{name}: uid {} may not link a file it does not own (protected hard links)", who.uid));
    }
    Ok(())
}

/// Making a device node: the superuser only (CAP_MKNOD on Linux).
pub fn check_mknod(who: &Who, kind: FileKind, name: &str) -> Result<(), NsError> {
    if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) && !who.superuser {
        return fail(ErrorKind::EPERM, format!("{name}: only the superuser may make device nodes"));
    }
    Ok(())
}

/// The extended attribute namespaces dfs keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrSpace {
    /// `user.`: for anyone with read (get) or write (set) on the file.
    User,
    /// `trusted.`: the superuser's only; others neither see nor set them.
    Trusted,
    /// `security.`: anyone reads, only the superuser sets (as Linux
    /// without a security module, where CAP_SYS_ADMIN is needed).
    Security,
}

/// May `who` read (`write` false) or set/remove an attribute of `space`
/// on `a`? Linux's `xattr_permission`: `user.` only on files and
/// directories (a sticky directory's by its owner), `trusted.` hidden from
/// others (ENODATA on get, EPERM on set).
pub fn check_xattr(who: &Who, a: &Attr, space: XattrSpace, write: bool, name: &str) -> Result<(), NsError> {
    let denied = |kind, why: &str| fail(kind, format!("{name}: {why}"));
    match space {
        XattrSpace::Trusted if !who.superuser => {
            if write {
                denied(ErrorKind::EPERM, "only the superuser may set trusted.* attributes")
            } else {
                denied(ErrorKind::ENODATA, "no such attribute")
            }
        }
        XattrSpace::Trusted => Ok(()),
        XattrSpace::Security if write && !who.superuser => denied(ErrorKind::EPERM, "only the superuser may set security.* attributes"),
        XattrSpace::Security => Ok(()),
        XattrSpace::User => {
            if !matches!(a.kind, FileKind::File | FileKind::Dir) {
                return if write {
                    denied(ErrorKind::EPERM, "user.* attributes are for files and directories")
                } else {
                    denied(ErrorKind::ENODATA, "no such attribute")
                };
            }
            if write && a.kind == FileKind::Dir && a.mode & STICKY != 0 && !who.owns(a) {
                return denied(ErrorKind::EPERM, "only the owner may set attributes of a sticky directory");
            }
            check(who, a, if write { WRITE } else { READ }, name)
        }
    }
}

/// Whether `who` sees attributes of `space` in a listing.
pub fn lists_xattr(who: &Who, space: XattrSpace) -> bool {
    space != XattrSpace::Trusted || who.superuser
}

/// The mode after a write or truncate by `who` (Linux's
/// `file_remove_privs`): a caller without the superuser's privilege
/// clears setuid, and setgid when the group may execute.
pub fn mode_after_write(who: &Who, a: &Attr) -> u32 {
    if who.superuser || a.kind != FileKind::File {
        return a.mode;
    }
    let mut mode = a.mode & !SET_UID;
    if mode & 0o010 != 0 {
        mode &= !SET_GID;
    }
    mode
}

/// Owner, group and mode of a new inode made by `who` in `parent`, from
/// what the request asked: only the superuser gives it to someone else; a
/// group only a member (or the superuser) may choose; a setgid directory
/// passes its group on, and to new directories its setgid bit too; a
/// setgid bit on a file whose group the maker is not in is dropped.
pub fn new_owner(who: &Who, parent: &Attr, kind: FileKind, mode: u32, uid: Option<u32>, gid: Option<u32>) -> (u32, u32, u32) {
    let uid = match uid {
        Some(u) if who.superuser => u,
        _ => who.uid,
    };
    let mut mode = mode;
    let gid = if parent.mode & SET_GID != 0 {
        if kind == FileKind::Dir {
            mode |= SET_GID;
        }
        parent.gid
    } else {
        match gid {
            Some(g) if who.superuser || who.in_group(g) => g,
            _ => who.primary_gid(),
        }
    };
    if kind != FileKind::Dir && mode & SET_GID != 0 && !who.superuser && !who.in_group(gid) {
        mode &= !SET_GID;
    }
    (uid, gid, mode)
}

/// chmod: the owner or the superuser; a caller outside the file's group
/// loses the setgid bit (Linux clears it rather than refusing).
pub fn chmod(who: &Who, a: &Attr, mode: u32, name: &str) -> Result<u32, NsError> {
    if !who.owns(a) {
        return fail(ErrorKind::EPERM, format!("{name}: only the owner may change the mode"));
    }
    if mode & SET_GID != 0 && !who.superuser && !who.in_group(a.gid) {
        return Ok(mode & !SET_GID);
    }
    Ok(mode)
}

/// chown/chgrp: the uid only by the superuser (or to itself by the owner);
/// the group by the superuser, or by the owner to one of their groups.
/// Answers the mode after: a file changing hands loses setuid, and setgid
/// when it is group-executable (Linux, for root too).
pub fn chown(who: &Who, a: &Attr, uid: Option<u32>, gid: Option<u32>, name: &str) -> Result<u32, NsError> {
    if let Some(u) = uid {
        if u != a.uid && !who.superuser {
            return fail(ErrorKind::EPERM, format!("{name}: only the superuser may change the owner"));
        }
        if !who.owns(a) {
            return fail(ErrorKind::EPERM, format!("{name}: only the owner may change it"));
        }
    }
    if let Some(g) = gid {
        if !who.superuser && (who.uid != a.uid || (g != a.gid && !who.in_group(g))) {
            return fail(ErrorKind::EPERM, format!("{name}: only the owner may change the group, to one of their own"));
        }
    }
    let mut mode = a.mode;
    if a.kind != FileKind::Dir {
        mode &= !SET_UID;
        if mode & 0o010 != 0 {
            mode &= !SET_GID;
        }
    }
    Ok(mode)
}

/// utimes: any times by the owner or the superuser; "now" also by whoever
/// may write the file.
pub fn set_times(who: &Who, a: &Attr, to_now: bool, name: &str) -> Result<(), NsError> {
    if who.owns(a) {
        return Ok(());
    }
    if !to_now {
        return fail(ErrorKind::EPERM, format!("{name}: only the owner may set times other than now"));
    }
    check(who, a, WRITE, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::InodeId;

    fn attr(kind: FileKind, mode: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            inode: InodeId(5),
            kind,
            mode,
            uid,
            gid,
            size: 0,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            nlink: 1,
            replication: 3,
            chunk_size_bytes: 1 << 26,
            parent: InodeId(1),
            rdev: 0,
            has_xattrs: false,
        }
    }

    #[test]
    fn xattr_namespaces_follow_linux() {
        let (alice, bob) = (user(100, &[100]), user(200, &[200]));
        let f = attr(FileKind::File, 0o644, 100, 100);
        let kind = |r: Result<(), NsError>| r.err().map(|e| e.kind);
        assert_eq!(kind(check_xattr(&alice, &f, XattrSpace::User, true, "user.a")), None);
        assert_eq!(kind(check_xattr(&bob, &f, XattrSpace::User, false, "user.a")), None, "read permission reads");
        assert_eq!(kind(check_xattr(&bob, &f, XattrSpace::User, true, "user.a")), Some(ErrorKind::EACCES));
        assert_eq!(kind(check_xattr(&alice, &f, XattrSpace::Trusted, false, "trusted.a")), Some(ErrorKind::ENODATA));
        assert_eq!(kind(check_xattr(&alice, &f, XattrSpace::Trusted, true, "trusted.a")), Some(ErrorKind::EPERM));
        assert_eq!(kind(check_xattr(&Who::root(), &f, XattrSpace::Trusted, true, "trusted.a")), None);
        assert_eq!(kind(check_xattr(&bob, &f, XattrSpace::Security, false, "security.a")), None);
        assert_eq!(kind(check_xattr(&alice, &f, XattrSpace::Security, true, "security.a")), Some(ErrorKind::EPERM));
        let fifo = attr(FileKind::Fifo, 0o666, 100, 100);
        assert_eq!(kind(check_xattr(&alice, &fifo, XattrSpace::User, true, "user.a")), Some(ErrorKind::EPERM));
        let sticky = attr(FileKind::Dir, 0o1777, 0, 0);
        assert_eq!(kind(check_xattr(&alice, &sticky, XattrSpace::User, true, "user.a")), Some(ErrorKind::EPERM));
        assert!(!lists_xattr(&alice, XattrSpace::Trusted) && lists_xattr(&Who::root(), XattrSpace::Trusted));
    }

    #[test]
    fn writes_by_others_than_the_superuser_clear_setuid_and_group_executable_setgid() {
        let alice = user(100, &[100]);
        assert_eq!(mode_after_write(&alice, &attr(FileKind::File, 0o6755, 100, 100)), 0o755);
        assert_eq!(mode_after_write(&alice, &attr(FileKind::File, 0o2645, 100, 100)), 0o2645, "setgid without group execute is a lock mark");
        assert_eq!(mode_after_write(&Who::root(), &attr(FileKind::File, 0o6755, 100, 100)), 0o6755);
    }

    #[test]
    fn hard_links_follow_protected_hardlinks_and_device_nodes_need_the_superuser() {
        let (alice, bob) = (user(100, &[100]), user(200, &[200]));
        let shared = attr(FileKind::File, 0o666, 100, 100);
        assert!(check_link(&alice, &attr(FileKind::File, 0o400, 100, 100), "f").is_ok(), "the owner links anything");
        assert!(check_link(&bob, &shared, "f").is_ok(), "read and write suffice for a plain file");
        let denied = |a: &Attr| check_link(&bob, a, "f").is_err_and(|e| e.kind == ErrorKind::EPERM);
        assert!(denied(&attr(FileKind::File, 0o644, 100, 100)), "no write permission");
        assert!(denied(&attr(FileKind::File, 0o4666, 100, 100)), "setuid");
        assert!(denied(&attr(FileKind::File, 0o2676, 100, 100)), "setgid and group-executable");
        assert!(check_link(&bob, &attr(FileKind::File, 0o2666, 100, 100), "f").is_ok(), "setgid without group execute is a lock mark");
        assert!(denied(&attr(FileKind::Fifo, 0o666, 100, 100)), "only regular files for others");
        assert!(denied(&attr(FileKind::Dir, 0o777, 200, 200)), "never a directory");
        assert!(check_link(&Who::root(), &attr(FileKind::Dir, 0o777, 0, 0), "d").is_err());
        assert!(check_link(&Who::root(), &attr(FileKind::File, 0o4755, 100, 100), "f").is_ok());
        assert!(check_mknod(&alice, FileKind::Fifo, "p").is_ok() && check_mknod(&alice, FileKind::Socket, "s").is_ok());
        assert!(check_mknod(&alice, FileKind::CharDevice, "c").is_err_and(|e| e.kind == ErrorKind::EPERM));
        assert!(check_mknod(&Who::root(), FileKind::BlockDevice, "b").is_ok());
    }

    fn user(uid: u32, gids: &[u32]) -> Who {
        Who { uid, gids: gids.to_vec(), superuser: false }
    }

    #[test]
    fn owner_group_and_other_bits_each_decide_for_their_class_only() {
        let f = attr(FileKind::File, 0o640, 100, 50);
        let (owner, member, other) = (user(100, &[1]), user(200, &[7, 50]), user(300, &[7]));
        assert!(may(&owner, &f, READ | WRITE) && !may(&owner, &f, EXEC));
        assert!(may(&member, &f, READ) && !may(&member, &f, WRITE));
        assert!(!may(&other, &f, READ));
        // The owner's class decides even when the group's bits would allow more.
        let g = attr(FileKind::File, 0o070, 100, 50);
        assert!(!may(&user(100, &[50]), &g, READ));
        assert!(check(&other, &f, READ, "f").is_err_and(|e| e.kind == ErrorKind::EACCES));
    }

    #[test]
    fn the_superuser_reads_and_writes_anything_and_executes_what_someone_may() {
        let root = Who::root();
        assert!(may(&root, &attr(FileKind::File, 0o000, 1, 1), READ | WRITE));
        assert!(!may(&root, &attr(FileKind::File, 0o644, 1, 1), EXEC));
        assert!(may(&root, &attr(FileKind::File, 0o001, 1, 1), EXEC));
        assert!(may(&root, &attr(FileKind::Dir, 0o000, 1, 1), EXEC));
    }

    #[test]
    fn sticky_directories_let_only_owners_remove() {
        let dir = attr(FileKind::Dir, 0o1777, 0, 0);
        let theirs = attr(FileKind::File, 0o644, 100, 100);
        assert!(check_remove(&user(100, &[100]), &dir, &theirs, "x").is_ok());
        assert!(check_remove(&user(200, &[200]), &dir, &theirs, "x").is_err_and(|e| e.kind == ErrorKind::EPERM));
        assert!(check_remove(&Who::root(), &dir, &theirs, "x").is_ok());
        let owned_dir = attr(FileKind::Dir, 0o1777, 200, 0);
        assert!(check_remove(&user(200, &[200]), &owned_dir, &theirs, "x").is_ok());
        let plain = attr(FileKind::Dir, 0o777, 0, 0);
        assert!(check_remove(&user(200, &[200]), &plain, &theirs, "x").is_ok());
        assert!(check_remove(&user(200, &[200]), &attr(FileKind::Dir, 0o755, 0, 0), &theirs, "x").is_err_and(|e| e.kind == ErrorKind::EACCES));
    }

    #[test]
    fn new_inodes_belong_to_their_maker_and_setgid_directories_pass_their_group() {
        let alice = user(100, &[100, 20]);
        let plain = attr(FileKind::Dir, 0o777, 0, 0);
        assert_eq!(new_owner(&alice, &plain, FileKind::File, 0o644, Some(0), None), (100, 100, 0o644), "no giving files away");
        assert_eq!(new_owner(&alice, &plain, FileKind::File, 0o644, None, Some(20)), (100, 20, 0o644));
        assert_eq!(new_owner(&alice, &plain, FileKind::File, 0o644, None, Some(99)), (100, 100, 0o644), "not her group");
        let shared = attr(FileKind::Dir, 0o2775, 0, 77);
        assert_eq!(new_owner(&alice, &shared, FileKind::File, 0o644, None, None), (100, 77, 0o644));
        assert_eq!(new_owner(&alice, &shared, FileKind::Dir, 0o755, None, None), (100, 77, 0o2755));
        assert_eq!(new_owner(&alice, &shared, FileKind::File, 0o2755, None, None), (100, 77, 0o755), "setgid for a group she is not in");
        assert_eq!(new_owner(&Who::root(), &plain, FileKind::File, 0o644, Some(5), Some(6)), (5, 6, 0o644));
    }

    #[test]
    fn chmod_chown_and_utimes_follow_linux() {
        let alice = user(100, &[100, 20]);
        let f = attr(FileKind::File, 0o6755, 100, 100);
        assert_eq!(chmod(&alice, &f, 0o2700, "f").unwrap(), 0o2700);
        assert!(chmod(&user(200, &[200]), &f, 0o777, "f").is_err_and(|e| e.kind == ErrorKind::EPERM));
        let other_group = attr(FileKind::File, 0o755, 100, 55);
        assert_eq!(chmod(&alice, &other_group, 0o2755, "f").unwrap(), 0o755);
        assert!(chown(&alice, &f, Some(200), None, "f").is_err_and(|e| e.kind == ErrorKind::EPERM));
        assert_eq!(chown(&alice, &f, None, Some(20), "f").unwrap(), 0o755, "setuid and group-exec setgid go");
        assert!(chown(&alice, &f, None, Some(99), "f").is_err());
        assert!(chown(&user(200, &[100]), &f, None, Some(100), "f").is_err(), "only the owner");
        assert!(chown(&Who::root(), &f, Some(7), Some(7), "f").is_ok());
        assert!(set_times(&alice, &f, false, "f").is_ok());
        let writable = attr(FileKind::File, 0o666, 300, 300);
        assert!(set_times(&alice, &writable, true, "f").is_ok());
        assert!(set_times(&alice, &writable, false, "f").is_err_and(|e| e.kind == ErrorKind::EPERM));
        assert!(set_times(&alice, &attr(FileKind::File, 0o644, 300, 300), true, "f").is_err_and(|e| e.kind == ErrorKind::EACCES));
    }
}
