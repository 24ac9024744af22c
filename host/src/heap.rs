//! Giving freed heap memory back to the operating system, and keeping less of it.

/// glibc malloc arenas a node may use. glibc's default is eight per core, and an arena, once a
/// thread has used one, keeps what is freed in it: a leader's many short-lived blocking
/// threads (guest calls off the workers, probes, snapshots) spread its garbage over a dozen
/// arenas. Measured on this 2-core machine (3 nodes, 10k configs then 10k persistent
/// instances, `--auth off`): the leader's resident memory 276 MiB with glibc's default, 147 MiB
/// with two arenas; the followers' 137 and 95-111 MiB.
pub const MAX_MALLOC_ARENAS: i32 = 2;

/// Cap glibc's arenas at [`MAX_MALLOC_ARENAS`] (an explicit `MALLOC_ARENA_MAX` in the
/// environment wins). Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` sets one of glibc's tunables; called before other threads exist,
        // it races with no allocation.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MAX_MALLOC_ARENAS);
        }
    }
}

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
