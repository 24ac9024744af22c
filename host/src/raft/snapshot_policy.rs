//! When a node takes a snapshot: after `--snapshot-every` entries since the last one, and, once
//! the state is large, not before the log written since then is a share of the state's size.
//!
//! Why not openraft's entry count alone: a snapshot encodes and writes the whole state, so with
//! a fixed interval its cost per entry grows with the state. In the benchmark's persistent
//! registrations (a new instance per write) the state reached 80 MB, and a snapshot every
//! 5,000 entries meant 80 MB encoded, written and fsynced every two to four seconds on each
//! node, with every apply waiting on the replica lock while it was encoded. Tying the interval
//! to the state's size bounds the snapshot work per byte written (as etcd's and ZooKeeper's
//! large entry counts do, and as the Raft thesis suggests) while small states keep the short
//! interval, its short replay and its small in-memory log.
//!
//! Between two snapshots of a large state, the same task writes checkpoints (the keys written
//! since the last one, `raft::checkpoint`) every `--checkpoint-every` entries, so that a
//! restart re-applies at most that much log instead of a quarter of the state's size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver as _;

use super::Raft;
use super::checkpoint;
use super::log_store::LogStore;
use super::state_machine::Shared;

/// A state up to this size is snapshotted on the entry count alone: encoding it takes tens of
/// milliseconds at most.
pub const FREE_STATE_BYTES: u64 = 16 << 20;
/// Past [`FREE_STATE_BYTES`], the log written since the last snapshot must reach the excess
/// state divided by this: each snapshot is paid for by at least a quarter of its size in
/// writes, and the log kept in memory until then is at most a quarter of the state.
pub const STATE_SHARE: u64 = 4;
/// How often the policy looks at the applied index and the state's size.
const CHECK_INTERVAL_MS: u64 = 100;
/// A requested snapshot that has not shown up in the metrics after this long is asked for
/// again (openraft drops a trigger while it is busy with another snapshot).
const REQUEST_RETRY_MS: u64 = 30_000;

/// Whether a snapshot is due, given what happened since the last one.
pub fn due(entries_since: u64, log_bytes_since: u64, state_bytes: u64, every_entries: u64) -> bool {
    entries_since >= every_entries
        && log_bytes_since.saturating_mul(STATE_SHARE) >= state_bytes.saturating_sub(FREE_STATE_BYTES)
}

/// Whether a checkpoint is due: no snapshot is, and `every_entries` (0: never) have been
/// applied since the last snapshot or checkpoint, of which there are fewer than the limit
/// (counted only when the rest holds: it reads the directory).
pub fn checkpoint_due(entries_since_either: u64, checkpoints: impl FnOnce() -> usize, every_entries: u64) -> bool {
    every_entries > 0 && entries_since_either >= every_entries && checkpoints() < checkpoint::MAX_CHECKPOINTS
}

/// Where and how often checkpoints are written.
pub struct Checkpoints {
    pub dir: PathBuf,
    pub every_entries: u64,
}

/// Ask openraft for snapshots when [`due`] says so, and write checkpoints between them when
/// [`checkpoint_due`] does, until Raft shuts down. Openraft's own policy is off
/// (`SnapshotPolicy::Never`); it still purges the log behind each snapshot.
pub async fn run(raft: Raft, log: LogStore, shared: Arc<Shared>, every_entries: u64, checkpoints: Checkpoints) {
    let metrics = raft.metrics();
    let mut last_snapshot: Option<u64> = None;
    let mut last_checkpoint = shared.read().tracked_since.unwrap_or(0);
    let mut log_bytes_at_last = log.appended_bytes();
    let mut requested: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(CHECK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (snapshot, applied) = {
            let metrics = metrics.borrow_watched();
            (metrics.snapshot.map(|id| id.index), metrics.last_applied.map_or(0, |id| id.index))
        };
        if snapshot != last_snapshot {
            // Built here or installed from the leader: either way the count starts again.
            (last_snapshot, log_bytes_at_last, requested) = (snapshot, log.appended_bytes(), None);
        }
        if requested.is_some_and(|at| at.elapsed() < Duration::from_millis(REQUEST_RETRY_MS)) {
            continue;
        }
        // Never wait for an apply here: the next tick will do.
        let Some(state_bytes) = shared.try_read().map(|replica| replica.machine.image().payload_bytes() as u64) else {
            continue;
        };
        let entries_since = applied.saturating_sub(last_snapshot.unwrap_or(0));
        let log_bytes_since = log.appended_bytes().saturating_sub(log_bytes_at_last);
        if due(entries_since, log_bytes_since, state_bytes, every_entries) {
            if raft.trigger().snapshot().await.is_err() {
                return; // Raft has stopped.
            }
            requested = Some(tokio::time::Instant::now());
            continue;
        }
        let since = last_snapshot.unwrap_or(0).max(last_checkpoint);
        let written = || checkpoint::count_after(&checkpoints.dir, last_snapshot.unwrap_or(0));
        if checkpoint_due(applied.saturating_sub(since), written, checkpoints.every_entries) {
            let (shared, dir, log) = (shared.clone(), checkpoints.dir.clone(), log.clone());
            let durable_through = move || log.durable_through();
            match tokio::task::spawn_blocking(move || write_checkpoint(&shared, &dir, durable_through)).await {
                Ok(Checkpointed::Written(index)) => last_checkpoint = index,
                Ok(Checkpointed::NotNow) => {}
                // Not recording, or the write failed (logged): try again after as many entries.
                Ok(Checkpointed::Failed) => last_checkpoint = applied,
                Err(e) => tracing::error!(error = %e, "the checkpoint task failed"),
            }
        }
    }
}

enum Checkpointed {
    Written(u64),
    /// Nothing recorded: the next tick looks again.
    NotNow,
    Failed,
}

/// How long a taken checkpoint waits for this node's log to hold its index durably. The log
/// is fsynced once per append batch, so under any load it gets there within milliseconds;
/// this bounds the wait on a disk that has stalled.
const DURABLE_WAIT_MS: u64 = 10_000;
/// How often that wait looks at the log.
const DURABLE_POLL_MS: u64 = 1;

/// Whether `durable_through` reaches `index` before `wait` runs out.
fn wait_until_durable(index: u64, durable_through: impl Fn() -> u64, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if durable_through() >= index {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(DURABLE_POLL_MS));
    }
}

/// Take one checkpoint at the applied index and write it once this node's own log holds that
/// index durably. Taking it first and waiting after (rather than taking it only when the log
/// has caught up) matters under a steady write load: a leader may commit an entry on its
/// followers' fsyncs before its own, and then its applied index is past its durable log at
/// nearly every moment, so a checkpoint that waited for a quiet moment might never come.
fn write_checkpoint(shared: &Shared, dir: &std::path::Path, durable_through: impl Fn() -> u64) -> Checkpointed {
    let started = std::time::Instant::now();
    let Some(taken) = shared.take_checkpoint() else { return Checkpointed::NotNow };
    let taken_us = started.elapsed().as_micros() as u64;
    let file = taken.into_file();
    let index = file.last_applied.index;
    if !wait_until_durable(index, durable_through, Duration::from_millis(DURABLE_WAIT_MS)) {
        // The keys it carried are no longer recorded, as when a write fails (below).
        tracing::warn!(index, wait_ms = DURABLE_WAIT_MS, "the raft log did not become durable: checkpoint dropped");
        return Checkpointed::Failed;
    }
    match checkpoint::write(dir, &file) {
        Ok(()) => {
            tracing::info!(
                index,
                from = file.from_index,
                keys = file.changes.len(),
                take_us = taken_us,
                took_ms = started.elapsed().as_millis() as u64,
                "wrote checkpoint"
            );
            Checkpointed::Written(index)
        }
        Err(e) => {
            // The keys it carried are no longer recorded: the next checkpoint cannot follow
            // this one, and a restart re-applies the log from the one before.
            tracing::warn!(index, error = %e, "could not write a checkpoint");
            Checkpointed::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_state_snapshots_on_the_entry_count_alone() {
        assert!(!due(4_999, 0, FREE_STATE_BYTES, 5_000));
        assert!(due(5_000, 0, FREE_STATE_BYTES, 5_000));
        assert!(due(5_000, 1, 1 << 20, 5_000));
    }

    #[test]
    fn checkpoints_come_every_so_many_entries_up_to_a_limit() {
        assert!(!checkpoint_due(4_999, || 0, 5_000));
        assert!(checkpoint_due(5_000, || 0, 5_000));
        assert!(!checkpoint_due(5_000, || checkpoint::MAX_CHECKPOINTS, 5_000));
        assert!(!checkpoint_due(u64::MAX, || 0, 0), "0 turns them off");
        assert!(!checkpoint_due(1, || unreachable!("counted only when the entries are there"), 5_000));
    }

    #[test]
    fn a_checkpoint_is_written_only_once_the_log_holds_its_index() {
        let durable = std::sync::atomic::AtomicU64::new(6);
        let read = || durable.load(std::sync::atomic::Ordering::Relaxed);
        assert!(!wait_until_durable(7, read, Duration::from_millis(20)), "the log stays behind");
        assert!(wait_until_durable(6, read, Duration::ZERO));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                durable.store(9, std::sync::atomic::Ordering::Relaxed);
            });
            assert!(wait_until_durable(9, read, Duration::from_secs(10)), "the log catches up");
        });
    }

    #[test]
    fn a_large_state_waits_for_a_share_of_its_size_in_log() {
        let state = FREE_STATE_BYTES + (64 << 20);
        assert!(!due(100_000, (16 << 20) - 1, state, 5_000));
        assert!(due(100_000, 16 << 20, state, 5_000));
        // The entry count still applies.
        assert!(!due(4_999, 1 << 30, state, 5_000));
    }
}
