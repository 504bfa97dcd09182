//! The blocking driver over the client's I/O core (`client.rs`): small
//! reads served on the caller's own thread. A FUSE request handed to
//! the async runtime crosses threads twice more before its reply (FUSE
//! thread → runtime worker → I/O driver → back), which costs about as much
//! as the chunkserver's work on a 4 KiB read. A thread that is not a
//! runtime thread can instead ask one replica itself over a kept-alive
//! blocking connection. Only the easy case is taken here: the chunk's
//! location is cached and the replica picked for the range (as the async
//! path would pick it first) answers in time with bytes that match their
//! checksums. A replica on this host is read directly, through a descriptor
//! its chunkserver passed (`local.rs`). Anything else returns `None`, and
//! the caller goes the async way, which fails over, asks the master and
//! retries. A refused token also drops the cached location, so that the
//! async way starts with a new one.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use dfs_proto::auth::token::HEADER_TOKEN;
use dfs_proto::endpoint::chunkserver::ReadData;
use dfs_proto::wire::chunks::{checksum_header, DataQuery, HEADER_CHECKSUMS};
use dfs_proto::wire::namespace::Attr;

use crate::client::{complete, Client};
use crate::locations::Known;
use crate::request_id::{self, HEADER_REQUEST_ID};

impl Client {
    /// Reads `len` bytes at `offset` (clipped at the end of the file) on
    /// this thread when the range lies in one chunk whose location is
    /// cached and one replica serves it at once; `None` otherwise. Must not
    /// be called from a runtime thread (it blocks).
    pub fn read_now(&self, attr: &Attr, offset: u64, len: u64) -> Option<Bytes> {
        let (cs, end) = (attr.chunk_size_bytes.max(1), offset.saturating_add(len).min(attr.size));
        if offset >= end {
            return Some(Bytes::new());
        }
        if offset / cs != (end - 1) / cs || end - offset > self.config().read_piece_bytes {
            return None;
        }
        let (index, at, n) = (offset / cs, offset % cs, end - offset);
        let known = self.locations().get(attr.inode, index, Instant::now())?;
        let Known::At(loc) = known else { return Some(Bytes::from(vec![0u8; n as usize])) };
        let preferred = self.replica_for(at, loc.replicas.len());
        if self.config().local_reads {
            if let Some(data) = self.local_reads().read(self.blocking_http(), &loc, preferred, at, n) {
                return Some(data);
            }
        }
        let replica = loc.replicas.get(preferred)?;
        let query = DataQuery { version: loc.version, offset: at, length: Some(n) };
        let url = crate::data::chunk_url::<ReadData>(&replica.address, loc.handle, &query).ok()?;
        let request = self.blocking_http().get(&url).set(HEADER_TOKEN, &loc.token).set(HEADER_REQUEST_ID, request_id::for_operation().as_str());
        let resp = match request.call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(401, _)) => {
                self.locations().forget(attr.inode, index);
                return None;
            }
            Err(_) => return None,
        };
        let sent = resp.header(HEADER_CHECKSUMS).unwrap_or("").to_string();
        let mut data = Vec::with_capacity(n as usize);
        resp.into_reader().read_to_end(&mut data).ok()?;
        if checksum_header(&data) != sent {
            return None;
        }
        complete(Bytes::from(data), loc.length, at, n)
    }
}
