//! Giving memory back to the system after a load.
//!
//! Building a snapshot reads each database whole and flattens it, which
//! allocates and frees a few times what the snapshot keeps. The allocator
//! keeps freed heap pages for reuse, so without a trim the resident size
//! after a load depends on how the transient buffers happened to be laid
//! out, not on what the server holds.

/// Allocations at least this large get pages of their own (`mmap`), given
/// back to the system when freed.
const OWN_PAGES_FROM: i32 = 512 * 1024;

/// Makes large allocations map their own pages, always. glibc raises that
/// threshold each time such a block is freed (up to 32 MiB), after which
/// the large transient tables of a load come from the heap, where freeing
/// them leaves holes that only some layouts let `malloc_trim` return.
/// Called once, at start.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes the allocator's tuning; a fixed
    // threshold also stops its dynamic adjustment. No pointers involved.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_PAGES_FROM);
    }
}

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
