//! Decoders, in process: the signature headers, chunk tokens, the
//! checksum header and the key file.

use dfs_proto::auth::signature::{self, RequestView};
use dfs_proto::auth::{unix_ms, BodyDigest, ChunkToken, ClusterKey, KeyRing, Ops, TokenKey, TokenVerifier};
use dfs_proto::wire::chunks::{checksum_header, parse_checksum_header};
use dfs_proto::{ChunkHandle, ChunkVersion};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::inputs::*;
use crate::{fail, fuzz};

fn auth_view_headers(name: &str) -> Option<String> {
    match name {
        "content-length" => Some("2".into()),
        "x-dfs-forward" => Some("http://a,http://b".into()),
        _ => None,
    }
}

/// The signature headers: nothing verifies but what was signed, and no
/// input panics the parsers.
#[test]
fn signature_headers_never_panic_and_only_the_signed_value_verifies() {
    let ring = KeyRing::single(ClusterKey::generate());
    let view = RequestView { method: "POST", path_and_query: "/v1/chunks/7/create?x=1", header: &auth_view_headers };
    let now = unix_ms();
    let valid = signature::sign_request(&ring, now, &view, BodyDigest::of(b"{}"));
    let original = signature::verify_request(&ring, now, Some(&valid), &view).expect("the valid value verifies");
    let nonce = original.nonce;
    let reply = signature::sign_reply(&ring, &nonce, 200, b"{}");
    fuzz("x-dfs-auth", 5000, header_input(), |input| {
        let value = header_value(&input, &valid);
        let _ = signature::nonce_of(&value);
        match signature::verify_request(&ring, now, Some(&value), &view) {
            Ok(v) if v != original => fail(format!("{value:?} verified as {v:?}")),
            _ => Ok(()),
        }
    });
    fuzz("x-dfs-reply-auth", 3000, header_input(), |input| {
        let value = header_value(&input, &reply);
        // Another spelling of the same key and MAC bytes is no forgery.
        match signature::verify_reply(&ring, &nonce, 200, b"{}", Some(&value)) {
            Ok(()) if reply_fields(&value) != reply_fields(&reply) => fail(format!("{value:?} verified as the reply")),
            _ => Ok(()),
        }
    });
}

/// The key id and MAC bytes of a reply signature, read as the verifier
/// reads them (hex digit pairs by `u8::from_str_radix`, which also takes
/// a `+` sign: "+f" is 0x0f).
fn reply_fields(value: &str) -> Option<(String, Vec<u8>)> {
    let mut words = value.split_ascii_whitespace().skip(1);
    let key = words.next()?.strip_prefix("key=")?.to_string();
    let sig = words.next()?.strip_prefix("sig=")?;
    if sig.len() % 2 != 0 || !sig.is_ascii() {
        return None;
    }
    let bytes = (0..sig.len()).step_by(2).map(|i| u8::from_str_radix(&sig[i..i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?;
    Some((key, bytes))
}

/// The chunk token decoder and verifier: no panic, and only the token
/// issued verifies.
#[test]
fn chunk_tokens_never_panic_and_only_the_issued_token_verifies() {
    let ring = KeyRing::single(ClusterKey::generate());
    let key = TokenKey::generate(&ring, 7, u64::MAX);
    let verifier = TokenVerifier::default();
    verifier.install(&ring, std::slice::from_ref(&key.info));
    let token = ChunkToken {
        key_id: 7,
        expires_unix_ms: unix_ms() + 3_600_000,
        handle: ChunkHandle(5),
        version: ChunkVersion(2),
        ops: Ops::READ,
        identity: "anonymous".into(),
    };
    let valid = key.sign(&token);
    fuzz("x-dfs-token", 5000, token_input(), |input| {
        let text = token_text(&input, &valid);
        let _ = ChunkToken::decode(&text);
        match verifier.verify(Some(&text), unix_ms(), ChunkHandle(5), ChunkVersion(2), Ops::READ) {
            Ok(t) if text != valid => fail(format!("{text:?} verified as {t:?}")),
            _ => Ok(()),
        }
    });
}

/// The checksum header: no panic, and a parse always has one CRC per
/// 64 KiB of the body.
#[test]
fn checksum_headers_never_panic_and_count_the_body() {
    let body = vec![3u8; 200_000];
    let valid = checksum_header(&body);
    let input =
        (prop_oneof![header_input(), "[0-9a-fA-F,x -]{0,60}".prop_map(HeaderInput::Random)], prop_oneof![Just(body.len() as u64), any::<u64>(), 0u64..300_000]);
    fuzz("x-dfs-checksums", 4000, input, |(input, len)| {
        let text = header_value(&input, &valid);
        match parse_checksum_header(&text, len) {
            Ok(crcs) if crcs.len() as u64 != len.div_ceil(64 * 1024) => fail(format!("{text:?} for {len} bytes gave {} CRCs", crcs.len())),
            _ => Ok(()),
        }
    });
}

/// The key file parser: no panic; what parses writes back the same.
#[test]
fn key_files_never_panic() {
    let valid = KeyRing::single(ClusterKey::generate()).to_file_text();
    let input = prop_oneof![2 => edits(6).prop_map(HeaderInput::Edited), 1 => "(key [ -~]{0,80}\n){0,3}".prop_map(HeaderInput::Random)];
    fuzz("cluster.key", 3000, input, |input| {
        let text = match &input {
            HeaderInput::Edited(e) => String::from_utf8_lossy(&apply_edits(valid.as_bytes().to_vec(), e)).into_owned(),
            other => header_value(other, &valid),
        };
        if let Ok(ring) = KeyRing::parse(&text, std::path::Path::new("fuzz")) {
            let again = KeyRing::parse(&ring.to_file_text(), std::path::Path::new("fuzz")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, ring);
        }
        Ok(())
    });
}
