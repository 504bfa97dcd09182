//! Who is calling: the users the master knows (a copy of the store's, in
//! memory), logins, and the check of every user request's session and
//! signature (`dfs_proto::auth::user`). What a caller may then do is the
//! store's permission rules (`store::perms`) and the admin role.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context;
use dfs_proto::auth::keys::hex;
use dfs_proto::auth::replay::ReplayCache;
use dfs_proto::auth::signature::RequestView;
use dfs_proto::auth::user::{
    self, ActAs, Credentials, Grant, LoginAnswer, LoginRequest, Ticket, HEADER_ACT_AS, HEADER_GRANT, HEADER_SESSION, HEADER_USER_AUTH,
};
use dfs_proto::auth::{unix_ms, AuthError, Verified};
use dfs_proto::wire::users::{AddUserRequest, CallerInfo, UserInfo};
use rand::RngCore;

use crate::store::perms::Who;
use crate::store::users::{self as stored, UserRecord, NOBODY};
use crate::store::{Mutation, Outcome, Store, Writer};

/// Who may use the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request signed under a user's session.
    Users,
    /// Anyone is the superuser (throwaway clusters only).
    None,
}

/// The authenticated caller of a request, as handlers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user who signed (a mount's principal when it acts for someone).
    pub user: String,
    /// Whose permissions apply.
    pub who: Who,
    pub admin: bool,
    /// How the caller proved who they are: what it may be given.
    pub proof: Proof,
}

/// How a caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A signed-in session (or a cluster without users): may be given a
    /// delegation token and grants.
    Session,
    /// A bearer capability (a grant, a delegation token) valid until then:
    /// never a token, and no grant that outlives it.
    Bearer { until_ms: u64 },
    /// A name taken on trust (WebHDFS's simple authentication) or nobody:
    /// never a token, which would outlive the trust.
    Named,
}

impl Caller {
    /// Whether this caller may be given a delegation token, or renew one.
    pub fn may_hold_tokens(&self) -> bool {
        self.proof == Proof::Session
    }

    pub fn info(&self) -> CallerInfo {
        CallerInfo { user: self.user.clone(), uid: self.who.uid, gids: self.who.gids.clone(), admin: self.admin, superuser: self.who.superuser }
    }
}

#[derive(Default)]
struct Table {
    users: HashMap<String, UserRecord>,
    groups: Vec<(String, u32)>,
    supergroup: Option<u32>,
}

/// How long a dashboard download's read grant lasts.
const GRANT_MS: u64 = 60_000;

/// The master's users and sessions.
pub struct Users {
    mode: AuthMode,
    table: RwLock<Table>,
    /// Seals session tickets; new at each start (sessions end with the
    /// process: clients log in again by themselves).
    session_key: [u8; 32],
    /// Seals dashboard cookies: an API session's ticket is no cookie, nor
    /// a cookie an API session.
    web_key: [u8; 32],
    session_ms: u64,
    /// Held across a reload's read and swap: a slower reload never puts
    /// back users an admin has just removed.
    reloading: std::sync::Mutex<()>,
    supergroup_name: String,
    replay: ReplayCache,
    /// WebHDFS's `user.name=` is believed (HDFS's simple authentication).
    simple_names: bool,
}

impl Users {
    pub fn new(mode: AuthMode, supergroup_name: &str, session_ms: u64) -> Self {
        let mut session_key = [0u8; 32];
        rand::rng().fill_bytes(&mut session_key);
        let mut web_key = [0u8; 32];
        rand::rng().fill_bytes(&mut web_key);
        Users {
            mode,
            table: RwLock::default(),
            session_key,
            web_key,
            session_ms,
            reloading: std::sync::Mutex::new(()),
            supergroup_name: supergroup_name.to_string(),
            replay: ReplayCache::default(),
            simple_names: false,
        }
    }

    /// Believes WebHDFS's `user.name=` (HDFS's simple authentication).
    pub fn with_simple_names(mut self, on: bool) -> Self {
        self.simple_names = on;
        self
    }

    pub fn simple_names(&self) -> bool {
        self.simple_names
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Reads the users and groups from the store again (after a change).
    pub fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let (users, groups) = store.users_and_groups()?;
        let supergroup = groups.iter().find(|(n, _)| *n == self.supergroup_name).map(|(_, g)| *g);
        let table = Table { users: users.into_iter().map(|u| (u.name.clone(), u)).collect(), groups, supergroup };
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
        Ok(())
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list(&self) -> Vec<UserInfo> {
        let t = self.table();
        let mut all: Vec<UserInfo> = t.users.values().map(|u| stored::info(u, &t.groups)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn info(&self, record: &UserRecord) -> UserInfo {
        stored::info(record, &self.table().groups)
    }

    /// Checks a login and opens a session.
    pub fn login(&self, r: &LoginRequest) -> Result<LoginAnswer, AuthError> {
        let now = unix_ms();
        let record = self.table().users.get(&r.user).cloned();
        // An unknown user costs the same work as a wrong proof.
        let stored_key = record.as_ref().map_or([0u8; 32], |u| u.stored_key);
        let client_key = r.check(&stored_key, now)?;
        let record = record.ok_or(AuthError::BadCredentials)?;
        self.replay.check(r.nonce_bytes().ok_or(AuthError::BadCredentials)?, r.ts_ms, now)?;
        let ticket = Ticket { user: record.name.clone(), generation: record.generation, expires_ms: now.saturating_add(self.session_ms) };
        let (session, secret) = ticket.seal(&self.session_key);
        let wrapped = user::wrap_secret(&client_key, &session, &secret);
        Ok(LoginAnswer {
            wrapped_secret: hex(&wrapped),
            session,
            expires_ms: ticket.expires_ms,
            uid: record.uid,
            gids: record.gids.clone(),
            admin: record.admin,
        })
    }

    /// A user of the store, if their record is still of `generation`.
    fn current(&self, name: &str, generation: u64) -> Result<UserRecord, AuthError> {
        self.table().users.get(name).filter(|u| u.generation == generation).cloned().ok_or(AuthError::SessionExpired)
    }

    fn caller_of(&self, record: &UserRecord) -> Caller {
        Caller { user: record.name.clone(), who: self.who(record.uid, record.gids.clone()), admin: record.admin, proof: Proof::Session }
    }

    /// The dashboard's login form: the user's name and their credential's
    /// secret. Answers the session ticket the browser keeps as a cookie.
    pub fn dashboard_login(&self, name: &str, secret_hex: &str) -> Result<(String, Caller), AuthError> {
        let record = self.table().users.get(name).cloned();
        // An unknown user costs the same work as a wrong secret.
        let stored = Credentials::from_secret_hex(name, secret_hex).map_or([1u8; 32], |c| c.stored_key());
        let expected = record.as_ref().map_or([0u8; 32], |r| r.stored_key);
        let ok = stored.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        let record = record.filter(|_| ok).ok_or(AuthError::BadCredentials)?;
        let ticket = Ticket { user: record.name.clone(), generation: record.generation, expires_ms: unix_ms().saturating_add(self.session_ms) };
        Ok((ticket.seal(&self.web_key).0, self.caller_of(&record)))
    }

    /// The dashboard's viewer: the user whose session ticket the cookie
    /// holds (a cookie is a bearer ticket: only the dashboard takes one,
    /// never the API, so no page of another site can use it there).
    pub fn viewer(&self, cookie: &str) -> Result<Caller, AuthError> {
        let (ticket, _) = Ticket::open(&self.web_key, cookie)?;
        if ticket.expires_ms <= unix_ms() {
            return Err(AuthError::SessionExpired);
        }
        Ok(self.caller_of(&self.current(&ticket.user, ticket.generation)?))
    }

    /// Who an anonymous viewer of a public dashboard is: nobody, with the
    /// rights of "other".
    pub fn nobody(&self) -> Caller {
        Caller { user: "nobody".into(), who: Who { uid: NOBODY, gids: vec![NOBODY], superuser: false }, admin: false, proof: Proof::Named }
    }

    /// A read grant of `caller`'s rights for a minute (see [`Grant`]).
    pub fn grant(&self, caller: &Caller) -> Option<String> {
        self.grant_for(caller, false, GRANT_MS)
    }

    /// A grant of `caller`'s rights (reads, or also writes) for `ms`, or
    /// less: never past the bearer capability the caller came with (a grant
    /// does not renew itself, nor outlive a token). Only for a caller who is
    /// this very user (not the public dashboard's nobody, nor a mount acting
    /// for a local uid, whatever users are named).
    pub fn grant_for(&self, caller: &Caller, writes: bool, ms: u64) -> Option<String> {
        let record = self.table().users.get(&caller.user).filter(|r| r.uid == caller.who.uid && caller.who.gids == r.gids).cloned()?;
        let mut expires_ms = unix_ms().saturating_add(ms);
        if let Proof::Bearer { until_ms } = caller.proof {
            expires_ms = expires_ms.min(until_ms);
        }
        Some(Grant { user: record.name, generation: record.generation, expires_ms, writes }.seal(&self.session_key))
    }

    /// The user named `name`, as a caller (HDFS's simple authentication
    /// and proxy users: whoever vouches for the name is checked first).
    pub fn named(&self, name: &str) -> Option<Caller> {
        let record = self.table().users.get(name).cloned()?;
        Some(self.caller_of(&record))
    }

    /// Whether the user may act for others (a mount's principal, a
    /// WebHDFS proxy user with `doas=`).
    pub fn is_proxy(&self, name: &str) -> bool {
        self.table().users.get(name).is_some_and(|r| r.proxy)
    }

    /// A name taken on trust (WebHDFS's `user.name=`, with simple
    /// authentication on): that user, who may hold no token.
    pub fn trusted_name(&self, name: &str) -> Option<Caller> {
        self.named(name).map(|c| Caller { proof: Proof::Named, ..c })
    }

    /// `proxy` acting as user `other` (WebHDFS's `doas=`): as a mount's
    /// principal acts for a uid, with the rules of `x-dfs-act-as` (never
    /// the admin role, the supergroup not counted, root squashed when the
    /// proxy squashes it), and the proof the proxy came with. `None` when
    /// `proxy` is no proxy user or `other` is nobody's name.
    pub fn doas(&self, proxy: &Caller, other: &str) -> Option<Caller> {
        let table = self.table();
        let principal = table.users.get(&proxy.user).filter(|r| r.proxy)?;
        let target = table.users.get(other)?;
        let who = acting_for(&ActAs { uid: target.uid, gids: target.gids.clone() }, principal.squash_root);
        Some(Caller { user: target.name.clone(), who, admin: false, proof: proxy.proof })
    }

    /// The name of the user with `uid`, and of the group with `gid`, as
    /// WebHDFS shows owners (the number when none has it).
    pub fn owner_names(&self, uid: u32, gid: u32) -> (String, String) {
        let t = self.table();
        let user = t.users.values().find(|u| u.uid == uid).map_or_else(|| uid.to_string(), |u| u.name.clone());
        let group = t.groups.iter().find(|(_, g)| *g == gid).map_or_else(|| gid.to_string(), |(n, _)| n.clone());
        (user, group)
    }

    /// The uid of user `name`, or of a number given as the name.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.table().users.get(name).map(|u| u.uid).or_else(|| name.parse().ok())
    }

    /// The gid of group `name`, or of a number given as the name.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        self.table().groups.iter().find(|(n, _)| n == name).map(|(_, g)| *g).or_else(|| name.parse().ok())
    }

    /// The caller of a request whose head is `method`, `path_and_query` and
    /// `header`: its session and signature checked (not yet its body, which
    /// the caller checks against [`Verified::body`]).
    pub fn authenticate(&self, method: &str, path_and_query: &str, header: &dyn Fn(&str) -> Option<String>) -> Result<(Caller, Option<Verified>), AuthError> {
        let act_as = match header(HEADER_ACT_AS) {
            Some(v) => Some(ActAs::parse(&v).map_err(AuthError::Malformed)?),
            None => None,
        };
        if self.mode == AuthMode::None {
            let who = match &act_as {
                Some(a) => acting_for(a, false),
                None => Who::root(),
            };
            return Ok((Caller { user: "none".into(), who, admin: true, proof: Proof::Session }, None));
        }
        if let Some(grant) = header(HEADER_GRANT) {
            return self.granted(method, &grant).map(|c| (c, None));
        }
        let session = header(HEADER_SESSION).ok_or(AuthError::NoSession)?;
        let (ticket, secret) = Ticket::open(&self.session_key, &session)?;
        let now = unix_ms();
        if ticket.expires_ms <= now {
            return Err(AuthError::SessionExpired);
        }
        let record = self.current(&ticket.user, ticket.generation)?;
        let view = RequestView { method, path_and_query, header };
        let verified = user::verify_request(&secret, now, header(HEADER_USER_AUTH).as_deref(), &view)?;
        self.replay.check(verified.nonce, verified.ts_ms, now)?;
        let caller = match act_as {
            None => self.caller_of(&record),
            Some(_) if !record.proxy => return Err(AuthError::Malformed(format!("{} may not act for other users", record.name))),
            Some(a) => Caller { user: record.name.clone(), who: acting_for(&a, record.squash_root), admin: false, proof: Proof::Session },
        };
        Ok((caller, Some(verified)))
    }

    /// A request shown a grant: as its user, only reads unless it grants
    /// writes, never the admin's rights.
    fn granted(&self, method: &str, text: &str) -> Result<Caller, AuthError> {
        let grant = Grant::open(&self.session_key, text)?;
        if method != "GET" && !grant.writes {
            return Err(AuthError::Malformed(format!("this {HEADER_GRANT} allows reads only")));
        }
        if grant.expires_ms <= unix_ms() {
            return Err(AuthError::SessionExpired);
        }
        let caller = self.caller_of(&self.current(&grant.user, grant.generation)?);
        Ok(Caller { admin: false, proof: Proof::Bearer { until_ms: grant.expires_ms }, ..caller })
    }

    fn who(&self, uid: u32, gids: Vec<u32>) -> Who {
        let supergroup = self.table().supergroup;
        let superuser = uid == 0 || supergroup.is_some_and(|g| gids.contains(&g));
        Who { uid, gids, superuser }
    }
}

/// Whose permissions a proxy's request has: the local uid and groups it
/// names, a superuser only as uid 0 and unsquashed. The supergroup does not
/// count here: local gids are the host's numbering, not the master's, and
/// a squashed root could otherwise name the supergroup's gid.
fn acting_for(a: &ActAs, squash_root: bool) -> Who {
    if a.uid == 0 && squash_root {
        return Who { uid: NOBODY, gids: vec![NOBODY], superuser: false };
    }
    Who { uid: a.uid, gids: a.gids.clone(), superuser: a.uid == 0 }
}

/// Where the first admin's credentials go.
pub fn admin_credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.credentials")
}

/// On a store without users, makes the first admin (uid 0, the supergroup,
/// admin and proxy) and its credentials file, which is written (synced)
/// before the user is stored: a crash between leaves the file, used at the
/// next start.
pub async fn bootstrap(users: &Users, store: &Store, writer: &Writer, data_dir: &Path, admin: &str, supergroup: &str) -> anyhow::Result<()> {
    if !users.table().users.is_empty() {
        return Ok(());
    }
    let path = admin_credentials_path(data_dir);
    let credentials = match Credentials::load(&path) {
        Ok(c) => c,
        Err(_) if !path.exists() => {
            let c = Credentials::generate(admin);
            c.create_file(&path)?;
            c
        }
        Err(e) => return Err(e).context("the admin credentials file"),
    };
    let request = AddUserRequest {
        name: credentials.user.clone(),
        uid: Some(0),
        groups: vec![supergroup.to_string()],
        admin: true,
        proxy: true,
        squash_root: false,
        stored_key: credentials.stored_key_hex(),
    };
    match writer.submit(Mutation::AddUser(request)).await? {
        Outcome::User(u) => tracing::info!(user = %u.name, file = %path.display(), "made the first admin and its credentials file"),
        other => anyhow::bail!("adding the first admin answered {other:?}"),
    }
    users.reload(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::auth::user::sign_request;
    use dfs_proto::auth::BodyDigest;

    fn users_with(name: &str, session_ms: u64) -> (Users, Credentials) {
        let users = Users::new(AuthMode::Users, "supergroup", session_ms);
        let c = Credentials::generate(name);
        let record = UserRecord {
            format: 1,
            name: name.into(),
            uid: 10,
            gids: vec![20],
            admin: false,
            proxy: false,
            squash_root: false,
            stored_key: c.stored_key(),
            generation: 1,
        };
        users.table.write().unwrap().users.insert(name.into(), record);
        (users, c)
    }

    /// Logs in and signs one GET of `/v1/x`: its headers.
    fn signed_get(users: &Users, c: &Credentials) -> Vec<(String, String)> {
        let answer = users.login(&c.login(unix_ms())).unwrap();
        let secret = user::wrap_secret(&c.client_key(), &answer.session, &answer.wrapped().unwrap());
        let session = answer.session.clone();
        let header = |n: &str| (n == HEADER_SESSION).then(|| session.clone());
        let view = RequestView { method: "GET", path_and_query: "/v1/x", header: &header };
        let sig = sign_request(&secret, unix_ms(), &view, BodyDigest::of(b""));
        vec![(HEADER_SESSION.into(), session), (HEADER_USER_AUTH.into(), sig)]
    }

    fn check(users: &Users, headers: &[(String, String)]) -> Result<Caller, AuthError> {
        let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        users.authenticate("GET", "/v1/x", &header).map(|(c, _)| c)
    }

    #[test]
    fn a_signed_request_passes_once_and_an_expired_session_not_at_all() {
        let (users, c) = users_with("alice", 3_600_000);
        let headers = signed_get(&users, &c);
        let caller = check(&users, &headers).unwrap();
        assert_eq!((caller.user.as_str(), caller.who.uid, caller.who.superuser, caller.admin), ("alice", 10, false, false));
        assert_eq!(check(&users, &headers), Err(AuthError::Replayed));
        // A session that lasts no time is expired at its first use.
        let (brief, c) = users_with("bob", 0);
        assert_eq!(check(&brief, &signed_get(&brief, &c)), Err(AuthError::SessionExpired));
        // A login replayed, or with another secret, is refused.
        let login = c.login(unix_ms());
        assert!(brief.login(&login).is_ok());
        assert_eq!(brief.login(&login), Err(AuthError::Replayed));
        assert_eq!(brief.login(&Credentials::generate("bob").login(unix_ms())), Err(AuthError::BadCredentials));
        assert_eq!(brief.login(&Credentials::generate("nobody").login(unix_ms())), Err(AuthError::BadCredentials));
    }

    #[test]
    fn a_session_of_another_master_or_an_older_credential_is_refused() {
        let (users, c) = users_with("alice", 3_600_000);
        let headers = signed_get(&users, &c);
        let (restarted, _) = users_with("alice", 3_600_000);
        assert_eq!(check(&restarted, &headers), Err(AuthError::SessionExpired));
        users.table.write().unwrap().users.get_mut("alice").unwrap().generation = 2;
        assert_eq!(check(&users, &headers), Err(AuthError::SessionExpired), "rotated or removed");
        assert_eq!(check(&users, &[]), Err(AuthError::NoSession));
    }

    /// A grant or token buys no grant outliving it: a grant presented
    /// again (to the chunkservers' API) yields one that ends with it.
    #[test]
    fn a_grant_made_for_a_bearer_ends_when_its_bearer_capability_does() {
        let (users, _) = users_with("alice", 3_600_000);
        let signed = users.named("alice").unwrap();
        assert!(signed.may_hold_tokens());
        let first = users.grant_for(&signed, true, 3_600_000).unwrap();
        let held = users.granted("PUT", &first).unwrap();
        let Proof::Bearer { until_ms } = held.proof else { panic!("a grant's caller is a bearer: {held:?}") };
        assert!(!held.may_hold_tokens());
        let short = Caller { proof: Proof::Bearer { until_ms: unix_ms() + 1_000 }, ..held.clone() };
        let again = Grant::open(&users.session_key, &users.grant_for(&short, true, 3_600_000).unwrap()).unwrap();
        assert!(again.expires_ms <= unix_ms() + 1_000, "capped at the bearer's end");
        let renewed = Grant::open(&users.session_key, &users.grant_for(&held, true, 3_600_000).unwrap()).unwrap();
        assert!(renewed.expires_ms <= until_ms, "a grant never renews itself");
        assert!(users.granted("PUT", &users.grant_for(&signed, false, 60_000).unwrap()).is_err(), "a read grant writes nothing");
        assert!(!users.trusted_name("alice").unwrap().may_hold_tokens(), "a name on trust holds no token");
    }

    /// doas acts as a mount's principal acts for a uid: no admin role, the
    /// supergroup not counted, root squashed when the proxy squashes it.
    #[test]
    fn doas_acts_with_the_rules_of_a_proxy_acting_for_a_uid() {
        let (users, _) = users_with("gateway", 3_600_000);
        let admin = UserRecord { name: "root".into(), uid: 0, gids: vec![0], admin: true, ..users.table().users["gateway"].clone() };
        let staff = UserRecord { name: "sam".into(), uid: 11, gids: vec![7], ..admin.clone() };
        users.table.write().unwrap().users.extend([("root".to_string(), admin), ("sam".to_string(), staff)]);
        users.table.write().unwrap().supergroup = Some(7);
        let gateway = users.named("gateway").unwrap();
        assert_eq!(users.doas(&gateway, "sam"), None, "not a proxy");
        users.table.write().unwrap().users.get_mut("gateway").unwrap().proxy = true;
        let sam = users.doas(&gateway, "sam").unwrap();
        assert_eq!((sam.user.as_str(), sam.who.uid, sam.who.superuser, sam.admin), ("sam", 11, false, false), "the supergroup does not count");
        let root = users.doas(&gateway, "root").unwrap();
        assert_eq!((root.who.uid, root.who.superuser, root.admin), (0, true, false), "never the admin role");
        users.table.write().unwrap().users.get_mut("gateway").unwrap().squash_root = true;
        let squashed = users.doas(&gateway, "root").unwrap();
        assert_eq!((squashed.who.uid, squashed.who.superuser), (NOBODY, false), "root squashed");
        let bearer = Caller { proof: Proof::Bearer { until_ms: 5 }, ..gateway };
        assert_eq!(users.doas(&bearer, "sam").unwrap().proof, Proof::Bearer { until_ms: 5 }, "the proxy's proof carries over");
        assert_eq!(users.doas(&bearer, "nobody-known"), None);
    }
}
