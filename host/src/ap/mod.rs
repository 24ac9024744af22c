//! The AP path (Nacos's Distro): commands a guest routes to the AP path are applied by the one
//! node responsible for their partition, to an in-memory keyspace that is not the Raft log,
//! and replicated to every peer asynchronously. Writes keep working on every side of a network
//! partition; after it heals, the ranked merge and the periodic verification bring every node
//! to the same records.
//!
//! - [`store`]: the records, their versions and ranks, the per-partition checksums, the
//!   keyspace cell (no I/O);
//! - [`journal`]: this node's writes, durable before they are acknowledged and until every
//!   peer has taken them, replayed at start;
//! - [`replicate`]: the tasks that ping, ship records, verify and repair, and the first pull
//!   of a starting node;
//! - [`rpc`]: the peer RPCs of the AP path;
//! - this file: applying a command here or at the responsible node, and serving the RPCs.
//!
//! It stands on `guests` (running the command), `members` (who is live, who is responsible),
//! `net` (the peer client) and `clock`; it never sees the node that holds it.
//!
//! Architecture Invariant: the AP path knows no naming semantics. A partition is a string the
//! guest names; a record is a guest key and value; the guest decides, through the query that
//! plans a request, what takes this path.
//!
//! Architecture Invariant: nothing here touches the replicated (CP) state. An AP command reads
//! it through the replica and writes only keys under the AP prefix (the runtime refuses any
//! other write); a log command never sees the AP keyspace.

pub mod journal;
pub mod replicate;
pub mod rpc;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use serde::Deserialize;
use serde::Serialize;

use self::journal::Journal;
use self::journal::Replayed;
use self::replicate::Outbox;
use self::store::ApStore;
use self::store::Keyspace;
use self::store::Origin;
use self::store::PartitionId;
use self::store::PartitionRecords;
use crate::clock::now_ms;
use crate::guests::Guests;
use crate::members::Members;
use crate::net::PeerClient;
use crate::net::PeerError;
use crate::raft::state_machine::Replica;
use crate::runtime::CommandOutcome;
use crate::runtime::GuestCommand;
use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::state::ChangeEvent;

/// How long a node waits for the responsible node to apply a forwarded AP command.
pub const FORWARD_TIMEOUT_MS: u64 = 3_000;
/// How much earlier than the sender gives up a forwarded command stops being applied: the
/// clock difference between members this tolerates (NTP keeps them within milliseconds).
pub const FORWARD_DEADLINE_MARGIN_MS: u64 = 1_000;
const _: () = assert!(FORWARD_DEADLINE_MARGIN_MS < FORWARD_TIMEOUT_MS, "a forwarded command has time to apply");

pub struct Ap {
    members: Arc<Members>,
    guests: Arc<Guests>,
    keyspace: Arc<Keyspace>,
    peers: PeerClient,
    /// One AP command at a time on this node: a guest reads, then writes, and two commands of
    /// one partition must not interleave between the two. Waited for asynchronously, so a
    /// queue of commands holds no threads.
    apply_turn: tokio::sync::Mutex<()>,
    pub outbox: Outbox,
    /// Where this node's writes are made durable before they are acknowledged; unset on a
    /// node without peers, whose AP keyspace no one else holds (a restart starts it empty),
    /// and opened at [`Ap::open_journal`] before its first peer is added.
    journal: OnceLock<Journal>,
    journal_path: PathBuf,
    /// Set once the first pull from a peer is done (or none answered): before that this
    /// node's AP keyspace may lack what the others hold, and it does not report ready.
    ready: AtomicBool,
    /// Verification rounds that found partitions differing from a peer's and repaired them.
    repairs: AtomicU64,
}

/// What applying an AP command produced: the guest's encoded result, the module that ran and
/// the records it wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApApplied {
    pub result: Result<Vec<u8>, GuestError>,
    pub module_id: ModuleId,
    /// Sent back to a node that forwarded the command, which merges them before it answers its
    /// client: a client reading from the node it wrote through sees its write (the outbox's
    /// copy of the same records arrives later and changes nothing).
    pub written: Option<PartitionRecords>,
}

/// An AP command forwarded to the node responsible for its partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedCommand {
    pub id: PartitionId,
    pub request: GuestRequest,
    /// When the sender gives up on it (its clock, ms), less [`FORWARD_DEADLINE_MARGIN_MS`]:
    /// the responsible node refuses it after that. Without it, a command held up on a slow or
    /// stalled link could apply after its client was told it failed and went on (a beat that
    /// re-registers an instance its client has since deregistered, seen under the nemesis).
    pub deadline_ms: u64,
}

impl Ap {
    /// `members` knows every peer; `keyspace` is the AP store `guests` reads too;
    /// `journal_path` is where writes become durable, opened now when there are peers.
    pub fn new(
        members: Arc<Members>,
        guests: Arc<Guests>,
        keyspace: Arc<Keyspace>,
        peers: PeerClient,
        journal_path: PathBuf,
    ) -> std::io::Result<Ap> {
        let outbox = Outbox::new(members.peers().keys().copied());
        let has_peers = !members.peers().is_empty();
        let ap = Ap {
            members,
            guests,
            keyspace,
            peers,
            apply_turn: tokio::sync::Mutex::new(()),
            outbox,
            journal: OnceLock::new(),
            journal_path,
            ready: AtomicBool::new(false),
            repairs: AtomicU64::new(0),
        };
        if has_peers {
            ap.open_journal()?;
        }
        Ok(ap)
    }

    /// Open the journal (once) and take back what it holds: a node must before it has peers,
    /// since it then acknowledges AP writes only once they are journaled.
    pub fn open_journal(&self) -> std::io::Result<()> {
        if self.journal.get().is_some() {
            return Ok(());
        }
        let (journal, replayed) = Journal::open(&self.journal_path)?;
        if self.journal.set(journal).is_ok() {
            self.replay(replayed);
        }
        Ok(())
    }

    fn journal(&self) -> Option<&Journal> {
        self.journal.get()
    }

    /// Take back this node's journaled writes after a restart: into the store, and queued
    /// for every peer again (a peer that already holds them changes nothing).
    fn replay(&self, replayed: Vec<Replayed>) {
        if replayed.is_empty() {
            return;
        }
        let records: usize = replayed.iter().map(|r| r.batch.records.len()).sum();
        tracing::info!(writes = replayed.len(), records, "replaying this node's journaled AP writes");
        for Replayed { seq, batch } in &replayed {
            self.outbox.queue(*seq, batch);
        }
        self.merge(replayed.into_iter().map(|r| r.batch).collect());
    }

    /// Every peer has taken this node's writes up to `seq`: the journal may let them go.
    pub(crate) fn journal_delivered(&self, seq: u64) {
        if let Some(journal) = self.journal() {
            journal.set_delivered_through(seq);
        }
    }

    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn peers(&self) -> &PeerClient {
        &self.peers
    }

    /// Verification rounds that repaired partitions, since start (`replicate::verify_with`).
    pub fn repairs(&self) -> u64 {
        self.repairs.load(Ordering::Relaxed)
    }

    pub(crate) fn count_repair(&self) {
        self.repairs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The store for reading; a merge or write in progress is waited out off the async worker.
    pub fn store(&self) -> parking_lot::RwLockReadGuard<'_, ApStore> {
        self.keyspace.read()
    }

    /// Apply `request` at the node responsible for `id`: here, or forwarded. A responsible
    /// node that cannot be reached is taken out of this node's view and the next one is
    /// asked, ending with this node itself: an AP write succeeds while any node serves it.
    pub async fn apply(&self, id: &PartitionId, request: &GuestRequest) -> Result<ApApplied, GuestError> {
        if let Err(e) = id.validate() {
            let message = format!("the module named an AP partition no node would accept: {e}");
            return Err(GuestError { code: 500, message });
        }
        for _ in 0..=self.members.peers().len() {
            let owner = self.members.responsible(id);
            let Some(addr) = self.members.addr(owner).filter(|_| owner != self.members.me()) else {
                return self.apply_here(id, request, Origin::Client).await;
            };
            let addr = addr.as_str();
            let deadline_ms = now_ms() + FORWARD_TIMEOUT_MS - FORWARD_DEADLINE_MARGIN_MS;
            let forwarded = ForwardedCommand { id: id.clone(), request: request.clone(), deadline_ms };
            let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
            match self.peers.send_coalesced::<rpc::Apply>(addr, &forwarded, timeout).await {
                Ok(mut applied) => {
                    self.members.seen(owner, now_ms());
                    // Merged here before the answer, so a read through this node sees it.
                    if let Some(batch) = applied.as_mut().ok().and_then(|applied| applied.written.take()) {
                        self.merge(vec![batch]);
                    }
                    return applied;
                }
                Err(PeerError::Unreachable { reason, .. }) => {
                    tracing::info!(peer = owner, reason, "responsible node unreachable; asking the next");
                    self.members.lost(owner, now_ms());
                }
                Err(e) => {
                    tracing::info!(peer = owner, error = %e, "the responsible node did not answer a forwarded command");
                    let message = "the node responsible for this service did not answer in time: the write may or may \
                                   not have been applied. Retry it";
                    return Err(GuestError { code: 503, message: message.into() });
                }
            }
        }
        self.apply_here(id, request, Origin::Client).await
    }

    /// Apply `request` on this node, as the node responsible for `id` (or asked to act as it),
    /// store what it wrote, queue it for every peer, and tell local watchers. `origin` says
    /// whether a client or a duty (the sweep) asked: see `store::Origin`.
    ///
    /// Like a query, the command runs through `Guests::run`: on this async worker with a short
    /// fuel budget if nothing holds the replica or the store, off the worker otherwise.
    ///
    /// It answers once the write is journaled (fsynced; see [`journal`]), after it has let
    /// the next command run: under load, one fsync covers many writes.
    pub async fn apply_here(
        &self,
        id: &PartitionId,
        request: &GuestRequest,
        origin: Origin,
    ) -> Result<ApApplied, GuestError> {
        let turn = self.apply_turn.lock().await;
        let now = now_ms();
        let payload = request.encode();
        let run = |replica: &Replica, store: &ApStore, budget| {
            let command = GuestCommand { index: replica.applied_index(), timestamp_ms: now, payload: payload.clone() };
            let view = store.view(id.scope());
            replica.machine.run_ap_command(self.guests.runtime(), id.scope(), &command, &view, budget)
        };
        let (module_id, CommandOutcome { result, writes, events }) = self.guests.run(run)?;
        let mut written = None;
        let mut durable = None;
        if !writes.is_empty() {
            let mut store = self.keyspace.write();
            let version = store.next_version(now, self.members.me());
            let batch = store
                .write(id, version, writes, events.clone(), now, origin)
                .map_err(|e| GuestError { code: 503, message: e.to_string() })?;
            drop(store);
            if let Some(journal) = self.journal() {
                let seq = journal.next_seq();
                self.outbox.queue(seq, &batch);
                durable = Some(journal.append(seq, now, &batch));
            }
            written = Some(batch);
        }
        drop(turn);
        self.publish(id, &events);
        if let Some(durable) = durable
            && let Err(e) = durable.await
        {
            tracing::error!(error = %e, "an AP write could not be journaled");
            let message = "the write was applied but could not be made durable on this node's disk: it may be lost \
                           if this node stops before its peers have it. Retry it";
            return Err(GuestError { code: 503, message: message.into() });
        }
        Ok(ApApplied { result, module_id, written })
    }

    /// Merge records a peer sent; tell local watchers about each partition that changed. A
    /// batch no guest could have written (`PartitionRecords::validate`) is dropped whole.
    pub fn merge(&self, batches: Vec<PartitionRecords>) {
        let now = now_ms();
        let changed: Vec<(PartitionId, Vec<crate::runtime::Event>)> = {
            let mut store = self.keyspace.write();
            batches
                .into_iter()
                .filter(|batch| match batch.validate() {
                    Ok(()) => true,
                    Err(reason) => {
                        tracing::warn!(reason, "dropped an AP batch from a peer");
                        false
                    }
                })
                .filter_map(|batch| {
                    let (id, events) = (batch.id.clone(), batch.events.clone());
                    store.merge(batch, now).then_some((id, events))
                })
                .collect()
        };
        for (id, events) in changed {
            self.publish(&id, &events);
        }
    }

    pub(crate) fn forget_tombstones(&self, now_ms: u64) {
        self.keyspace.write().forget_tombstones(now_ms);
    }

    /// Hand AP events to the node's watchers (long-polls, UDP pushes), as a log apply does.
    fn publish(&self, id: &PartitionId, events: &[crate::runtime::Event]) {
        for event in events {
            self.guests.publish(ChangeEvent { namespace: id.namespace.clone(), kind: id.kind, event: event.clone() });
        }
    }
}

/// The server side of the AP path's RPCs (`node::peer_port` routes to these).
impl Ap {
    /// A command forwarded by a node that found this one responsible. Only clients' commands
    /// are forwarded: a duty runs where it was decided.
    /// One that arrives after its deadline is refused unapplied: its sender has given up and
    /// answered its client.
    pub async fn serve_apply(&self, command: ForwardedCommand) -> Result<Result<ApApplied, GuestError>, String> {
        command.id.validate().map_err(|e| format!("refused AP command: {e}"))?;
        let now = now_ms();
        if now > command.deadline_ms {
            let late_ms = now - command.deadline_ms;
            tracing::info!(
                late_ms,
                op = command.request.op,
                "a forwarded command arrived after its deadline; not applied"
            );
            return Err(format!("refused AP command: it arrived {late_ms} ms after its deadline"));
        }
        Ok(self.apply_here(&command.id, &command.request, Origin::Client).await)
    }

    pub fn serve_ping(&self) -> rpc::Pong {
        rpc::Pong { digest: self.store().digest() }
    }

    pub fn serve_sync(&self, batches: Vec<PartitionRecords>) {
        self.merge(batches);
    }

    pub fn serve_verify(&self, theirs: Vec<(PartitionId, u64)>) -> Vec<PartitionRecords> {
        replicate::answer_verify(&self.store(), theirs)
    }

    pub fn serve_snapshot_page(&self, after: Option<PartitionId>) -> Vec<PartitionRecords> {
        self.store().records_after(after.as_ref(), replicate::MAX_SYNC_BATCH_RECORDS)
    }
}
