//! Short-circuit reads between a client and a chunkserver on the same host
//! (as HDFS's): the chunkserver passes an open, read-only descriptor of a
//! replica's data file over a Unix socket, with the replica's length and
//! block CRCs at that moment. The client then reads with `pread` and checks
//! every block against those CRCs; a block changed since (or being
//! changed) fails the check, and the client reads it the usual way.
//!
//! The client finds the socket with `GET /v1/local` on the chunkserver's
//! HTTP address ([`LocalEndpoint`]). Every request carries that answer's
//! token, so a socket at the path that belongs to another process (a
//! restarted or different chunkserver) refuses instead of serving the
//! wrong replicas.
//!
//! Request (32 bytes): token (u128), handle (u64), version (u64), little
//! endian. Reply: status byte; on 0 the length (u64), the CRC count (u32)
//! and the CRCs (u32 each), with the descriptor attached to the first
//! bytes; on 1 (this replica is refused) a message (u32 length, UTF-8); on
//! 2 nothing more: the token is not this process's.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::ids::{ChunkHandle, ChunkVersion};

/// `GET /v1/local` on a chunkserver that serves short-circuit reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEndpoint {
    /// Absolute path of the Unix socket.
    pub socket: String,
    /// This chunkserver process's token, as 32 hex digits.
    pub token: String,
}

pub const REQUEST_BYTES: usize = 32;

/// One replica asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalRequest {
    pub token: u128,
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
}

impl LocalRequest {
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let mut b = [0u8; REQUEST_BYTES];
        b[..16].copy_from_slice(&self.token.to_le_bytes());
        b[16..24].copy_from_slice(&self.handle.0.to_le_bytes());
        b[24..].copy_from_slice(&self.version.0.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; REQUEST_BYTES]) -> LocalRequest {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        LocalRequest {
            token: u128::from_le_bytes(b[..16].try_into().unwrap_or_default()),
            handle: ChunkHandle(u64_at(16)),
            version: ChunkVersion(u64_at(24)),
        }
    }
}

/// What a replica held when its descriptor was passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSnapshot {
    pub length_bytes: u64,
    /// One per 64 KiB block of the chunk (see `wire::chunks::BLOCK_BYTES`).
    pub crcs: Vec<u32>,
}

/// Most CRCs a reply may carry (a 64 GiB chunk): a bound on what a client
/// allocates for a reply.
const MAX_CRCS: u32 = 1 << 20;

/// Sends a replica's descriptor and snapshot.
pub fn send_replica(stream: &UnixStream, fd: RawFd, snap: &ReplicaSnapshot) -> io::Result<()> {
    let mut body = Vec::with_capacity(13 + 4 * snap.crcs.len());
    body.push(0u8);
    body.extend_from_slice(&snap.length_bytes.to_le_bytes());
    body.extend_from_slice(&(snap.crcs.len() as u32).to_le_bytes());
    for c in &snap.crcs {
        body.extend_from_slice(&c.to_le_bytes());
    }
    // The descriptor rides on the first byte; the rest follows as a stream.
    let fds = [fd];
    let sent = sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(&body[..1])], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    if sent != 1 {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "the descriptor was not sent"));
    }
    (&*stream).write_all(&body[1..])
}

const REFUSED: u8 = 1;
const WRONG_TOKEN: u8 = 2;

/// Refuses the replica asked for (unknown, another version...).
pub fn send_refusal(stream: &UnixStream, message: &str) -> io::Result<()> {
    let mut body = vec![REFUSED];
    body.extend_from_slice(&(message.len() as u32).to_le_bytes());
    body.extend_from_slice(message.as_bytes());
    (&*stream).write_all(&body)
}

/// Refuses every request: the token names another process.
pub fn send_wrong_token(stream: &UnixStream) -> io::Result<()> {
    (&*stream).write_all(&[WRONG_TOKEN])
}

/// Why a replica was not passed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// This replica only; others may still be passed.
    #[error("refused: {0}")]
    Refused(String),
    /// The socket belongs to another process than the token's.
    #[error("wrong token: the socket belongs to another chunkserver process")]
    WrongToken,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Receives the answer to a request: the descriptor and snapshot.
pub fn recv_replica(stream: &UnixStream) -> Result<(OwnedFd, ReplicaSnapshot), LocalError> {
    let mut status = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut fd = None;
    {
        let mut iov = [IoSliceMut::new(&mut status)];
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(io::Error::from)?;
        if msg.bytes != 1 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the chunkserver closed the socket").into());
        }
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: the kernel just installed `raw` in this process
                    // for us; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
    }
    let mut r = stream;
    if status[0] == WRONG_TOKEN {
        return Err(LocalError::WrongToken);
    }
    if status[0] != 0 {
        let len = read_u32(&mut r)?.min(4096);
        let mut text = vec![0u8; len as usize];
        r.read_exact(&mut text)?;
        return Err(LocalError::Refused(String::from_utf8_lossy(&text).into_owned()));
    }
    let fd = fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor came with the reply"))?;
    let length_bytes = read_u64(&mut r)?;
    let n = read_u32(&mut r)?;
    if n > MAX_CRCS {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{n} CRCs in a reply")).into());
    }
    let mut raw = vec![0u8; 4 * n as usize];
    r.read_exact(&mut raw)?;
    let crcs = raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((fd, ReplicaSnapshot { length_bytes, crcs }))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;
    use std::os::unix::fs::FileExt;

    #[test]
    fn requests_round_trip() {
        let r = LocalRequest { token: u128::MAX - 7, handle: ChunkHandle(0x1234_5678_9abc), version: ChunkVersion(42) };
        assert_eq!(LocalRequest::decode(&r.encode()), r);
    }

    #[test]
    fn a_descriptor_and_snapshot_cross_the_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut file = tempfile_with(b"hello replica");
        file.rewind().unwrap();
        let snap = ReplicaSnapshot { length_bytes: 13, crcs: vec![1, 2, 0xdead_beef] };
        send_replica(&a, file.as_raw_fd(), &snap).unwrap();
        let (fd, got) = recv_replica(&b).unwrap();
        assert_eq!(got, snap);
        let passed = std::fs::File::from(fd);
        let mut buf = [0u8; 7];
        passed.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"replica");
    }

    #[test]
    fn a_refusal_carries_its_reason() {
        let (a, b) = UnixStream::pair().unwrap();
        send_refusal(&a, "unknown chunk").unwrap();
        match recv_replica(&b) {
            Err(LocalError::Refused(m)) => assert_eq!(m, "unknown chunk"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_token_is_told_apart_from_a_refused_replica() {
        let (a, b) = UnixStream::pair().unwrap();
        send_wrong_token(&a).unwrap();
        assert!(matches!(recv_replica(&b), Err(LocalError::WrongToken)));
    }

    #[test]
    fn a_closed_socket_is_an_error_not_a_hang() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(matches!(recv_replica(&b), Err(LocalError::Io(_))));
    }

    fn tempfile_with(bytes: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!("dfs-local-reads-{}", uuid::Uuid::new_v4()));
        let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(bytes).unwrap();
        f
    }
}
