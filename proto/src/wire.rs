//! Request and response types of the HTTP/JSON APIs. Only this module defines
//! wire types; servers and clients both use these.
//!
//! - `backup`: a metadata backup's manifest and its checks.
//! - `chunks`, `namespace`: the bodies, queries and headers of each API.
//! - `dashboard`: the master dashboard's JSON and the queries of its pages.
//! - `users`: user management and the caller's identity.
//! - `xattrs`: extended attributes.
//! - `request_id`: the id that follows one client operation through every
//!   daemon's log (`x-dfs-request-id`).

pub mod backup;
pub mod chunks;
pub mod dashboard;
pub mod namespace;
pub mod request_id;
pub mod users;
pub mod xattrs;
