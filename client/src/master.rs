//! Calls to the master's API, one method per endpoint.
//!
//! A request that could not reach the master at all (connection refused:
//! it is restarting) is sent again until `master_wait` has passed; that is
//! safe for mutations too, since nothing was sent. Other transport errors
//! are retried only for reads, which are idempotent.

use std::io::Read;
use std::time::{Duration, Instant};

use dfs_proto::endpoint::{self, master as ep, Endpoint, Method};
use dfs_proto::wire::chunks::{
    BadReplica, ChunkLocations, ChunkserverInfo, CommitLength, LeaseRequest, LocateQuery, NodeRequest, ReplicationStatus, SafeModeRequest, WriteLease,
    WrittenChunk,
};
use dfs_proto::wire::namespace::*;
use dfs_proto::wire::users::{AddUserRequest, CallerInfo, RotateRequest, TokenAnswer, TokenRef, TokenRequest, UserInfo, UserName};
use dfs_proto::wire::xattrs::{RemoveXattrRequest, SetXattrRequest, XattrQuery};
use dfs_proto::{ErrorBody, ErrorKind, InodeId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::{self, Login};
use crate::error::{from_response, ClientError};
use crate::masters::Masters;
use crate::request_id::{self, RequestId, HEADER_REQUEST_ID};
use dfs_proto::auth::user::LoginAnswer;
use dfs_proto::error::HEADER_LEADER;
use std::sync::Arc;

#[derive(Clone)]
pub struct MasterClient {
    /// The master calls go to, of the list it was given.
    masters: Arc<Masters>,
    transport: Transport,
    wait: Duration,
    /// Credentials and the session requests are signed under.
    login: Arc<Login>,
}

#[derive(Clone)]
enum Transport {
    /// Connections served by the async runtime.
    Async(reqwest::Client),
    /// Connections of the calling thread, which each call blocks.
    Blocking(ureq::Agent),
}

/// One request: its method, path and query (the master's base URL is
/// the one current at each attempt), and its JSON body (a GET has none).
struct Call {
    method: Method,
    path: String,
    json: Option<bytes::Bytes>,
    /// Signed as this client's user (every call but the login), under this
    /// session (none: unsigned, or a grant).
    signed: bool,
    session: Option<Arc<auth::Session>>,
    /// A mutation the master's retry cache answers again: its call id,
    /// the same in every attempt, so it may be sent again after a lost
    /// answer.
    call_id: Option<String>,
    /// Longer than the client's request timeout (a streamed answer that
    /// may take long to read whole: a backup).
    timeout: Option<Duration>,
}

/// An attempt that got no answer from the master.
struct Unanswered {
    error: String,
    /// The connection was refused: nothing was sent.
    nothing_sent: bool,
    /// It may have reached the master: only a read may be sent again.
    retry_if_idempotent: bool,
    /// A master that does not lead refused it before doing anything: the
    /// leader it named ("" when it knows none yet).
    leader: Option<String>,
}

impl Unanswered {
    fn lost(error: String, nothing_sent: bool, retry_if_idempotent: bool) -> Unanswered {
        Unanswered { error, nothing_sent, retry_if_idempotent, leader: None }
    }

    /// A follower's refusal naming `leader` (or none).
    fn redirect(leader: &str) -> Unanswered {
        let error = match leader {
            "" => "the master does not lead the masters, and knows no leader yet".to_string(),
            l => format!("the master does not lead the masters; the leader is {l}"),
        };
        Unanswered { error, nothing_sent: true, retry_if_idempotent: false, leader: Some(leader.to_string()) }
    }
}

impl MasterClient {
    pub fn new(base: &str, http: reqwest::Client, wait: Duration, login: Arc<Login>) -> Self {
        MasterClient { masters: Masters::parse(base), transport: Transport::Async(http), wait, login }
    }

    /// A client whose calls block the calling thread, over connections of
    /// its own: for a thread that is not the runtime's and waits anyway (a
    /// FUSE thread). Its futures finish in one poll, without a runtime, and
    /// spare a call the hand-offs between runtime threads and the work of
    /// driving a runtime; a pooled connection the master has closed is
    /// noticed before a request is written into it.
    pub fn blocking(base: &str, timeout: Duration, wait: Duration, login: Arc<Login>) -> Self {
        let agent = crate::tls::ureq_builder().timeout(timeout).timeout_connect(timeout.min(Duration::from_secs(5))).max_idle_connections_per_host(1).build();
        MasterClient { masters: Masters::parse(base), transport: Transport::Blocking(agent), wait, login }
    }

    /// The user this client logs in as, if it has credentials.
    pub fn user(&self) -> Option<&str> {
        self.login.user()
    }

    /// Sends `call` signed under this client's session (logging in first
    /// when there is none); a session the master no longer knows (it
    /// restarted, the user's credential was rotated, another master leads
    /// now) is replaced, a few times at most: each leader of several
    /// masters knows its own sessions only, and a failover may come
    /// between a login and the call.
    async fn send_signed<T: Answer>(&self, idempotent: bool, mut call: Call) -> Result<T, ClientError> {
        let mut logins = 0;
        loop {
            let session = match self.login.credentials() {
                None => None,
                Some(_) => match self.login.session() {
                    Some(s) => Some(s),
                    None => {
                        logins += 1;
                        Some(self.log_in().await?)
                    }
                },
            };
            call.session = session.clone();
            match self.send(idempotent, &call).await {
                Err(e) if session.is_some() && logins < MAX_LOGINS && is_session_refusal(&e) => {
                    self.login.end();
                }
                answer => return answer,
            }
        }
    }

    /// The headers that say who sends `call`, made afresh for each attempt
    /// (the master accepts a signature once).
    fn headers(&self, call: &Call) -> Vec<(&'static str, String)> {
        if !call.signed {
            return Vec::new();
        }
        let signed = auth::Signed { method: call.method.as_str(), path_and_query: &call.path, body: call.json.as_deref(), call: call.call_id.as_deref() };
        self.login.headers(call.session.as_deref(), &signed)
    }

    /// Logs in with the client's credentials.
    async fn log_in(&self) -> Result<Arc<auth::Session>, ClientError> {
        let credentials = self.login.credentials().ok_or_else(|| ClientError::new(ErrorKind::EINVAL, "no credentials"))?;
        let request = credentials.login(dfs_proto::auth::unix_ms());
        let path = endpoint::url::<ep::Login>("", &(), &()).map_err(|e| ClientError::new(ErrorKind::EINVAL, e.to_string()))?;
        let json = serde_json::to_vec(&request).map_err(|e| ClientError::new(ErrorKind::EINVAL, e.to_string()))?;
        // Sent again after a lost answer (a master that froze or died):
        // another master takes it; the same one refuses the replay, as
        // before.
        let Json(answer): Json<LoginAnswer> =
            self.send(true, &Call { method: Method::Post, path, json: Some(json.into()), signed: false, session: None, call_id: None, timeout: None }).await?;
        self.login.start(&answer).map_err(|e| ClientError::new(ErrorKind::EIO, format!("logging in as {}: {e}", credentials.user)))
    }

    /// The masters' base URLs, comma-separated as given.
    pub fn url(&self) -> String {
        self.masters.list()
    }

    async fn send<T: Answer>(&self, idempotent: bool, call: &Call) -> Result<T, ClientError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        // Attempts of one call are one operation (unless it is part of one).
        let id = request_id::for_operation();
        let mut hops = 0;
        loop {
            let base = self.masters.current();
            let url = format!("{base}{}", call.path);
            let attempt = match &self.transport {
                Transport::Async(http) => attempt_async(http, &url, call, &self.headers(call), &id).await,
                Transport::Blocking(agent) => attempt_blocking(agent, &url, call, &self.headers(call), &id),
            };
            let err = match attempt {
                Ok(answer) => return answer,
                Err(e) => e,
            };
            let retry = err.nothing_sent || ((idempotent || call.call_id.is_some()) && err.retry_if_idempotent);
            let limit = if call.call_id.is_some() { self.wait.min(RETRY_LIMIT) } else { self.wait };
            if !retry || start.elapsed() + pause > limit {
                return Err(ClientError::unreachable(&base, &err.error));
            }
            // At once to a leader just named (a few times: masters that
            // name each other while an election settles get the pause);
            // else the next master, after a pause.
            match err.leader.as_deref().filter(|l| !l.is_empty()) {
                Some(leader) if hops < MAX_HOPS && self.masters.follow(&base, leader) => {
                    hops += 1;
                    continue;
                }
                Some(_) => {}
                // Refused, or no answer where another master may give one.
                None => self.masters.pass_over(&base),
            }
            match self.transport {
                Transport::Async(_) => tokio::time::sleep(pause).await,
                Transport::Blocking(_) => std::thread::sleep(pause),
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// One call of endpoint `E`: the URL from its declaration, a JSON body
    /// unless it is a GET, sent again after a lost answer only if its
    /// method is idempotent.
    async fn call<E>(&self, param: &E::Path, query: &E::Query, body: &E::Request) -> Result<E::Response, ClientError>
    where
        E: Endpoint,
        E::Request: Serialize,
        E::Response: DeserializeOwned + Send,
    {
        self.call_as::<E>(param, query, body, None).await
    }

    /// A POST to `E`, whose answers the master's retry cache keeps: named
    /// by a fresh call id, and sent again after a lost answer (a timeout, a
    /// reset) with the same one, which the master answers as the first
    /// time, nothing applied twice.
    async fn post_retried<E: Endpoint<Path = (), Query = ()>>(&self, body: &E::Request) -> Result<E::Response, ClientError>
    where
        E::Request: Serialize,
        E::Response: DeserializeOwned + Send,
    {
        self.call_as::<E>(&(), &(), body, Some(new_call_id())).await
    }

    async fn call_as<E>(&self, param: &E::Path, query: &E::Query, body: &E::Request, call_id: Option<String>) -> Result<E::Response, ClientError>
    where
        E: Endpoint,
        E::Request: Serialize,
        E::Response: DeserializeOwned + Send,
    {
        let path = endpoint::url::<E>("", param, query).map_err(|e| ClientError::new(ErrorKind::EINVAL, e.to_string()))?;
        let json = match E::METHOD {
            Method::Get => None,
            Method::Post | Method::Put => {
                Some(serde_json::to_vec(body).map_err(|e| ClientError::new(ErrorKind::EINVAL, format!("encoding a request: {e}")))?.into())
            }
        };
        self.send_signed(E::METHOD.idempotent(), Call { method: E::METHOD, path, json, signed: true, session: None, call_id, timeout: None })
            .await
            .map(|Json(answer)| answer)
    }

    /// A POST of `body` to `E`.
    async fn post<E: Endpoint<Path = (), Query = ()>>(&self, body: &E::Request) -> Result<E::Response, ClientError>
    where
        E::Request: Serialize,
        E::Response: DeserializeOwned + Send,
    {
        self.call::<E>(&(), &(), body).await
    }

    /// A GET of `E` with `query`.
    async fn get<E: Endpoint<Path = (), Request = ()>>(&self, query: &E::Query) -> Result<E::Response, ClientError>
    where
        E::Response: DeserializeOwned + Send,
    {
        self.call::<E>(&(), query, &()).await
    }

    pub async fn create(&self, req: &CreateRequest) -> Result<Made, ClientError> {
        self.post_retried::<ep::Create>(req).await
    }

    pub async fn mkdir(&self, req: &MkdirRequest) -> Result<Made, ClientError> {
        self.post_retried::<ep::Mkdir>(req).await
    }

    pub async fn symlink(&self, req: &SymlinkRequest) -> Result<Made, ClientError> {
        self.post_retried::<ep::Symlink>(req).await
    }

    /// A hard link: `req.dst` becomes another name of `req.src`.
    pub async fn link(&self, req: &LinkRequest) -> Result<Made, ClientError> {
        self.post_retried::<ep::Link>(req).await
    }

    /// A FIFO, socket or device node.
    pub async fn mknod(&self, req: &MknodRequest) -> Result<Made, ClientError> {
        self.post_retried::<ep::Mknod>(req).await
    }

    pub async fn rename(&self, req: &RenameRequest) -> Result<Changed, ClientError> {
        self.post_retried::<ep::Rename>(req).await
    }

    pub async fn unlink(&self, at: EntryRef) -> Result<Changed, ClientError> {
        self.post_retried::<ep::Unlink>(&RemoveRequest { at }).await
    }

    pub async fn rmdir(&self, at: EntryRef) -> Result<Changed, ClientError> {
        self.post_retried::<ep::Rmdir>(&RemoveRequest { at }).await
    }

    pub async fn delete(&self, at: EntryRef, recursive: bool) -> Result<Changed, ClientError> {
        self.post_retried::<ep::Delete>(&DeleteRequest { at, recursive }).await
    }

    pub async fn setattr(&self, req: &SetattrRequest) -> Result<Attr, ClientError> {
        self.post_retried::<ep::Setattr>(req).await
    }

    pub async fn stat(&self, path: &str) -> Result<Attr, ClientError> {
        self.get::<ep::Stat>(&NodeRef { path: Some(path.into()), inode: None }).await
    }

    pub async fn stat_inode(&self, inode: InodeId) -> Result<Attr, ClientError> {
        self.get::<ep::Stat>(&NodeRef { path: None, inode: Some(inode) }).await
    }

    pub async fn lookup(&self, parent: InodeId, name: &str) -> Result<Attr, ClientError> {
        self.get::<ep::Lookup>(&LookupQuery { parent, name: name.into() }).await
    }

    pub async fn list(&self, query: &ListQuery) -> Result<ListResponse, ClientError> {
        self.get::<ep::List>(query).await
    }

    /// The file's fresh attributes; `session` holds it open from now on.
    /// `seq` numbers the session's opens; `write` says the open is for writing.
    pub async fn open(&self, inode: InodeId, session: &str, seq: u64, write: bool) -> Result<Attr, ClientError> {
        self.post::<ep::Open>(&OpenRequest { inode, session: session.to_string(), seq, write }).await
    }

    /// Takes from file `inode` what a write by the caller takes away
    /// (setuid/setgid, capabilities) before the write happens.
    pub async fn drop_privileges(&self, inode: InodeId) -> Result<Attr, ClientError> {
        self.post::<ep::DropPrivileges>(&DropPrivilegesRequest { inode }).await
    }

    /// Every file `session` holds open now, as after its open `upto` (its keepalive).
    pub async fn open_files(&self, session: &str, inodes: Vec<InodeId>, upto: u64) -> Result<(), ClientError> {
        self.post::<ep::OpenFiles>(&OpenFilesRequest { session: session.to_string(), inodes, upto }).await.map(|_| ())
    }

    /// One extended attribute's value (ENODATA when it has none of that name).
    pub async fn get_xattr(&self, node: &NodeRef, name: &str) -> Result<Vec<u8>, ClientError> {
        let q = XattrQuery { path: node.path.clone(), inode: node.inode, name: Some(name.to_string()) };
        self.get::<ep::GetXattr>(&q).await.map(|v| v.value.0)
    }

    /// The names of the extended attributes the caller may see.
    pub async fn list_xattrs(&self, node: &NodeRef) -> Result<Vec<String>, ClientError> {
        let q = XattrQuery { path: node.path.clone(), inode: node.inode, name: None };
        self.get::<ep::ListXattrs>(&q).await.map(|v| v.names)
    }

    pub async fn set_xattr(&self, req: &SetXattrRequest) -> Result<Attr, ClientError> {
        self.post_retried::<ep::SetXattr>(req).await
    }

    pub async fn remove_xattr(&self, req: &RemoveXattrRequest) -> Result<Attr, ClientError> {
        self.post_retried::<ep::RemoveXattr>(req).await
    }

    pub async fn readlink(&self, node: &NodeRef) -> Result<String, ClientError> {
        self.get::<ep::Readlink>(node).await.map(|r| r.target)
    }

    pub async fn fs_stats(&self) -> Result<FsStats, ClientError> {
        self.get::<ep::Fs>(&()).await
    }

    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        self.get::<ep::Cluster>(&()).await
    }

    pub async fn chunkservers(&self) -> Result<Vec<ChunkserverInfo>, ClientError> {
        self.get::<ep::Chunkservers>(&()).await
    }

    pub async fn fsck(&self, query: &FsckQuery) -> Result<FsckPage, ClientError> {
        self.get::<ep::Fsck>(query).await
    }

    pub async fn append(&self, inode: InodeId, length: u64) -> Result<AppendReservation, ClientError> {
        self.post::<ep::Append>(&AppendRequest { inode, length }).await
    }

    pub async fn lease(&self, inode: InodeId, index: u64) -> Result<WriteLease, ClientError> {
        self.post::<ep::Lease>(&LeaseRequest { inode, index }).await
    }

    pub async fn locate(&self, inode: InodeId, first: u64, count: u64) -> Result<ChunkLocations, ClientError> {
        self.get::<ep::Locate>(&LocateQuery { inode, first, count: Some(count) }).await
    }

    pub async fn commit_length(&self, inode: InodeId, length: u64, chunks: Vec<WrittenChunk>) -> Result<Attr, ClientError> {
        self.post_retried::<ep::CommitLength>(&CommitLength { inode, length, chunks }).await
    }

    pub async fn report_bad(&self, bad: &BadReplica) -> Result<Done, ClientError> {
        self.post::<ep::ReportBad>(bad).await
    }

    pub async fn replication(&self) -> Result<ReplicationStatus, ClientError> {
        self.get::<ep::Replication>(&()).await
    }

    pub async fn leave_safe_mode(&self) -> Result<ReplicationStatus, ClientError> {
        self.post::<ep::SafeMode>(&SafeModeRequest { leave: true }).await
    }

    pub async fn whoami(&self) -> Result<CallerInfo, ClientError> {
        self.get::<ep::WhoAmI>(&()).await
    }

    /// A WebHDFS delegation token for this caller, renewable by `renewer`.
    pub async fn delegation_token(&self, renewer: Option<String>) -> Result<TokenAnswer, ClientError> {
        self.post::<ep::IssueToken>(&TokenRequest { renewer }).await
    }

    pub async fn renew_token(&self, token: &str) -> Result<TokenAnswer, ClientError> {
        self.post::<ep::RenewToken>(&TokenRef { token: token.to_string() }).await
    }

    pub async fn cancel_token(&self, token: &str) -> Result<(), ClientError> {
        self.post::<ep::CancelToken>(&TokenRef { token: token.to_string() }).await.map(|_| ())
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>, ClientError> {
        self.get::<ep::Users>(&()).await
    }

    pub async fn add_user(&self, req: &AddUserRequest) -> Result<UserInfo, ClientError> {
        self.post::<ep::AddUser>(req).await
    }

    pub async fn remove_user(&self, name: &str) -> Result<Done, ClientError> {
        self.post::<ep::RemoveUser>(&UserName { name: name.to_string() }).await
    }

    pub async fn rotate_user(&self, req: &RotateRequest) -> Result<UserInfo, ClientError> {
        self.post::<ep::RotateUser>(req).await
    }

    /// Starts (`on`) or ends draining the chunkserver named by id or address.
    /// A metadata backup (`wire::backup`): the answer, whose body is the
    /// tar stream, read as it comes. Not sent again once it may have
    /// reached the master (each try takes a checkpoint).
    pub async fn backup(&self) -> Result<reqwest::Response, ClientError> {
        let path = endpoint::url::<ep::Backup>("", &(), &()).map_err(|e| ClientError::new(ErrorKind::EINVAL, e.to_string()))?;
        let timeout = Some(BACKUP_TIMEOUT);
        self.send_signed(false, Call { method: Method::Get, path, json: None, signed: true, session: None, call_id: None, timeout }).await
    }

    pub async fn decommission(&self, node: &str, on: bool) -> Result<Done, ClientError> {
        let req = NodeRequest { node: node.to_string() };
        match on {
            true => self.post::<ep::Decommission>(&req).await,
            false => self.post::<ep::Recommission>(&req).await,
        }
    }
}

/// Most logins for one call (see `send_signed`).
const MAX_LOGINS: usize = 3;

/// Most leaders followed at once, without a pause, in one call.
const MAX_HOPS: usize = 7;

/// How long a backup may take to arrive whole (the client's request
/// timeout would cut a large one short).
const BACKUP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long a mutation named by a call id is sent again: well inside the
/// master's retry window (10 minutes), after which a late retry would
/// run again, on whatever the path holds then.
const RETRY_LIMIT: Duration = Duration::from_secs(300);

/// A new call id: 128 random bits in hex (two request-id draws).
fn new_call_id() -> String {
    format!("{}{}", RequestId::fresh().as_str(), RequestId::fresh().as_str())
}

/// How a call takes a successful answer.
trait Answer: Sized + Send {
    fn from_async(resp: reqwest::Response) -> impl std::future::Future<Output = Result<Self, ClientError>> + Send;
    fn from_blocking(body: Vec<u8>) -> Result<Self, ClientError>;
}

/// A JSON answer, decoded.
struct Json<T>(T);

impl<T: DeserializeOwned + Send> Answer for Json<T> {
    async fn from_async(resp: reqwest::Response) -> Result<Self, ClientError> {
        resp.json().await.map(Json).map_err(ClientError::from)
    }

    fn from_blocking(body: Vec<u8>) -> Result<Self, ClientError> {
        serde_json::from_slice(&body).map(Json).map_err(|e| ClientError::new(ErrorKind::EIO, format!("decoding the master's answer: {e}")))
    }
}

/// The answer itself, its body to be read as it comes (async calls only).
impl Answer for reqwest::Response {
    async fn from_async(resp: reqwest::Response) -> Result<Self, ClientError> {
        Ok(resp)
    }

    fn from_blocking(_: Vec<u8>) -> Result<Self, ClientError> {
        Err(ClientError::new(ErrorKind::EINVAL, "a streamed answer needs an async client"))
    }
}

/// A follower's refusal: a 503 with [`HEADER_LEADER`] naming the leader
/// (empty when it knows none yet).
fn redirect_of(status: u16, leader: Option<&str>) -> Option<Unanswered> {
    leader.filter(|_| status == 503).map(Unanswered::redirect)
}

/// The master refused the session (not the request): log in again.
fn is_session_refusal(e: &ClientError) -> bool {
    matches!(e.kind, ErrorKind::EKEYEXPIRED | ErrorKind::EKEYREJECTED) && (e.message.contains("session") || e.message.contains("x-dfs-session"))
}

async fn attempt_async<T: Answer>(
    http: &reqwest::Client,
    url: &str,
    call: &Call,
    headers: &[(&'static str, String)],
    id: &RequestId,
) -> Result<Result<T, ClientError>, Unanswered> {
    let request = match &call.json {
        Some(json) => http.request(reqwest_method(call.method), url).header(reqwest::header::CONTENT_TYPE, "application/json").body(json.clone()),
        None => http.request(reqwest_method(call.method), url),
    };
    let request = headers.iter().fold(request, |r, (name, value)| r.header(*name, value));
    let request = match call.timeout {
        Some(t) => request.timeout(t),
        None => request,
    };
    match request.header(HEADER_REQUEST_ID, id.as_str()).send().await {
        Ok(resp) if resp.status().is_success() => Ok(T::from_async(resp).await),
        Ok(resp) => match redirect_of(resp.status().as_u16(), resp.headers().get(HEADER_LEADER).and_then(|v| v.to_str().ok())) {
            Some(redirect) => Err(redirect),
            // The master's messages name what they are about.
            None => Ok(Err(from_response("", resp).await)),
        },
        // An untrusted certificate is not a master restarting: no retry.
        Err(e) if crate::error::is_tls_refusal(&e) => Err(Unanswered::lost(crate::error::chain(&e), false, false)),
        Err(e) => Err(Unanswered::lost(e.to_string(), e.is_connect(), e.is_timeout() || e.is_request())),
    }
}

fn reqwest_method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
    }
}

fn attempt_blocking<T: Answer>(
    agent: &ureq::Agent,
    url: &str,
    call: &Call,
    headers: &[(&'static str, String)],
    id: &RequestId,
) -> Result<Result<T, ClientError>, Unanswered> {
    let request = agent.request(call.method.as_str(), url).set(HEADER_REQUEST_ID, id.as_str());
    let request = headers.iter().fold(request, |r, (name, value)| r.set(name, value));
    let sent = match &call.json {
        Some(json) => request.set("content-type", "application/json").send_bytes(json),
        None => request.call(),
    };
    let body = |resp: ureq::Response| {
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).map(|_| body)
    };
    match sent {
        Ok(resp) => Ok(body(resp).map_err(|e| ClientError::new(ErrorKind::EIO, format!("reading the master's answer: {e}"))).and_then(T::from_blocking)),
        Err(ureq::Error::Status(code, resp)) => match redirect_of(code, resp.header(HEADER_LEADER)) {
            Some(redirect) => Err(redirect),
            None => {
                let error = body(resp).ok().and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok());
                Ok(Err(error.map_or_else(|| ClientError::new(ErrorKind::EIO, format!("HTTP {code}")), ClientError::from)))
            }
        },
        Err(ureq::Error::Transport(t)) if crate::error::is_tls_refusal(&t) => Err(Unanswered::lost(crate::error::chain(&t), false, false)),
        Err(ureq::Error::Transport(t)) => {
            let nothing_sent = matches!(t.kind(), ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns);
            Err(Unanswered::lost(t.to_string(), nothing_sent, true))
        }
    }
}
