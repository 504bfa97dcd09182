//! Who looks at the dashboard: a user logged in through `/login` (a
//! session ticket in an HttpOnly, SameSite=Strict cookie that only the
//! dashboard accepts), or, when the master runs with `--dashboard public`,
//! anyone, with the rights of "other". Every dashboard request also names a
//! host this master answers to (an IP address, `localhost`, or one of
//! `--dashboard-hosts`), which stops DNS rebinding; the login form refuses
//! a post from another origin.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use dfs_proto::auth::AuthError;
use dfs_proto::endpoint::master as ep;
use dfs_proto::endpoint::{path_and_query, Endpoint};
use dfs_proto::wire::dashboard::{LoginForm, LoginQuery};
use dfs_server_kit::http::html::{error_page, escape};
use dfs_server_kit::http::{ApiError, ApiQuery};

use super::{frame, NAV, TITLE};
use crate::state::{DashboardAccess, Master};
use crate::store::perms::Who;
use crate::users::{AuthMode, Caller, Proof, Users};

/// The cookie holding a dashboard session.
pub const COOKIE: &str = "dfs_session";

/// What the check before each dashboard endpoint needs.
#[derive(Clone)]
pub struct ViewerGate {
    pub users: Arc<Users>,
    pub access: Arc<DashboardAccess>,
}

/// The host of a `Host` header, without its port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host })
}

/// Whether a request for `host` may be answered: an IP address (no DNS
/// name to rebind), `localhost`, or a configured name.
pub fn host_allowed(host: Option<&str>, hosts: &[String]) -> bool {
    let Some(host) = host else { return false };
    let name = host_name(host);
    name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") || hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn unknown_host(host: Option<&str>) -> Response {
    let message = format!("this master does not answer to the host name {:?}; add it to --dashboard-hosts", host.unwrap_or(""));
    error_page(StatusCode::FORBIDDEN, TITLE, NAV, &message)
}

/// Before each dashboard endpoint: the host check, then the viewer (in
/// the request's extensions), or the way to the login page.
pub async fn require_viewer(State(gate): State<ViewerGate>, mut req: Request, next: Next) -> Response {
    let host = header_str(req.headers(), header::HOST);
    if !host_allowed(host, &gate.access.hosts) {
        return unknown_host(host);
    }
    let signed_in = cookie(req.headers(), COOKIE).map(|c| gate.users.viewer(&c));
    let caller = match signed_in {
        Some(Ok(c)) => c,
        _ if gate.users.mode() == AuthMode::None => Caller { user: "none".into(), who: Who::root(), admin: true, proof: Proof::Session },
        _ if gate.access.public => gate.users.nobody(),
        _ => return login_needed(req.uri()),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// JSON callers get a 401; pages go to the login form, and back after.
fn login_needed(uri: &axum::http::Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        return ApiError::from(AuthError::NoSession).into_response();
    }
    let next = uri.path_and_query().map(|p| p.as_str().to_string());
    let to = path_and_query::<ep::LoginPage>(&(), &LoginQuery { next }).unwrap_or_else(|_| "/login".into());
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Where to go after logging in: a path of this site only (an open
/// redirect would send users elsewhere).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) => n.to_string(),
        _ => "/".to_string(),
    }
}

fn login_page(next: Option<&str>, problem: Option<&str>) -> String {
    let problem = problem.map(|p| format!(r#"<p class="bad">{}</p>"#, escape(p))).unwrap_or_default();
    let body = format!(
        r#"<h2>Log in</h2>{problem}
<form method="post" action="{action}">
<p><label>User <input name="user" autocomplete="username" required></label></p>
<p><label>Secret <input name="secret" type="password" autocomplete="current-password" required></label>
<br><small>the <code>secret</code> line of your credentials file (<code>dfs admin user add</code> printed it)</small></p>
<input type="hidden" name="next" value="{next}">
<p><button type="submit">Log in</button></p>
</form>"#,
        action = escape(ep::LoginForm::ROUTE),
        next = escape(&safe_next(next)),
    );
    frame(&body, "")
}

/// `GET /login`
pub async fn login_form(State(s): State<Master>, headers: HeaderMap, ApiQuery(q): ApiQuery<LoginQuery>) -> Response {
    let host = header_str(&headers, header::HOST);
    if !host_allowed(host, &s.dashboard.hosts) {
        return unknown_host(host);
    }
    Html(login_page(q.next.as_deref(), None)).into_response()
}

/// `POST /login` (a form): the session cookie, and on to `next`.
pub async fn login(State(s): State<Master>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let host = header_str(&headers, header::HOST);
    if !host_allowed(host, &s.dashboard.hosts) {
        return unknown_host(host);
    }
    // A form posted from another site's page (login CSRF) is refused.
    if let Some(origin) = header_str(&headers, header::ORIGIN) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if Some(origin_host) != host {
            return error_page(StatusCode::FORBIDDEN, TITLE, NAV, "a login from another site's page is refused");
        }
    }
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return (StatusCode::BAD_REQUEST, Html(login_page(None, Some("give a user and a secret")))).into_response();
    };
    match s.users.dashboard_login(&form.user, &form.secret) {
        Ok((ticket, caller)) => {
            tracing::info!(user = %caller.user, "dashboard login");
            let cookie = format!("{COOKIE}={ticket}; {}", cookie_attributes(dfs_server_kit::tls::enabled()));
            let to = safe_next(form.next.as_deref());
            let mut answer = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                answer.headers_mut().insert(header::SET_COOKIE, v);
            }
            answer
        }
        Err(e) => {
            tracing::warn!(user = %form.user.chars().take(64).collect::<String>(), error = %e, "dashboard login refused");
            (StatusCode::UNAUTHORIZED, Html(login_page(form.next.as_deref(), Some("unknown user or wrong secret")))).into_response()
        }
    }
}

/// The session cookie's attributes: never readable by scripts nor sent
/// from other sites, and with TLS never sent in plaintext (Secure).
fn cookie_attributes(tls: bool) -> &'static str {
    match tls {
        true => "HttpOnly; SameSite=Strict; Secure; Path=/",
        false => "HttpOnly; SameSite=Strict; Path=/",
    }
}

/// `GET /logout`: forgets the cookie.
pub async fn logout() -> Response {
    let clear = format!("{COOKIE}=; {}; Max-Age=0", cookie_attributes(dfs_server_kit::tls::enabled()));
    (StatusCode::SEE_OTHER, [(header::LOCATION, ep::LoginPage::ROUTE.to_string()), (header::SET_COOKIE, clear)]).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn over_tls_the_cookie_is_secure() {
        assert!(super::cookie_attributes(true).contains("Secure"));
        assert!(!super::cookie_attributes(false).contains("Secure"));
        assert!(super::cookie_attributes(false).contains("HttpOnly"));
    }

    use super::*;

    #[test]
    fn hosts_are_addresses_localhost_or_named() {
        let named = vec!["master.example".to_string()];
        for ok in ["127.0.0.1:9870", "10.1.2.3", "[::1]:80", "localhost:9870", "LOCALHOST", "master.example:9870"] {
            assert!(host_allowed(Some(ok), &named), "{ok}");
        }
        for bad in ["evil.example", "evil.example:9870", "127.0.0.1.evil.example", ""] {
            assert!(!host_allowed(Some(bad), &named), "{bad}");
        }
        assert!(!host_allowed(None, &named));
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/browse?path=/a")), "/browse?path=/a");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "evil", "/\t/evil.example", "/ /evil", "/\n//x"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; dfs_session=v1.x.y; b=2"));
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("v1.x.y"));
    }
}
