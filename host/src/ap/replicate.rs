//! Moving AP records between nodes: the per-peer outbox and its shipper (retried every
//! [`SYNC_RETRY_INTERVAL_MS`] until the peer takes it), pings (liveness, and the peer's
//! digest), verification and repair of partitions whose checksums differ, and a starting
//! node's first pull.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;

use super::Ap;
use super::rpc;
use super::rpc::Ping;
use super::store::ApStore;
use super::store::PartitionId;
use super::store::PartitionRecords;
use super::store::Record;
use crate::clock::now_ms;
use crate::members::NodeId;
use crate::net::PeerError;
use crate::runtime::Event;
use crate::tasks::Tasks;

/// How long a shipper waits before sending again to a peer that did not take a batch.
pub const SYNC_RETRY_INTERVAL_MS: u64 = 3_000;
/// How often each node compares its partitions with each peer's (when their digests differ).
pub const VERIFY_INTERVAL_MS: u64 = 3_000;
/// Records waiting for one peer. Past this, newer changes for it are dropped: verification
/// repairs what the outbox could not hold once the peer is back.
pub const MAX_OUTBOX_RECORDS: usize = 200_000;
/// Records in one sync call.
pub const MAX_SYNC_BATCH_RECORDS: usize = 10_000;
/// Pages of a first pull: enough for `store::MAX_RECORDS` at [`MAX_SYNC_BATCH_RECORDS`] each.
const MAX_PULL_PAGES: usize = super::store::MAX_RECORDS / MAX_SYNC_BATCH_RECORDS + 1;
/// Timeout of a sync, verify or ping call.
const PEER_CALL_TIMEOUT_MS: u64 = 5_000;
/// Timeout of a ping: short, a slow peer is as good as gone for responsibility.
const PING_TIMEOUT_MS: u64 = 1_000;
/// How often a node that sees no majority pings (`ping_forever`).
const QUORUM_SEEKING_PING_INTERVAL_MS: u64 = 50;
const _: () = assert!(QUORUM_SEEKING_PING_INTERVAL_MS < crate::members::PING_INTERVAL_MS, "seeking is faster");

/// What waits to be shipped to one peer.
#[derive(Default)]
struct Link {
    pending: Mutex<BTreeMap<PartitionId, Pending>>,
    wake: Notify,
    /// The peer's digest as its last answer to a ping said (`u64::MAX`: unknown).
    their_digest: AtomicU64,
    /// The peer has taken every write of this node up to this journal sequence number.
    delivered_through: AtomicU64,
}

impl Link {
    fn queue(&self, batch: PartitionRecords) {
        let mut pending = self.pending.lock().expect("outbox lock");
        let held: usize = pending.values().map(Pending::len).sum();
        if held + batch.records.len() > MAX_OUTBOX_RECORDS {
            tracing::debug!(held, "outbox full; verification will repair this peer");
            return;
        }
        pending.entry(batch.id.clone()).or_default().add(batch);
        drop(pending);
        self.wake.notify_one();
    }
}

#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    records: BTreeMap<Vec<u8>, Record>,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len()
    }

    /// Keep the higher ranked record of each key (`Record::rank`, the order every store keeps).
    fn add(&mut self, batch: PartitionRecords) {
        if !batch.events.is_empty() {
            self.events = batch.events;
        }
        for record in batch.records {
            if self.records.get(&record.key).is_none_or(|held| held.rank() < record.rank()) {
                self.records.insert(record.key.clone(), record);
            }
        }
    }
}

pub struct Outbox {
    /// One link per peer; the membership adds and removes them (`follow_membership`).
    links: RwLock<BTreeMap<NodeId, Arc<Link>>>,
    /// The journal sequence number of the last write queued for every peer.
    last_queued_seq: AtomicU64,
}

impl Outbox {
    pub fn new(peers: impl Iterator<Item = NodeId>) -> Outbox {
        let outbox = Outbox { links: RwLock::new(BTreeMap::new()), last_queued_seq: AtomicU64::new(0) };
        outbox.set_peers(&peers.collect());
        outbox
    }

    /// A link for each of `peers`, and none for anyone else; the peers that are new.
    fn set_peers(&self, peers: &BTreeSet<NodeId>) -> Vec<NodeId> {
        let mut links = self.links.write().expect("outbox links lock");
        links.retain(|peer, _| peers.contains(peer));
        let added: Vec<NodeId> = peers.iter().copied().filter(|peer| !links.contains_key(peer)).collect();
        for peer in &added {
            let link = Link { their_digest: AtomicU64::new(u64::MAX), ..Link::default() };
            links.insert(*peer, Arc::new(link));
        }
        added
    }

    fn link(&self, peer: NodeId) -> Option<Arc<Link>> {
        self.links.read().expect("outbox links lock").get(&peer).cloned()
    }

    fn all_links(&self) -> Vec<(NodeId, Arc<Link>)> {
        self.links.read().expect("outbox links lock").iter().map(|(peer, link)| (*peer, link.clone())).collect()
    }

    /// Queue a batch this node wrote, journaled under `seq`, for every peer. Writes are
    /// queued in the order of their sequence numbers (the caller holds the AP apply turn).
    pub fn queue(&self, seq: u64, batch: &PartitionRecords) {
        for (_, link) in self.all_links() {
            link.queue(batch.clone());
        }
        self.last_queued_seq.fetch_max(seq, Ordering::Release);
    }

    /// Every peer has taken every write up to this sequence number (or had it dropped from a
    /// full outbox, for verification to repair).
    pub fn delivered_through(&self) -> u64 {
        let all = self.last_queued_seq.load(Ordering::Acquire);
        self.all_links().iter().map(|(_, link)| link.delivered_through.load(Ordering::Acquire)).min().unwrap_or(all)
    }

    fn queue_for(&self, peer: NodeId, batch: PartitionRecords) {
        if let Some(link) = self.link(peer) {
            link.queue(batch);
        }
    }

    /// Up to about [`MAX_SYNC_BATCH_RECORDS`] records for `peer`, whole partitions, and
    /// whether they are all that waited.
    fn take(&self, peer: NodeId) -> (Vec<PartitionRecords>, bool) {
        let Some(link) = self.link(peer) else { return (Vec::new(), true) };
        let mut pending = link.pending.lock().expect("outbox lock");
        let mut taken = Vec::new();
        let mut count = 0;
        while count < MAX_SYNC_BATCH_RECORDS {
            let Some((id, Pending { events, records })) = pending.pop_first() else { break };
            count += records.len();
            taken.push(PartitionRecords { id, events, records: records.into_values().collect() });
        }
        (taken, pending.is_empty())
    }

    /// The peer did not take `batches`: put them back under anything newer queued since.
    fn put_back(&self, peer: NodeId, batches: Vec<PartitionRecords>) {
        let Some(link) = self.link(peer) else { return };
        let mut pending = link.pending.lock().expect("outbox lock");
        for batch in batches {
            pending.entry(batch.id.clone()).or_default().add(batch);
        }
    }

    /// Records waiting, over all peers (for metrics).
    pub fn waiting(&self) -> usize {
        self.all_links()
            .iter()
            .map(|(_, link)| link.pending.lock().expect("outbox lock").values().map(Pending::len).sum::<usize>())
            .sum()
    }
}

/// Start the AP tasks: first pull, pings, one shipper per peer, verification. A node that
/// is `joining` (no members yet) makes its first pull once it has peers.
pub fn spawn(ap: &Arc<Ap>, tasks: &Tasks, joining: bool) {
    tasks.spawn(first_pull(ap.clone(), joining));
    tasks.spawn(ping_forever(ap.clone()));
    for peer in ap.members.peers().keys() {
        tasks.spawn(ship_forever(ap.clone(), *peer));
    }
    tasks.spawn(verify_forever(ap.clone()));
}

/// The membership changed: the peers (every member but this node, with its peer address) and
/// the voters. The journal is opened before the first peer is added (a node with peers
/// acknowledges only journaled writes), new peers get a link and a shipper, and removed ones
/// lose theirs (their shippers end).
pub fn follow_membership(ap: &Arc<Ap>, peers: BTreeMap<NodeId, String>, voters: BTreeSet<NodeId>, tasks: &Tasks) {
    if !peers.is_empty()
        && let Err(e) = ap.open_journal()
    {
        tracing::error!(error = %e, "could not open the AP journal; this node's AP writes are not durable");
    }
    let ids: BTreeSet<NodeId> = peers.keys().copied().collect();
    if !ap.members.set_membership(peers, voters, now_ms()) {
        return;
    }
    for peer in ap.outbox.set_peers(&ids) {
        tasks.spawn(ship_forever(ap.clone(), peer));
    }
}

/// How long a joining node waits for its first peers before it reports ready without a pull.
const JOIN_PULL_WAIT_MS: u64 = 600_000;
const JOIN_PULL_POLL_MS: u64 = 200;

/// A starting node learns who is up, then pulls the whole AP keyspace from the first peer
/// that answers, a page of whole partitions at a time, before it reports ready. With no peer
/// up it is ready at once: it is the first, and the others will pull from it.
async fn first_pull(ap: Arc<Ap>, joining: bool) {
    if joining {
        for _ in 0..JOIN_PULL_WAIT_MS / JOIN_PULL_POLL_MS {
            if !ap.members.peers().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(JOIN_PULL_POLL_MS)).await;
        }
    }
    ping_all(&ap).await;
    let live = ap.members.live();
    for peer in live.iter().filter(|id| **id != ap.members.me()) {
        let Some(addr) = ap.members.addr(*peer) else { continue };
        match pull_all(&ap, &addr).await {
            Ok(count) => {
                tracing::info!(peer, records = count, "pulled the AP keyspace from a peer");
                break;
            }
            Err(e) => tracing::warn!(peer, error = %e, "could not pull the AP keyspace; trying the next peer"),
        }
    }
    ap.set_ready();
}

/// Pull every page from one peer; the number of records pulled.
async fn pull_all(ap: &Ap, addr: &str) -> Result<usize, PeerError> {
    let timeout = Duration::from_millis(PEER_CALL_TIMEOUT_MS);
    let (mut after, mut count) = (None::<PartitionId>, 0);
    for _ in 0..MAX_PULL_PAGES {
        let page = ap.peers.send::<rpc::SnapshotPage>(addr, &after, timeout).await?;
        let Some(last) = page.last().map(|batch| batch.id.clone()) else { return Ok(count) };
        count += page.iter().map(|batch| batch.records.len()).sum::<usize>();
        ap.merge(page);
        after = Some(last);
    }
    tracing::warn!(pages = MAX_PULL_PAGES, "AP pull stopped at its page limit; verification brings the rest");
    Ok(count)
}

/// Ping every [`PING_INTERVAL_MS`](crate::members::PING_INTERVAL_MS); every
/// [`QUORUM_SEEKING_PING_INTERVAL_MS`] while this node sees no majority of the voters (at start,
/// or cut off): a node that just started learns its peers are up in tens of milliseconds, not
/// half a second, and answers writes (and reports ready) that much sooner.
async fn ping_forever(ap: Arc<Ap>) {
    loop {
        let seeking = !ap.members.sees_majority();
        let interval_ms = if seeking { QUORUM_SEEKING_PING_INTERVAL_MS } else { crate::members::PING_INTERVAL_MS };
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        ping_all(&ap).await;
    }
}

/// Ping every peer at once; record who answered and their digests.
async fn ping_all(ap: &Ap) {
    let digest = ap.store().digest();
    let peers = ap.members.peers();
    let pings = peers.iter().map(|(peer, addr)| async move {
        let timeout = Duration::from_millis(PING_TIMEOUT_MS);
        (*peer, ap.peers.send::<rpc::PingRpc>(addr, &Ping { digest }, timeout).await)
    });
    for (peer, answer) in futures_util::future::join_all(pings).await {
        match answer {
            Ok(pong) => {
                ap.members.seen(peer, now_ms());
                if let Some(link) = ap.outbox.link(peer) {
                    link.their_digest.store(pong.digest, Ordering::Relaxed);
                }
            }
            Err(PeerError::Unreachable { .. }) => ap.members.lost(peer, now_ms()),
            Err(_) => {}
        }
    }
    ap.members.refresh(now_ms());
}

/// Ship what waits for `peer`, retrying every [`SYNC_RETRY_INTERVAL_MS`] until it is taken,
/// for as long as `peer` is a member.
async fn ship_forever(ap: Arc<Ap>, peer: NodeId) {
    let Some(link) = ap.outbox.link(peer) else { return };
    loop {
        if ap.outbox.link(peer).is_none_or(|now| !Arc::ptr_eq(&now, &link)) {
            return tracing::debug!(peer, "no longer a member; its shipper ends");
        }
        let Some(addr) = ap.members.addr(peer) else { return };
        let retry = Duration::from_millis(SYNC_RETRY_INTERVAL_MS);
        let _ = tokio::time::timeout(retry, link.wake.notified()).await;
        loop {
            // Read before taking: every write up to it is queued by then, so once what is
            // taken is delivered and nothing was left, the peer has all of them.
            let queued_through = ap.outbox.last_queued_seq.load(Ordering::Acquire);
            let (batches, drained) = ap.outbox.take(peer);
            if !batches.is_empty() {
                let timeout = Duration::from_millis(PEER_CALL_TIMEOUT_MS);
                if let Err(e) = ap.peers.send::<rpc::Sync>(&addr, &batches, timeout).await {
                    tracing::debug!(peer, error = %e, "AP sync not taken; retrying later");
                    ap.outbox.put_back(peer, batches);
                    tokio::time::sleep(retry).await;
                    continue;
                }
            }
            if drained {
                link.delivered_through.fetch_max(queued_through, Ordering::Release);
                ap.journal_delivered(ap.outbox.delivered_through());
                break;
            }
        }
    }
}

/// Every [`VERIFY_INTERVAL_MS`], compare partitions with each live peer whose digest differs
/// from ours: the peer answers with its records of every partition whose checksum differs,
/// and we send ours of the same partitions. Both then hold, per key, the higher ranked copy.
async fn verify_forever(ap: Arc<Ap>) {
    loop {
        tokio::time::sleep(Duration::from_millis(VERIFY_INTERVAL_MS)).await;
        ap.forget_tombstones(now_ms());
        let live = ap.members.live();
        for peer in live.into_iter().filter(|id| *id != ap.members.me()) {
            verify_with(&ap, peer).await;
        }
    }
}

async fn verify_with(ap: &Ap, peer: NodeId) {
    let (Some(addr), Some(link)) = (ap.members.addr(peer), ap.outbox.link(peer)) else { return };
    let (ours, digest) = {
        let store = ap.store();
        (store.checksums(), store.digest())
    };
    if link.their_digest.load(Ordering::Relaxed) == digest {
        return;
    }
    let timeout = Duration::from_millis(PEER_CALL_TIMEOUT_MS);
    let theirs = match ap.peers.send::<rpc::Verify>(&addr, &ours, timeout).await {
        Ok(theirs) => theirs,
        Err(e) => return tracing::debug!(peer, error = %e, "AP verification failed; next round"),
    };
    let differing: Vec<PartitionId> = theirs.iter().map(|batch| batch.id.clone()).collect();
    if !differing.is_empty() {
        tracing::info!(peer, partitions = differing.len(), "AP partitions differ from a peer; repairing");
        ap.count_repair();
    }
    ap.merge(theirs);
    let store = ap.store();
    let mine: Vec<PartitionRecords> = differing.iter().filter_map(|id| store.partition_records(id)).collect();
    drop(store);
    for batch in mine {
        ap.outbox.queue_for(peer, batch);
    }
}

/// The peer side of verification: our records of each partition whose checksum differs from
/// the caller's (an empty batch when we hold none, so the caller still sends us its own).
/// Partitions only we hold are found when we verify with the caller.
pub fn answer_verify(store: &ApStore, theirs: Vec<(PartitionId, u64)>) -> Vec<PartitionRecords> {
    theirs
        .into_iter()
        .filter(|(id, checksum)| store.checksum(id) != *checksum)
        .map(|(id, _)| {
            store.partition_records(&id).unwrap_or(PartitionRecords { id, events: Vec::new(), records: Vec::new() })
        })
        .collect()
}
