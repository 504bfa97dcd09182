//! Who is asking, on the public data routes: a client holding a chunk
//! token from the master (`x-dfs-token`), a peer whose request is signed
//! with the cluster key (`x-dfs-auth`), or both (a forwarded write carries
//! the client's token and the forwarding node's signature).
//!
//! [`Caller`] is an extractor: a signature that is present must verify (or
//! the request is refused before its body is read); whether a token is
//! needed is the handler's decision, taken before it touches the disk.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dfs_proto::auth::signature::HEADER_AUTH;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::auth::{unix_ms, BodyDigest, ChunkToken, Ops, TokenError, Verified};
use dfs_proto::{ChunkHandle, ChunkVersion, ErrorKind};
use dfs_server_kit::http::ApiError;

use crate::node::Node;

/// The credentials a data request came with.
pub struct Caller {
    /// The request's signature, checked (clock, nonce, key): a peer.
    pub signed: Option<Verified>,
    /// The chunk token, not yet checked (that needs the chunk and version).
    pub token: Option<String>,
}

impl FromRequestParts<Arc<Node>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, n: &Arc<Node>) -> Result<Self, ApiError> {
        let signed = match parts.headers.contains_key(HEADER_AUTH) {
            true => Some(n.auth.verify_parts(parts)?),
            false => None,
        };
        let token = parts.headers.get(HEADER_TOKEN).map(|v| v.to_str().unwrap_or("?").to_string());
        Ok(Caller { signed, token })
    }
}

impl Caller {
    /// Checks the token allows `op` on `handle` at `version` now.
    pub fn token_for(&self, n: &Node, handle: ChunkHandle, version: ChunkVersion, op: Ops) -> Result<ChunkToken, ApiError> {
        n.tokens.verify(self.token.as_deref(), unix_ms(), handle, version, op).map_err(token_error)
    }

    /// A read: a READ token, or a peer's signature (copying a replica).
    pub fn may_read(&self, n: &Node, handle: ChunkHandle, version: ChunkVersion) -> Result<(), ApiError> {
        match self.signed {
            Some(_) => Ok(()),
            None => self.token_for(n, handle, version, Ops::READ).map(|_| ()),
        }
    }

    /// A write: a WRITE token always; a forwarding peer's signature, when
    /// present, covers the headers but not the streamed body.
    pub fn may_write(&self, n: &Node, handle: ChunkHandle, version: ChunkVersion) -> Result<(), ApiError> {
        if self.signed.as_ref().is_some_and(|v| v.body != BodyDigest::Unsigned) {
            return Err(ApiError::new(ErrorKind::EKEYREJECTED, "a forwarded write's body must be signed as UNSIGNED (it is streamed)"));
        }
        self.token_for(n, handle, version, Ops::WRITE).map(|_| ())
    }
}

/// A refused token's answer: 401 when a (new) token from the master may
/// help, 403 when the token is sound but not for this.
pub fn token_error(e: TokenError) -> ApiError {
    let kind = match e {
        TokenError::Missing | TokenError::Malformed | TokenError::BadSignature => ErrorKind::EKEYREJECTED,
        TokenError::UnknownKey(_) | TokenError::Expired => ErrorKind::EKEYEXPIRED,
        TokenError::WrongChunk { .. } | TokenError::WrongOp => ErrorKind::EACCES,
    };
    ApiError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_map_to_the_kinds_clients_act_on() {
        let wrong = TokenError::WrongChunk { token: ChunkHandle(1), token_version: ChunkVersion(1), asked: ChunkHandle(2), asked_version: ChunkVersion(1) };
        for (e, kind) in [
            (TokenError::Missing, ErrorKind::EKEYREJECTED),
            (TokenError::Malformed, ErrorKind::EKEYREJECTED),
            (TokenError::BadSignature, ErrorKind::EKEYREJECTED),
            (TokenError::UnknownKey(3), ErrorKind::EKEYEXPIRED),
            (TokenError::Expired, ErrorKind::EKEYEXPIRED),
            (wrong, ErrorKind::EACCES),
            (TokenError::WrongOp, ErrorKind::EACCES),
        ] {
            assert_eq!(token_error(e).0.error, kind);
        }
    }
}
