//! The HTTP edge shared by the daemons: an error type that
//! answers with a status and `{"error", "message"}`, JSON/query extractors
//! whose rejections are such errors, the daemons' common `main`, the server
//! loop with its limits against hostile clients ([`serve`]), the span and
//! id each request is served under ([`request_id`]), the signing and
//! checking of internal requests ([`internal`]), and routing by endpoint
//! declarations ([`route`]).

pub mod call;
pub mod daemon;
pub mod error;
pub mod extract;
pub mod html;
pub mod idle;
pub mod internal;
pub mod metrics;
pub mod request_id;
pub mod route;
pub mod serve;
pub mod webhdfs;

pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
