//! The AP keyspace held by one node: every guest key under `nacre_protocol::keyspace::AP_PREFIX`
//! of every `(namespace, kind)`, with the version that decides which copy wins.
//!
//! Records are replicated by state, not by operation: the node responsible for a partition
//! applies commands and ships the resulting records; every node keeps, per key, the record
//! that [`Record::rank`] puts highest. Taking the maximum of a total order is commutative,
//! associative and idempotent, so nodes converge whatever order, duplication or delay the
//! copies arrive with. A delete is a tombstone with its own version, kept for
//! [`TOMBSTONE_TTL_MS`], so that a stale live copy arriving late loses to it instead of
//! resurrecting the key.
//!
//! Why the rank is not simply the version: each live record also carries the version of the
//! client write that gave it life (its *birth*). A duty's write (the sweep marking a silent
//! instance unhealthy) amends the incarnation it found and keeps its birth; a client's write
//! starts a new one. A tombstone beats every incarnation born before it, however recently a
//! duty amended that incarnation. So a deregistration made on one side of a partition wins
//! over the other side's sweep of the same instance, which that side made without seeing
//! it (issue 15): otherwise the sweep's newer version would bring the instance back at the
//! heal. A client write after the deregistration is a new incarnation and beats it.
//!
//! No I/O here: the caller passes the time and ships what this returns.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Deserialize;
use serde::Serialize;

pub use crate::partition::PartitionId;
use crate::runtime::Event;
use crate::runtime::KvRead;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// How long a tombstone outlives its key: longer than any partition of the network the
/// anti-entropy should still heal without resurrecting deleted keys. A copy older than this
/// that reappears is an ephemeral record nobody renews; its lease expires it again.
pub const TOMBSTONE_TTL_MS: u64 = 5 * 60 * 1000;
/// Records (tombstones included) one node holds; past it, new keys are refused.
pub const MAX_RECORDS: usize = 2_000_000;
/// Low bits of a version's clock that count writes within one millisecond.
const LOGICAL_BITS: u32 = 16;
/// How far ahead of this node's clock a peer's version may be. Further is a broken clock or
/// a forged record: taken, it would outrank every later write here (an instance no one could
/// delete) and drag this node's clock with it, so it is refused.
pub const MAX_CLOCK_SKEW_MS: u64 = 60 * 1000;

/// Which copy of a key wins: the higher clock, then the higher node id. Clocks are hybrid
/// (milliseconds shifted left, plus a counter) and every node advances its own past every
/// version it has seen, so a write made after seeing a copy always beats that copy, even if
/// the writer's wall clock is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub clock: u64,
    pub node: u64,
}

impl Version {
    const MAX: Version = Version { clock: u64::MAX, node: u64::MAX };
}

/// Who made a write: a client (a new incarnation of each key it writes) or a duty the host
/// runs on the guest's behalf, such as the sweep (an amendment of the incarnation it found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Client,
    Duty,
}

/// One key's latest known state; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: Version,
    /// The version of the client write this incarnation began with (= `version` for a
    /// tombstone and for a client's write).
    pub birth: Version,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub value: Option<serde_bytes::ByteBuf>,
}

/// Where a record stands in the total order whose maximum every node keeps: a live record by
/// its birth, then its version; a tombstone by its version, above every incarnation born
/// before it. Distinct records never rank equal (one version is one write).
fn rank(version: Version, birth: Version, live: bool) -> (Version, Version) {
    if live { (birth, version) } else { (version, Version::MAX) }
}

impl Record {
    pub fn rank(&self) -> (Version, Version) {
        rank(self.version, self.birth, self.value.is_some())
    }
}

/// Records of one partition as they travel between nodes, with the events a change of the
/// partition means to watchers (what the guest emitted when it last wrote it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecords {
    pub id: PartitionId,
    pub events: Vec<Event>,
    pub records: Vec<Record>,
}

impl PartitionRecords {
    /// Whether a peer's batch could have come from a guest's AP command: a valid partition,
    /// keys in the AP keyspace, and every size within what the runtime lets a command write.
    /// A batch from a peer is checked before it is merged; one that fails changes nothing.
    pub fn validate(&self) -> Result<(), String> {
        use crate::runtime::limits::{MAX_EVENT_FIELD_BYTES, MAX_EVENTS_PER_COMMAND, MAX_KEY_BYTES, MAX_VALUE_BYTES};
        self.id.validate()?;
        let events_fit = |e: &Event| e.topic.len() <= MAX_EVENT_FIELD_BYTES && e.key.len() <= MAX_EVENT_FIELD_BYTES;
        if self.events.len() > MAX_EVENTS_PER_COMMAND || !self.events.iter().all(events_fit) {
            return Err("events over the limits of one command".into());
        }
        for record in &self.records {
            if !nacre_protocol::keyspace::is_ap(&record.key) || record.key.len() > MAX_KEY_BYTES {
                return Err(format!("a record key outside the AP keyspace or over {MAX_KEY_BYTES} bytes"));
            }
            if record.value.as_ref().is_some_and(|value| value.len() > MAX_VALUE_BYTES) {
                return Err(format!("a record value over {MAX_VALUE_BYTES} bytes"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Stored {
    version: Version,
    birth: Version,
    partition: String,
    value: Option<Vec<u8>>,
    /// Local time the tombstone arrived (0 for a live record): when it may be forgotten.
    dead_since_ms: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// XOR of [`record_hash`] over the live records: equal on two nodes exactly when (up to
    /// hash collisions) they hold the same live records at the same versions.
    checksum: u64,
    live: usize,
    /// All keys, tombstones included.
    keys: std::collections::BTreeSet<Vec<u8>>,
    events: Vec<Event>,
}

#[derive(Debug, Default)]
struct Space {
    records: BTreeMap<Vec<u8>, Stored>,
    partitions: BTreeMap<String, PartitionState>,
}

#[derive(Debug, Default)]
pub struct ApStore {
    spaces: BTreeMap<(String, ModuleKind), Space>,
    /// The highest version clock made or seen here.
    clock: u64,
    records: usize,
    /// Counts the merges that changed a record: what a view shows can change only with it.
    generation: u64,
    /// Records a peer sent that were refused (a version too far ahead, a birth after its own
    /// version): kept for the operator's metrics.
    refused: u64,
}

/// Why a local write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("the AP keyspace of this node is full ({MAX_RECORDS} records)")]
    Full,
}

impl ApStore {
    /// A version for a write made now by `node`, above every version seen so far.
    pub fn next_version(&mut self, now_ms: u64, node: u64) -> Version {
        self.clock = clock_at(now_ms).max(self.clock.saturating_add(1));
        Version { clock: self.clock, node }
    }

    /// Store the writes of one command applied here, all at `version`; returns them as
    /// records to ship to the other nodes. A duty's write keeps the birth of the live
    /// incarnation it amends; a client's write begins a new one.
    pub fn write(
        &mut self,
        id: &PartitionId,
        version: Version,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        events: Vec<Event>,
        now_ms: u64,
        origin: Origin,
    ) -> Result<PartitionRecords, StoreError> {
        let space = self.spaces.get(&(id.namespace.clone(), id.kind));
        let new_keys = writes.iter().filter(|(key, _)| space.is_none_or(|s| !s.records.contains_key(key))).count();
        if self.records + new_keys > MAX_RECORDS {
            return Err(StoreError::Full);
        }
        let birth_of = |key: &[u8]| match origin {
            Origin::Client => version,
            Origin::Duty => space
                .and_then(|s| s.records.get(key))
                .filter(|stored| stored.value.is_some())
                .map_or(version, |stored| stored.birth),
        };
        let records: Vec<Record> = writes
            .into_iter()
            .map(|(key, value)| {
                let birth = if value.is_some() { birth_of(&key) } else { version };
                Record { version, birth, key, value: value.map(serde_bytes::ByteBuf::from) }
            })
            .collect();
        let batch = PartitionRecords { id: id.clone(), events, records };
        self.merge(batch.clone(), now_ms);
        Ok(batch)
    }

    /// Keep, per key, the higher ranked of ours and theirs. Returns whether anything
    /// changed (then the batch's events are what watchers should be told). A record from
    /// beyond this node's clock plus [`MAX_CLOCK_SKEW_MS`], or born after its own version, is
    /// refused.
    pub fn merge(&mut self, batch: PartitionRecords, now_ms: u64) -> bool {
        let PartitionRecords { id, events, records } = batch;
        let latest_plausible = clock_at(now_ms.saturating_add(MAX_CLOCK_SKEW_MS)).max(self.clock);
        let space = self.spaces.entry((id.namespace.clone(), id.kind)).or_default();
        let mut changed = false;
        for record in records {
            let record_rank = record.rank();
            let Record { version, birth, key, value } = record;
            if version.clock > latest_plausible || birth > version {
                tracing::warn!(?version, ?birth, now_ms, "refused an AP record from beyond this node's clock");
                self.refused += 1;
                continue;
            }
            self.clock = self.clock.max(version.clock);
            let old = space.records.get(&key);
            if old.is_some_and(|old| rank(old.version, old.birth, old.value.is_some()) >= record_rank) {
                continue;
            }
            if old.is_none() {
                if self.records >= MAX_RECORDS {
                    tracing::warn!(limit = MAX_RECORDS, "AP keyspace full; a replicated record was dropped");
                    continue;
                }
                self.records += 1;
            }
            let value = value.map(serde_bytes::ByteBuf::into_vec);
            let dead_since_ms = if value.is_none() { now_ms.max(1) } else { 0 };
            let new = Stored { version, birth, partition: id.partition.clone(), value, dead_since_ms };
            if let Some(old) = space.records.insert(key.clone(), new.clone()) {
                space.partition_mut(&old.partition).forget(&id, &key, &old);
            }
            space.partition_mut(&id.partition).remember(&id, &key, &new);
            changed = true;
        }
        if changed {
            self.generation += 1;
            if !events.is_empty() {
                space.partition_mut(&id.partition).events = events;
            }
        }
        if space.records.is_empty() {
            self.spaces.remove(&(id.namespace, id.kind));
        }
        changed
    }

    /// Moves whenever a record changes, never back (tombstones forgotten are in no view).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A read view of one `(namespace, kind)`: live records only, guest keys.
    pub fn view(&self, scope: Scope<'_>) -> ApView<'_> {
        let Scope { namespace, kind } = scope;
        ApView { space: self.spaces.get(&(namespace.to_string(), kind)) }
    }

    /// Every partition with its checksum (0 for one holding tombstones only).
    pub fn checksums(&self) -> Vec<(PartitionId, u64)> {
        self.partition_ids().map(|(id, state)| (id, state.checksum)).collect()
    }

    pub fn checksum(&self, id: &PartitionId) -> u64 {
        self.partition(id).map_or(0, |p| p.checksum)
    }

    /// Everything held about one partition, tombstones included.
    pub fn partition_records(&self, id: &PartitionId) -> Option<PartitionRecords> {
        let space = self.spaces.get(&(id.namespace.clone(), id.kind))?;
        let state = space.partitions.get(&id.partition)?;
        let records = state
            .keys
            .iter()
            .filter_map(|key| {
                let stored = space.records.get(key)?;
                let value = stored.value.clone().map(serde_bytes::ByteBuf::from);
                Some(Record { version: stored.version, birth: stored.birth, key: key.clone(), value })
            })
            .collect();
        Some(PartitionRecords { id: id.clone(), events: state.events.clone(), records })
    }

    /// Everything this node holds, partition by partition.
    pub fn all_records(&self) -> Vec<PartitionRecords> {
        self.records_after(None, usize::MAX)
    }

    /// Whole partitions in id order, those after `after`, until at least `min_records`
    /// records are taken (a page of a starting node's first pull).
    pub fn records_after(&self, after: Option<&PartitionId>, min_records: usize) -> Vec<PartitionRecords> {
        let mut page = Vec::new();
        let mut taken = 0;
        for (id, _) in self.partition_ids().filter(|(id, _)| after.is_none_or(|after| id > after)) {
            if taken >= min_records {
                break;
            }
            if let Some(records) = self.partition_records(&id) {
                taken += records.records.len();
                page.push(records);
            }
        }
        page
    }

    /// The partitions of `(namespace, kind)` that hold a live record, in name order, each with
    /// how many it holds (what a sweep of it reads).
    pub fn live_partitions(&self, scope: Scope<'_>) -> Vec<(String, usize)> {
        let Scope { namespace, kind } = scope;
        let Some(space) = self.spaces.get(&(namespace.to_string(), kind)) else { return Vec::new() };
        space.partitions.iter().filter(|(_, p)| p.live > 0).map(|(name, p)| (name.clone(), p.live)).collect()
    }

    /// The namespaces where `kind` holds AP records.
    pub fn namespaces(&self, kind: ModuleKind) -> Vec<String> {
        self.spaces.keys().filter(|(_, k)| *k == kind).map(|(ns, _)| ns.clone()).collect()
    }

    /// Forget tombstones older than [`TOMBSTONE_TTL_MS`].
    pub fn forget_tombstones(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(TOMBSTONE_TTL_MS);
        let mut forgotten = 0;
        for space in self.spaces.values_mut() {
            let expired: Vec<(Vec<u8>, String)> = space
                .records
                .iter()
                .filter(|(_, s)| s.value.is_none() && s.dead_since_ms < cutoff)
                .map(|(key, s)| (key.clone(), s.partition.clone()))
                .collect();
            for (key, partition) in expired {
                space.records.remove(&key);
                let state = space.partition_mut(&partition);
                state.keys.remove(&key);
                forgotten += 1;
            }
            space.partitions.retain(|_, p| !p.keys.is_empty());
        }
        self.spaces.retain(|_, space| !space.records.is_empty());
        self.records -= forgotten;
    }

    /// XOR of every partition's checksum: equal on two nodes holding the same live records.
    pub fn digest(&self) -> u64 {
        self.partition_ids().fold(0, |acc, (_, p)| acc ^ p.checksum)
    }

    /// Records from peers refused since start (see [`ApStore::merge`]).
    pub fn refused_records(&self) -> u64 {
        self.refused
    }

    /// Live records held.
    pub fn live_records(&self) -> usize {
        self.spaces.values().flat_map(|s| s.partitions.values()).map(|p| p.live).sum()
    }

    fn partition(&self, id: &PartitionId) -> Option<&PartitionState> {
        self.spaces.get(&(id.namespace.clone(), id.kind))?.partitions.get(&id.partition)
    }

    fn partition_ids(&self) -> impl Iterator<Item = (PartitionId, &PartitionState)> {
        self.spaces.iter().flat_map(|((namespace, kind), space)| {
            space.partitions.iter().map(move |(partition, state)| {
                (PartitionId { namespace: namespace.clone(), kind: *kind, partition: partition.clone() }, state)
            })
        })
    }
}

/// The hybrid clock value of a wall-clock millisecond, saturating far in the future.
fn clock_at(now_ms: u64) -> u64 {
    now_ms.checked_shl(LOGICAL_BITS).filter(|clock| clock >> LOGICAL_BITS == now_ms).unwrap_or(u64::MAX)
}

impl Space {
    fn partition_mut(&mut self, partition: &str) -> &mut PartitionState {
        self.partitions.entry(partition.to_string()).or_default()
    }
}

impl PartitionState {
    fn remember(&mut self, id: &PartitionId, key: &[u8], stored: &Stored) {
        self.keys.insert(key.to_vec());
        if stored.value.is_some() {
            self.checksum ^= record_hash(id, key, stored.version);
            self.live += 1;
        }
    }

    fn forget(&mut self, id: &PartitionId, key: &[u8], stored: &Stored) {
        self.keys.remove(key);
        if stored.value.is_some() {
            self.checksum ^= record_hash(id, key, stored.version);
            self.live -= 1;
        }
    }
}

/// The hash of one live record: its place and version (one version is one write, so the
/// value adds nothing).
fn record_hash(id: &PartitionId, key: &[u8], version: Version) -> u64 {
    let kind = crate::state::kind_tag(id.kind).as_bytes();
    let (clock, node) = (version.clock.to_be_bytes(), version.node.to_be_bytes());
    crate::partition::stable_hash(&[id.namespace.as_bytes(), kind, key, &clock, &node])
}

/// This node's AP keyspace behind its lock: read by guest calls (`guests`), written by AP
/// commands and merges (`ap`). Waits on the lock follow `blocking`: an async worker parks at
/// most briefly, a longer hold is waited out off it.
#[derive(Debug, Default)]
pub struct Keyspace {
    store: parking_lot::RwLock<ApStore>,
}

impl Keyspace {
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, ApStore> {
        crate::blocking::read(&self.store)
    }

    /// The store if no merge or write holds it now: for a short read on an async worker.
    pub fn try_read(&self) -> Option<parking_lot::RwLockReadGuard<'_, ApStore>> {
        self.store.try_read()
    }

    pub fn write(&self) -> parking_lot::RwLockWriteGuard<'_, ApStore> {
        crate::blocking::write(&self.store)
    }
}

/// One `(namespace, kind)`'s live AP records as a guest store.
pub struct ApView<'a> {
    space: Option<&'a Space>,
}

impl KvRead for ApView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.space?.records.get(key)?.value.clone()
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(space) = self.space else { return Vec::new() };
        space
            .records
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .take_while(|(key, _)| end.is_empty() || key.as_slice() < end)
            .filter_map(|(key, stored)| Some((key.clone(), stored.value.clone()?)))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests;
