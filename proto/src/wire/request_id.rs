//! The request id: one short token that a client operation (a write, a
//! read, a lease call chain) sends with every request it makes, and that
//! the master and chunkservers pass on in their own calls for it, so that
//! one operation can be followed through every daemon's log.
//!
//! The header steers nothing: it is not covered by request signatures and
//! a daemon replaces a malformed one (too long, or any character but ASCII
//! letters, digits and `-`) with a fresh id, since whatever it holds ends
//! up in log lines.

use std::fmt;

/// The header carrying the request id, both ways (a daemon echoes the id
/// it served a request under).
pub const HEADER_REQUEST_ID: &str = "x-dfs-request-id";
/// Longest id a daemon takes from a request (a UUID with dashes fits).
pub const REQUEST_ID_MAX_CHARS: usize = 64;

/// A well-formed request id: 1 to [`REQUEST_ID_MAX_CHARS`] ASCII letters,
/// digits or dashes, so it is safe in a header and in a log line as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A new random id: 16 lowercase hex digits (64 bits, so two operations
    /// of one cluster's log do not share one in practice).
    pub fn fresh() -> Self {
        RequestId(format!("{:016x}", rand::random::<u64>()))
    }

    /// `text` as an id, if it is well-formed.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = !text.is_empty() && text.len() <= REQUEST_ID_MAX_CHARS && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        well_formed.then(|| RequestId(text.to_string()))
    }

    /// The id a request names in its header's raw `value`, or a fresh one
    /// when it names none or a malformed one (hostile input is normal input).
    pub fn from_header(value: Option<&[u8]>) -> Self {
        value.and_then(|v| std::str::from_utf8(v).ok()).and_then(Self::parse).unwrap_or_else(Self::fresh)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (RequestId::fresh(), RequestId::fresh());
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn well_formed_ids_are_kept() {
        for id in ["a", "0123abcdef", "ABC-def-42", "3f2b1c9e-8d4a-4f1e-9b7c-2a6d5e4f3c21", &"x".repeat(REQUEST_ID_MAX_CHARS)] {
            assert_eq!(RequestId::from_header(Some(id.as_bytes())).as_str(), id);
        }
    }

    #[test]
    fn missing_or_malformed_ids_are_replaced_by_fresh_ones() {
        let too_long = "x".repeat(REQUEST_ID_MAX_CHARS + 1);
        let bad: [&[u8]; 10] = [
            b"",
            too_long.as_bytes(),
            b"has space",
            b"line\nbreak",
            b"fake} INFO forged=1",
            b"a=b",
            b"quote\"",
            b"under_score",
            "caf\u{e9}".as_bytes(),
            &[0xff, 0xfe, b'a'],
        ];
        for value in bad {
            let id = RequestId::from_header(Some(value));
            assert_ne!(id.as_str().as_bytes(), value);
            assert_eq!(id.as_str().len(), 16, "{value:?} gave {id}");
            assert!(id.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        }
        assert_eq!(RequestId::from_header(None).as_str().len(), 16);
    }
}
