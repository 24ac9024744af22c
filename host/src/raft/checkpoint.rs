//! Checkpoints: between two snapshots, the keys written since the last checkpoint, with
//! their values, so that a restart re-applies little of the log through the guests.
//!
//! Why: a restart loads the snapshot, then re-applies every entry after it through the
//! guests before the node can serve. Once the state is large, snapshots are rare on purpose
//! (`snapshot_policy`: each costs the whole state encoded and written), so the log past the
//! last one grows to a quarter of the state. Measured (`nacre-bench restart`, 400k keys,
//! 170 MB snapshots): the three nodes re-applied 76-100k entries each, 3.2-4.3 s of a 5.6 s
//! whole-cluster restart. A checkpoint costs what was written since the last one, not the
//! state: the keys touched (recorded by the map, `state::Kv::track_touched`) looked up in an
//! O(1) copy taken under the lock, encoded and fsynced off it.
//!
//! Files: `checkpoint-<index>.bin` beside `snapshot.bin`, each postcard([`CheckpointFile`]).
//! A checkpoint at index X with `from_index` F holds every key written in (F, X], with its
//! value at X: put on a state at any index in [F, X], it gives the state at X. So a restart
//! starts from the snapshot's state at S and takes the checkpoints in index order while each
//! one's F is at or below the index reached; the digest each one records must come out, or
//! it is dropped with every later one (the log re-applies from the last good one). Nothing
//! here is trusted more than the log: a missing, damaged or stale checkpoint only means more
//! of the log is re-applied.
//!
//! Architecture Invariant: a checkpoint is read only on top of the snapshot it follows and
//! only when its recorded digest is the one the map reaches with it; `tests` below,
//! `tests/cluster.rs` (a whole cluster restarted from checkpoints) and the nemesis (a
//! checkpoint every 50 entries) hold it to that.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;

use super::state_machine::Replica;
use super::types::LogId;
use super::types::StoredMembership;
use crate::state::Machine;

const FILE_PREFIX: &str = "checkpoint-";
const FILE_SUFFIX: &str = ".bin";
/// Checkpoints kept between two snapshots at most: past it none is written until the next
/// snapshot (the log covers the rest), so the files a restart reads stay bounded.
pub const MAX_CHECKPOINTS: usize = 64;

/// What a checkpoint file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointFile {
    /// The keys were recorded from this applied index on.
    pub from_index: u64,
    pub last_applied: LogId,
    pub membership: StoredMembership,
    /// The map's digest at `last_applied`: what reading this checkpoint must reach.
    pub digest: [u8; 32],
    /// Every key written in (`from_index`, `last_applied`], in key order, with its value at
    /// `last_applied` (`None`: deleted).
    pub changes: Vec<Change>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Change(#[serde(with = "serde_bytes")] pub Vec<u8>, #[serde(with = "serde_bytes")] pub Option<Vec<u8>>);

/// What a checkpoint is made of, taken from the live replica under its lock.
pub struct Taken {
    pub from_index: u64,
    pub last_applied: LogId,
    pub membership: StoredMembership,
    /// An O(1) copy of the machine at `last_applied`.
    pub machine: Machine,
    pub keys: HashSet<Vec<u8>>,
}

impl Taken {
    /// Look the keys up in the copy (off the lock) and form the file.
    pub fn into_file(self) -> CheckpointFile {
        let mut keys: Vec<Vec<u8>> = self.keys.into_iter().collect();
        keys.sort_unstable();
        let changes = self.machine.values_of(keys).into_iter().map(|(key, value)| Change(key, value)).collect();
        CheckpointFile {
            from_index: self.from_index,
            last_applied: self.last_applied,
            membership: self.membership,
            digest: self.machine.digest(),
            changes,
        }
    }
}

fn file_name(index: u64) -> String {
    format!("{FILE_PREFIX}{index:020}{FILE_SUFFIX}")
}

/// The checkpoint files in `dir`, by index.
fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FILE_PREFIX))
            .and_then(|n| n.strip_suffix(FILE_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((index, entry.path()));
    }
    found.sort_unstable_by_key(|(index, _)| *index);
    Ok(found)
}

/// How many checkpoint files `dir` holds past `index`.
pub fn count_after(dir: &Path, index: u64) -> usize {
    list(dir).map_or(0, |files| files.iter().filter(|(i, _)| *i > index).count())
}

/// Write `file` atomically as the checkpoint at its index.
pub fn write(dir: &Path, file: &CheckpointFile) -> io::Result<()> {
    super::state_machine::write_atomically(dir, &file_name(file.last_applied.index), file)
}

/// Remove the checkpoints at or below `index` (a snapshot there makes them useless); all of
/// them with `u64::MAX` (a snapshot installed from the leader replaces the state).
pub fn remove_through(dir: &Path, index: u64) {
    let Ok(files) = list(dir) else { return };
    for (_, path) in files.into_iter().filter(|(i, _)| *i <= index) {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a checkpoint");
        }
    }
}

/// Bring `replica` (just read from the snapshot) forward through the checkpoints in `dir`
/// that follow it; the number read. A checkpoint that cannot be read or does not reach its
/// digest ends the chain, and it and every later one are removed (a later one could follow
/// only it, and new checkpoints will follow the state reached here). One that cannot be
/// removed is only logged: the start goes on, and the next snapshot removes it.
pub fn restore(dir: &Path, replica: &mut Replica) -> io::Result<usize> {
    let mut read = 0;
    let files = list(dir)?;
    let snapshot_index = replica.applied_index();
    let mut rest = files.iter().filter(|(index, _)| *index > snapshot_index).peekable();
    while let Some((index, path)) = rest.peek() {
        match read_one(path, *index, replica) {
            Ok(()) => read += 1,
            Err(why) => {
                tracing::warn!(index, %why, "a checkpoint was not read; the log is re-applied from before it");
                break;
            }
        }
        rest.next();
    }
    for (_, path) in rest {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a checkpoint past the chain's end");
        }
    }
    Ok(read)
}

fn read_one(path: &Path, index: u64, replica: &mut Replica) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (file, rest): (CheckpointFile, &[u8]) = postcard::take_from_bytes(&bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the checkpoint", rest.len()));
    }
    if file.last_applied.index != index {
        return Err(format!("named for index {index}, holds index {}", file.last_applied.index));
    }
    let at = replica.applied_index();
    if file.from_index > at {
        return Err(format!("follows index {}, the state is at {at}", file.from_index));
    }
    // Put on a copy: a checkpoint that does not reach its digest leaves the replica as it was.
    let mut machine = replica.machine.clone();
    machine.set_values(file.changes.into_iter().map(|Change(key, value)| (key, value)).collect());
    if machine.digest() != file.digest {
        return Err("its changes do not reach the digest it recorded".into());
    }
    replica.machine = machine;
    replica.last_applied = Some(file.last_applied);
    replica.membership = file.membership;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::TypeConfig;

    fn log_id(index: u64) -> LogId {
        LogId::new(openraft::alias::CommittedLeaderIdOf::<TypeConfig> { term: 1, node_id: 1 }, index)
    }

    fn put(machine: &mut Machine, key: &str, value: &str) {
        machine.set_values(vec![(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))]);
    }

    /// A live replica whose writes are recorded from `index` on, and a copy of its state then
    /// (what the snapshot holds).
    fn live_at(index: u64) -> (Replica, Replica) {
        let mut machine = Machine::default();
        put(&mut machine, "a", "1");
        put(&mut machine, "b", "1");
        let snapshot = Replica { machine: machine.clone(), last_applied: Some(log_id(index)), ..Replica::default() };
        machine.track_touched();
        (Replica { machine, last_applied: Some(log_id(index)), ..Replica::default() }, snapshot)
    }

    fn checkpoint(live: &mut Replica, from_index: u64, index: u64) -> CheckpointFile {
        live.last_applied = Some(log_id(index));
        let keys = live.machine.take_touched().expect("tracking is on");
        Taken {
            from_index,
            last_applied: log_id(index),
            membership: live.membership.clone(),
            machine: live.machine.clone(),
            keys,
        }
        .into_file()
    }

    #[test]
    fn a_chain_of_checkpoints_brings_the_snapshot_to_the_live_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut live, mut restored) = live_at(10);
        put(&mut live.machine, "a", "2");
        put(&mut live.machine, "c", "1");
        write(dir.path(), &checkpoint(&mut live, 10, 20)).unwrap();
        live.machine.set_values(vec![(b"b".to_vec(), None), (b"c".to_vec(), Some(b"2".to_vec()))]);
        write(dir.path(), &checkpoint(&mut live, 20, 30)).unwrap();

        assert_eq!(restore(dir.path(), &mut restored).unwrap(), 2);
        assert_eq!(restored.applied_index(), 30);
        assert_eq!(restored.machine.digest_hex(), live.machine.digest_hex());
        assert_eq!(restored.machine.key_count(), 2);
    }

    #[test]
    fn a_checkpoint_reaches_the_same_state_from_any_index_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let (mut live, _) = live_at(10);
        put(&mut live.machine, "a", "2");
        let mut snapshot_at_15 =
            Replica { machine: live.machine.clone(), last_applied: Some(log_id(15)), ..Replica::default() };
        put(&mut live.machine, "c", "1");
        write(dir.path(), &checkpoint(&mut live, 10, 20)).unwrap();
        assert_eq!(restore(dir.path(), &mut snapshot_at_15).unwrap(), 1);
        assert_eq!(snapshot_at_15.machine.digest_hex(), live.machine.digest_hex());
    }

    #[test]
    fn a_gap_or_a_damaged_checkpoint_ends_the_chain_and_the_rest_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut live, restored) = live_at(10);
        put(&mut live.machine, "a", "2");
        write(dir.path(), &checkpoint(&mut live, 10, 20)).unwrap();
        let at_20 = live.machine.digest_hex();
        put(&mut live.machine, "a", "3");
        let lost = checkpoint(&mut live, 20, 30); // never written: a gap
        drop(lost);
        put(&mut live.machine, "a", "4");
        write(dir.path(), &checkpoint(&mut live, 30, 40)).unwrap();

        let mut from_snapshot = Replica { machine: restored.machine.clone(), ..restored };
        assert_eq!(restore(dir.path(), &mut from_snapshot).unwrap(), 1);
        assert_eq!((from_snapshot.applied_index(), from_snapshot.machine.digest_hex()), (20, at_20));
        assert_eq!(count_after(dir.path(), 20), 0, "the checkpoint past the gap is removed");

        // A checkpoint whose changes do not reach its digest is not taken.
        let (mut live, mut restored) = live_at(10);
        put(&mut live.machine, "a", "2");
        let mut file = checkpoint(&mut live, 10, 20);
        file.changes[0].1 = Some(b"forged".to_vec());
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &file).unwrap();
        let before = restored.machine.digest_hex();
        assert_eq!(restore(dir.path(), &mut restored).unwrap(), 0);
        assert_eq!((restored.applied_index(), restored.machine.digest_hex()), (10, before));

        // Nor one that is not a checkpoint at all.
        std::fs::write(dir.path().join(file_name(20)), b"not a checkpoint").unwrap();
        assert_eq!(restore(dir.path(), &mut restored).unwrap(), 0);
    }

    #[test]
    fn checkpoints_at_or_below_a_snapshot_are_skipped_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut live, _) = live_at(10);
        put(&mut live.machine, "a", "2");
        write(dir.path(), &checkpoint(&mut live, 10, 20)).unwrap();
        let mut newer = Replica { machine: live.machine.clone(), last_applied: Some(log_id(25)), ..Replica::default() };
        assert_eq!(restore(dir.path(), &mut newer).unwrap(), 0);
        assert_eq!(newer.applied_index(), 25);
        remove_through(dir.path(), 25);
        assert!(list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_copy_of_the_map_does_not_carry_the_record_of_touched_keys() {
        let (mut live, _) = live_at(10);
        put(&mut live.machine, "a", "2");
        let mut copy = live.machine.clone();
        assert!(copy.take_touched().is_none());
        assert_eq!(live.machine.take_touched().unwrap().len(), 1);
        assert!(live.machine.take_touched().unwrap().is_empty(), "taking starts a fresh record");
    }
}
