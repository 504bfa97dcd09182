//! The node's disk seen from async code: chunk-store calls on the blocking
//! pool, and the free space left.

use std::path::Path;

use crate::chunk_store::ChunkError;

/// Runs a blocking chunk-store call on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ChunkError>
where
    F: FnOnce() -> Result<T, ChunkError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ChunkError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return 0 };
    // SAFETY: statvfs is plain old data, for which all zero bytes is a value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and s a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return 0;
    }
    s.f_bavail as u64 * s.f_frsize as u64
}
