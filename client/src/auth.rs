//! Who the client is to the master: the credentials it logs in with, the
//! session it signs every request under (`dfs_proto::auth::user`), and, for
//! a mount, the local user it acts for.
//!
//! Credentials come from `--credentials FILE` (the caller's choice), else
//! `DFS_CREDENTIALS`, else `~/.config/dfs/credentials` when it exists; a
//! file the group or others may read is refused. With none, requests go
//! unsigned (a cluster with `auth = none`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dfs_proto::auth::signature::RequestView;
use dfs_proto::auth::user::{self, LoginAnswer, HEADER_ACT_AS, HEADER_CALL, HEADER_GRANT, HEADER_SESSION, HEADER_USER_AUTH};
pub use dfs_proto::auth::user::{ActAs, Credentials, CredentialsError};
use dfs_proto::auth::{unix_ms, BodyDigest};

/// A session is renewed this long before it expires.
const RENEW_BEFORE_MS: u64 = 60_000;

tokio::task_local! {
    /// The local user the calling task acts for (a mount's caller).
    static ACTING: ActAs;
}

/// Runs the blocking `f` with every master request it makes acting for `who`.
pub fn acting_as<R>(who: ActAs, f: impl FnOnce() -> R) -> R {
    ACTING.sync_scope(who, f)
}

/// Runs `future` with every master request it makes acting for `who`.
pub async fn acting_as_async<F: Future>(who: ActAs, future: F) -> F::Output {
    ACTING.scope(who, future).await
}

/// The user the calling task acts for, if any.
pub(crate) fn acting() -> Option<ActAs> {
    ACTING.try_with(Clone::clone).ok()
}

/// `future` acting for whoever the calling task acts for.
pub(crate) fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let who = acting();
    async move {
        match who {
            Some(who) => acting_as_async(who, future).await,
            None => future.await,
        }
    }
}

/// The default credentials file, if one is named or exists.
pub fn default_credentials_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DFS_CREDENTIALS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".config/dfs/credentials");
    path.exists().then_some(path)
}

/// The credentials of `path` or, without one, the default file's (none if
/// there is no default file).
pub fn load_credentials(path: Option<&std::path::Path>) -> Result<Option<Credentials>, CredentialsError> {
    match path.map(PathBuf::from).or_else(default_credentials_path) {
        Some(p) => Credentials::load(&p).map(Some),
        None => Ok(None),
    }
}

/// An open session: the ticket and the secret requests are signed with.
pub(crate) struct Session {
    ticket: String,
    secret: [u8; 32],
    expires_ms: u64,
}

/// The client's credentials and its current session.
#[derive(Default)]
pub struct Login {
    credentials: Option<Credentials>,
    session: Mutex<Option<Arc<Session>>>,
    /// A read grant shown instead of a session (a chunkserver serving a
    /// dashboard download for its user).
    grant: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.credentials.as_ref().map(|c| c.user.clone())).finish_non_exhaustive()
    }
}

impl Login {
    pub fn new(credentials: Option<Credentials>) -> Arc<Login> {
        Arc::new(Login { credentials, session: Mutex::default(), grant: None })
    }

    /// Reads with the master's read `grant` (`dfs_proto::auth::user::Grant`).
    pub fn granted(grant: String) -> Arc<Login> {
        Arc::new(Login { credentials: None, session: Mutex::default(), grant: Some(grant) })
    }

    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.user.as_str())
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The session, unless there is none or it is about to expire.
    pub(crate) fn session(&self) -> Option<Arc<Session>> {
        let s = self.session.lock().unwrap_or_else(|p| p.into_inner());
        s.as_ref().filter(|s| s.expires_ms > unix_ms().saturating_add(RENEW_BEFORE_MS)).cloned()
    }

    /// Keeps the session a login answered.
    pub(crate) fn start(&self, answer: &LoginAnswer) -> Result<Arc<Session>, String> {
        let credentials = self.credentials.as_ref().ok_or("no credentials")?;
        let wrapped = answer.wrapped().ok_or("the master's session secret is malformed")?;
        let secret = user::wrap_secret(&credentials.client_key(), &answer.session, &wrapped);
        let session = Arc::new(Session { ticket: answer.session.clone(), secret, expires_ms: answer.expires_ms });
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session.clone());
        Ok(session)
    }

    /// Whether a session is open (and not about to expire).
    pub fn logged_in(&self) -> bool {
        self.session().is_some()
    }

    /// The headers that sign a request under the open session (none
    /// without one): for callers that build their own requests.
    pub fn sign(&self, method: &str, path_and_query: &str, body: Option<&[u8]>) -> Vec<(&'static str, String)> {
        self.sign_call(method, path_and_query, body, None)
    }

    /// As `sign`, for a mutation named by a call id (`x-dfs-call`, signed too).
    pub fn sign_call(&self, method: &str, path_and_query: &str, body: Option<&[u8]>, call: Option<&str>) -> Vec<(&'static str, String)> {
        self.headers(self.session().as_deref(), &Signed { method, path_and_query, body, call })
    }

    /// The headers of a request under `session` (or this login's grant).
    pub(crate) fn headers(&self, session: Option<&Session>, r: &Signed<'_>) -> Vec<(&'static str, String)> {
        match (&self.grant, session) {
            (Some(grant), None) => {
                let mut headers = vec![(HEADER_GRANT, grant.clone())];
                headers.extend(r.call.map(|id| (HEADER_CALL, id.to_string())));
                headers
            }
            _ => signed_headers(session, r),
        }
    }

    /// Forgets the session (the master refused it): the next call logs in again.
    pub fn end(&self) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// What a request's signature covers.
pub(crate) struct Signed<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body: Option<&'a [u8]>,
    /// A mutation's call id (retried with the same one).
    pub call: Option<&'a str>,
}

/// The headers that sign a request under `session` (and say whom it acts
/// for, and which call it is).
fn signed_headers(session: Option<&Session>, r: &Signed<'_>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(who) = acting() {
        headers.push((HEADER_ACT_AS, who.to_header()));
    }
    headers.extend(r.call.map(|id| (HEADER_CALL, id.to_string())));
    let Some(session) = session else { return headers };
    headers.push((HEADER_SESSION, session.ticket.clone()));
    let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let view = RequestView { method: r.method, path_and_query: r.path_and_query, header: &header };
    let value = user::sign_request(&session.secret, unix_ms(), &view, BodyDigest::of(r.body.unwrap_or_default()));
    headers.push((HEADER_USER_AUTH, value));
    headers
}
