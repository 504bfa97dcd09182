//! The namespace browser: a directory's entries a page at a time, a file's
//! attributes and chunks with every replica's node, version and state, and
//! downloads. Store reads run on the blocking pool and are paged, so a
//! huge directory or file never holds up the metadata path.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use dfs_proto::endpoint::chunkserver as cs;
use dfs_proto::endpoint::master as ep;
use dfs_proto::endpoint::{url, Endpoint};
use dfs_proto::wire::chunks::DownloadQuery;
use dfs_proto::wire::dashboard::{BrowseQuery, ChunkReplicas, FileQuery, FileView, Listing, ListingEntry};
use dfs_proto::wire::namespace::{Attr, FileKind, NodeRef};
use dfs_server_kit::http::html::{bytes, error_page, escape};
use dfs_server_kit::http::{ApiError, ApiQuery};

use super::{frame, link, time_text, NAV, TITLE};
use crate::api::store_call::blocking;
use crate::state::Master;
use crate::store::perms;
use crate::users::Caller;

/// Entries per browser page.
const ENTRIES_PER_PAGE: u32 = 200;
/// Chunks per file page.
const CHUNKS_PER_PAGE: u64 = 256;

fn child(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

pub async fn listing(s: &Master, c: Caller, q: BrowseQuery) -> Result<Listing, ApiError> {
    let store = s.store.clone();
    blocking(move || {
        let dir = NodeRef { path: Some(q.path.clone()), inode: None };
        let page = store.list(&dir, q.start_after.as_deref(), Some(ENTRIES_PER_PAGE), &c.who)?;
        let entries = page.entries.into_iter().map(|e| ListingEntry { path: child(&q.path, &e.name), name: e.name, attr: e.attr }).collect();
        Ok(Listing { path: q.path, entries, next_start_after: page.next_start_after })
    })
    .await
}

pub async fn file_view(s: &Master, c: Caller, q: FileQuery) -> Result<FileView, ApiError> {
    let (store, chunks) = (s.store.clone(), s.chunks.clone());
    blocking(move || {
        let attr = store.resolve_node(&NodeRef { path: Some(q.path.clone()), inode: None }, &c.who)?.attr;
        if attr.kind != FileKind::File {
            return Ok(FileView { path: q.path, attr, chunks: Vec::new(), next_first: None });
        }
        let mut page = chunks.file_chunks(attr.inode, attr.replication, q.first, CHUNKS_PER_PAGE as usize + 1)?;
        let next_first = (page.len() > CHUNKS_PER_PAGE as usize).then(|| page[CHUNKS_PER_PAGE as usize].index);
        page.truncate(CHUNKS_PER_PAGE as usize);
        Ok(FileView { path: q.path, attr, chunks: page, next_first })
    })
    .await
}

pub async fn browse_json(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<BrowseQuery>) -> Result<Json<Listing>, ApiError> {
    Ok(Json(listing(&s, c, q).await?))
}

pub async fn file_json(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<FileQuery>) -> Result<Json<FileView>, ApiError> {
    Ok(Json(file_view(&s, c, q).await?))
}

/// An API error as an HTML page.
fn html_error(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.0.error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_page(status, TITLE, NAV, &format!("{}: {}", e.0.error, e.0.message))
}

/// Breadcrumb links for a path: each ancestor is a link to its listing.
fn breadcrumbs(path: &str) -> String {
    let mut out = format!(r#"<a href="{}">/</a>"#, browse_link("/", None));
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        so_far = format!("{so_far}/{part}");
        out += &format!(r#" <a href="{}">{}</a> /"#, browse_link(&so_far, None), escape(part));
    }
    out
}

fn mode_text(a: &Attr) -> String {
    let kind = a.kind.type_letter();
    let bits: String = (0..9).rev().map(|i| if a.mode & (1 << i) != 0 { ['x', 'w', 'r'][i % 3] } else { '-' }).collect();
    format!("{kind}{bits}")
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Dir => "dir",
        FileKind::File => "file",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice | FileKind::BlockDevice => "device",
    }
}

fn link_for(e: &ListingEntry) -> String {
    let href = match e.attr.kind {
        FileKind::Dir => browse_link(&e.path, None),
        _ => file_link::<ep::FilePage>(&e.path, 0),
    };
    format!(r#"<a href="{href}">{}</a>"#, escape(&e.name))
}

/// A directory's page (or its JSON), escaped for an attribute.
fn browse_link(path: &str, start_after: Option<&str>) -> String {
    link::<ep::BrowsePage>(&BrowseQuery { path: path.into(), start_after: start_after.map(str::to_string) })
}

/// A file's page, its JSON or its download, escaped for an attribute.
fn file_link<E: Endpoint<Path = (), Query = FileQuery>>(path: &str, first: u64) -> String {
    link::<E>(&FileQuery { path: path.into(), first })
}

/// `GET /browse?path=/a&start_after=x`
pub async fn browse_page(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<BrowseQuery>) -> Response {
    let list = match listing(&s, c, q).await {
        Ok(l) => l,
        Err(e) => return html_error(e),
    };
    let mut rows = String::new();
    for e in &list.entries {
        let a = &e.attr;
        let size = if a.kind == FileKind::File { bytes(a.size) } else { String::new() };
        let repl = if a.kind == FileKind::File { a.replication.to_string() } else { String::new() };
        rows += &format!(
            r#"<tr class="entry"><td>{}</td><td>{}</td><td class="num">{}</td><td><code>{}</code></td><td>{}:{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            link_for(e),
            kind_name(a.kind),
            escape(&size),
            mode_text(a),
            a.uid,
            a.gid,
            repl,
            time_text(a.mtime_ns)
        );
    }
    let more =
        list.next_start_after.as_ref().map_or(String::new(), |after| format!(r#"<p><a href="{}">Next page</a></p>"#, browse_link(&list.path, Some(after))));
    let body = format!(
        r#"<h2>Browse {crumbs}</h2><table id="listing"><tr><th>Name</th><th>Kind</th><th>Size</th><th>Mode</th><th>Owner</th><th>Replication</th><th>Modified</th></tr>{rows}</table>{more}
<p class="muted">JSON: <a href="{json}">{json}</a></p>"#,
        crumbs = breadcrumbs(&list.path),
        json = link::<ep::DashBrowse>(&BrowseQuery { path: list.path.clone(), start_after: None }),
    );
    Html(frame(&body, "")).into_response()
}

fn replica_lines(c: &ChunkReplicas) -> String {
    if c.replicas.is_empty() {
        return r#"<span class="missing">no replicas</span>"#.into();
    }
    c.replicas
        .iter()
        .map(|r| {
            let version = r.version.map_or("—".to_string(), |v| v.to_string());
            format!(
                r#"<div class="replica"><a href="{a}/">{t}</a> · version <span class="version">{v}</span> · <span class="{s}">{s}</span></div>"#,
                a = escape(&r.address),
                t = escape(&r.address),
                v = escape(&version),
                s = r.state
            )
        })
        .collect()
}

/// `GET /file?path=/a/f&first=N`
pub async fn file_page(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<FileQuery>) -> Response {
    let f = match file_view(&s, c, q).await {
        Ok(f) => f,
        Err(e) => return html_error(e),
    };
    let a = &f.attr;
    let mut rows = String::new();
    for c in &f.chunks {
        rows += &format!(
            r#"<tr class="chunk"><td class="num">{}</td><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="{h}">{h}</td><td>{}</td></tr>"#,
            c.index,
            c.handle,
            c.version,
            bytes(c.length),
            replica_lines(c),
            h = c.health
        );
    }
    let more = f.next_first.map_or(String::new(), |n| format!(r#"<p><a href="{}">Next chunks</a></p>"#, file_link::<ep::FilePage>(&f.path, n)));
    let body = format!(
        r#"<h2>File {crumbs}</h2>
<div class="card"><p>Name <b id="file-name">{name}</b></p><p>Size {size} ({bytes_exact} bytes) · replication {repl} · chunk size {chunk}</p>
<p>Mode <code>{mode}</code> · owner {uid}:{gid} · inode {inode}</p><p>Modified {mtime} · changed {ctime}</p>
<p><a id="download" href="{download}">Download</a></p></div>
<h2>Chunks</h2><table id="chunks"><tr><th>Index</th><th>Handle</th><th>Version</th><th>Length</th><th>Health</th><th>Replicas (node · version · state)</th></tr>{rows}</table>{more}
<p class="muted">JSON: <a href="{json}">{json}</a></p>"#,
        crumbs = breadcrumbs(&f.path),
        name = escape(f.path.rsplit('/').next().unwrap_or("")),
        size = bytes(a.size),
        bytes_exact = a.size,
        repl = a.replication,
        chunk = bytes(a.chunk_size_bytes),
        mode = mode_text(a),
        uid = a.uid,
        gid = a.gid,
        inode = a.inode,
        mtime = time_text(a.mtime_ns),
        ctime = time_text(a.ctime_ns),
        download = file_link::<ep::Download>(&f.path, 0),
        json = file_link::<ep::DashFile>(&f.path, 0),
    );
    Html(frame(&body, "")).into_response()
}

/// `GET /download?path=/a/f`: redirects to a chunkserver's `/files`, which
/// streams the file (the master never carries file data). A chunkserver
/// holding the first chunk is preferred, else any live one.
pub async fn download(State(s): State<Master>, Extension(c): Extension<Caller>, ApiQuery(q): ApiQuery<FileQuery>) -> Response {
    let (store, chunks, path, who) = (s.store.clone(), s.chunks.clone(), q.path.clone(), c.who.clone());
    let found = blocking(move || {
        let attr = store.resolve_node(&NodeRef { path: Some(path), inode: None }, &who)?.attr;
        perms::check_io(&who, &attr, perms::READ, &attr.inode.to_string())?;
        let first = match attr.kind {
            FileKind::File => chunks.locate(attr.inode, 0, 1)?.chunks.into_iter().next(),
            _ => None,
        };
        Ok((attr, first.and_then(|c| c.replicas.into_iter().next())))
    })
    .await;
    let (attr, holder) = match found {
        Ok(x) => x,
        Err(e) => return html_error(e),
    };
    if attr.kind != FileKind::File {
        return error_page(StatusCode::BAD_REQUEST, TITLE, NAV, &format!("{} is not a file", q.path));
    }
    let address = holder.map(|r| r.address).or_else(|| s.chunks.chunkservers().into_iter().find(|n| n.state == "live").map(|n| n.address));
    let Some(address) = address else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, TITLE, NAV, "no chunkserver is live to serve the download");
    };
    // The chunkserver reads the file with this viewer's rights, for a minute.
    let location = match url::<cs::Files>(&address, &(), &DownloadQuery { path: q.path, grant: s.users.grant(&c) }) {
        Ok(l) => l,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, TITLE, NAV, &e.to_string()),
    };
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response()
}
