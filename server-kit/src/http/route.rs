//! Routing by the endpoint declarations of `dfs_proto::endpoint`: a server
//! names the endpoint and its handler; the route and the method come from
//! the declaration, and an internal endpoint gets the signature check
//! ([`require_signed`]) before its handler runs, so a route cannot drift
//! from what clients call, nor an internal one be left open.

use std::sync::Arc;

use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use dfs_proto::endpoint::{Access, Declared, Endpoint, Method};
use dfs_proto::ErrorBody;
use tower::ServiceExt;

use super::error::NO_SUCH_ENDPOINT;
use super::internal::{require_signed, ClusterAuth};

/// The axum filter of a declared method.
pub fn filter(m: Method) -> MethodFilter {
    match m {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
    }
}

/// Puts a server's user check on a method router of an endpoint for
/// users ([`Access::User`] or [`Access::Admin`], given).
pub type UserGuard<S> = Arc<dyn Fn(MethodRouter<S>, Access) -> MethodRouter<S> + Send + Sync>;

/// A router being built from endpoint declarations.
pub struct Routes<S> {
    router: Router<S>,
    auth: Arc<ClusterAuth>,
    users: Option<UserGuard<S>>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// `auth` checks the signatures of internal endpoints.
    pub fn new(auth: Arc<ClusterAuth>) -> Self {
        Routes { router: Router::new(), auth, users: None }
    }

    /// `guard` checks the callers of endpoints for users.
    pub fn with_users(mut self, guard: UserGuard<S>) -> Self {
        self.users = Some(guard);
        self
    }

    /// Serves `E` with `handler`.
    pub fn serve<E: Endpoint, H: Handler<T, S>, T: 'static>(self, handler: H) -> Self {
        self.serve_with::<E, H, T>(handler, |m| m)
    }

    /// Serves `E` with `handler`, its method router passed through `wrap`
    /// first (a layer of its own: a body limit, a different check).
    pub fn serve_with<E: Endpoint, H: Handler<T, S>, T: 'static>(mut self, handler: H, wrap: impl FnOnce(MethodRouter<S>) -> MethodRouter<S>) -> Self {
        let mut method = wrap(on(filter(E::METHOD), handler));
        match E::ACCESS {
            Access::Public => {}
            Access::Internal => method = method.route_layer(from_fn_with_state(self.auth.clone(), require_signed)),
            Access::User | Access::Admin => {
                // A router built without one is a bug found by the first test.
                let guard = self.users.as_ref().unwrap_or_else(|| panic!("{} is for users, and this router has no user check", E::ROUTE));
                method = guard(method, E::ACCESS);
            }
        }
        // Two endpoints on one route (GET and PUT of chunk data) merge.
        self.router = self.router.route(E::ROUTE, method);
        self
    }

    /// Everything else a router does (fallbacks, layers, state).
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// The endpoints of `api` that `app` does not serve as declared: a route
/// or method the router lacks (the fallback answers), or one for the
/// cluster or for users that runs without a signature. Each is sent once, unsigned and with an
/// empty body, its path parameter `1`: a refusal by the handler is fine,
/// an answer from the fallback or a success of an internal one is not.
pub async fn undeclared_behaviour(app: Router, api: &[Declared]) -> Vec<String> {
    let mut wrong = Vec::new();
    for e in api {
        let uri = match e.param {
            Some(name) => e.route.replacen(&format!("{{{name}}}"), "1", 1),
            None => e.route.to_string(),
        };
        let request = axum::http::Request::builder().method(e.method.as_str()).uri(&uri).body(axum::body::Body::empty());
        let Ok(request) = request else {
            wrong.push(format!("{e}: not a valid request"));
            continue;
        };
        let Ok(answer) = app.clone().oneshot(request).await;
        let status = answer.status().as_u16();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap_or_default();
        // A handler's own 404 is a JSON error about something else.
        let handlers_404 = serde_json::from_slice::<ErrorBody>(&body).is_ok_and(|b| b.message != NO_SUCH_ENDPOINT);
        let fell_through = status == 405 || (status == 404 && !handlers_404);
        if fell_through {
            wrong.push(format!("{e}: not routed ({status})"));
        } else if e.access != Access::Public && status != 401 {
            wrong.push(format!("{e}: answered {status} to an unsigned call"));
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use dfs_proto::auth::{ClusterKey, KeyRing};
    use dfs_proto::endpoint::chunkserver::{ReadData, ReplicaInfo, WriteData};

    use super::*;

    fn app() -> Router {
        let ring = KeyRing::single(ClusterKey::generate());
        Routes::new(ClusterAuth::fixed(ring))
            .serve::<ReadData, _, _>(|| async { "read" })
            .serve::<WriteData, _, _>(|| async { "written" })
            .serve::<ReplicaInfo, _, _>(|| async { "info" })
            .into_router()
    }

    async fn answer(method: &str, uri: &str) -> (StatusCode, String) {
        let r = app().oneshot(Request::builder().method(method).uri(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn routes_and_methods_come_from_the_declarations() {
        assert_eq!(answer("GET", "/v1/chunks/1/data").await, (StatusCode::OK, "read".into()));
        assert_eq!(answer("PUT", "/v1/chunks/1/data").await, (StatusCode::OK, "written".into()));
        assert_eq!(answer("POST", "/v1/chunks/1/data").await.0, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn a_missing_route_or_an_open_internal_one_is_found() {
        use dfs_proto::endpoint::chunkserver::{Fsync, ALL};
        let declared: Vec<Declared> = ALL.iter().filter(|e| [ReadData::ROUTE, ReplicaInfo::ROUTE].contains(&e.route)).copied().collect();
        assert!(undeclared_behaviour(app(), &declared).await.is_empty());
        let fsync: Vec<Declared> = ALL.iter().filter(|e| e.route == Fsync::ROUTE).copied().collect();
        assert_eq!(undeclared_behaviour(app(), &fsync).await.len(), 1, "fsync is not served by the test router");
        let open =
            Routes::new(ClusterAuth::fixed(KeyRing::single(ClusterKey::generate()))).serve_with::<ReplicaInfo, _, _>(|| async { "info" }, |m| m).into_router();
        let info: Vec<Declared> = ALL.iter().filter(|e| e.route == ReplicaInfo::ROUTE).copied().collect();
        assert!(undeclared_behaviour(open, &info).await.is_empty(), "add_with keeps the signature check");
    }

    #[tokio::test]
    async fn an_internal_endpoint_refuses_an_unsigned_call() {
        let (status, body) = answer("GET", "/v1/chunks/1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(!body.contains("info"), "{body}");
    }
}
