//! Users and groups in the store (column family `users`): what the master
//! knows of each user (never a secret: only the stored key of its
//! credential), and group names with their gids. Changes go through the
//! writer like every mutation, so they are durable before they are answered.

use dfs_proto::auth::keys::unhex;
use dfs_proto::auth::user::check_name;
use dfs_proto::wire::users::{AddUserRequest, UserInfo};
use dfs_proto::ErrorKind;
use serde::{Deserialize, Serialize};

use super::db::Store;
use super::error::{fail, NsError};
use super::keys::CF_USERS;
use super::txn::Txn;

/// The first uid and gid given out when none is asked for.
pub const FIRST_ID: u32 = 10_000;
/// The uid a squashed root becomes.
pub const NOBODY: u32 = 65_534;
const USER_PREFIX: &[u8] = b"u/";
const GROUP_PREFIX: &[u8] = b"g/";
const USER_FORMAT: u32 = 1;

/// A user's record (JSON with a format number: rare, small, and readable
/// in a dump).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub format: u32,
    pub name: String,
    pub uid: u32,
    /// Primary first.
    pub gids: Vec<u32>,
    pub admin: bool,
    pub proxy: bool,
    pub squash_root: bool,
    /// SHA-256 of the credential's client key.
    pub stored_key: [u8; 32],
    /// Grows with each rotation: sessions of an older generation end.
    pub generation: u64,
}

fn user_key(name: &str) -> Vec<u8> {
    [USER_PREFIX, name.as_bytes()].concat()
}

fn group_key(name: &str) -> Vec<u8> {
    [GROUP_PREFIX, name.as_bytes()].concat()
}

fn corrupt(what: &str) -> NsError {
    NsError::new(ErrorKind::EIO, format!("corrupt {what} record in the metadata store"))
}

/// A stored key from its hex text.
pub fn parse_stored_key(hex: &str) -> Result<[u8; 32], NsError> {
    unhex(hex).and_then(|b| b.try_into().ok()).ok_or_else(|| NsError::new(ErrorKind::EINVAL, "stored_key must be 64 hex digits"))
}

/// Group names with their gids.
pub type Groups = Vec<(String, u32)>;

impl Store {
    /// Every user and every group (name, gid), each in name order.
    pub fn users_and_groups(&self) -> Result<(Vec<UserRecord>, Groups), NsError> {
        let (mut users, mut groups) = (Vec::new(), Vec::new());
        for item in self.scan(CF_USERS, b"", None)? {
            let (k, v) = item?;
            if let Some(name) = k.strip_prefix(USER_PREFIX) {
                let record: UserRecord = serde_json::from_slice(&v).map_err(|_| corrupt("user"))?;
                if record.format != USER_FORMAT || record.name.as_bytes() != name {
                    return Err(corrupt("user"));
                }
                users.push(record);
            } else if let Some(name) = k.strip_prefix(GROUP_PREFIX) {
                let gid = <[u8; 4]>::try_from(&v[..]).map_err(|_| corrupt("group"))?;
                groups.push((String::from_utf8(name.to_vec()).map_err(|_| corrupt("group"))?, u32::from_be_bytes(gid)));
            }
        }
        Ok((users, groups))
    }
}

/// The gid of each group named (made when missing), in order.
fn gids_of(t: &mut Txn, names: &[String], groups: &mut Groups) -> Result<Vec<u32>, NsError> {
    let mut gids = Vec::new();
    for name in names {
        check_name(name).map_err(|e| NsError::new(ErrorKind::EINVAL, e))?;
        let gid = match groups.iter().find(|(n, _)| n == name) {
            Some((_, gid)) => *gid,
            None => {
                let gid =
                    (FIRST_ID..NOBODY).find(|g| groups.iter().all(|(_, taken)| taken != g)).ok_or_else(|| NsError::new(ErrorKind::ENOSPC, "no free gid"))?;
                t.put_user_value(&group_key(name), &gid.to_be_bytes())?;
                groups.push((name.clone(), gid));
                gid
            }
        };
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
}

/// Adds a user (its name and uid unused), making the groups it names.
/// Names the master uses for callers who are no user.
const RESERVED: [&str; 2] = ["nobody", "none"];

pub fn add_user(t: &mut Txn, r: &AddUserRequest) -> Result<UserRecord, NsError> {
    check_name(&r.name).map_err(|e| NsError::new(ErrorKind::EINVAL, e))?;
    if RESERVED.contains(&r.name.as_str()) {
        return fail(ErrorKind::EINVAL, format!("{} is a reserved name", r.name));
    }
    let stored_key = parse_stored_key(&r.stored_key)?;
    let (users, mut groups) = t.store.users_and_groups()?;
    if users.iter().any(|u| u.name == r.name) {
        return fail(ErrorKind::EEXIST, format!("user {} exists", r.name));
    }
    let uid = match r.uid {
        Some(uid) if users.iter().any(|u| u.uid == uid) => return fail(ErrorKind::EEXIST, format!("uid {uid} belongs to another user")),
        Some(uid) => uid,
        None => (FIRST_ID..NOBODY).find(|id| users.iter().all(|u| u.uid != *id)).ok_or_else(|| NsError::new(ErrorKind::ENOSPC, "no free uid"))?,
    };
    let names = if r.groups.is_empty() { vec![r.name.clone()] } else { r.groups.clone() };
    if names.len() > dfs_proto::auth::user::GROUPS_MAX {
        return fail(ErrorKind::EINVAL, "too many groups");
    }
    let gids = gids_of(t, &names, &mut groups)?;
    let record = UserRecord {
        format: USER_FORMAT,
        name: r.name.clone(),
        uid,
        gids,
        admin: r.admin,
        proxy: r.proxy,
        squash_root: r.squash_root,
        stored_key,
        // Not 1: a user made again under an old name must not revive the
        // grants of the one removed (they name user and generation).
        generation: t.now_ns.max(1) as u64,
    };
    put_user(t, &record)?;
    Ok(record)
}

/// A new credential for a user: its sessions end.
pub fn rotate_user(t: &mut Txn, name: &str, stored_key: &str) -> Result<UserRecord, NsError> {
    let stored_key = parse_stored_key(stored_key)?;
    let (users, _) = t.store.users_and_groups()?;
    let Some(mut record) = users.into_iter().find(|u| u.name == name) else {
        return fail(ErrorKind::ENOENT, format!("no user {name}"));
    };
    record.stored_key = stored_key;
    record.generation = (t.now_ns.max(1) as u64).max(record.generation + 1);
    put_user(t, &record)?;
    Ok(record)
}

pub fn remove_user(t: &mut Txn, name: &str) -> Result<(), NsError> {
    let (users, _) = t.store.users_and_groups()?;
    let Some(record) = users.iter().find(|u| u.name == name) else {
        return fail(ErrorKind::ENOENT, format!("no user {name}"));
    };
    if record.admin && users.iter().filter(|u| u.admin).count() == 1 {
        return fail(ErrorKind::EPERM, format!("{name} is the last admin"));
    }
    super::delegation::drop_tokens_of(t, name)?;
    t.delete_user_value(&user_key(name))
}

fn put_user(t: &mut Txn, record: &UserRecord) -> Result<(), NsError> {
    let value = serde_json::to_vec(record).map_err(|e| NsError::new(ErrorKind::EIO, e.to_string()))?;
    t.put_user_value(&user_key(&record.name), &value)
}

/// What the API shows of a user.
pub fn info(record: &UserRecord, groups: &[(String, u32)]) -> UserInfo {
    let name_of = |gid: &u32| groups.iter().find(|(_, g)| g == gid).map_or_else(|| gid.to_string(), |(n, _)| n.clone());
    UserInfo {
        name: record.name.clone(),
        uid: record.uid,
        groups: record.gids.iter().map(name_of).collect(),
        gids: record.gids.clone(),
        admin: record.admin,
        proxy: record.proxy,
        squash_root: record.squash_root,
    }
}
