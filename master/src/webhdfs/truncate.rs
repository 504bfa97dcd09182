//! TRUNCATE: a file cut to `newlength`. Where the cut falls inside a chunk
//! the rest of that chunk must read as zeros if the file grows again, so
//! the master writes them as a client would: through the client library,
//! against its own API, with a minute's write grant of the caller's rights.

use axum::response::Response;
use dfs_client::auth::Login;
use dfs_client::{Client, DataConfig};
use dfs_proto::webhdfs::{parse_int, BooleanBody, RemoteError};
use dfs_proto::wire::namespace::{FileKind, NodeRef, SetattrRequest};
use dfs_proto::ErrorKind;

use super::{blocking, json, ns, Params};
use crate::state::Master;
use crate::store::{perms, Mutation};
use crate::users::{AuthMode, Caller};

const GRANT_MS: u64 = 60_000;

pub async fn answer(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let Some(length) = parse_int("newlength", p.get("newlength"), 0..=i64::MAX)?.map(|n| n as u64) else {
        return Err(RemoteError::illegal_argument("Required param newlength for op: TRUNCATE is null or empty"));
    };
    let (s2, c2, p2) = (s.clone(), c.clone(), path.to_string());
    let attr = blocking(move || {
        let a = s2.store.resolve_node(&NodeRef { path: Some(p2.clone()), inode: None }, &c2.who).map_err(ns(&p2))?.attr;
        if a.kind != FileKind::File {
            return Err(RemoteError::not_found(format!("Path is not a file: {p2}")));
        }
        perms::check_io(&c2.who, &a, perms::WRITE, &p2).map_err(ns(&p2))?;
        Ok(a)
    })
    .await?;
    if length > attr.size {
        return Err(RemoteError::illegal_argument(format!("Cannot truncate to a larger file size. Current size: {}, truncate size: {length}.", attr.size)));
    }
    if length == attr.size {
        return Ok(json(&BooleanBody { boolean: true }));
    }
    if length % attr.chunk_size_bytes.max(1) == 0 {
        let r = SetattrRequest { node: NodeRef { path: None, inode: Some(attr.inode) }, size: Some(length), ..Default::default() };
        s.writer.submit_as(c.who.clone(), Mutation::Setattr(r)).await.map_err(ns(path))?;
        return Ok(json(&BooleanBody { boolean: true }));
    }
    let login = match s.users.mode() {
        AuthMode::None => Login::new(None),
        AuthMode::Users => match s.users.grant_for(c, true, GRANT_MS) {
            Some(g) => Login::granted(g),
            None => return Err(RemoteError::from_kind(ErrorKind::EACCES, &format!("{} cannot be granted its rights", c.user), path)),
        },
    };
    let client = Client::with_login(&s.self_url, DataConfig::default(), login);
    client.truncate(&attr, length).await.map_err(|e| RemoteError::from_kind(e.kind, &e.message, path))?;
    Ok(json(&BooleanBody { boolean: true }))
}
