//! The AP path (Nacos's Distro): commands a guest routes with `Nacre-Commit: ap` are applied
//! by the one node responsible for their partition, to an in-memory keyspace that is not the
//! Raft log, and replicated to every peer asynchronously. Writes keep working on every side of
//! a network partition; after it heals, the versioned merge and the periodic verification
//! bring every node to the same records.
//!
//! - [`store`]: the records, their versions, the per-partition checksums (no I/O);
//! - [`members`]: which peers answer, and which member is responsible for a partition;
//! - [`replicate`]: the tasks that ping, ship records, verify and repair, and the first pull
//!   of a starting node;
//! - this file: applying a command here or at the responsible node, and the peer RPCs.
//!
//! Architecture Invariant: the AP path knows no naming semantics. A partition is a string the
//! guest names; a record is a guest key and value; the guest decides, through the query that
//! plans a request, what takes this path.
//!
//! Architecture Invariant: nothing here touches the replicated (CP) state. An AP command reads
//! it through the replica and writes only keys under the AP prefix (the runtime refuses any
//! other write); a log command never sees the AP keyspace.

pub mod members;
pub mod replicate;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use parking_lot::RwLock;
use parking_lot::RwLockReadGuard;
use parking_lot::RwLockWriteGuard;
use serde::Deserialize;
use serde::Serialize;

use self::members::Members;
use self::replicate::Outbox;
use self::store::ApStore;
use self::store::Origin;
use self::store::PartitionId;
use self::store::PartitionRecords;
use crate::net::PeerError;
use crate::node::Node;
use crate::node::now_ms;
use crate::raft::NodeId;
use crate::raft::state_machine::Replica;
use crate::runtime::CommandOutcome;
use crate::runtime::GuestCommand;
use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::state::ChangeEvent;

/// How long a node waits for the responsible node to apply a forwarded AP command.
pub const FORWARD_TIMEOUT_MS: u64 = 3_000;

pub struct Ap {
    pub members: Members,
    store: RwLock<ApStore>,
    /// One AP command at a time on this node: a guest reads, then writes, and two commands of
    /// one partition must not interleave between the two. Waited for asynchronously, so a
    /// queue of commands holds no threads.
    apply_turn: tokio::sync::Mutex<()>,
    pub outbox: Outbox,
    /// Set once the first pull from a peer is done (or none answered): before that this
    /// node's AP keyspace may lack what the others hold, and it does not report ready.
    ready: AtomicBool,
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
}

impl Ap {
    /// `peers`: every other member's id and peer address.
    pub fn new(me: NodeId, peers: BTreeMap<NodeId, String>) -> Ap {
        let outbox = Outbox::new(peers.keys().copied());
        Ap {
            members: Members::new(me, peers, now_ms()),
            store: RwLock::new(ApStore::default()),
            apply_turn: tokio::sync::Mutex::new(()),
            outbox,
            ready: AtomicBool::new(false),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The store for reading; a merge or write in progress is waited out off the async worker.
    pub fn store(&self) -> RwLockReadGuard<'_, ApStore> {
        crate::blocking::read(&self.store)
    }

    /// The store if no merge or write holds it now: for a short read on an async worker.
    pub fn try_store(&self) -> Option<RwLockReadGuard<'_, ApStore>> {
        self.store.try_read()
    }

    fn store_mut(&self) -> RwLockWriteGuard<'_, ApStore> {
        crate::blocking::write(&self.store)
    }

    /// Apply `request` at the node responsible for `id`: here, or forwarded. A responsible
    /// node that cannot be reached is taken out of this node's view and the next one is
    /// asked, ending with this node itself: an AP write succeeds while any node serves it.
    pub async fn apply(&self, node: &Node, id: &PartitionId, request: &GuestRequest) -> Result<ApApplied, GuestError> {
        if let Err(e) = id.validate() {
            let message = format!("the module named an AP partition no node would accept: {e}");
            return Err(GuestError { code: 500, message });
        }
        for _ in 0..=self.members.peers().len() {
            let owner = self.members.responsible(id);
            let Some(addr) = self.members.addr(owner).filter(|_| owner != self.members.me()) else {
                return self.apply_here(node, id, request, Origin::Client).await;
            };
            let forwarded = ForwardedCommand { id: id.clone(), request: request.clone() };
            let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
            let answer: Result<Result<ApApplied, GuestError>, PeerError> =
                node.peers.call_coalesced(addr, "/nacre/ap/apply", &forwarded, timeout).await;
            match answer {
                Ok(mut applied) => {
                    self.members.seen(owner, now_ms());
                    // Merged here before the answer, so a read through this node sees it.
                    if let Some(batch) = applied.as_mut().ok().and_then(|applied| applied.written.take()) {
                        self.merge(node, vec![batch]);
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
        self.apply_here(node, id, request, Origin::Client).await
    }

    /// Apply `request` on this node, as the node responsible for `id` (or asked to act as it),
    /// store what it wrote, queue it for every peer, and tell local watchers. `origin` says
    /// whether a client or a duty (the sweep) asked: see `store::Origin`.
    ///
    /// Like a query, the command runs through `Node::run_guest`: on this async worker with a
    /// short fuel budget if nothing holds the replica or the store, off the worker otherwise.
    pub async fn apply_here(
        &self,
        node: &Node,
        id: &PartitionId,
        request: &GuestRequest,
        origin: Origin,
    ) -> Result<ApApplied, GuestError> {
        let _turn = self.apply_turn.lock().await;
        let now = now_ms();
        let payload = request.encode();
        let run = |replica: &Replica, store: &ApStore, budget| {
            let command = GuestCommand { index: replica.applied_index(), timestamp_ms: now, payload: payload.clone() };
            let view = store.view(&id.namespace, id.kind);
            replica.machine.run_ap_command(&node.shared.runtime, &id.namespace, id.kind, &command, &view, budget)
        };
        let (module_id, CommandOutcome { result, writes, events }) = node.run_guest(run)?;
        let mut written = None;
        if !writes.is_empty() {
            let mut store = self.store_mut();
            let version = store.next_version(now, self.members.me());
            let batch = store
                .write(id, version, writes, events.clone(), now, origin)
                .map_err(|e| GuestError { code: 503, message: e.to_string() })?;
            drop(store);
            self.outbox.queue(&batch);
            written = Some(batch);
        }
        publish(node, id, &events);
        Ok(ApApplied { result, module_id, written })
    }

    /// Merge records a peer sent; tell local watchers about each partition that changed. A
    /// batch no guest could have written (`PartitionRecords::validate`) is dropped whole.
    pub fn merge(&self, node: &Node, batches: Vec<PartitionRecords>) {
        let now = now_ms();
        let changed: Vec<(PartitionId, Vec<crate::runtime::Event>)> = {
            let mut store = self.store_mut();
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
            publish(node, &id, &events);
        }
    }
}

impl Ap {
    pub(crate) fn forget_tombstones(&self, now_ms: u64) {
        self.store_mut().forget_tombstones(now_ms);
    }

    /// The peer RPCs of the AP path (`/nacre/ap/*`, postcard bodies); `None` for any other
    /// path. `Err` is a malformed request.
    pub async fn serve_peer(&self, node: &Node, path: &str, body: &[u8]) -> Option<Result<Vec<u8>, String>> {
        fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, String> {
            postcard::from_bytes(body).map_err(|e| format!("malformed {what}: {e}"))
        }
        let answer = match path {
            "/nacre/ap/ping" => decode::<replicate::Ping>(body, "ping")
                .map(|_| encode(&replicate::Pong { digest: self.store().digest() })),
            "/nacre/ap/apply" => match decode::<ForwardedCommand>(body, "AP command") {
                Ok(cmd) => match cmd.id.validate() {
                    // Only clients' commands are forwarded: a duty runs where it was decided.
                    Ok(()) => Ok(encode(&self.apply_here(node, &cmd.id, &cmd.request, Origin::Client).await)),
                    Err(e) => Err(format!("refused AP command: {e}")),
                },
                Err(e) => Err(e),
            },
            "/nacre/ap/sync" => decode::<Vec<PartitionRecords>>(body, "AP sync").map(|batches| {
                self.merge(node, batches);
                encode(&())
            }),
            "/nacre/ap/verify" => decode::<Vec<(PartitionId, u64)>>(body, "AP verification")
                .map(|theirs| encode(&replicate::answer_verify(node, theirs))),
            "/nacre/ap/snapshot" => decode::<Option<PartitionId>>(body, "AP snapshot page")
                .map(|after| encode(&self.store().records_after(after.as_ref(), replicate::MAX_SYNC_BATCH_RECORDS))),
            _ => return None,
        };
        Some(answer)
    }
}

/// The first 8 bytes of sha256 over `parts`, each length-prefixed so that no two different
/// part lists hash the same input: a stable hash, equal on every node and every build.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    u64::from_be_bytes(hasher.finalize()[..8].try_into().expect("sha256 is 32 bytes"))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("AP peer answers always serialize")
}

/// Hand AP events to the node's watchers (long-polls, UDP pushes), as a log apply does.
fn publish(node: &Node, id: &PartitionId, events: &[crate::runtime::Event]) {
    for event in events {
        let change = ChangeEvent { namespace: id.namespace.clone(), kind: id.kind, event: event.clone() };
        // No receiver is fine: nobody is watching.
        let _ = node.shared.events.send(Arc::new(change));
    }
}
