//! The HTTP edge shared by the daemons (feature `http`): an error type that
//! answers with a status and `{"error", "message"}`, JSON/query extractors
//! whose rejections are such errors, and the daemons' common `main`.

pub mod daemon;
pub mod error;
pub mod extract;
pub mod html;
pub mod metrics;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};
