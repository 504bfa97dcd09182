//! Cluster trust: who may talk to whom inside a cluster.
//!
//! - [`keys`]: the cluster key file (a ring of named secrets) and its reloading.
//! - [`signature`]: HMAC signatures of internal requests and of their answers.
//! - [`replay`]: the nonces of recent signed requests, so none is accepted twice.
//! - [`token`]: chunk tokens the master grants clients, checked by chunkservers.
//! - [`user`]: users' credentials, sessions and request signatures.
//! - [`secret_file`]: creating a file that holds a secret, private and durable.

pub mod delegation;
pub mod keys;
pub mod replay;
pub mod sealed;
pub mod secret_file;
pub mod signature;
pub mod token;
pub mod user;

pub use keys::{ClusterKey, KeyError, KeyRing, KeySource};
pub use signature::{AuthError, BodyDigest, Verified};
pub use token::{ChunkToken, Ops, TokenError, TokenKey, TokenKeyInfo, TokenVerifier};

/// Milliseconds since the Unix epoch, for signatures and token expiry.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
