//! User management (`/v1/admin/users/...`) and the caller's identity
//! (`/v1/auth/whoami`). Secrets never travel: the shell makes a new
//! credential and sends only its stored key (`auth::user`).

use serde::{Deserialize, Serialize};

/// A user as the master knows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    /// The user's groups by name, primary first.
    pub groups: Vec<String>,
    /// Their gids, in the same order.
    pub gids: Vec<u32>,
    /// May call `/v1/admin/*` (user management, decommission, safe mode).
    pub admin: bool,
    /// May act for local users (a mount): requests may name another uid
    /// and groups (`x-dfs-act-as`).
    pub proxy: bool,
    /// As a proxy, acts for uid 0 as `nobody` (65534) instead.
    pub squash_root: bool,
}

/// `POST /v1/auth/delegation_token`: a delegation token for the caller
/// (WebHDFS's `delegation=`), renewable by `renewer` (the caller when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewer: Option<String>,
}

/// A delegation token named in a renewal or a cancel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    pub token: String,
}

/// A token (empty in the answer to a renewal) and when it expires unless renewed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    pub token: String,
    pub expires_ms: u64,
}

/// `POST /v1/admin/users/add`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddUserRequest {
    pub name: String,
    /// The first free uid from 10000 when absent.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group names, primary first; a missing group is made (gid from
    /// 10000). None: a group named after the user.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub proxy: bool,
    #[serde(default)]
    pub squash_root: bool,
    /// SHA-256 of the new credential's client key, hex (`Credentials::stored_key`).
    pub stored_key: String,
}

/// `POST /v1/admin/users/remove`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserName {
    pub name: String,
}

/// `POST /v1/admin/users/rotate`: a new credential for a user (an admin,
/// or the user for themselves); the old one and its sessions end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    pub name: String,
    pub stored_key: String,
}

/// `GET /v1/auth/whoami`: whom the master takes the caller for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerInfo {
    /// The authenticated user (for a mount, its principal).
    pub user: String,
    pub uid: u32,
    pub gids: Vec<u32>,
    pub admin: bool,
    /// Permission checks pass (uid 0 or a member of the supergroup).
    pub superuser: bool,
}
