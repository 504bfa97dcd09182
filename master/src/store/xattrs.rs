//! Extended attributes: `inode ++ name → value` in their own column
//! family, and a flag in the inode (`Attr::has_xattrs`), so inodes without
//! any cost no read when they are written or go, and clients answer "none"
//! for them without asking. Names carry their namespace (`user.`, `trusted.`, `security.`);
//! who may read and set each is [`perms::check_xattr`]'s rule.

use dfs_proto::wire::namespace::{Attr, NodeRef};
use dfs_proto::wire::xattrs::*;
use dfs_proto::{ErrorKind, InodeId};

use super::db::Store;
use super::error::{fail, NsError};
use super::keys::*;
use super::perms::{self, Who, XattrSpace};
use super::txn::Txn;

/// The name `security.capability`, which a write, truncate or chown removes.
pub const CAPABILITY: &str = "security.capability";

/// Most bytes of values one inode keeps (names are bounded by
/// [`XATTR_LIST_MAX`]); past it a set is ENOSPC, as a full inode on ext4.
/// It also bounds what a set or remove reads in the writer.
pub const XATTR_VALUES_MAX: usize = 256 << 10;

/// The namespace of a name, or why it is refused: empty or over 255 bytes
/// is ERANGE (as setxattr(2)); `system.` (ACLs) and unknown prefixes are
/// not kept (ENOTSUP).
pub fn space_of(name: &str) -> Result<XattrSpace, NsError> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return fail(ErrorKind::ERANGE, format!("an attribute name is 1 to {XATTR_NAME_MAX} bytes, not {}", name.len()));
    }
    if name.contains('\0') {
        return fail(ErrorKind::EINVAL, "an attribute name has no NUL byte");
    }
    let spaces = [("user.", XattrSpace::User), ("trusted.", XattrSpace::Trusted), ("security.", XattrSpace::Security)];
    match spaces.iter().find(|(prefix, _)| name.len() > prefix.len() && name.starts_with(prefix)) {
        Some((_, space)) => Ok(*space),
        None => fail(ErrorKind::ENOTSUP, format!("{name:?}: dfs keeps user.*, trusted.* and security.* attributes only")),
    }
}

impl Store {
    /// `each(name, value)` of every attribute of an inode, in name order.
    fn scan_xattrs<T>(&self, inode: InodeId, each: impl Fn(String, &[u8]) -> T) -> Result<Vec<T>, NsError> {
        let prefix = inode_key(inode);
        let mut out = Vec::new();
        for item in self.scan(CF_XATTRS, &prefix, None)? {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let name = String::from_utf8(key[8..].to_vec()).map_err(|_| NsError::new(ErrorKind::EIO, "corrupt attribute name"))?;
            out.push(each(name, &value));
        }
        Ok(out)
    }

    /// The name and value length of every attribute of an inode.
    pub fn xattr_sizes(&self, inode: InodeId) -> Result<Vec<(String, usize)>, NsError> {
        self.scan_xattrs(inode, |name, value| (name, value.len()))
    }

    /// One attribute's value, whoever asks.
    pub fn xattr(&self, inode: InodeId, name: &str) -> Result<Option<Vec<u8>>, NsError> {
        Ok(self.read(CF_XATTRS, &xattr_key(inode, name))?.map(|v| v.to_vec()))
    }

    /// One attribute's value, as `who` may read it (ENODATA if missing).
    pub fn get_xattr(&self, node: &NodeRef, name: &str, who: &Who) -> Result<Vec<u8>, NsError> {
        let space = space_of(name)?;
        let record = self.resolve_node(node, who)?;
        perms::check_xattr(who, &record.attr, space, false, name)?;
        match self.xattr(record.attr.inode, name)? {
            Some(v) => Ok(v),
            None => fail(ErrorKind::ENODATA, format!("{name}: no such attribute")),
        }
    }

    /// The names `who` sees (listxattr needs no permission on the file,
    /// as on Linux; `trusted.` ones only for the superuser).
    pub fn list_xattrs(&self, node: &NodeRef, who: &Who) -> Result<Vec<String>, NsError> {
        let record = self.resolve_node(node, who)?;
        if !record.attr.has_xattrs {
            return Ok(Vec::new());
        }
        let names = self.xattr_names(record.attr.inode)?.into_iter();
        Ok(names.filter(|n| space_of(n).is_ok_and(|s| perms::lists_xattr(who, s))).collect())
    }

    /// The names of an inode's attributes, without copying their values.
    pub fn xattr_names(&self, inode: InodeId) -> Result<Vec<String>, NsError> {
        self.scan_xattrs(inode, |name, _| name)
    }
}

/// setxattr(2) as `who`: create/replace rules, Linux's size limits, and
/// the inode's ctime.
pub fn set_xattr(t: &mut Txn, r: &SetXattrRequest, who: &Who) -> Result<Attr, NsError> {
    let space = space_of(&r.name)?;
    if r.value.0.len() > XATTR_SIZE_MAX {
        return fail(ErrorKind::E2BIG, format!("an attribute value is at most {XATTR_SIZE_MAX} bytes"));
    }
    let id = t.store.resolve_node(&r.node, who)?.attr.inode;
    let mut record = t.inode(id)?;
    perms::check_xattr(who, &record.attr, space, true, &r.name)?;
    let existing = t.store.xattr_sizes(id)?;
    let old = existing.iter().find(|(n, _)| *n == r.name);
    match (r.mode, old) {
        (XattrSetMode::Create, Some(_)) => return fail(ErrorKind::EEXIST, format!("{}: the attribute exists", r.name)),
        (XattrSetMode::Replace, None) => return fail(ErrorKind::ENODATA, format!("{}: no such attribute", r.name)),
        _ => {}
    }
    let others = existing.iter().filter(|(n, _)| *n != r.name);
    let names: usize = others.clone().map(|(n, _)| n.len() + 1).sum::<usize>() + r.name.len() + 1;
    let values: usize = others.map(|(_, len)| len).sum::<usize>() + r.value.0.len();
    if names > XATTR_LIST_MAX || values > XATTR_VALUES_MAX {
        return fail(ErrorKind::ENOSPC, format!("inode {id} has no room for more attributes"));
    }
    t.put_xattr(id, &r.name, &r.value.0)?;
    record.attr.has_xattrs = true;
    record.attr.ctime_ns = t.now_ns;
    let attr = record.attr.clone();
    t.put_inode(record);
    Ok(attr)
}

/// removexattr(2) as `who` (ENODATA if missing).
pub fn remove_xattr(t: &mut Txn, r: &RemoveXattrRequest, who: &Who) -> Result<Attr, NsError> {
    let space = space_of(&r.name)?;
    let id = t.store.resolve_node(&r.node, who)?.attr.inode;
    let mut record = t.inode(id)?;
    perms::check_xattr(who, &record.attr, space, true, &r.name)?;
    let names = t.store.xattr_names(id)?;
    if !names.contains(&r.name) {
        return fail(ErrorKind::ENODATA, format!("{}: no such attribute", r.name));
    }
    t.delete_xattr(id, &r.name)?;
    record.attr.has_xattrs = names.len() > 1;
    record.attr.ctime_ns = t.now_ns;
    let attr = record.attr.clone();
    t.put_inode(record);
    Ok(attr)
}

/// A write, truncate or change of owner drops the file's capabilities, as
/// Linux does: they were granted to the old contents or owner. `attr` is
/// the inode's, which the caller stores; an inode with no attributes
/// costs no read.
pub fn drop_capability(t: &mut Txn, attr: &mut Attr) -> Result<(), NsError> {
    if !attr.has_xattrs || t.store.xattr(attr.inode, CAPABILITY)?.is_none() {
        return Ok(());
    }
    t.delete_xattr(attr.inode, CAPABILITY)?;
    attr.has_xattrs = t.store.xattr_names(attr.inode)?.len() > 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_a_known_namespace_and_a_length_in_range() {
        assert_eq!(space_of("user.mime").unwrap(), XattrSpace::User);
        assert_eq!(space_of("trusted.x").unwrap(), XattrSpace::Trusted);
        assert_eq!(space_of(CAPABILITY).unwrap(), XattrSpace::Security);
        let kind = |n: &str| space_of(n).unwrap_err().kind;
        assert_eq!(kind(""), ErrorKind::ERANGE);
        assert_eq!(kind(&format!("user.{}", "a".repeat(251))), ErrorKind::ERANGE);
        assert!(space_of(&format!("user.{}", "a".repeat(250))).is_ok());
        assert_eq!(kind("user."), ErrorKind::ENOTSUP, "a namespace with no name in it");
        assert_eq!(kind("system.posix_acl_access"), ErrorKind::ENOTSUP);
        assert_eq!(kind("mine.x"), ErrorKind::ENOTSUP);
    }
}
