//! Open directories. A listing is fetched from the master a page at a time
//! as `readdir` moves through it; entries keep their positions, so the
//! kernel's offsets stay valid however the reads are cut.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use dfs_client::{Client, ClientError};
use dfs_proto::wire::namespace::{Attr, DirEntry, ListQuery};
use tokio::sync::Mutex as AsyncMutex;

/// Entries asked of the master per page.
const PAGE: u32 = 1000;

/// One open directory: "." and "..", then the entries fetched so far.
pub struct Listing {
    pub dir: Attr,
    /// The parent's attributes (the root is its own parent).
    pub parent: Attr,
    entries: Vec<DirEntry>,
    /// Where the next page starts, `None` once the listing is complete.
    next: Option<Option<String>>,
    /// When the first page was asked for: the listing is at least this fresh.
    since: Option<Instant>,
}

impl Listing {
    /// The entry at position `i` (0 is ".", 1 is ".."), fetching pages as
    /// needed; `None` past the end.
    pub async fn entry(&mut self, client: &Client, i: usize) -> Result<Option<(String, Attr)>, ClientError> {
        match i {
            0 => return Ok(Some((".".into(), self.dir.clone()))),
            1 => return Ok(Some(("..".into(), self.parent.clone()))),
            _ => {}
        }
        let i = i - 2;
        while i >= self.entries.len() {
            let Some(start_after) = self.next.clone() else { return Ok(None) };
            self.since.get_or_insert_with(Instant::now);
            let query = ListQuery { inode: Some(self.dir.inode), start_after, limit: Some(PAGE), ..Default::default() };
            let page = client.master().list(&query).await?;
            self.next = page.next_start_after.map(Some);
            self.entries.extend(page.entries);
        }
        let e = &self.entries[i];
        Ok(Some((e.name.clone(), e.attr.clone())))
    }
}

impl Listing {
    /// Every name, once the whole listing has been fetched, with how fresh
    /// it is.
    pub fn complete_names(&self) -> Option<(HashSet<String>, Instant)> {
        match (&self.next, self.since) {
            (None, Some(since)) => Some((self.entries.iter().map(|e| e.name.clone()).collect(), since)),
            _ => None,
        }
    }
}

/// The open directories of the mount.
#[derive(Default)]
pub struct OpenDirs {
    next_fh: AtomicU64,
    dirs: Mutex<HashMap<u64, Arc<AsyncMutex<Listing>>>>,
}

impl OpenDirs {
    fn dirs(&self) -> MutexGuard<'_, HashMap<u64, Arc<AsyncMutex<Listing>>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self, dir: Attr, parent: Attr) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed) + 1;
        let listing = Listing { dir, parent, entries: Vec::new(), next: Some(None), since: None };
        self.dirs().insert(fh, Arc::new(AsyncMutex::new(listing)));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<AsyncMutex<Listing>>> {
        self.dirs().get(&fh).cloned()
    }

    pub fn release(&self, fh: u64) {
        self.dirs().remove(&fh);
    }
}
