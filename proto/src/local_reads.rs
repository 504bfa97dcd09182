//! Short-circuit reads between a client and a chunkserver on the same host
//! (as HDFS's): the chunkserver passes an open, read-only descriptor of a
//! replica's data file over a Unix socket, with the replica's length and
//! block CRCs at that moment. The client then reads with `pread` and checks
//! every block against those CRCs; a block changed since (or being
//! changed) fails the check, and the client reads it the usual way.
//!
//! The client finds the socket with `GET /v1/local` on the chunkserver's
//! HTTP address ([`LocalEndpoint`]). Every request carries that answer's
//! process token, so a socket at the path that belongs to another process
//! (a restarted or different chunkserver) refuses instead of serving the
//! wrong replicas. That token is no secret: what lets a request through is
//! its chunk token, the one the master granted with the chunk's location
//! (as `x-dfs-token` over HTTP), checked for a read of that chunk at that
//! version, like any read.
//!
//! Request: a 34-byte head, process token (u128), handle (u64), version
//! (u64), chunk token length (u16), little endian, then the chunk token
//! (ASCII, at most [`TOKEN_MAX_CHARS`]). Reply: status byte; on 0 the
//! length (u64), the CRC count (u32) and the CRCs (u32 each), with the
//! descriptor attached to the first bytes; on 1 (this replica is refused,
//! the chunk token too) a message (u32 length, UTF-8); on 2 nothing more:
//! the process token is not this process's.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::auth::token::TOKEN_MAX_CHARS;
use crate::ids::{ChunkHandle, ChunkVersion};

/// `GET /v1/local` on a chunkserver that serves short-circuit reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalEndpoint {
    /// Absolute path of the Unix socket.
    pub socket: String,
    /// This chunkserver process's token, as 32 hex digits: it tells one
    /// process from another, and is not a secret.
    pub token: String,
}

/// Bytes of a request before its chunk token.
pub const REQUEST_HEAD_BYTES: usize = 34;

/// One replica asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRequest {
    /// The process token of [`LocalEndpoint::token`].
    pub token: u128,
    pub handle: ChunkHandle,
    pub version: ChunkVersion,
    /// The chunk's read token from the master (`ChunkLocation::token`).
    pub chunk_token: String,
}

impl LocalRequest {
    pub fn encode(&self) -> Vec<u8> {
        let chunk_token = &self.chunk_token.as_bytes()[..self.chunk_token.len().min(TOKEN_MAX_CHARS)];
        let mut b = Vec::with_capacity(REQUEST_HEAD_BYTES + chunk_token.len());
        b.extend_from_slice(&self.token.to_le_bytes());
        b.extend_from_slice(&self.handle.0.to_le_bytes());
        b.extend_from_slice(&self.version.0.to_le_bytes());
        b.extend_from_slice(&(chunk_token.len() as u16).to_le_bytes());
        b.extend_from_slice(chunk_token);
        b
    }

    /// Reads one request; a chunk token longer than [`TOKEN_MAX_CHARS`] or
    /// not ASCII is refused unread (InvalidData).
    pub fn read_from(r: &mut impl Read) -> io::Result<LocalRequest> {
        let mut b = [0u8; REQUEST_HEAD_BYTES];
        r.read_exact(&mut b)?;
        let u64_at = |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
        let mut token = [0u8; 16];
        token.copy_from_slice(&b[..16]);
        let len = u16::from_le_bytes([b[32], b[33]]) as usize;
        if len > TOKEN_MAX_CHARS {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a chunk token of {len} bytes")));
        }
        let mut text = vec![0u8; len];
        r.read_exact(&mut text)?;
        let chunk_token = String::from_utf8(text).ok().filter(|t| t.is_ascii());
        let chunk_token = chunk_token.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a chunk token that is not ASCII"))?;
        Ok(LocalRequest { token: u128::from_le_bytes(token), handle: ChunkHandle(u64_at(16)), version: ChunkVersion(u64_at(24)), chunk_token })
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
    let sent =
        sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(&body[..1])], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None).map_err(io::Error::from)?;
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
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
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
    fn requests_round_trip_and_oversized_tokens_are_refused() {
        let r = LocalRequest { token: u128::MAX - 7, handle: ChunkHandle(0x1234_5678_9abc), version: ChunkVersion(42), chunk_token: "AbC-_9".into() };
        assert_eq!(LocalRequest::read_from(&mut &r.encode()[..]).unwrap(), r);
        let empty = LocalRequest { chunk_token: String::new(), ..r.clone() };
        assert_eq!(LocalRequest::read_from(&mut &empty.encode()[..]).unwrap(), empty);
        let mut long = r.encode();
        long[32..34].copy_from_slice(&((TOKEN_MAX_CHARS + 1) as u16).to_le_bytes());
        assert_eq!(LocalRequest::read_from(&mut &long[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut binary = r.encode();
        binary[34] = 0xff;
        assert_eq!(LocalRequest::read_from(&mut &binary[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(LocalRequest::read_from(&mut &r.encode()[..30]).is_err(), "a short head");
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
