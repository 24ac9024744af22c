//! Guest work (wasm execution, up to hundreds of millions of fuel) is CPU-bound and runs under
//! the replica lock. Called from async code, it must not hold an async worker hostage: on the
//! multi-threaded runtime the worker first hands its other tasks (timers, HTTP, Raft
//! heartbeats) to another thread.

/// Run `work`, letting the async runtime move this worker's other tasks elsewhere meanwhile.
pub fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        // No runtime, or a current-thread one (unit tests): nothing else could run anyway.
        _ => work(),
    }
}
