//! Writes decided and not yet committed: a Raft leader's group of
//! mutations while it waits for the group's entry to commit.
//!
//! The leader decides each mutation against the namespace as it will be
//! once what it decided before is applied: the store with these writes on
//! top (`Store::pending`). They reach RocksDB only when their entry commits
//! and every master, the leader too, applies it; a deposed leader thus
//! keeps nothing the others lack, and no memtable flush can put an
//! uncommitted write into the tables.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

/// One column family's writes: key → value, `None` for a deletion.
type Family = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A write as `Pending::from` copies it out: key, value or deletion.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The writes, by column family; a later write of a key replaces an earlier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    families: BTreeMap<&'static str, Family>,
}

/// A key and its value, as a store scan yields them.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

impl Pending {
    pub fn put(&mut self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.families.entry(cf).or_default().insert(key.to_vec(), Some(value.to_vec()));
    }

    pub fn delete(&mut self, cf: &'static str, key: &[u8]) {
        self.families.entry(cf).or_default().insert(key.to_vec(), None);
    }

    /// `None` when the key was not written here (read the store);
    /// `Some(None)` when it was deleted.
    pub fn get(&self, cf: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.families.get(cf)?.get(key).map(|v| v.as_deref())
    }

    /// The writes of `cf` from `from` on, in key order (copied: the
    /// caller's scan outlives any lock on these writes).
    pub fn from(&self, cf: &str, from: &[u8]) -> Vec<Write> {
        let Some(family) = self.families.get(cf) else { return Vec::new() };
        family.range::<[u8], _>((Bound::Included(from), Bound::Unbounded)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Adds `later`'s writes on top of these.
    pub fn absorb(&mut self, later: Pending) {
        for (cf, family) in later.families {
            self.families.entry(cf).or_default().extend(family);
        }
    }

    /// Every write, by column family and key: what a batch applying them
    /// all holds (the last write of each key is the one that counts).
    pub fn writes(&self) -> impl Iterator<Item = (&'static str, &[u8], Option<&[u8]>)> {
        self.families.iter().flat_map(|(cf, f)| f.iter().map(move |(k, v)| (*cf, k.as_slice(), v.as_deref())))
    }
}

/// A store scan (in key order, from some key) seen through the pending
/// writes of the same column family from the same key: a pending value
/// replaces the stored one, a pending deletion hides it.
pub struct Merged<I: Iterator> {
    store: Peekable<I>,
    pending: Peekable<std::vec::IntoIter<Write>>,
}

impl<I: Iterator> Merged<I> {
    pub fn new(store: I, pending: Vec<Write>) -> Self {
        Merged { store: store.peekable(), pending: pending.into_iter().peekable() }
    }
}

impl<I, E> Iterator for Merged<I>
where
    I: Iterator<Item = Result<KeyValue, E>>,
{
    type Item = Result<KeyValue, E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.store.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => return self.store.next(),
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((stored, _))), Some((written, _))) => stored.as_ref().cmp(written.as_slice()),
            };
            match order {
                Ordering::Less => return self.store.next(),
                // The stored value of a key written here is not seen.
                Ordering::Equal => drop(self.store.next()),
                Ordering::Greater => {}
            }
            if let Some((key, Some(value))) = self.pending.next() {
                return Some(Ok((key.into_boxed_slice(), value.into_boxed_slice())));
            }
        }
    }
}

#[cfg(test)]
mod tests;
