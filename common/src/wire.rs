//! Request and response types of the HTTP/JSON API. Only this module defines
//! wire types; servers and clients both use these.

pub mod namespace;
