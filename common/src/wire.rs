//! Request and response types of the HTTP/JSON APIs. Only this module defines
//! wire types; servers and clients both use these.

pub mod chunks;
pub mod namespace;
