//! The HTTP edge shared by the daemons (feature `http`): an error type that
//! answers with a status and `{"error", "message"}`, and JSON/query
//! extractors whose rejections are such errors.

pub mod error;
pub mod extract;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};
