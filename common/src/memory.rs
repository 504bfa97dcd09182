//! How the data-path processes use the C heap.

/// Keeps freed heap memory for reuse instead of handing it back to the OS.
///
/// Writes allocate and free multi-MiB buffers (request bodies, write-back
/// pieces) many times a second. With glibc's defaults a freed buffer often
/// goes back to the OS (an allocation over the dynamic mmap threshold is
/// its own mapping; a large free top of the heap is trimmed), and the next
/// one faults its pages in again, one by one: ~50,000 faults per GiB in each
/// chunkserver, measured. Kept, the memory is at most the peak that the
/// daemons' own bounds (write budget, write-back buffers) allow.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the
    // process allocates in earnest, and valid at any time anyway.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
