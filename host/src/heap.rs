//! Giving freed heap memory back to the operating system.

/// Returns to the OS the free memory the allocator keeps after a burst of large, short-lived
/// allocations. Building or installing a snapshot encodes a full copy of the state, so it
/// briefly needs about three times the state's memory; glibc keeps what is freed in its
/// arenas for reuse, and without this a node's resident memory would stay at the peak of its
/// last snapshot. Blocking (it walks every arena): call it off the async workers.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own arenas under their locks; it has no
    // preconditions and touches no memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}
