//! Every endpoint of the master and the chunkserver, declared once: method,
//! route, path parameter, query, request body, answer, error and who may
//! call it. The servers route by these declarations (`dfs_server_kit::http::
//! route`) and the clients build their URLs with [`url`], so a route or a
//! query string is spelled in this module and nowhere else.
//!
//! - [`master`]: the namespace, chunk and admin API, the chunkservers'
//!   heartbeat, the dashboard and its JSON.
//! - [`chunkserver`]: chunk data, replica commands, status and downloads.

pub mod chunkserver;
pub mod master;
pub mod raft;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::ids::{ChunkHandle, InodeId};

/// Where the JSON APIs live: an unknown path under it answers a JSON
/// error, elsewhere an HTML page (a browser's).
pub const API_PREFIX: &str = "/v1/";

/// The HTTP methods of the APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }

    /// Whether sending the request twice is harmless (a client may retry
    /// it after an answer was lost).
    pub fn idempotent(self) -> bool {
        self == Method::Get
    }
}

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the listener; the handler checks what it needs
    /// (a chunk token, a signature when one is sent).
    Public,
    /// Only the cluster's own daemons: the request must carry a signature
    /// by the cluster key, which the server checks before the handler runs.
    Internal,
    /// A logged-in user: the request must be signed under a session
    /// (`auth::user`), checked before the handler runs, which then acts
    /// with that user's permissions.
    User,
    /// A logged-in user with the admin role.
    Admin,
}

/// A body that is not JSON: the bytes of a chunk or a file, streamed.
#[derive(Clone, Copy, Debug)]
pub struct RawBytes;
/// An HTML page (failures are HTML pages too).
#[derive(Clone, Copy, Debug)]
pub struct HtmlPage;
/// Prometheus text exposition.
#[derive(Clone, Copy, Debug)]
pub struct MetricsText;
/// A redirect to where the answer is (`303 See Other` with `Location`).
#[derive(Clone, Copy, Debug)]
pub struct Redirect;

/// One endpoint. Implemented by unit types through [`endpoints!`], so the
/// declaration reads like a table.
pub trait Endpoint {
    const METHOD: Method;
    /// The route as the server matches it: a `{name}` segment is the path
    /// parameter (at most one).
    const ROUTE: &'static str;
    const ACCESS: Access;
    /// The path parameter: `()` for none.
    type Path: PathParam;
    /// The query string: `()` for none.
    type Query: Serialize;
    /// The request body: `()` for none, a JSON type, or [`RawBytes`].
    type Request;
    /// A success's body: a JSON type, [`RawBytes`], [`HtmlPage`],
    /// [`MetricsText`] or [`Redirect`].
    type Response;
    /// A failure's body: [`crate::ErrorBody`] (`{"error", "message"}`,
    /// status from the kind) unless the endpoint says otherwise.
    type Error;
}

/// A path parameter: fills the `{NAME}` segment of a route.
pub trait PathParam {
    /// The segment's name in the route, `None` for `()`.
    const NAME: Option<&'static str>;
    fn segment(&self) -> String;
}

impl PathParam for () {
    const NAME: Option<&'static str> = None;
    fn segment(&self) -> String {
        String::new()
    }
}

impl PathParam for ChunkHandle {
    const NAME: Option<&'static str> = Some("handle");
    fn segment(&self) -> String {
        self.0.to_string()
    }
}

impl PathParam for InodeId {
    const NAME: Option<&'static str> = Some("id");
    fn segment(&self) -> String {
        self.0.to_string()
    }
}

/// A query that could not be written as a query string (a nested value):
/// a bug in a query type, never a user's input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("encoding the query of {route}: {reason}")]
pub struct QueryError {
    pub route: &'static str,
    pub reason: String,
}

/// The path of `E` with its parameter filled in, without a query.
pub fn path<E: Endpoint>(param: &E::Path) -> String {
    match <E::Path as PathParam>::NAME {
        None => E::ROUTE.to_string(),
        Some(name) => E::ROUTE.replacen(&format!("{{{name}}}"), &param.segment(), 1),
    }
}

/// The path and query of `E` (what goes after the host).
pub fn path_and_query<E: Endpoint>(param: &E::Path, query: &E::Query) -> Result<String, QueryError> {
    let form = serde_urlencoded::to_string(query).map_err(|e| QueryError { route: E::ROUTE, reason: e.to_string() })?;
    let q = readable(&form);
    let p = path::<E>(param);
    Ok(match q.is_empty() {
        true => p,
        false => format!("{p}?{q}"),
    })
}

/// A form-encoded query in the RFC 3986 style people read in links: `%20`
/// for a space, `/` and `~` as they are, `*` escaped. Each decodes to the
/// same text (a `+`, `/` or `~` of the text itself was escaped by the form
/// encoding, so none is mistaken).
fn readable(form: &str) -> String {
    form.replace('+', "%20").replace("%2F", "/").replace("%7E", "~").replace('*', "%2A")
}

/// The full URL of `E` at `base` (`http://host:port`, a trailing `/` is
/// ignored).
pub fn url<E: Endpoint>(base: &str, param: &E::Path, query: &E::Query) -> Result<String, QueryError> {
    Ok(format!("{}{}", base.trim_end_matches('/'), path_and_query::<E>(param, query)?))
}

/// The URL of an endpoint that takes no query (it cannot fail).
pub fn url_no_query<E: Endpoint<Query = ()>>(base: &str, param: &E::Path) -> String {
    format!("{}{}", base.trim_end_matches('/'), path::<E>(param))
}

/// One row of an API's table of endpoints, for checks over all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    pub name: &'static str,
    pub method: Method,
    pub route: &'static str,
    pub access: Access,
    pub param: Option<&'static str>,
}

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.method.as_str(), self.route)
    }
}

/// Declares endpoints as unit types, and `ALL`, the table of them:
///
/// ```text
/// endpoints! {
///     /// Doc.
///     Name: POST "/v1/route/{handle}", Public, Path = ChunkHandle, Query = (), Request = Body, Response = Answer;
/// }
/// ```
///
/// `Error = T;` may follow the response; it is [`crate::ErrorBody`] otherwise.
macro_rules! endpoints {
    ($(
        $(#[$doc:meta])*
        $name:ident: $method:ident $route:literal, $access:ident,
            Path = $path:ty, Query = $query:ty, Request = $req:ty, Response = $resp:ty $(, Error = $err:ty)?;
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $name;

            impl $crate::endpoint::Endpoint for $name {
                const METHOD: $crate::endpoint::Method = endpoints!(@method $method);
                const ROUTE: &'static str = $route;
                const ACCESS: $crate::endpoint::Access = $crate::endpoint::Access::$access;
                type Path = $path;
                type Query = $query;
                type Request = $req;
                type Response = $resp;
                type Error = endpoints!(@error $($err)?);
            }
        )*

        /// Every endpoint of this API.
        pub const ALL: &[$crate::endpoint::Declared] = &[$(
            $crate::endpoint::Declared {
                name: stringify!($name),
                method: endpoints!(@method $method),
                route: $route,
                access: $crate::endpoint::Access::$access,
                param: <$path as $crate::endpoint::PathParam>::NAME,
            },
        )*];
    };
    (@method GET) => { $crate::endpoint::Method::Get };
    (@method POST) => { $crate::endpoint::Method::Post };
    (@method PUT) => { $crate::endpoint::Method::Put };
    (@error) => { $crate::error::ErrorBody };
    (@error $err:ty) => { $err };
}
use endpoints;
