//! A thin JSON client for the master's API that keeps the HTTP status, so
//! tests can assert on error answers as well as on successes.

use serde::Serialize;
use serde_json::Value;

/// Signs as the first admin of the master (when this process started it;
/// [`Api::anonymous`] does not), logging in at the first call.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    login: Option<(std::sync::Arc<dfs_client::auth::Login>, dfs_client::Client)>,
}

/// An answer: HTTP status and JSON body (Null if the body was not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The error kind of an error answer ("ENOENT"...), or "" for a success.
    pub fn kind(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self::with_login(base, crate::login(base))
    }

    /// An API client that signs nothing.
    pub fn anonymous(base: &str) -> Self {
        // Trusts the tests' cluster CA (see `dfs_tests::tls`): first, as
        // the process's first client fixes its trust.
        crate::tls::ca_dir();
        let http = dfs_client::tls::reqwest_builder().pool_max_idle_per_host(64).build().expect("http client");
        Api { base: base.trim_end_matches('/').to_string(), http, login: None }
    }

    /// An API client that logs in with `credentials`.
    pub fn as_user(base: &str, credentials: dfs_client::auth::Credentials) -> Self {
        Self::with_login(base, dfs_client::auth::Login::new(Some(credentials)))
    }

    fn with_login(base: &str, login: std::sync::Arc<dfs_client::auth::Login>) -> Self {
        let api = Self::anonymous(base);
        let client = dfs_client::Client::with_login(base, dfs_client::DataConfig::default(), login.clone());
        Api { login: Some((login, client)), ..api }
    }

    /// POST with more headers (signed along with the request).
    pub async fn post_with<T: Serialize + ?Sized>(&self, path: &str, body: &T, headers: &[(&str, &str)]) -> reqwest::Result<Reply> {
        let req = headers.iter().fold(self.http.post(format!("{}{path}", self.base)).json(body), |r, (n, v)| r.header(*n, *v));
        self.send(req.build()?).await
    }

    /// The same signed POST sent twice (a replay).
    pub async fn post_twice<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::Result<(Reply, Reply)> {
        self.twice(self.http.post(format!("{}{path}", self.base)).json(body).build()?).await
    }

    /// The head (request line and headers, no blank line) of a signed JSON
    /// request carrying `body`, for a raw socket that sends the head alone
    /// (see `insider::raw_request`): how a test sees the answer to a body
    /// the master refuses unread, which a whole-body client may miss when
    /// the master closes while it still writes.
    pub async fn signed_head(&self, method: &str, path: &str, body: Vec<u8>) -> String {
        let len = body.len();
        let req = self.http.request(method.parse().expect("method"), format!("{}{path}", self.base)).header("content-type", "application/json").body(body);
        let req = self.signed(req.build().expect("request")).await;
        let headers: String = req.headers().iter().map(|(n, v)| format!("{n}: {}\r\n", v.to_str().unwrap_or(""))).collect();
        format!("{method} {path} HTTP/1.1\r\n{headers}content-length: {len}")
    }

    /// A request of `method` to `path` (a JSON `{}` body unless a GET) with
    /// more `headers`, signed if this client logs in.
    pub async fn request_with(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Result<Reply> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            m => self.http.request(m.parse().unwrap_or(reqwest::Method::POST), url).header("content-type", "application/json").body("{}"),
        };
        self.send(headers.iter().fold(req, |r, (n, v)| r.header(*n, *v)).build()?).await
    }

    /// A request of `method` to `path` (a JSON `{}` body unless a GET), signed and sent twice.
    pub async fn send_twice(&self, method: &str, path: &str) -> reqwest::Result<(Reply, Reply)> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            m => self.http.request(m.parse().unwrap_or(reqwest::Method::POST), url).header("content-type", "application/json").body("{}"),
        };
        self.twice(req.build()?).await
    }

    async fn twice(&self, req: reqwest::Request) -> reqwest::Result<(Reply, Reply)> {
        let req = self.signed(req).await;
        let again = req.try_clone().expect("a JSON body clones");
        let first = Self::reply(self.http.execute(req).await?).await?;
        Ok((first, Self::reply(self.http.execute(again).await?).await?))
    }

    /// Sends `req` signed (after logging in, when needed); a session the
    /// master no longer knows (it restarted) is replaced once.
    async fn send(&self, req: reqwest::Request) -> reqwest::Result<Reply> {
        let again = req.try_clone();
        let reply = Self::reply(self.http.execute(self.signed(req).await).await?).await?;
        let stale = reply.status == 401 && reply.body["message"].as_str().is_some_and(|m| m.contains("session has expired"));
        match (stale, again, &self.login) {
            (true, Some(req), Some((login, _))) => {
                login.end();
                Self::reply(self.http.execute(self.signed(req).await).await?).await
            }
            _ => Ok(reply),
        }
    }

    async fn signed(&self, mut req: reqwest::Request) -> reqwest::Request {
        if let Some((login, client)) = &self.login {
            sign_as(login, client, &mut req).await;
        }
        req
    }

    pub async fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::Result<Reply> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body).build()?).await
    }

    /// POST of raw bytes, with the JSON content type (for malformed-input tests).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> reqwest::Result<Reply> {
        self.send(self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body).build()?).await
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Result<Reply> {
        self.send(self.http.get(format!("{}{path_and_query}", self.base)).build()?).await
    }

    /// GET with query parameters encoded properly.
    pub async fn get_query(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Result<Reply> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query).build()?).await
    }

    async fn reply(resp: reqwest::Response) -> reqwest::Result<Reply> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }
}

/// The dashboard session cookie of the first admin of the master at
/// `url` (when this process started it), from a login at `/login`.
pub async fn dashboard_cookie(url: &str) -> Option<String> {
    let base: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let credentials = dfs_client::auth::Credentials::load(&crate::process::credentials_of(&base)?).ok()?;
    dashboard_login(&base, &credentials.user, &credentials.secret_hex()).await.ok()
}

/// Logs in at `/login` with a user's name and secret: the cookie, or the refusal's status.
pub async fn dashboard_login(base: &str, user: &str, secret: &str) -> Result<String, u16> {
    crate::tls::ca_dir();
    let http = dfs_client::tls::reqwest_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = serde_urlencoded::to_string([("user", user), ("secret", secret), ("next", "/")]).unwrap_or_default();
    let r = http.post(format!("{base}/login")).header("content-type", "application/x-www-form-urlencoded").body(form).send().await.map_err(|_| 0u16)?;
    if r.status().as_u16() != 303 {
        return Err(r.status().as_u16());
    }
    let cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).ok_or(0u16)?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

/// Signs `req` under `login`'s session (logging in through `client` first
/// when there is none), acting for the user its `x-dfs-act-as` names.
pub async fn sign_as(login: &dfs_client::auth::Login, client: &dfs_client::Client, req: &mut reqwest::Request) {
    if !login.logged_in() {
        let _ = client.master().whoami().await;
    }
    let pq = match req.url().query() {
        Some(q) => format!("{}?{q}", req.url().path()),
        None => req.url().path().to_string(),
    };
    let body = req.body().and_then(|b| b.as_bytes()).map(<[u8]>::to_vec);
    let act_as = req.headers().get("x-dfs-act-as").and_then(|v| v.to_str().ok()).and_then(|v| dfs_client::auth::ActAs::parse(v).ok());
    let call = req.headers().get("x-dfs-call").and_then(|v| v.to_str().ok()).map(str::to_string);
    let sign = || login.sign_call(req.method().as_str(), &pq, body.as_deref(), call.as_deref());
    let headers = match act_as {
        Some(who) => dfs_client::auth::acting_as(who, sign),
        None => sign(),
    };
    for (name, value) in headers {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
            req.headers_mut().insert(name, v);
        }
    }
}
