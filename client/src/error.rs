//! The client's error: an errno kind, a message, and whether to retry.

use dfs_proto::{ErrorBody, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ClientError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ClientError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ClientError { kind, message: message.into() }
    }

    /// The master (or a chunkserver) at `base` could not be reached.
    pub fn unreachable(base: &str, e: &dyn std::fmt::Display) -> Self {
        ClientError::new(ErrorKind::EIO, format!("cannot reach {base}: {e}"))
    }

    /// For people: the errno's text, then the detail (`File exists (EEXIST: /a exists)`).
    pub fn describe(&self) -> String {
        format!("{} ({}: {})", self.kind.describe(), self.kind, self.message)
    }

    /// True when the same request may succeed later (I/O trouble, a lease
    /// held elsewhere), false when it is wrong as asked.
    pub fn is_temporary(&self) -> bool {
        self.kind.is_temporary()
    }

    /// A chunkserver refused the chunk token sent: expired or signed with a
    /// retired key (EKEYEXPIRED), or one it cannot verify (EKEYREJECTED: a
    /// key it has not heard of yet, or none at all). The location or lease
    /// it came with is dropped and a new one asked of the master
    /// (`retry.rs` bounds how often).
    pub fn token_refused(&self) -> bool {
        matches!(self.kind, ErrorKind::EKEYEXPIRED | ErrorKind::EKEYREJECTED)
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        match is_tls_refusal(&e) {
            true => ClientError::new(ErrorKind::EIO, chain(&e)),
            false => ClientError::new(ErrorKind::EIO, e.to_string()),
        }
    }
}

/// An error and its causes, `: `-separated (a TLS failure's reason is
/// the last of them: "invalid peer certificate: UnknownIssuer").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = next_cause(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = next_cause(c);
    }
    text
}

/// The cause of `e`. An `io::Error` wrapping another error is followed
/// into it: its `source()` skips the wrapped error itself (and a TLS
/// error reaches hyper wrapped that way, twice).
fn next_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

/// Whether `e` came from TLS refusing the other side (an untrusted or
/// mismatched certificate, or no CA to check it with): a retry cannot help.
pub fn is_tls_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        cause = next_cause(c);
    }
    false
}

impl From<ErrorBody> for ClientError {
    fn from(b: ErrorBody) -> Self {
        ClientError::new(b.error, b.message)
    }
}

/// Turns a non-success answer into its error (the JSON body when there is one).
pub async fn from_response(what: &str, resp: reqwest::Response) -> ClientError {
    let status = resp.status();
    match resp.json::<ErrorBody>().await {
        Ok(b) if what.is_empty() => ClientError::new(b.error, b.message),
        Ok(b) => ClientError::new(b.error, format!("{what}: {}", b.message)),
        Err(_) => ClientError::new(ErrorKind::EIO, format!("{what} HTTP {status}").trim_start().to_string()),
    }
}
