//! Giving freed heap memory back to the operating system.
//!
//! The `nacre` binary allocates through jemalloc (see `main.rs`), whose background thread
//! returns freed pages on its own; these calls trim glibc's heap, which the library's other
//! users (tests, the bench, the admin commands) allocate from.

/// Returns to the OS the free memory the allocator keeps after a burst of large, short-lived
/// allocations. Building or installing a snapshot encodes the whole state into one buffer,
/// so it briefly needs about twice the state's memory; glibc keeps what is freed in its
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

/// Run `work`, then give back what it freed: for rare calls that allocate one large buffer and
/// drop it. An Argon2 hash or verification fills 19 MiB; glibc's mmap threshold has risen past
/// that after the first such free, so the next one comes from an arena and stays resident
/// (measured: a node that bootstrapped an administrator and signed in idled 20 MiB above its
/// peers). Blocking: call it where blocking is already allowed.
pub fn returning_freed<T>(work: impl FnOnce() -> T) -> T {
    let out = work();
    release_freed();
    out
}
