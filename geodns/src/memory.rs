//! Giving memory back to the system after a load.
//!
//! Building a snapshot reads each database whole and flattens it, which
//! allocates and frees a few times what the snapshot keeps. The allocator
//! keeps freed heap pages for reuse, so without a trim the resident size
//! after a load depends on how the transient buffers happened to be laid
//! out, not on what the server holds.

/// Returns the allocator's free pages to the system (glibc `malloc_trim`).
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and only releases memory the
    // allocator holds free; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
