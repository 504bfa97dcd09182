//! The first step of CREATE, APPEND, OPEN and GETFILECHECKSUM: the master
//! checks what it can (the path, the caller's rights, the parameters),
//! then sends the client to a chunkserver with a `307` (or, with
//! `noredirect=true`, a `200 {"Location": ...}`). The chunkserver's URL
//! carries the operation's parameters and the master's grant of the
//! caller's rights for an hour (HDFS puts the caller's delegation token
//! there): it stays good for the many POSTs fsspec sends to one APPEND URL.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dfs_proto::webhdfs::*;
use dfs_proto::wire::namespace::{Attr, FileKind, NodeRef};
use dfs_proto::ErrorKind;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{blocking, json, ns, Params};
use crate::state::Master;
use crate::store::{perms, NsError};
use crate::users::{AuthMode, Caller};

/// How long a redirect's grant lasts.
pub const GRANT_MS: u64 = 3_600_000;

/// Path bytes left as they are in a Location: unreserved ones and `/`.
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Parameters each operation passes on to the chunkserver.
fn passed_on(op: Op) -> &'static [&'static str] {
    match op {
        Op::Create => &["overwrite", "permission", "replication", "blocksize", "buffersize", "createparent"],
        Op::Append => &["buffersize"],
        Op::Open => &["offset", "length", "buffersize"],
        _ => &[],
    }
}

pub async fn answer(s: &Master, c: &Caller, op: Op, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let noredirect = parse_bool("noredirect", p.get("noredirect"), false)?;
    check_params(op, p)?;
    let node = match op {
        Op::Create => check_create(s, c, path, p).await?,
        Op::Append => check_existing(s, c, path, perms::WRITE).await.map(|a| holder(s, &a, a.size.saturating_sub(1)))?,
        Op::Open => {
            let a = check_existing(s, c, path, perms::READ).await?;
            let offset = parse_int("offset", p.get("offset"), 0..=i64::MAX)?.unwrap_or(0) as u64;
            if offset > a.size || (offset == a.size && a.size > 0) {
                return Err(RemoteError::from_kind(ErrorKind::ESTALE, &format!("Offset={offset} out of the range [0, {}); OPEN, path={path}", a.size), path));
            }
            holder(s, &a, offset)
        }
        _ => check_existing(s, c, path, perms::READ).await.map(|a| holder(s, &a, 0))?,
    };
    let Some(address) = node.or_else(|| any_live(s)) else {
        return Err(RemoteError::from_kind(ErrorKind::EAGAIN, "no chunkserver is live to take the data", path));
    };
    let grant = match s.users.mode() {
        AuthMode::None => None,
        AuthMode::Users => Some(
            s.users
                .grant_for(c, op != Op::Open && op != Op::GetFileChecksum, GRANT_MS)
                .ok_or_else(|| RemoteError::from_kind(ErrorKind::EACCES, &format!("{} cannot be granted its rights", c.user), path))?,
        ),
    };
    let location = location(&address, op, path, p, grant.as_deref());
    if noredirect {
        return Ok(json(&LocationBody { location }));
    }
    let value = HeaderValue::from_str(&location).map_err(|e| RemoteError::from_kind(ErrorKind::EIO, &e.to_string(), path))?;
    Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, value), (header::CONTENT_LENGTH, HeaderValue::from_static("0"))]).into_response())
}

/// The chunkserver URL: path percent-encoded, the operation, its
/// parameters, the grant.
fn location(address: &str, op: Op, path: &str, p: &Params, grant: Option<&str>) -> String {
    let mut query: Vec<(&str, &str)> = vec![("op", op.name())];
    for name in passed_on(op) {
        if let Some(v) = p.get(name).filter(|v| !v.is_empty()) {
            query.push((name, v));
        }
    }
    if let Some(g) = grant {
        query.push((GRANT_PARAM, g));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    format!("{}{PREFIX}{}?{query}", address.trim_end_matches('/'), utf8_percent_encode(path, PATH_SAFE))
}

/// Parameters checked here, so a bad one fails before any redirect.
fn check_params(op: Op, p: &Params) -> Result<(), RemoteError> {
    match op {
        Op::Create => {
            parse_bool("overwrite", p.get("overwrite"), false)?;
            parse_bool("createparent", p.get("createparent"), true)?;
            parse_permission(p.get("permission"))?;
            parse_int("replication", p.get("replication"), 1..=i16::MAX as i64)?;
            parse_int("blocksize", p.get("blocksize"), 1..=i64::MAX)?;
            parse_int("buffersize", p.get("buffersize"), 1..=i32::MAX as i64)?;
        }
        Op::Append => {
            parse_int("buffersize", p.get("buffersize"), 1..=i32::MAX as i64)?;
        }
        Op::Open => {
            parse_int("offset", p.get("offset"), 0..=i64::MAX)?;
            parse_int("length", p.get("length"), 0..=i64::MAX)?;
            parse_int("buffersize", p.get("buffersize"), 1..=i32::MAX as i64)?;
        }
        _ => {}
    }
    Ok(())
}

/// The file at `path`, which the caller may read (or write).
async fn check_existing(s: &Master, c: &Caller, path: &str, want: u32) -> Result<Attr, RemoteError> {
    let (s2, c2, p2) = (s.clone(), c.clone(), path.to_string());
    blocking(move || {
        let a = s2.store.resolve_node(&NodeRef { path: Some(p2.clone()), inode: None }, &c2.who).map_err(missing(&p2))?.attr;
        if a.kind != FileKind::File {
            return Err(RemoteError::not_found(format!("Path is not a file: {p2}")));
        }
        perms::check_io(&c2.who, &a, want, &p2).map_err(ns(&p2))?;
        Ok(a)
    })
    .await
}

/// HDFS's wording for a data operation on a missing path.
fn missing(path: &str) -> impl Fn(NsError) -> RemoteError + '_ {
    move |e| match e.kind {
        ErrorKind::ENOENT => RemoteError::not_found(format!("File {path} not found (it does not exist)")),
        _ => ns(path)(e),
    }
}

/// A CREATE's target: not a directory, not a file unless overwritten.
/// The chunkserver makes the file (and missing parents); this only fails
/// early what would fail there.
async fn check_create(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Option<String>, RemoteError> {
    if path == "/" {
        return Err(RemoteError::from_kind(ErrorKind::EEXIST, "/ is a directory", path));
    }
    let overwrite = parse_bool("overwrite", p.get("overwrite"), false)?;
    let (s2, c2, p2) = (s.clone(), c.clone(), path.to_string());
    blocking(move || match s2.store.resolve_node(&NodeRef { path: Some(p2.clone()), inode: None }, &c2.who) {
        Ok(r) if r.attr.kind == FileKind::Dir => Err(RemoteError::from_kind(ErrorKind::EEXIST, &format!("{p2} is a directory"), &p2)),
        Ok(_) if !overwrite => Err(RemoteError::from_kind(ErrorKind::EEXIST, &format!("{p2} exists and overwrite is false"), &p2)),
        Ok(_) => Ok(None),
        Err(e) if e.kind == ErrorKind::ENOENT => Ok(None),
        Err(e) => Err(ns(&p2)(e)),
    })
    .await
}

/// A chunkserver holding the chunk of `a` at `offset` (reads and appends
/// then start on that node's disk), if any is known.
fn holder(s: &Master, a: &Attr, offset: u64) -> Option<String> {
    let index = offset / a.chunk_size_bytes.max(1);
    let located = s.chunks.locate(a.inode, index, 1).ok()?;
    located.chunks.into_iter().next()?.replicas.into_iter().next().map(|r| r.address)
}

/// Any live chunkserver, picked at random (spreads the writes).
fn any_live(s: &Master) -> Option<String> {
    let live: Vec<String> = s.chunks.chunkservers().into_iter().filter(|n| n.state == "live").map(|n| n.address).collect();
    if live.is_empty() {
        return None;
    }
    Some(live[rand::random_range(0..live.len())].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_ascii_with_the_path_encoded_and_the_grant() {
        let p = Params::parse(Some("op=CREATE&overwrite=true&user.name=bob&permission=600")).unwrap();
        let l = location("http://10.0.0.2:9866", Op::Create, "/a b/€&?", &p, Some("g2.x.y"));
        assert!(l.is_ascii(), "{l}");
        assert!(l.starts_with("http://10.0.0.2:9866/webhdfs/v1/a%20b/%E2%82%AC%26%3F?op=CREATE&"), "{l}");
        assert!(l.contains("overwrite=true") && l.contains("permission=600") && l.contains("dfsgrant=g2.x.y"), "{l}");
        assert!(!l.contains("user.name"), "auth parameters are not passed on: {l}");
    }
}
