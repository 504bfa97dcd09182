//! The WebHDFS operations the master answers itself: status, listings,
//! summaries, block locations and every namespace change, each as the
//! caller (the store checks permissions as for any other client), in
//! Hadoop's JSON shapes and with Hadoop's results (a missing path is
//! `{"boolean": false}` for DELETE and RENAME, as HDFS answers).

use axum::response::Response;
use dfs_proto::webhdfs::*;
use dfs_proto::wire::namespace::*;
use dfs_proto::{ErrorKind, InodeId};

use super::{blocking, empty, json, ns, Params};
use crate::state::Master;
use crate::store::{perms, Mutation, NsError, Outcome};
use crate::users::Caller;

/// Most entries one LISTSTATUS answers (LISTSTATUS_BATCH pages past it).
const LIST_MAX: usize = 100_000;
/// Entries a LISTSTATUS_BATCH page holds (HDFS's `dfs.ls.limit`).
const BATCH: u32 = 1_000;
/// Most inodes a GETCONTENTSUMMARY walks.
const SUMMARY_MAX: u64 = 10_000_000;
/// Most children counted for a directory's `childrenNum`.
const CHILDREN_MAX: usize = 1_000_000;
/// Most chunks a GETFILEBLOCKLOCATIONS lists.
const BLOCKS_MAX: u64 = 100_000;

/// Answers a namespace operation (the data operations are `redirect`'s).
pub async fn answer(s: &Master, c: &Caller, op: Op, path: &str, p: &Params) -> Result<Response, RemoteError> {
    match op {
        Op::GetFileStatus => file_status(s, c, path).await,
        Op::ListStatus => list_status(s, c, path).await,
        Op::ListStatusBatch => list_batch(s, c, path, p.get("startafter").filter(|a| !a.is_empty())).await,
        Op::GetContentSummary => content_summary(s, c, path).await,
        Op::GetHomeDirectory => Ok(json(&PathBody { path: format!("/user/{}", c.user) })),
        Op::GetTrashRoot => Ok(json(&PathBody { path: format!("/user/{}/.Trash", c.user) })),
        Op::CheckAccess => check_access(s, c, path, p.get("fsaction")).await,
        Op::GetServerDefaults => Ok(server_defaults(s)),
        Op::GetFileBlockLocations => block_locations(s, c, path, p).await,
        Op::Mkdirs => mkdirs(s, c, path, p).await,
        Op::CreateSymlink => symlink(s, c, path, p).await,
        Op::Rename => rename(s, c, path, p).await,
        Op::Delete => delete(s, c, path, p).await,
        Op::SetPermission => set_permission(s, c, path, p).await,
        Op::SetOwner => set_owner(s, c, path, p).await,
        Op::SetTimes => set_times(s, c, path, p).await,
        Op::SetReplication => set_replication(s, c, path, p).await,
        Op::Truncate => super::truncate::answer(s, c, path, p).await,
        Op::Concat => concat(s, c, path, p).await,
        Op::GetDelegationToken | Op::RenewDelegationToken | Op::CancelDelegationToken => super::tokens::answer(s, c, op, p).await,
        Op::Open | Op::Create | Op::Append | Op::GetFileChecksum => Err(RemoteError::illegal_argument(format!("{} goes to a chunkserver", op.name()))),
    }
}

fn node(path: &str) -> NodeRef {
    NodeRef { path: Some(path.to_string()), inode: None }
}

fn entry(path: &str) -> EntryRef {
    EntryRef { path: Some(path.to_string()), parent: None, name: None }
}

fn ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
}

/// One inode as a `FileStatus` (`suffix`: its name in a listing, "" for
/// the path asked).
pub fn status(s: &Master, a: &Attr, suffix: &str, children: u64, symlink: Option<String>) -> FileStatus {
    let (owner, group) = s.users.owner_names(a.uid, a.gid);
    let is_file = a.kind != FileKind::Dir && a.kind != FileKind::Symlink;
    FileStatus {
        access_time: ms(a.atime_ns),
        block_size: if is_file { a.chunk_size_bytes } else { 0 },
        children_num: children,
        file_id: a.inode.0,
        group,
        length: if is_file { a.size } else { 0 },
        modification_time: ms(a.mtime_ns),
        owner,
        path_suffix: suffix.to_string(),
        permission: format!("{:o}", a.mode & 0o1777),
        replication: if is_file { a.replication } else { 0 },
        storage_policy: 0,
        kind: type_name(a.kind),
        symlink,
    }
}

/// The status of the inode at `path`, with its children counted (a
/// directory) or its target (a symlink).
fn status_of(s: &Master, c: &Caller, path: &str) -> Result<FileStatus, RemoteError> {
    let record = s.store.resolve_node(&node(path), &c.who).map_err(ns(path))?;
    let a = record.attr;
    let children = match a.kind {
        FileKind::Dir => s.store.count_entries(a.inode, None, CHILDREN_MAX).map_err(ns(path))? as u64,
        _ => 0,
    };
    let target = match a.kind {
        FileKind::Symlink => Some(s.store.readlink(&StatQuery { path: Some(path.to_string()), inode: None }, &c.who).map_err(ns(path))?),
        _ => None,
    };
    Ok(status(s, &a, "", children, target))
}

async fn file_status(s: &Master, c: &Caller, path: &str) -> Result<Response, RemoteError> {
    let (s2, c2, p) = (s.clone(), c.clone(), path.to_string());
    let st = blocking(move || status_of(&s2, &c2, &p)).await?;
    Ok(json(&FileStatusBody { file_status: st }))
}

/// HDFS's wording for a listing of a missing path (HdfsCLI's `upload`
/// and `walk` look for "does not exist").
fn list_error(path: &str) -> impl Fn(NsError) -> RemoteError + '_ {
    move |e| match e.kind {
        ErrorKind::ENOENT => RemoteError::not_found(format!("File {path} does not exist.")),
        _ => ns(path)(e),
    }
}

/// Up to `limit` entries of directory `dir` after `after`, as statuses,
/// and whether more follow.
fn page(s: &Master, c: &Caller, path: &str, dir: InodeId, after: Option<&str>, limit: u32) -> Result<(Vec<FileStatus>, Option<String>), RemoteError> {
    let listed = s.store.list(&NodeRef { path: None, inode: Some(dir) }, after, Some(limit), &c.who).map_err(list_error(path))?;
    let statuses = listed.entries.iter().map(|e| status(s, &e.attr, &e.name, 0, None)).collect();
    Ok((statuses, listed.next_start_after))
}

async fn list_status(s: &Master, c: &Caller, path: &str) -> Result<Response, RemoteError> {
    let (s2, c2, p) = (s.clone(), c.clone(), path.to_string());
    let all = blocking(move || {
        let record = s2.store.resolve_node(&node(&p), &c2.who).map_err(list_error(&p))?;
        if record.attr.kind != FileKind::Dir {
            // A file lists as itself, with no suffix (as HDFS).
            return Ok(vec![status(&s2, &record.attr, "", 0, None)]);
        }
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (mut statuses, next) = page(&s2, &c2, &p, record.attr.inode, after.as_deref(), BATCH)?;
            all.append(&mut statuses);
            if all.len() > LIST_MAX {
                return Err(RemoteError::illegal_argument(format!("{p} has over {LIST_MAX} entries: list it with LISTSTATUS_BATCH")));
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    })
    .await?;
    Ok(json(&FileStatusesBody { file_statuses: FileStatuses { file_status: all } }))
}

async fn list_batch(s: &Master, c: &Caller, path: &str, after: Option<&str>) -> Result<Response, RemoteError> {
    let (s2, c2, p, after) = (s.clone(), c.clone(), path.to_string(), after.map(str::to_string));
    let (statuses, remaining) = blocking(move || {
        let record = s2.store.resolve_node(&node(&p), &c2.who).map_err(list_error(&p))?;
        if record.attr.kind != FileKind::Dir {
            return Ok((vec![status(&s2, &record.attr, "", 0, None)], 0));
        }
        let (statuses, next) = page(&s2, &c2, &p, record.attr.inode, after.as_deref(), BATCH)?;
        let remaining = match next {
            // Counted up to a page: clients only ask whether more remain,
            // and counting them all on every page would make a listing
            // quadratic in the directory's size.
            Some(n) => s2.store.count_entries(record.attr.inode, Some(&n), BATCH as usize).map_err(ns(&p))? as u64,
            None => 0,
        };
        Ok((statuses, remaining))
    })
    .await?;
    let listing = DirectoryListing { partial_listing: PartialListing { file_statuses: FileStatuses { file_status: statuses } }, remaining_entries: remaining };
    Ok(json(&DirectoryListingBody { directory_listing: listing }))
}

/// Totals under `path` (the directory itself counts as one), walking
/// with the caller's rights: read and search on every directory.
async fn content_summary(s: &Master, c: &Caller, path: &str) -> Result<Response, RemoteError> {
    let (s2, c2, p) = (s.clone(), c.clone(), path.to_string());
    let summary = blocking(move || {
        let root = s2.store.resolve_node(&node(&p), &c2.who).map_err(ns(&p))?.attr;
        let mut sum = ContentSummary { quota: -1, space_quota: -1, ..Default::default() };
        let mut dirs = Vec::new();
        let mut seen = 0u64;
        add(&mut sum, &root, &mut dirs);
        while let Some(dir) = dirs.pop() {
            perms::check(&c2.who, &dir, perms::EXEC, &p).map_err(ns(&p))?;
            let mut after: Option<String> = None;
            loop {
                let listed = s2.store.list(&NodeRef { path: None, inode: Some(dir.inode) }, after.as_deref(), Some(BATCH), &c2.who).map_err(ns(&p))?;
                seen += listed.entries.len() as u64;
                if seen > SUMMARY_MAX {
                    return Err(RemoteError::illegal_argument(format!("{p} holds over {SUMMARY_MAX} inodes: too many to sum in one request")));
                }
                for e in &listed.entries {
                    add(&mut sum, &e.attr, &mut dirs);
                }
                match listed.next_start_after {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(sum)
    })
    .await?;
    Ok(json(&ContentSummaryBody { content_summary: summary }))
}

/// Counts one inode into `sum`; a directory is queued to walk.
fn add(sum: &mut ContentSummary, a: &Attr, dirs: &mut Vec<Attr>) {
    match a.kind {
        FileKind::Dir => {
            sum.directory_count += 1;
            dirs.push(a.clone());
        }
        FileKind::File => {
            sum.file_count += 1;
            sum.length = sum.length.saturating_add(a.size);
            sum.space_consumed = sum.space_consumed.saturating_add(a.size.saturating_mul(a.replication as u64));
        }
        _ => sum.file_count += 1,
    }
}

/// `fsaction=rwx` (each letter or `-`): 200 if the caller may, else 403.
async fn check_access(s: &Master, c: &Caller, path: &str, action: Option<&str>) -> Result<Response, RemoteError> {
    let want = fsaction(action)?;
    let (s2, c2, p) = (s.clone(), c.clone(), path.to_string());
    blocking(move || {
        let a = s2.store.resolve_node(&node(&p), &c2.who).map_err(ns(&p))?.attr;
        perms::check(&c2.who, &a, want, &p).map_err(ns(&p))
    })
    .await?;
    Ok(empty())
}

fn fsaction(action: Option<&str>) -> Result<u32, RemoteError> {
    let bad = || RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"fsaction\": {action:?} is not of the form [r-][w-][x-]"));
    let text = action.ok_or_else(bad)?.as_bytes();
    let [r, w, x] = text else { return Err(bad()) };
    let bit = |c: u8, letter: u8, value: u32| match c {
        b'-' => Ok(0),
        c if c == letter => Ok(value),
        _ => Err(bad()),
    };
    Ok(bit(*r, b'r', perms::READ)? | bit(*w, b'w', perms::WRITE)? | bit(*x, b'x', perms::EXEC)?)
}

fn server_defaults(s: &Master) -> Response {
    let d = s.writer.defaults();
    json(&serde_json::json!({"FsServerDefaults": {
        "blockSize": d.chunk_size_bytes,
        // dfs keeps a CRC32 per 64 KiB.
        "bytesPerChecksum": 65536,
        "writePacketSize": 65536,
        "replication": d.replication,
        "fileBufferSize": 4096,
        "encryptDataTransfer": dfs_server_kit::tls::scheme() == "https",
        "trashInterval": 0,
        "checksumType": 1,
        "keyProviderUri": "",
        "defaultStoragePolicyId": 7,
    }}))
}

/// Where each chunk of `[offset, offset + length)` of a file lives.
async fn block_locations(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let offset = parse_int("offset", p.get("offset"), 0..=i64::MAX)?.unwrap_or(0) as u64;
    let length = parse_int("length", p.get("length"), 0..=i64::MAX)?.map(|l| l as u64);
    let (s2, c2, path) = (s.clone(), c.clone(), path.to_string());
    let blocks = blocking(move || {
        let a = s2.store.resolve_node(&node(&path), &c2.who).map_err(ns(&path))?.attr;
        if a.kind != FileKind::File {
            return Err(RemoteError::not_found(format!("Path is not a file: {path}")));
        }
        perms::check_io(&c2.who, &a, perms::READ, &path).map_err(ns(&path))?;
        let end = length.map_or(a.size, |l| offset.saturating_add(l).min(a.size));
        let cs = a.chunk_size_bytes.max(1);
        let (first, last) = (offset / cs, end.div_ceil(cs));
        if last.saturating_sub(first) > BLOCKS_MAX {
            return Err(RemoteError::illegal_argument(format!("over {BLOCKS_MAX} chunks asked: ask for a shorter range")));
        }
        let mut out = Vec::new();
        let mut index = first;
        while index < last {
            let located = s2.chunks.locate(a.inode, index, (last - index).min(1_000) as usize).map_err(ns(&path))?;
            if located.chunks.is_empty() {
                break;
            }
            for chunk in located.chunks.iter().filter(|ch| ch.index < last) {
                out.push(block_location(chunk, cs));
                index = chunk.index + 1;
            }
            if located.chunks.last().is_some_and(|ch| ch.index + 1 >= last) {
                break;
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json(&serde_json::json!({"BlockLocations": {"BlockLocation": blocks}})))
}

fn block_location(chunk: &dfs_proto::wire::chunks::ChunkLocation, chunk_size: u64) -> serde_json::Value {
    let names: Vec<String> = chunk.replicas.iter().map(|r| host_port(&r.address)).collect();
    let hosts: Vec<String> = names.iter().map(|n| n.rsplit_once(':').map_or(n.clone(), |(h, _)| h.to_string())).collect();
    serde_json::json!({
        "cachedHosts": [],
        "corrupt": chunk.replicas.is_empty(),
        "hosts": hosts,
        "length": chunk.length,
        "names": names,
        "offset": chunk.index.saturating_mul(chunk_size),
        "storageTypes": vec!["DISK"; names.len()],
        "topologyPaths": names.iter().map(|n| format!("/default-rack/{n}")).collect::<Vec<_>>(),
    })
}

/// `host:port` of a node's URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A namespace mutation as the caller; its outcome.
async fn submit(s: &Master, c: &Caller, m: Mutation, path: &str) -> Result<Outcome, RemoteError> {
    s.writer.submit_as(c.who.clone(), m).await.map(|(o, _)| o).map_err(ns(path))
}

fn boolean(b: bool) -> Response {
    json(&BooleanBody { boolean: b })
}

async fn mkdirs(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let mode = parse_permission(p.get("permission"))?.unwrap_or(0o755);
    if path == "/" {
        return Ok(boolean(true));
    }
    let r = MkdirRequest { at: entry(path), owner: NewOwner { mode: Some(mode), ..Default::default() }, parents: true };
    submit(s, c, Mutation::Mkdir(r), path).await?;
    Ok(boolean(true))
}

async fn symlink(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let Some(target) = p.get("destination").filter(|d| !d.is_empty()) else {
        return Err(RemoteError::illegal_argument("Required param destination for op: CREATESYMLINK is null or empty"));
    };
    if parse_bool("createparent", p.get("createparent"), true)? {
        make_parent(s, c, path).await?;
    }
    let r = SymlinkRequest { at: entry(path), target: target.to_string(), uid: None, gid: None };
    submit(s, c, Mutation::Symlink(r), path).await?;
    Ok(empty())
}

/// Makes the directories above `path` that are missing (`mkdir -p`).
pub async fn make_parent(s: &Master, c: &Caller, path: &str) -> Result<(), RemoteError> {
    let parent = match path.rsplit_once('/') {
        Some(("", _)) | None => return Ok(()),
        Some((parent, _)) => parent,
    };
    let r = MkdirRequest { at: entry(parent), owner: NewOwner { mode: Some(0o755), ..Default::default() }, parents: true };
    submit(s, c, Mutation::Mkdir(r), parent).await.map(|_| ())
}

/// HDFS's rename: into a directory that exists, else to the name; false
/// (not an error) when the source is missing or the target taken.
async fn rename(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let Some(dst) = p.get("destination").filter(|d| d.starts_with('/')) else {
        return Err(RemoteError::illegal_argument("Required param destination for op: RENAME is null, empty or not an absolute path"));
    };
    let dst = match dst.trim_end_matches('/') {
        "" => "/",
        d => d,
    };
    let (s2, c2, d) = (s.clone(), c.clone(), dst.to_string());
    let into_dir = blocking(move || Ok(s2.store.resolve_node(&node(&d), &c2.who).is_ok_and(|r| r.attr.kind == FileKind::Dir))).await?;
    let name = path.rsplit('/').next().unwrap_or("");
    let target = match into_dir {
        true if dst == "/" => format!("/{name}"),
        true => format!("{dst}/{name}"),
        false => dst.to_string(),
    };
    if target == path {
        return Ok(boolean(true));
    }
    let r = RenameRequest { src: entry(path), dst: entry(&target), noreplace: true };
    match s.writer.submit_as(c.who.clone(), Mutation::Rename(r)).await {
        Ok(_) => Ok(boolean(true)),
        Err(e) if matches!(e.kind, ErrorKind::ENOENT | ErrorKind::EEXIST | ErrorKind::ENOTEMPTY) => Ok(boolean(false)),
        Err(e) => Err(ns(path)(e)),
    }
}

async fn delete(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let recursive = parse_bool("recursive", p.get("recursive"), false)?;
    if path == "/" {
        return Ok(boolean(false));
    }
    match s.writer.submit_as(c.who.clone(), Mutation::Delete(DeleteRequest { at: entry(path), recursive })).await {
        Ok(_) => Ok(boolean(true)),
        Err(e) if e.kind == ErrorKind::ENOENT => Ok(boolean(false)),
        Err(e) => Err(ns(path)(e)),
    }
}

async fn setattr(s: &Master, c: &Caller, path: &str, r: SetattrRequest) -> Result<Attr, RemoteError> {
    match submit(s, c, Mutation::Setattr(r), path).await? {
        Outcome::Attr(a) => Ok(a),
        _ => Err(RemoteError::from_kind(ErrorKind::EIO, "setattr returned no attributes", path)),
    }
}

async fn set_permission(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let mode = parse_permission(p.get("permission"))?.unwrap_or(0o755);
    setattr(s, c, path, SetattrRequest { node: node(path), mode: Some(mode), ..Default::default() }).await?;
    Ok(empty())
}

async fn set_owner(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let (owner, group) = (p.get("owner").filter(|o| !o.is_empty()), p.get("group").filter(|g| !g.is_empty()));
    if owner.is_none() && group.is_none() {
        return Err(RemoteError::illegal_argument("Both owner and group are empty."));
    }
    let uid = owner.map(|o| s.users.uid_of(o).ok_or_else(|| RemoteError::illegal_argument(format!("no user {o:?} in this cluster")))).transpose()?;
    let gid = group.map(|g| s.users.gid_of(g).ok_or_else(|| RemoteError::illegal_argument(format!("no group {g:?} in this cluster")))).transpose()?;
    setattr(s, c, path, SetattrRequest { node: node(path), uid, gid, ..Default::default() }).await?;
    Ok(empty())
}

/// Milliseconds since the epoch, or -1 (unchanged), as nanoseconds.
fn time_param(p: &Params, name: &str) -> Result<Option<i64>, RemoteError> {
    let v = parse_int(name, p.get(name), -1..=i64::MAX / 1_000_000)?;
    Ok(v.filter(|&t| t >= 0).map(|t| t * 1_000_000))
}

async fn set_times(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let (mtime_ns, atime_ns) = (time_param(p, "modificationtime")?, time_param(p, "accesstime")?);
    if mtime_ns.is_some() || atime_ns.is_some() {
        setattr(s, c, path, SetattrRequest { node: node(path), mtime_ns, atime_ns, ..Default::default() }).await?;
    }
    Ok(empty())
}

/// CONCAT: `sources` (comma-separated absolute paths, HDFS's form)
/// moved onto the end of `path` by their chunks (`store::mutations`'s
/// `concat` has the rules); the chunk engine learns where they went.
async fn concat(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let Some(list) = p.get("sources").filter(|v| !v.is_empty()) else {
        return Err(RemoteError::illegal_argument("Required param sources for op: CONCAT is null or empty"));
    };
    let mut sources = Vec::new();
    // The query is decoded already: a path is taken as it stands (the
    // store refuses `..`, empty names and NUL).
    for source in list.split(',') {
        let trimmed = source.trim_end_matches('/');
        if !source.starts_with('/') || trimmed.is_empty() {
            return Err(RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"sources\": {source:?} is not an absolute file path")));
        }
        sources.push(trimmed.to_string());
    }
    let m = Mutation::Concat { target: path.to_string(), sources };
    match s.writer.submit_as(c.who.clone(), m).await.map_err(ns(path))?.0 {
        Outcome::Concat { attr, moved } => {
            s.chunks.chunks_moved(&attr, moved);
            Ok(empty())
        }
        _ => Err(RemoteError::from_kind(ErrorKind::EIO, "the concat returned no file", path)),
    }
}

async fn set_replication(s: &Master, c: &Caller, path: &str, p: &Params) -> Result<Response, RemoteError> {
    let replication = parse_int("replication", p.get("replication"), 1..=i16::MAX as i64)?.map_or(s.writer.defaults().replication, |r| r as u16);
    let (s2, c2, p2) = (s.clone(), c.clone(), path.to_string());
    let kind = blocking(move || s2.store.resolve_node(&node(&p2), &c2.who).map(|r| r.attr.kind).map_err(ns(&p2))).await?;
    if kind != FileKind::File {
        return Ok(boolean(false));
    }
    let attr = setattr(s, c, path, SetattrRequest { node: node(path), replication: Some(replication), ..Default::default() }).await?;
    s.chunks.file_changed(&attr);
    Ok(boolean(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsaction_is_three_letters_or_dashes() {
        assert_eq!(fsaction(Some("r-x")), Ok(perms::READ | perms::EXEC));
        assert_eq!(fsaction(Some("---")), Ok(0));
        assert_eq!(fsaction(Some("rwx")), Ok(7));
        for bad in [None, Some(""), Some("rw"), Some("xwr"), Some("rwxr"), Some("r€")] {
            assert!(fsaction(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_urls_give_host_and_port() {
        assert_eq!(host_port("http://10.0.0.1:9866"), "10.0.0.1:9866");
        assert_eq!(host_port("https://cs1:9866/x"), "cs1:9866");
    }
}
