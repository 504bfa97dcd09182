//! Text a key vouches for, as session tickets, grants and delegation
//! tokens travel: `FORMAT.base64url(body).base64url(mac)`, the MAC over a
//! domain string and the body (so no text of one kind opens as another).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

use super::signature::mac_over;

/// Why a text did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsealed {
    /// Not of this format: a wrong prefix, bad base64, not UTF-8.
    Malformed,
    /// Well formed, but not sealed by this key (or altered).
    BadMac,
}

pub fn seal(key: &[u8; 32], format: &str, domain: &str, body: &str) -> String {
    let mac = mac_over(key, &[domain, body]).finalize().into_bytes();
    format!("{format}.{}.{}", URL_SAFE_NO_PAD.encode(body), URL_SAFE_NO_PAD.encode(mac))
}

/// The body `seal` put in `text` with this key, format and domain.
pub fn open(key: &[u8; 32], format: &str, domain: &str, text: &str) -> Result<String, Unsealed> {
    let mut parts = text.split('.');
    let (Some(f), Some(body), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Unsealed::Malformed);
    };
    if f != format {
        return Err(Unsealed::Malformed);
    }
    let body = URL_SAFE_NO_PAD.decode(body).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(Unsealed::Malformed)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Unsealed::Malformed)?;
    mac_over(key, &[domain, &body]).verify_slice(&mac).map_err(|_| Unsealed::BadMac)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_opens_only_with_its_key_format_and_domain_unaltered() {
        let text = seal(&[1; 32], "x1", "dom", "a\nb");
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "URL-safe: {text}");
        assert_eq!(open(&[1; 32], "x1", "dom", &text).as_deref(), Ok("a\nb"));
        assert_eq!(open(&[2; 32], "x1", "dom", &text), Err(Unsealed::BadMac));
        assert_eq!(open(&[1; 32], "x1", "other", &text), Err(Unsealed::BadMac));
        assert_eq!(open(&[1; 32], "x2", "dom", &text), Err(Unsealed::Malformed));
        let (head, _) = text.rsplit_once('.').unwrap();
        let forged = seal(&[1; 32], "x1", "dom", "a\nc");
        assert_eq!(open(&[1; 32], "x1", "dom", &format!("{head}.{}", forged.rsplit_once('.').unwrap().1)), Err(Unsealed::BadMac));
        for bad in ["", "x1", "x1.a", "x1.a.b.c", "x1.!!.YQ", "x1.YQ.!!", "x1.__8.YQ"] {
            assert!(open(&[1; 32], "x1", "dom", bad).is_err(), "{bad}");
        }
    }
}
