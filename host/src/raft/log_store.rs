//! The durable Raft log, in a redb database in the node's data directory.
//!
//! Appends return as soon as the entries are in the in-memory tail (openraft may read them at
//! once) and are acknowledged through their `IOFlushed` callback only after the one writer
//! thread has committed them with an fsync. The writer drains everything queued behind the
//! first operation into one transaction: under load, one fsync covers many append batches.
//!
//! Entries are visible to openraft before they are durable here, so a leader replicates them
//! while its own fsync is pending, and two followers' fsyncs can commit an entry the leader
//! then loses in a crash. That is safe only because a restarted node never resumes leading
//! (`enable_leader_restore` is off in `node`): it must win an election, which its shorter log
//! loses against the followers that hold the entry.
//!
//! What a restarted node's persisted committed index is trusted for: re-applying its own
//! log up to it at start, and nothing else. It is written after (in the same or a later
//! transaction than) the entries it covers, so it never points past the durable log, but a
//! batch that only advances it is not fsynced, so it may lag the cluster's commit. It never
//! makes a node a leader, and a linearizable read is answered only by a leader that has
//! committed an entry of its own term (openraft's ReadIndex), never from this value.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use openraft::LogState;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use redb::TableDefinition;

use super::types::Entry;
use super::types::LogId;
use super::types::TypeConfig;
use super::types::Vote;

const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_LAST_PURGED: &str = "last_purged";

/// Most queued operations one transaction takes, so that one slow fsync does not grow an
/// unbounded batch (and callbacks are not held back for too long).
const MAX_OPS_PER_TRANSACTION: usize = 1024;

/// Fault injection for tests, off unless this variable is `1` when the node starts: then the
/// writer reads [`FSYNC_DELAY_FILE`] in the data directory before each transaction that
/// appends entries, and sleeps that many milliseconds first. A test uses it to kill a leader
/// whose followers have committed an entry its own log has not made durable yet (issue 15),
/// a window that is otherwise a few hundred microseconds wide.
pub const FAILPOINTS_ENV: &str = "NACRE_FAILPOINTS";
/// Relative to the data directory; holds a number of milliseconds.
pub const FSYNC_DELAY_FILE: &str = "failpoints/log-fsync-delay-ms";
/// Longest delay the failpoint honours.
const MAX_FAILPOINT_DELAY_MS: u64 = 60_000;

#[derive(Clone)]
pub struct LogStore {
    tail: Arc<Mutex<Tail>>,
    writer: mpsc::Sender<WriteOp>,
    /// Encoded bytes of every entry appended since this store was opened (the snapshot
    /// policy compares the log's growth with the state's size).
    appended_bytes: Arc<AtomicU64>,
    /// The last index this log holds durably (fsynced, and not truncated since): a checkpoint
    /// is written only at or below it (`raft::checkpoint`).
    durable_through: Arc<AtomicU64>,
}

/// The unpurged log and the Raft metadata, mirrored in memory for reads.
#[derive(Default)]
struct Tail {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

enum WriteOp {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        done: IOFlushed<TypeConfig>,
    },
    TruncateFrom(u64),
    PurgeThrough {
        index: u64,
        last_purged: Vec<u8>,
    },
    SaveVote {
        vote: Vec<u8>,
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
    SaveCommitted(Vec<u8>),
    /// Nothing to write: answered once everything queued before it is durable.
    Flush {
        done: tokio::sync::oneshot::Sender<io::Result<()>>,
    },
}

impl LogStore {
    /// Open (or create) the log in `dir` and start its writer thread.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        let started = std::time::Instant::now();
        let db = Database::create(dir.join("raft-log.redb")).map_err(io::Error::other)?;
        let tail = load_tail(&db)?;
        tracing::info!(
            entries = tail.entries.len(),
            committed = tail.committed.as_ref().map_or(0, |id| id.index),
            took_ms = started.elapsed().as_millis() as u64,
            "opened the raft log"
        );
        let (writer, ops) = mpsc::channel();
        let failpoint = (std::env::var(FAILPOINTS_ENV).as_deref() == Ok("1")).then(|| dir.join(FSYNC_DELAY_FILE));
        let last_index = tail.entries.keys().next_back().copied();
        let durable_through =
            Arc::new(AtomicU64::new(last_index.or(tail.last_purged.as_ref().map(|id| id.index)).unwrap_or(0)));
        let durable = durable_through.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run_writer(db, ops, failpoint.as_deref(), &durable))?;
        Ok(LogStore { tail: Arc::new(Mutex::new(tail)), writer, appended_bytes: Arc::default(), durable_through })
    }

    /// Wait until everything queued so far is durable, the committed index included (a batch
    /// that only advances it is otherwise not fsynced): what a node shutting down does last.
    pub async fn flush(&self) -> io::Result<()> {
        let (done, flushed) = tokio::sync::oneshot::channel();
        self.submit(WriteOp::Flush { done })?;
        flushed.await.map_err(|_| io::Error::other("raft log writer dropped a flush"))?
    }

    /// The last index held durably (see the field).
    pub fn durable_through(&self) -> u64 {
        self.durable_through.load(Ordering::Acquire)
    }

    /// Encoded bytes of the entries appended since the store was opened.
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes.load(Ordering::Relaxed)
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().expect("log tail lock is never poisoned: no code panics while holding it")
    }

    fn submit(&self, op: WriteOp) -> io::Result<()> {
        self.writer.send(op).map_err(|_| io::Error::other("raft log writer thread has stopped"))
    }
}

fn load_tail(db: &Database) -> io::Result<Tail> {
    let txn = db.begin_write().map_err(io::Error::other)?;
    // Opening the tables in a write transaction creates them on first start.
    txn.open_table(LOG_TABLE).map_err(io::Error::other)?;
    txn.open_table(META_TABLE).map_err(io::Error::other)?;
    txn.commit().map_err(io::Error::other)?;

    let txn = db.begin_read().map_err(io::Error::other)?;
    let meta = txn.open_table(META_TABLE).map_err(io::Error::other)?;
    let read_meta = |name: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta.get(name).map_err(io::Error::other)?.map(|v| v.value().to_vec()))
    };
    let mut tail = Tail {
        vote: read_meta(META_VOTE)?.map(|b| decode(&b)).transpose()?,
        committed: read_meta(META_COMMITTED)?.map(|b| decode(&b)).transpose()?,
        last_purged: read_meta(META_LAST_PURGED)?.map(|b| decode(&b)).transpose()?,
        entries: BTreeMap::new(),
    };
    let log = txn.open_table(LOG_TABLE).map_err(io::Error::other)?;
    for row in log.iter().map_err(io::Error::other)? {
        let (index, bytes) = row.map_err(io::Error::other)?;
        tail.entries.insert(index.value(), decode(bytes.value())?);
    }
    Ok(tail)
}

fn run_writer(db: Database, ops: mpsc::Receiver<WriteOp>, fsync_delay_file: Option<&Path>, durable: &AtomicU64) {
    while let Ok(first) = ops.recv() {
        let batch: Vec<WriteOp> =
            std::iter::once(first).chain(ops.try_iter().take(MAX_OPS_PER_TRANSACTION - 1)).collect();
        if let Some(file) = fsync_delay_file
            && batch.iter().any(|op| matches!(op, WriteOp::Append { .. }))
        {
            injected_delay(file);
        }
        let result = write_batch(&db, &batch);
        if result.is_ok() {
            durable.store(durable_after(durable.load(Ordering::Acquire), &batch), Ordering::Release);
        }
        for op in batch {
            let outcome = result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string()));
            match op {
                WriteOp::Append { done, .. } => done.io_completed(outcome),
                WriteOp::SaveVote { done, .. } | WriteOp::Flush { done } => {
                    // The caller may have given up waiting; nothing else to tell.
                    let _ = done.send(outcome);
                }
                WriteOp::TruncateFrom(_) | WriteOp::PurgeThrough { .. } | WriteOp::SaveCommitted(_) => {
                    if let Err(e) = outcome {
                        tracing::error!(error = %e, "raft log write failed");
                    }
                }
            }
        }
    }
}

/// The failpoint's delay: the number in `file`, if there is one.
fn injected_delay(file: &Path) {
    let delay_ms = std::fs::read_to_string(file).ok().and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(delay_ms) = delay_ms.filter(|ms| *ms > 0) {
        tracing::warn!(delay_ms, "failpoint: delaying a log append's fsync");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms.min(MAX_FAILPOINT_DELAY_MS)));
    }
}

/// Apply queued operations in order in one transaction, made durable by one fsync, except a
/// batch that only advances the committed index: that index is a hint (after a restart a lower
/// one only means re-applying a little more), so it skips the fsync and becomes durable with
/// the next transaction that has one. Without this, every entry would cost two fsyncs.
/// The last durable index once `batch` is committed, in the order its operations ran. A
/// batch of committed-index updates alone is not fsynced, but it appends nothing either.
fn durable_after(mut durable: u64, batch: &[WriteOp]) -> u64 {
    for op in batch {
        match op {
            WriteOp::Append { entries, .. } => {
                durable = entries.last().map_or(durable, |(index, _)| durable.max(*index));
            }
            WriteOp::TruncateFrom(first) => durable = durable.min(first.saturating_sub(1)),
            _ => {}
        }
    }
    durable
}

fn write_batch(db: &Database, batch: &[WriteOp]) -> io::Result<()> {
    let mut txn = db.begin_write().map_err(io::Error::other)?;
    if batch.iter().all(|op| matches!(op, WriteOp::SaveCommitted(_))) {
        txn.set_durability(redb::Durability::None).map_err(io::Error::other)?;
    }
    {
        let mut log = txn.open_table(LOG_TABLE).map_err(io::Error::other)?;
        let mut meta = txn.open_table(META_TABLE).map_err(io::Error::other)?;
        for op in batch {
            match op {
                WriteOp::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        log.insert(*index, bytes.as_slice()).map_err(io::Error::other)?;
                    }
                }
                WriteOp::TruncateFrom(first) => {
                    log.retain_in(*first.., |_, _| false).map_err(io::Error::other)?;
                }
                WriteOp::PurgeThrough { index, last_purged } => {
                    log.retain_in(..=*index, |_, _| false).map_err(io::Error::other)?;
                    meta.insert(META_LAST_PURGED, last_purged.as_slice()).map_err(io::Error::other)?;
                }
                WriteOp::SaveVote { vote, .. } => {
                    meta.insert(META_VOTE, vote.as_slice()).map_err(io::Error::other)?;
                }
                WriteOp::SaveCommitted(committed) => {
                    meta.insert(META_COMMITTED, committed.as_slice()).map_err(io::Error::other)?;
                }
                WriteOp::Flush { .. } => {}
            }
        }
    }
    txn.commit().map_err(io::Error::other)
}

fn encode<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io::Error::other)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.tail().entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.tail().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let tail = self.tail();
        let last_purged = tail.last_purged;
        let last = tail.entries.values().next_back().map(|e| e.log_id()).or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let (done, flushed) = tokio::sync::oneshot::channel();
        self.submit(WriteOp::SaveVote { vote: encode(vote)?, done })?;
        flushed.await.map_err(|_| io::Error::other("raft log writer dropped a vote"))??;
        self.tail().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(log_id) = &committed {
            self.submit(WriteOp::SaveCommitted(encode(log_id)?))?;
        }
        self.tail().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.tail().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        {
            let mut tail = self.tail();
            for entry in entries {
                let index = entry.index();
                encoded.push((index, encode(&entry)?));
                tail.entries.insert(index, entry);
            }
        }
        let bytes: usize = encoded.iter().map(|(_, bytes)| bytes.len()).sum();
        self.appended_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.submit(WriteOp::Append { entries: encoded, done: callback })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |id| id.index() + 1);
        self.tail().entries.retain(|index, _| *index < first_removed);
        self.submit(WriteOp::TruncateFrom(first_removed))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let index = log_id.index();
        {
            let mut tail = self.tail();
            debug_assert!(tail.last_purged.as_ref().is_none_or(|p| p.index() <= index), "purge never goes back");
            tail.entries.retain(|i, _| *i > index);
            tail.last_purged = Some(log_id);
        }
        self.submit(WriteOp::PurgeThrough { index, last_purged: encode(&log_id)? })
    }
}
