//! openraft's state-machine interface over [`Machine`], and snapshots on disk.
//!
//! The replica (machine + applied log id + membership) sits behind one `RwLock` shared with
//! the HTTP layer, which reads it concurrently through guest queries. A snapshot is the
//! machine's image (every key-value pair, which includes installed modules and bindings),
//! written atomically as one file: `snapshot.bin` = postcard(`SnapshotFile`).

use std::io;
use std::io::Cursor;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use futures_util::Stream;
use futures_util::StreamExt;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::Snapshot;
use openraft::alias::SnapshotOf;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use parking_lot::RwLock;
use parking_lot::RwLockReadGuard;
use parking_lot::RwLockWriteGuard;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::watch;

use super::checkpoint;
use super::types::LogId;
use super::types::Operation;
use super::types::Proposal;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;
use crate::runtime::Runtime;
use crate::state::ChangeEvent;
use crate::state::EntryRef;
use crate::state::Machine;
use crate::state::MachineImage;

const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The directory of a node's snapshot, in its data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Changes a lagging watcher may fall behind by before it is told it lagged (and re-checks
/// everything it watches).
const EVENT_CHANNEL_CAPACITY: usize = 4096;

/// The replicated state as of `last_applied`.
#[derive(Debug, Default)]
pub struct Replica {
    pub machine: Machine,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The applied index the machine's record of touched keys starts at (the next
    /// checkpoint's `from_index`); `None` while nothing is recorded.
    pub tracked_since: Option<u64>,
}

impl Replica {
    pub fn applied_index(&self) -> u64 {
        self.last_applied.as_ref().map_or(0, |id| id.index)
    }
}

/// What the state machine shares with the rest of the node.
pub struct Shared {
    replica: RwLock<Replica>,
    /// Set when a panic unwound out of an apply: the replica may be half-applied, and no
    /// answer may be read from it (the lock itself does not poison). Raft stops on the panic;
    /// a restart rebuilds the replica from the snapshot and the log.
    half_applied: AtomicBool,
    pub runtime: Runtime,
    /// Every change guests report, after the entry that made it is applied.
    pub events: broadcast::Sender<Arc<ChangeEvent>>,
    /// The applied index, for readers that wait for their own write.
    pub applied: watch::Sender<u64>,
}

impl Shared {
    /// The replica for reading; an apply in progress is waited out off the async worker.
    pub fn read(&self) -> RwLockReadGuard<'_, Replica> {
        self.whole(crate::blocking::read(&self.replica))
    }

    /// The replica if no apply holds it now: for a short read on an async worker, which must
    /// not wait out an apply.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, Replica>> {
        self.replica.try_read().map(|guard| self.whole(guard))
    }

    /// The replica for an apply, marked half-applied if the apply panics before the guard
    /// is dropped.
    fn write(&self) -> ApplyGuard<'_> {
        ApplyGuard { replica: self.whole(crate::blocking::write(&self.replica)), half_applied: &self.half_applied }
    }

    /// What a snapshot encodes, taken in one moment under the write lock: an O(1) copy of the
    /// machine and its metadata. The record of touched keys starts again here (a snapshot
    /// covers everything before it, and the next checkpoint follows it), so the record never
    /// outgrows what is written between two snapshots or checkpoints, and one dropped for
    /// overflowing starts again.
    fn take_snapshot_copy(&self) -> (Machine, SnapshotMeta) {
        let mut replica = self.write();
        let meta = SnapshotMeta { last_log_id: replica.last_applied, last_membership: replica.membership.clone() };
        replica.machine.track_touched();
        replica.tracked_since = Some(replica.applied_index());
        (replica.machine.clone(), meta)
    }

    /// What a checkpoint needs, taken in one moment under the write lock (an O(1) copy and
    /// the record of touched keys, which starts again here); `None` when nothing is recorded.
    /// The caller writes it only once this node's own log holds its index durably
    /// (`snapshot_policy`): a checkpoint must never say more was applied than a restarted node
    /// finds in its log (openraft would then purge the log up to it, past the snapshot).
    pub(super) fn take_checkpoint(&self) -> Option<checkpoint::Taken> {
        let mut replica = self.write();
        let from_index = replica.tracked_since?;
        let last_applied = replica.last_applied?;
        let Some(keys) = replica.machine.take_touched() else {
            replica.tracked_since = None; // the record overflowed: no chain until it restarts
            return None;
        };
        replica.tracked_since = Some(last_applied.index);
        Some(checkpoint::Taken {
            from_index,
            last_applied,
            membership: replica.membership.clone(),
            machine: replica.machine.clone(),
            keys,
        })
    }

    fn whole<G>(&self, guard: G) -> G {
        assert!(
            !self.half_applied.load(Ordering::Acquire),
            "the replica was left half-applied by a panic; restart the node"
        );
        guard
    }
}

/// Write access to the replica that records a panic unwinding through it.
struct ApplyGuard<'a> {
    replica: RwLockWriteGuard<'a, Replica>,
    half_applied: &'a AtomicBool,
}

impl Drop for ApplyGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.half_applied.store(true, Ordering::Release);
        }
    }
}

impl std::ops::Deref for ApplyGuard<'_> {
    type Target = Replica;
    fn deref(&self) -> &Replica {
        &self.replica
    }
}

impl std::ops::DerefMut for ApplyGuard<'_> {
    fn deref_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    image: Vec<u8>,
}

pub struct StateMachine {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl StateMachine {
    /// Restore the replica from the snapshot in `dir`, if there is one.
    pub fn open(dir: &Path, runtime: Runtime) -> io::Result<(StateMachine, Arc<Shared>)> {
        std::fs::create_dir_all(dir)?;
        let mut replica = Replica::default();
        let started = std::time::Instant::now();
        if let Some(file) = read_snapshot_file(dir)? {
            let read = started.elapsed();
            let image = MachineImage::decode(&file.image).map_err(invalid_data)?;
            let decoded = started.elapsed();
            replica = Replica {
                machine: Machine::from_image(image),
                last_applied: file.meta.last_log_id,
                membership: file.meta.last_membership.clone(),
                tracked_since: None,
            };
            // A restart's time is mostly this and the log replayed after it (`raft-log` and
            // openraft's "re-apply" lines): logged so a slow start can be read apart.
            tracing::info!(
                index = replica.applied_index(),
                bytes = file.image.len(),
                pairs = replica.machine.key_count(),
                read_ms = read.as_millis() as u64,
                decode_ms = (decoded - read).as_millis() as u64,
                build_ms = (started.elapsed() - decoded).as_millis() as u64,
                "restored snapshot"
            );
        }
        let (snapshot_index, restoring) = (replica.applied_index(), std::time::Instant::now());
        let read = checkpoint::restore(dir, &mut replica)?;
        if read > 0 {
            tracing::info!(
                checkpoints = read,
                from = snapshot_index,
                index = replica.applied_index(),
                took_ms = restoring.elapsed().as_millis() as u64,
                "restored checkpoints"
            );
        }
        replica.tracked_since = Some(replica.applied_index());
        replica.machine.track_touched();
        let applied_index = replica.applied_index();
        let shared = Arc::new(Shared {
            replica: RwLock::new(replica),
            half_applied: AtomicBool::new(false),
            runtime,
            events: broadcast::channel(EVENT_CHANNEL_CAPACITY).0,
            applied: watch::channel(applied_index).0,
        });
        let sm = StateMachine { shared: shared.clone(), dir: dir.to_path_buf() };
        Ok((sm, shared))
    }
}

/// The latest snapshot in `dir` as a machine and the index it was taken at, if there is one
/// (for dry runs, which rebuild past state from it and the log after it).
pub fn read_snapshot(dir: &Path) -> io::Result<Option<(u64, Machine)>> {
    let Some(file) = read_snapshot_file(dir)? else { return Ok(None) };
    let image = MachineImage::decode(&file.image).map_err(invalid_data)?;
    Ok(Some((file.meta.last_log_id.map_or(0, |id| id.index), Machine::from_image(image))))
}

fn read_snapshot_file(dir: &Path) -> io::Result<Option<SnapshotFile>> {
    match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => Ok(Some(decode(&bytes)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Write a restored backup as this node's snapshot (`raft::backup`): only where there is none.
pub fn write_restored_snapshot(dir: &Path, meta: SnapshotMeta, image: Vec<u8>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if dir.join(SNAPSHOT_FILE).exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "this node already has a snapshot; restore needs a new one",
        ));
    }
    write_snapshot_file(dir, &SnapshotFile { meta, image })
}

/// Write the snapshot file atomically: a crash leaves either the old file or the new one.
fn write_snapshot_file(dir: &Path, file: &SnapshotFile) -> io::Result<()> {
    write_atomically(dir, SNAPSHOT_FILE, file)
}

/// Write `value` as `dir/name`, atomically and durably: a crash leaves either the old file
/// or the new one. Encoded straight into the file: a snapshot's image is most of it, and a
/// second copy in memory would only be written out and freed.
pub(super) fn write_atomically<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let out = postcard::to_io(value, io::BufWriter::new(std::fs::File::create(&tmp)?)).map_err(io::Error::other)?;
    let out = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    out.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Decodes the whole of `bytes`: trailing bytes mean a damaged or foreign file.
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> io::Result<T> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if !rest.is_empty() {
        return Err(invalid_data(format!("{} bytes after the snapshot", rest.len())));
    }
    Ok(value)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let replica = self.shared.read();
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.next().await {
            batch.push(item?);
        }
        let Some(last) = batch.last().map(|(entry, _)| entry.log_id) else {
            return Ok(());
        };
        for (entry, _) in &batch {
            if let EntryPayload::Normal(Proposal { op: Operation::InstallModule { bytes }, .. }) = &entry.payload {
                compile_in_background(&self.shared.runtime, bytes);
            }
        }
        let events = crate::blocking::cpu_bound(|| -> Result<_, io::Error> {
            let operations: Vec<&Operation> = batch
                .iter()
                .filter_map(|(entry, _)| match &entry.payload {
                    EntryPayload::Normal(proposal) => Some(&proposal.op),
                    EntryPayload::Blank | EntryPayload::Membership(_) => None,
                })
                .collect();
            compile_activated_modules(&self.shared, &operations);
            let refs: Vec<EntryRef<'_>> = batch
                .iter()
                .map(|(entry, _)| EntryRef {
                    index: entry.log_id.index,
                    term: entry.log_id.leader_id.term,
                    proposal: match &entry.payload {
                        EntryPayload::Normal(proposal) => Some(proposal),
                        EntryPayload::Blank | EntryPayload::Membership(_) => None,
                    },
                })
                .collect();
            let mut replica = self.shared.write();
            // A host failure leaves this replica's in-memory state part-applied: the error
            // stops Raft on this node, and a restart rebuilds from the snapshot and the log.
            let (responses, events) = replica.machine.apply(&self.shared.runtime, &refs).map_err(io::Error::other)?;
            for (entry, _) in &batch {
                if let EntryPayload::Membership(membership) = &entry.payload {
                    replica.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                }
            }
            replica.last_applied = Some(last);
            drop(refs);
            for ((_, responder), response) in batch.into_iter().zip(responses) {
                if let Some(responder) = responder {
                    responder.send(response);
                }
            }
            Ok(events)
        })?;
        self.shared.applied.send_replace(last.index);
        for event in events {
            // No receivers is fine: nobody is watching.
            let _ = self.shared.events.send(Arc::new(event));
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone(), dir: self.dir.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Self::SnapshotData) -> Result<(), io::Error> {
        // Decoding and rebuilding a large state takes a while: off the async workers.
        let applied_index = crate::blocking::cpu_bound(|| -> io::Result<u64> {
            let image_bytes = snapshot.into_inner();
            let machine = Machine::from_image(MachineImage::decode(&image_bytes).map_err(invalid_data)?);
            write_snapshot_file(&self.dir, &SnapshotFile { meta: meta.clone(), image: image_bytes })?;
            // The checkpoints followed the state this one replaces.
            checkpoint::remove_through(&self.dir, u64::MAX);
            let mut installed = Replica {
                machine,
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                tracked_since: meta.last_log_id.map(|id| id.index),
            };
            installed.machine.track_touched();
            let applied_index = installed.applied_index();
            let replaced = std::mem::replace(&mut *self.shared.write(), installed);
            // Freed after the lock is released: readers need not wait for the old state to go.
            drop(replaced);
            crate::heap::release_freed();
            Ok(applied_index)
        })?;
        self.shared.applied.send_replace(applied_index);
        tracing::info!(index = applied_index, "installed snapshot from leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        Ok(read_snapshot_file(&self.dir)?.map(|file| Snapshot { meta: file.meta, snapshot: Cursor::new(file.image) }))
    }
}

/// When each step of building a snapshot ended, from its start.
struct SnapshotTimes {
    copied: std::time::Duration,
    encoded: std::time::Duration,
    written: std::time::Duration,
}

pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
        let (shared, dir) = (self.shared.clone(), self.dir.clone());
        let file = tokio::task::spawn_blocking(move || {
            // A copy of the state is O(1) (`state::Kv` shares its nodes), so the lock is held
            // only to take it: applies go on while the copy is encoded and written.
            let started = std::time::Instant::now();
            let (machine, meta) = shared.take_snapshot_copy();
            let copied = started.elapsed();
            let image = machine.image();
            let buffer = Vec::with_capacity(image.payload_bytes() + image.payload_bytes() / 8);
            let image = postcard::to_extend(&image, buffer).map_err(io::Error::other)?;
            // The copy's nodes that applies have not replaced since are shared with the live
            // map; dropping it frees only the ones they have.
            drop(machine);
            let encoded = started.elapsed();
            let file = SnapshotFile { meta, image };
            write_snapshot_file(&dir, &file)?;
            // A restart now starts here; the checkpoints up to here would change nothing.
            checkpoint::remove_through(&dir, file.meta.last_log_id.map_or(0, |id| id.index));
            crate::heap::release_freed();
            let took = SnapshotTimes { copied, encoded, written: started.elapsed() };
            Ok::<_, io::Error>((file, took))
        })
        .await
        .map_err(io::Error::other)??;
        let (file, took) = file;
        tracing::info!(
            index = file.meta.last_log_id.as_ref().map_or(0, |id| id.index),
            bytes = file.image.len(),
            // The wait for the lock included: the longest an apply could have waited for this.
            copy_us = took.copied.as_micros() as u64,
            encode_ms = (took.encoded - took.copied).as_millis() as u64,
            write_ms = (took.written - took.encoded).as_millis() as u64,
            "built snapshot"
        );
        Ok(Snapshot { meta: file.meta, snapshot: Cursor::new(file.image) })
    }
}

/// Compile the modules that this batch's activations bind, before the apply takes the write
/// lock: it would otherwise compile them under it (most of a second for a naming module, more
/// while other compiles compete for the cores), and every reader of the replica would wait
/// that long. A compile already running in the background is waited for, not repeated.
/// Errors are left to the apply, which meets them deterministically: this changes only when
/// a module is compiled, never an entry's result.
fn compile_activated_modules(shared: &Shared, operations: &[&Operation]) {
    for operation in operations {
        let Operation::Activate { module_id: id, .. } = operation else { continue };
        if shared.runtime.is_loaded(id) {
            continue;
        }
        let installed_in_batch = operations.iter().find_map(|op| match op {
            Operation::InstallModule { bytes } if crate::runtime::module_id(bytes) == *id => Some(bytes.clone()),
            _ => None,
        });
        let bytes = installed_in_batch.or_else(|| shared.read().machine.module_bytes(id).map(<[u8]>::to_vec));
        if let Some(bytes) = bytes {
            let _ = shared.runtime.load(&bytes);
        }
    }
}

/// Compile an installed module off the apply path, so that activating it later finds it
/// compiled: otherwise the apply of the activation entry compiles it (most of a second for a
/// naming module), and every entry behind it, in every namespace, waits. Whether this is done
/// in time changes only when the module is compiled, never an entry's result.
fn compile_in_background(runtime: &Runtime, bytes: &[u8]) {
    if runtime.is_loaded(&crate::runtime::module_id(bytes)) {
        return;
    }
    let (runtime, bytes) = (runtime.clone(), bytes.to_vec());
    let spawned = std::thread::Builder::new().name("module-compile".into()).spawn(move || {
        if let Err(e) = runtime.load(&bytes) {
            // The activation's apply meets (and records) the same error deterministically.
            tracing::debug!(error = %e, "background compile of an installed module failed");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for a background compile; the activation will compile");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic during an apply leaves the replica unreadable rather than half-applied and
    /// served.
    #[test]
    fn a_panic_inside_an_apply_makes_the_replica_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Runtime::new(None).expect("runtime");
        let (_sm, shared) = StateMachine::open(dir.path(), runtime).expect("open");
        assert_eq!(shared.read().applied_index(), 0);

        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _replica = shared.write();
            panic!("an apply fails halfway");
        }));
        assert!(panicked.is_err());
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.read().applied_index()));
        assert!(read.is_err(), "a half-applied replica must not be read");
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.try_read().is_some())).is_err());
    }

    fn apply_put(shared: &Shared, key: &[u8], index: u64) {
        let mut replica = shared.write();
        replica.machine.set_values(vec![(key.to_vec(), Some(b"v".to_vec()))]);
        let leader = openraft::alias::CommittedLeaderIdOf::<TypeConfig> { term: 1, node_id: 1 };
        replica.last_applied = Some(LogId::new(leader, index));
    }

    #[test]
    fn a_checkpoint_carries_the_keys_since_the_last_one_and_a_snapshot_starts_the_record_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_sm, shared) = StateMachine::open(dir.path(), Runtime::new(None).expect("runtime")).expect("open");
        apply_put(&shared, b"a", 7);
        let taken = shared.take_checkpoint().expect("a checkpoint at the applied index");
        assert_eq!((taken.from_index, taken.last_applied.index, taken.keys.len()), (0, 7, 1));
        apply_put(&shared, b"b", 9);
        let (_, meta) = shared.take_snapshot_copy();
        assert_eq!(meta.last_log_id.map(|id| id.index), Some(9));
        apply_put(&shared, b"c", 10);
        let taken = shared.take_checkpoint().expect("a checkpoint after the snapshot");
        assert_eq!((taken.from_index, taken.keys.into_iter().collect::<Vec<_>>()), (9, vec![b"c".to_vec()]));
    }
}
