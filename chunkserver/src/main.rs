//! `dfs-chunkserver --listen HOST:PORT --master URL --data-dir DIR [--config FILE]`

use std::process::ExitCode;

use dfs_chunkserver::config::ChunkserverConfig;
use dfs_server_kit::http::daemon::daemon_main;

#[tokio::main]
async fn main() -> ExitCode {
    keep_freed_memory();
    daemon_main::<ChunkserverConfig, _, _>("dfs-chunkserver", dfs_chunkserver::server::run).await
}

/// Keeps freed heap memory for reuse instead of handing it back to the OS.
///
/// Writes allocate and free multi-MiB buffers (request bodies) many times a
/// second. With glibc's defaults a freed buffer often goes back to the OS
/// (an allocation over the dynamic mmap threshold is its own mapping; a
/// large free top of the heap is trimmed), and the next one faults its
/// pages in again, one by one: ~50,000 faults per GiB written, measured.
/// Kept, the memory is at most the peak that the write budget allows.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, valid at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
