//! The namespace layer's error: an errno kind and a message for people.

use dfs_proto::names::NameError;
use dfs_proto::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct NsError {
    pub kind: ErrorKind,
    pub message: String,
}

impl NsError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NsError { kind, message: message.into() }
    }
}

impl From<NameError> for NsError {
    fn from(e: NameError) -> Self {
        NsError { kind: e.kind, message: e.message }
    }
}

impl From<rocksdb::Error> for NsError {
    fn from(e: rocksdb::Error) -> Self {
        NsError::new(ErrorKind::EIO, format!("metadata store: {e}"))
    }
}

/// Shorthand for an error of a given kind.
pub fn fail<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, NsError> {
    Err(NsError::new(kind, message))
}
