//! Internal endpoints, both ends: [`ClusterAuth`] signs the requests a
//! daemon sends to its peers (reqwest) and checks the signatures of those
//! it receives (axum), with the cluster key and a replay cache.
//!
//! Routes only nodes of the cluster may call sit behind [`require_signed`];
//! handlers that stream bodies (data writes) call [`ClusterAuth::verify_parts`]
//! themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use dfs_proto::auth::signature::{self, RequestView, HEADER_AUTH, HEADER_REPLY_AUTH};
use dfs_proto::auth::{unix_ms, AuthError, BodyDigest, KeyRing, KeySource, Verified};
use dfs_proto::ErrorKind;

/// Largest body of a signed request read by [`require_signed`] (a full
/// chunk report of about four million replicas); only nodes holding the
/// key get this far.
pub const SIGNED_BODY_MAX_BYTES: usize = 256 << 20;
/// How often the key file is checked for changes.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// A daemon's cluster key and the nonces it has accepted.
pub struct ClusterAuth {
    keys: Arc<KeySource>,
    replay: dfs_proto::auth::replay::ReplayCache,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let kind = match e {
            AuthError::Busy => ErrorKind::EAGAIN,
            AuthError::Skew { .. } => ErrorKind::EKEYEXPIRED,
            _ => ErrorKind::EKEYREJECTED,
        };
        ApiError::new(kind, e.to_string())
    }
}

fn header_fn(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

impl ClusterAuth {
    pub fn new(keys: Arc<KeySource>) -> Arc<Self> {
        Arc::new(ClusterAuth { keys, replay: Default::default() })
    }

    /// Keys held in memory (tests).
    pub fn fixed(ring: KeyRing) -> Arc<Self> {
        Self::new(Arc::new(KeySource::fixed(ring)))
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.keys.current()
    }

    /// Checks a request's signature, clock and nonce (not its body).
    pub fn verify_parts(&self, parts: &Parts) -> Result<Verified, ApiError> {
        self.verify_head(parts.method.as_str(), parts.uri.path_and_query().map_or("/", |p| p.as_str()), &parts.headers)
    }

    fn verify_head(&self, method: &str, path_and_query: &str, headers: &HeaderMap) -> Result<Verified, ApiError> {
        let header = header_fn(headers);
        let view = RequestView { method, path_and_query, header: &header };
        let value = headers.get(HEADER_AUTH).map(|v| v.to_str().unwrap_or("?"));
        let now = unix_ms();
        let verified = signature::verify_request(&self.ring(), now, value, &view)?;
        self.replay.check(verified.nonce, verified.ts_ms, now)?;
        Ok(verified)
    }

    /// Signs a request about to be sent (its body, when it has bytes; a
    /// streamed body goes unsigned and only routes that allow it take it).
    pub fn sign(&self, req: &mut reqwest::Request) {
        let (body, length) = match req.body().and_then(|b| b.as_bytes()) {
            Some(bytes) => (BodyDigest::of(bytes), Some(bytes.len())),
            None if req.body().is_none() => (BodyDigest::of(b""), None),
            None => (BodyDigest::Unsigned, None),
        };
        // The length is a covered header, but reqwest adds it only as it
        // sends: set it now, as the receiver will see it.
        if let Some(length) = length {
            req.headers_mut().entry(reqwest::header::CONTENT_LENGTH).or_insert_with(|| HeaderValue::from(length));
        }
        let pq = match req.url().query() {
            Some(q) => format!("{}?{q}", req.url().path()),
            None => req.url().path().to_string(),
        };
        let value = {
            let headers = req.headers();
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let view = RequestView { method: req.method().as_str(), path_and_query: &pq, header: &header };
            signature::sign_request(&self.ring(), unix_ms(), &view, body)
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            req.headers_mut().insert(HEADER_AUTH, v);
        }
    }

    /// Builds, signs and sends a request, with the id of the request this
    /// task serves (if any and if not set already), so the peer's log lines
    /// for it name the same operation.
    pub async fn send(&self, http: &reqwest::Client, builder: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        let mut req = builder.build()?;
        if let Some(id) = super::request_id::current().and_then(|id| HeaderValue::from_str(id.as_str()).ok()) {
            req.headers_mut().entry(super::request_id::HEADER_REQUEST_ID).or_insert(id);
        }
        self.sign(&mut req);
        http.execute(req).await
    }

    /// Checks that `body` (with `status`) is the signed answer to the
    /// request whose signature header was `request_auth`.
    pub fn verify_answer(&self, request_auth: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        let nonce = signature::nonce_of(request_auth).ok_or_else(|| AuthError::Malformed("request was not signed".into()))?;
        let value = headers.get(HEADER_REPLY_AUTH).and_then(|v| v.to_str().ok());
        signature::verify_reply(&self.ring(), &nonce, status, body, value)
    }

    /// The header signing an answer to a verified request.
    pub fn reply_header(&self, request: &Verified, status: u16, body: &[u8]) -> (&'static str, HeaderValue) {
        let value = signature::sign_reply(&self.ring(), &request.nonce, status, body);
        (HEADER_REPLY_AUTH, HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")))
    }

    /// Re-reads the key file when it changes, for as long as the daemon
    /// runs: keys rotate without a restart. Logs key ids, never secrets.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let auth = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
                let Some(auth) = auth.upgrade() else { return };
                let keys = auth.keys.clone();
                match tokio::task::spawn_blocking(move || keys.reload_if_changed()).await {
                    Ok(Ok(Some(ids))) => tracing::info!(keys = ?ids, signing = %ids[0], "cluster key file changed; keys reloaded"),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "cluster key file changed but cannot be used; keeping the old keys"),
                    Err(e) => tracing::error!(error = %e, "reloading the cluster key file failed"),
                }
            }
        })
    }
}

/// Middleware for routes only the cluster's nodes may call:
/// `.route_layer(axum::middleware::from_fn_with_state(auth, require_signed))`.
/// Refuses (401, JSON) before reading the body unless the signature holds,
/// then reads the body and checks it against the signed digest. Handlers
/// find the [`Verified`] signature in the request's extensions.
pub async fn require_signed(State(auth): State<Arc<ClusterAuth>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let verified = match auth.verify_parts(&parts) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, SIGNED_BODY_MAX_BYTES).await {
        Ok(b) => b,
        Err(e) => return ApiError::new(ErrorKind::EINVAL, format!("reading the body: {e}")).into_response(),
    };
    if verified.body != BodyDigest::of(&bytes) {
        return ApiError::from(AuthError::BodyMismatch).into_response();
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(verified);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use dfs_proto::auth::ClusterKey;
    use tower::ServiceExt;

    fn app(auth: Arc<ClusterAuth>) -> Router {
        Router::new().route("/v1/x", post(|body: String| async move { body })).route_layer(axum::middleware::from_fn_with_state(auth, require_signed))
    }

    /// A reqwest request, signed, turned into an axum one.
    fn signed(auth: &ClusterAuth, body: &'static str, tamper: Option<&'static str>) -> Request {
        let mut r = reqwest::Client::new().post("http://node/v1/x?a=1").body(body).build().unwrap();
        auth.sign(&mut r);
        let mut b = axum::http::Request::builder().method("POST").uri("/v1/x?a=1");
        for (k, v) in r.headers() {
            b = b.header(k, v);
        }
        b.body(Body::from(tamper.unwrap_or(body))).unwrap()
    }

    async fn status(app: Router, req: Request) -> u16 {
        app.oneshot(req).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn signed_requests_pass_once_and_others_get_401() {
        let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let app = app(auth.clone());
        let req = signed(&auth, "hello", None);
        let again: Request = {
            let mut b = axum::http::Request::builder().method("POST").uri("/v1/x?a=1");
            for (k, v) in req.headers() {
                b = b.header(k, v);
            }
            b.body(Body::from("hello")).unwrap()
        };
        assert_eq!(status(app.clone(), req).await, 200);
        assert_eq!(status(app.clone(), again).await, 401, "a replay is refused");
        assert_eq!(status(app.clone(), signed(&auth, "hello", Some("HELLO"))).await, 401, "another body is refused");
        let plain = axum::http::Request::builder().method("POST").uri("/v1/x").body(Body::from("x")).unwrap();
        assert_eq!(status(app.clone(), plain).await, 401);
        let stranger = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        assert_eq!(status(app, signed(&stranger, "hello", None)).await, 401);
    }

    #[tokio::test]
    async fn a_request_signed_and_sent_over_loopback_passes() {
        // Over a real connection the receiver sees headers the sender's
        // reqwest adds as it sends (content-length, a covered header).
        let auth = ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/x?a=1", listener.local_addr().unwrap());
        let app = app(auth.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let r = auth.send(&http, http.post(&url).body("hello")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().await.unwrap(), "hello");
    }
}
