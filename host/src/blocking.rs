//! Keeping the async workers free. A node has as many async workers as cores (two on the
//! machines this runs on), and its Raft core shares them with HTTP: a worker that computes or
//! waits for a lock for a second takes half the node's heartbeats with it, and a follower that
//! hears none for an election timeout starts an election.
//!
//! Guest work (wasm execution, up to hundreds of millions of fuel) is CPU-bound and runs under
//! the replica lock, so both the work and a wait for that lock go through [`cpu_bound`]: on the
//! multi-threaded runtime the worker first hands its other tasks to another thread.
//!
//! Architecture Invariant: no async task waits long for the replica or AP store lock. Locks
//! are taken with [`read`] and [`write`], which park the worker for at most
//! [`MAX_WORKER_PARK`] (the usual wait: another reader's guest call, an AP write) and past
//! that wait off the worker (an apply batch, a compile, a snapshot).

use std::time::Duration;

use parking_lot::RwLock;
use parking_lot::RwLockReadGuard;
use parking_lot::RwLockWriteGuard;

/// Longest an async worker parks on a lock before it hands its other tasks to another
/// thread. Far below the Raft heartbeat interval, and above the tens of microseconds the
/// short holders keep the locks: a hand-off costs more than such a wait, and contended
/// writes meet it on every command.
pub const MAX_WORKER_PARK: Duration = Duration::from_millis(1);

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

/// A read guard on `lock`: waited for on this thread up to [`MAX_WORKER_PARK`], then
/// through [`cpu_bound`].
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.try_read_for(MAX_WORKER_PARK) {
        Some(guard) => guard,
        None => cpu_bound(|| lock.read()),
    }
}

/// A write guard on `lock`: waited for on this thread up to [`MAX_WORKER_PARK`], then
/// through [`cpu_bound`].
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    match lock.try_write_for(MAX_WORKER_PARK) {
        Some(guard) => guard,
        None => cpu_bound(|| lock.write()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// While one thread holds the lock, a task that waits for it does not stop the other
    /// tasks of a two-worker runtime: the Raft heartbeat case.
    #[test]
    fn a_task_waiting_for_a_held_lock_leaves_the_workers_free() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
        let lock = Arc::new(RwLock::new(0u32));
        let guard_holder = {
            let lock = lock.clone();
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let mut guard = lock.write();
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
                *guard = 1;
            });
            held_rx.recv().unwrap();
            thread
        };
        runtime.block_on(async {
            // Two waiters, one per worker; without the hand-off both workers would park.
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    tokio::spawn(async move { *read(&lock) })
                })
                .collect();
            // The ticker is a task too: it needs a free worker to run at all.
            let ticker = tokio::spawn(async {
                let mut ticks = 0u32;
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_millis(300) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks += 1;
                }
                ticks
            });
            let ticks = ticker.await.unwrap();
            // A parked runtime would have run at most a couple of ticks in 300 ms.
            assert!(ticks >= 10, "the timer task ran {ticks} times while the lock was held");
            for waiter in waiters {
                assert_eq!(waiter.await.unwrap(), 1);
            }
        });
        guard_holder.join().unwrap();
    }
}
