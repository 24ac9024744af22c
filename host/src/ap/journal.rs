//! The AP path's journal: every batch this node writes on the AP path is made durable here
//! before the write is acknowledged, and kept until every peer has taken it.
//!
//! Why: the AP path replicates asynchronously, and the keyspace lives in memory. Without the
//! journal a node that acknowledged a write and was killed before its outbox shipped it lost
//! the write for good; at restart it pulled the others' older copy. The nemesis found it: a
//! node isolated from both peers applied a deregistration alone (its tombstone only in its
//! own outbox), was killed a moment after the heal, and the instance was listed again on
//! every node. With the journal, a restarted node replays its recent writes into its store
//! and its outbox, and they win where they outrank what the others hold.
//!
//! What is replayed is bounded in age by [`REPLAY_WINDOW_MS`], below the tombstone lifetime:
//! a replayed live record is younger than every tombstone that could bury it, so the others
//! still hold those tombstones and the record loses to them again instead of resurrecting a
//! deleted key.
//!
//! Frames live in a redb table keyed by sequence number (the order this node wrote them);
//! one writer thread commits every append queued behind the first in one transaction, so
//! under load one fsync covers many writes. Frames every peer has taken
//! ([`Journal::set_delivered_through`]), older than the window, or past
//! [`MAX_JOURNAL_FRAMES`] are removed in the same transactions.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use redb::ReadableTableMetadata;
use redb::TableDefinition;

use super::store::PartitionRecords;
use super::store::TOMBSTONE_TTL_MS;
use crate::clock::now_ms;

/// How old a journaled write may be and still be replayed at start.
pub const REPLAY_WINDOW_MS: u64 = TOMBSTONE_TTL_MS / 2;
const _: () = assert!(REPLAY_WINDOW_MS < TOMBSTONE_TTL_MS, "a replayed record is younger than any tombstone it meets");
/// Frames kept at most (one per AP command): a peer down for long stops holding the journal
/// back past this; verification repairs it once it is back.
pub const MAX_JOURNAL_FRAMES: u64 = 200_000;
/// Appends committed in one transaction at most.
const MAX_APPENDS_PER_TRANSACTION: usize = 4_096;
/// How often an idle writer removes what was delivered or aged out.
const PRUNE_INTERVAL_MS: u64 = 1_000;
/// Bytes before a frame's batch: the time it was written, milliseconds, little-endian.
const WRITTEN_MS_BYTES: usize = 8;

const FRAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("ap_journal");

/// A batch read back at start, with the sequence number it was written under.
#[derive(Debug)]
pub struct Replayed {
    pub seq: u64,
    pub batch: PartitionRecords,
}

pub struct Journal {
    /// `None` only while dropping: the writer thread then ends, and is waited for.
    writer: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
    next_seq: AtomicU64,
    /// Every frame up to this sequence number has been taken by every peer.
    delivered_through: Arc<AtomicU64>,
}

struct Append {
    seq: u64,
    frame: Vec<u8>,
    done: tokio::sync::oneshot::Sender<io::Result<()>>,
}

impl Journal {
    /// Open (or create) the journal at `path` and start its writer thread; returns it with the
    /// frames younger than [`REPLAY_WINDOW_MS`], oldest first.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<Replayed>)> {
        let db = Database::create(path).map_err(io::Error::other)?;
        let (replayed, last_seq) = read_recent(&db, now_ms())?;
        let delivered_through = Arc::new(AtomicU64::new(0));
        let (writer, appends) = mpsc::channel();
        let pruned = delivered_through.clone();
        let thread = std::thread::Builder::new()
            .name("ap-journal-writer".into())
            .spawn(move || run_writer(db, appends, pruned))?;
        let journal = Journal {
            writer: Some(writer),
            thread: Some(thread),
            next_seq: AtomicU64::new(last_seq + 1),
            delivered_through,
        };
        Ok((journal, replayed))
    }

    /// The sequence number of the next write. Taken in the order the writes are queued for
    /// the peers (the AP path holds its apply turn), which [`Journal::set_delivered_through`]
    /// relies on.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Make `batch` durable under `seq`; resolves once it is fsynced.
    pub fn append(
        &self,
        seq: u64,
        written_ms: u64,
        batch: &PartitionRecords,
    ) -> impl std::future::Future<Output = io::Result<()>> + use<> {
        let (done, durable) = tokio::sync::oneshot::channel();
        let frame = written_ms.to_le_bytes().to_vec();
        let queued = postcard::to_extend(batch, frame).map_err(io::Error::other).and_then(|frame| {
            let writer = self.writer.as_ref().ok_or_else(|| io::Error::other("the AP journal stopped"))?;
            writer.send(Append { seq, frame, done }).map_err(|_| io::Error::other("the AP journal stopped"))
        });
        async move {
            queued?;
            durable.await.map_err(|_| io::Error::other("the AP journal dropped a write"))?
        }
    }

    /// Every peer has taken every write up to `seq`: their frames may go.
    pub fn set_delivered_through(&self, seq: u64) {
        self.delivered_through.fetch_max(seq, Ordering::Relaxed);
    }
}

/// Stop the writer after what is queued, and wait for it: the file is closed when this returns.
impl Drop for Journal {
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_recent(db: &Database, now_ms: u64) -> io::Result<(Vec<Replayed>, u64)> {
    let txn = db.begin_read().map_err(io::Error::other)?;
    let table = match txn.open_table(FRAMES) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io::Error::other(e)),
    };
    let cutoff_ms = now_ms.saturating_sub(REPLAY_WINDOW_MS);
    let (mut replayed, mut last_seq) = (Vec::new(), 0);
    for row in table.iter().map_err(io::Error::other)? {
        let (seq, frame) = row.map_err(io::Error::other)?;
        let seq = seq.value();
        last_seq = last_seq.max(seq);
        let Some((written_ms, body)) = split_frame(frame.value()) else {
            tracing::warn!(seq, "skipped a malformed AP journal frame");
            continue;
        };
        if written_ms < cutoff_ms {
            continue;
        }
        match postcard::from_bytes::<PartitionRecords>(body) {
            Ok(batch) => replayed.push(Replayed { seq, batch }),
            Err(e) => tracing::warn!(seq, error = %e, "skipped an undecodable AP journal frame"),
        }
    }
    Ok((replayed, last_seq))
}

fn split_frame(frame: &[u8]) -> Option<(u64, &[u8])> {
    let (head, body) = frame.split_at_checked(WRITTEN_MS_BYTES)?;
    Some((u64::from_le_bytes(head.try_into().ok()?), body))
}

fn run_writer(db: Database, appends: mpsc::Receiver<Append>, delivered_through: Arc<AtomicU64>) {
    loop {
        let batch: Vec<Append> = match appends.recv_timeout(Duration::from_millis(PRUNE_INTERVAL_MS)) {
            Ok(first) => {
                std::iter::once(first).chain(appends.try_iter().take(MAX_APPENDS_PER_TRANSACTION - 1)).collect()
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let result = write_and_prune(&db, &batch, delivered_through.load(Ordering::Relaxed), now_ms());
        if let Err(e) = &result {
            tracing::error!(error = %e, "AP journal write failed");
        }
        for append in batch {
            // The caller may have stopped waiting; nothing else to tell.
            let _ = append.done.send(result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string())));
        }
    }
}

/// Insert `batch`'s frames and remove those delivered, aged out, or over the cap, in one
/// transaction: fsynced when it holds appends, not when it only prunes (a removal lost in a
/// crash only replays frames that change nothing).
fn write_and_prune(db: &Database, batch: &[Append], delivered_through: u64, now_ms: u64) -> io::Result<()> {
    let mut txn = db.begin_write().map_err(io::Error::other)?;
    if batch.is_empty() {
        txn.set_durability(redb::Durability::None).map_err(io::Error::other)?;
    }
    {
        let mut table = txn.open_table(FRAMES).map_err(io::Error::other)?;
        for append in batch {
            table.insert(append.seq, append.frame.as_slice()).map_err(io::Error::other)?;
        }
        table.retain_in(..=delivered_through, |_, _| false).map_err(io::Error::other)?;
        let cutoff_ms = now_ms.saturating_sub(REPLAY_WINDOW_MS);
        let excess = table.len().map_err(io::Error::other)?.saturating_sub(MAX_JOURNAL_FRAMES);
        let mut removed = 0;
        loop {
            let oldest = table.first().map_err(io::Error::other)?.map(|(seq, frame)| {
                let aged_out = split_frame(frame.value()).is_none_or(|(written_ms, _)| written_ms < cutoff_ms);
                (seq.value(), aged_out)
            });
            let Some((seq, _)) = oldest.filter(|(_, aged_out)| *aged_out || removed < excess) else { break };
            table.remove(seq).map_err(io::Error::other)?;
            removed += 1;
        }
    }
    txn.commit().map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ap::store::PartitionId;
    use crate::ap::store::Record;
    use crate::ap::store::Version;
    use crate::runtime::ModuleKind;

    fn batch(key: &str, live: bool) -> PartitionRecords {
        let version = Version { clock: 7, node: 1 };
        let value = live.then(|| serde_bytes::ByteBuf::from(b"v".to_vec()));
        let record = Record { version, birth: version, key: key.as_bytes().to_vec(), value };
        let id = PartitionId { namespace: "public".into(), kind: ModuleKind::Naming, partition: "G@@s".into() };
        PartitionRecords { id, events: Vec::new(), records: vec![record] }
    }

    fn keys(replayed: &[Replayed]) -> Vec<(u64, Vec<u8>)> {
        replayed.iter().map(|r| (r.seq, r.batch.records[0].key.clone())).collect()
    }

    #[tokio::test]
    async fn appended_frames_are_replayed_after_a_restart_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ap-journal.redb");
        {
            let (journal, replayed) = Journal::open(&path).unwrap();
            assert!(replayed.is_empty());
            for key in ["a", "b"] {
                let seq = journal.next_seq();
                journal.append(seq, now_ms(), &batch(key, key == "a")).await.unwrap();
            }
        }
        let (journal, replayed) = Journal::open(&path).unwrap();
        assert_eq!(keys(&replayed), vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
        assert_eq!(replayed[1].batch, batch("b", false), "a tombstone comes back as one");
        assert_eq!(journal.next_seq(), 3);
    }

    #[tokio::test]
    async fn delivered_and_aged_out_frames_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ap-journal.redb");
        {
            let (journal, _) = Journal::open(&path).unwrap();
            let old_ms = now_ms() - REPLAY_WINDOW_MS - 1;
            journal.append(journal.next_seq(), old_ms, &batch("old", true)).await.unwrap();
            journal.append(journal.next_seq(), now_ms(), &batch("taken", true)).await.unwrap();
            journal.set_delivered_through(2);
            journal.append(journal.next_seq(), now_ms(), &batch("waiting", true)).await.unwrap();
        }
        let (_, replayed) = Journal::open(&path).unwrap();
        assert_eq!(keys(&replayed), vec![(3, b"waiting".to_vec())]);
    }

    #[test]
    fn pruning_keeps_at_most_the_cap_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("j.redb")).unwrap();
        let now = now_ms();
        let frame = |seq: u64| {
            let mut bytes = now.to_le_bytes().to_vec();
            bytes.extend(postcard::to_allocvec(&batch(&seq.to_string(), true)).unwrap());
            let (done, _) = tokio::sync::oneshot::channel();
            Append { seq, frame: bytes, done }
        };
        let appends: Vec<Append> = (1..=MAX_JOURNAL_FRAMES + 3).map(frame).collect();
        write_and_prune(&db, &appends, 0, now).unwrap();
        let (replayed, last_seq) = read_recent(&db, now).unwrap();
        assert_eq!(last_seq, MAX_JOURNAL_FRAMES + 3);
        assert_eq!(replayed.len() as u64, MAX_JOURNAL_FRAMES);
        assert_eq!(replayed[0].seq, 4, "the three oldest went");
    }
}
