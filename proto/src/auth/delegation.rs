//! Delegation tokens as they travel: WebHDFS's `delegation=` (HDFS's
//! delegation tokens, opaque to clients). A token names its id, owner and
//! last possible date, and carries a MAC under the master's stored token
//! key; the master keeps each token's record (expiry, renewer) and honours
//! a token only while its record lives.

use super::sealed::{self, Unsealed};
use super::signature::AuthError;

const FORMAT: &str = "dt1";
const DOMAIN: &str = "dfs-delegation-v1";

/// What a delegation token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationToken {
    pub id: u64,
    pub owner: String,
    pub max_ms: u64,
}

/// Longest token text taken (a user name is short; this bounds the work).
const MAX_TEXT: usize = 512;

impl DelegationToken {
    pub fn seal(&self, key: &[u8; 32]) -> String {
        sealed::seal(key, FORMAT, DOMAIN, &format!("{}\n{}\n{}", self.id, self.owner, self.max_ms))
    }

    /// A token this key sealed (its record and expiry are the master's check).
    pub fn open(key: &[u8; 32], text: &str) -> Result<DelegationToken, AuthError> {
        let malformed = || AuthError::Malformed("the delegation token is malformed".into());
        if text.len() > MAX_TEXT {
            return Err(malformed());
        }
        let body = sealed::open(key, FORMAT, DOMAIN, text).map_err(|e| match e {
            Unsealed::Malformed => malformed(),
            Unsealed::BadMac => AuthError::BadCredentials,
        })?;
        let fields: Vec<&str> = body.split('\n').collect();
        let [id, owner, max_ms] = fields[..] else {
            return Err(malformed());
        };
        Ok(DelegationToken { id: id.parse().map_err(|_| malformed())?, owner: owner.to_string(), max_ms: max_ms.parse().map_err(|_| malformed())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_with_its_key_and_unaltered() {
        let t = DelegationToken { id: 7, owner: "alice".into(), max_ms: 99 };
        let text = t.seal(&[3; 32]);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "URL-safe: {text}");
        assert_eq!(DelegationToken::open(&[3; 32], &text).unwrap(), t);
        assert_eq!(DelegationToken::open(&[4; 32], &text), Err(AuthError::BadCredentials));
        let other = DelegationToken { owner: "mallory".into(), ..t.clone() }.seal(&[4; 32]);
        let (_, mac) = other.rsplit_once('.').unwrap();
        let (head, _) = text.rsplit_once('.').unwrap();
        assert!(DelegationToken::open(&[3; 32], &format!("{head}.{mac}")).is_err());
        for bad in ["", "dt1", "dt1.a.b.c", "dt2.YQ.YQ", &"x".repeat(600)] {
            assert!(DelegationToken::open(&[3; 32], bad).is_err(), "{bad}");
        }
    }
}
