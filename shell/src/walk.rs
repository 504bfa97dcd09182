//! Walking a dfs tree: a path, then (for a directory) everything under it in
//! pre-order, each directory's entries in name order. Only the listings of
//! the directories on the current branch are held in memory.

use dfs_client::Client;
use dfs_proto::wire::namespace::{Attr, DirEntry, FileKind};
use futures::TryStreamExt;

use crate::{join, Failure};

pub struct Walk<'a> {
    client: &'a Client,
    first: Option<(String, Attr)>,
    stack: Vec<(String, std::vec::IntoIter<DirEntry>)>,
}

/// Every entry of a directory, page after page.
pub async fn list_all(client: &Client, path: &str) -> Result<Vec<DirEntry>, Failure> {
    client.list(path).try_collect().await.map_err(|e| Failure::dfs(path, e))
}

impl<'a> Walk<'a> {
    pub fn new(client: &'a Client, path: &str, attr: Attr) -> Self {
        Walk { client, first: Some((path.to_string(), attr)), stack: Vec::new() }
    }

    /// The next path with its attributes; a directory that cannot be listed
    /// is an error in the sequence and the walk goes on without it.
    pub async fn next(&mut self) -> Option<Result<(String, Attr), Failure>> {
        if let Some((path, attr)) = self.first.take() {
            return Some(self.enter(path, attr).await);
        }
        loop {
            let (dir, entries) = self.stack.last_mut()?;
            match entries.next() {
                Some(e) => {
                    let path = join(dir, &e.name);
                    return Some(self.enter(path, e.attr).await);
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }

    async fn enter(&mut self, path: String, attr: Attr) -> Result<(String, Attr), Failure> {
        if attr.kind == FileKind::Dir {
            let entries = list_all(self.client, &path).await?;
            self.stack.push((path.clone(), entries.into_iter()));
        }
        Ok((path, attr))
    }
}
