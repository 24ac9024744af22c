//! The lease table: heartbeats that never become entries, kept in memory.
//!
//! A guest answering a heartbeat query names the lease it renews (its plan's lease renewal)
//! and, for an AP record, the partition it lives in. The renewal is kept by the node
//! responsible for that partition (or the leader, for a lease without one): recorded at once
//! when that is the node that served the beat, else queued here and forwarded in batches
//! (`duties::leases`), the partition with it. Renewals are kept by partition: each chunk of a
//! sweep reads the renewal times of its own partitions (and the leader's part, of the leases
//! without one) from here, and the round leaves its self-preservation judgement here for the
//! next round and the metrics.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;

use crate::clock::now_ms;
use crate::net::Rpc;
use crate::partition::PartitionId;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// Renewals a node queues for others before it drops the oldest (their holder is
/// unreachable; the sweep's grace covers what is lost).
pub const MAX_QUEUED_RENEWALS: usize = 100_000;
/// Leases one node remembers. Past this, renewals of new leases are dropped with a warning
/// (their holders then fall back to the grace of `sinceMs`/registration time).
pub const MAX_TRACKED_LEASES: usize = 1_000_000;
/// A renewal older than this is forgotten: no guest timeout is that long, and forgetting
/// keeps leases of deleted instances from accumulating.
pub const FORGET_RENEWAL_AFTER_MS: u64 = 24 * 60 * 60 * 1000;

/// Renewals a node served for leases another node holds.
pub struct LeaseRenew;

impl Rpc for LeaseRenew {
    const PATH: &'static str = "/nacre/lease-renew";
    type Request = Vec<LeaseKey>;
    type Answer = ();
}

/// One lease: a guest-chosen key within a namespace and module kind, and the AP partition it
/// belongs to (the partition named by the plan that renewed it; `None` for a lease on
/// replicated state, which the leader holds). The partition travels with every renewal, so
/// that the node holding it keeps renewals by partition and a sweep reads only its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseKey {
    pub namespace: String,
    pub kind: ModuleKind,
    pub partition: Option<String>,
    pub key: String,
}

impl LeaseKey {
    /// A valid namespace, and a key and partition name no longer than a store key: what a
    /// peer may send.
    pub fn validate(&self) -> Result<(), String> {
        crate::state::namespace_id(&self.namespace, "namespace").map_err(|e| e.to_string())?;
        let limit = crate::runtime::limits::MAX_KEY_BYTES;
        if self.key.len() > limit {
            return Err(format!("a lease key over {limit} bytes"));
        }
        if self.partition.as_ref().is_some_and(|partition| partition.len() > limit) {
            return Err(format!("a lease's partition name over {limit} bytes"));
        }
        Ok(())
    }

    /// The node that keeps this lease's renewals.
    pub fn holder(&self) -> LeaseHolder {
        match &self.partition {
            Some(partition) => LeaseHolder::Partition(PartitionId {
                namespace: self.namespace.clone(),
                kind: self.kind,
                partition: partition.clone(),
            }),
            None => LeaseHolder::Leader,
        }
    }
}

/// Which node keeps a lease's renewals: the one responsible for its AP partition, or the
/// leader for a lease on replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseHolder {
    Partition(PartitionId),
    Leader,
}

/// Renewal times (ms) by guest key, for one partition (or the leader's part) of one namespace
/// and kind.
type Renewals = HashMap<String, u64>;

/// This node's self-preservation state, as its last sweep left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Preservation {
    pub engaged: bool,
    /// Leases the last sweep expected to be renewed, and how many of them had lapsed.
    pub expected: u64,
    pub lapsed: u64,
}

/// The renewals this node holds.
#[derive(Default)]
struct Table {
    /// By `(namespace, kind)`, then by partition (`None`: the leases the leader holds), so
    /// that a sweep of some partitions reads only theirs.
    spaces: HashMap<(String, ModuleKind), HashMap<Option<String>, Renewals>>,
    /// Leases in `spaces`, kept as they are added and forgotten (a renewal must not count them).
    tracked: usize,
}

#[derive(Default)]
pub struct Leases {
    renewed_ms: Mutex<Table>,
    /// Renewals served here for leases another node holds, waiting to be forwarded.
    queued: Mutex<VecDeque<LeaseKey>>,
    preservation: Mutex<Preservation>,
}

impl Leases {
    /// A lease was renewed through this node: record it if this node holds it (`held_here`),
    /// else queue it for the node that does (`LeaseKey::holder`).
    pub fn renew(&self, key: LeaseKey, held_here: bool) {
        if held_here {
            self.record(vec![key], now_ms());
        } else {
            let mut queued = self.queued.lock().expect("lease queue lock");
            if queued.len() >= MAX_QUEUED_RENEWALS {
                queued.pop_front();
            }
            queued.push_back(key);
        }
    }

    /// Record renewals received at `at_ms`.
    pub fn record(&self, keys: Vec<LeaseKey>, at_ms: u64) {
        let mut table = self.renewed_ms.lock().expect("lease table lock");
        let Table { spaces, tracked } = &mut *table;
        for LeaseKey { namespace, kind, partition, key } in keys {
            let leases = spaces.entry((namespace, kind)).or_default().entry(partition).or_default();
            if !leases.contains_key(&key) {
                if *tracked >= MAX_TRACKED_LEASES {
                    tracing::warn!(limit = MAX_TRACKED_LEASES, "lease table full; renewal dropped");
                    continue;
                }
                *tracked += 1;
            }
            leases.insert(key, at_ms);
        }
    }

    /// The renewal times of one namespace and kind, by guest key, of the leases that belong to
    /// `partitions` (`None`: the leader's part).
    pub fn renewals_in<'a>(
        &self,
        scope: Scope<'_>,
        partitions: impl IntoIterator<Item = Option<&'a str>>,
    ) -> BTreeMap<String, u64> {
        let Scope { namespace, kind } = scope;
        let table = self.renewed_ms.lock().expect("lease table lock");
        let Some(space) = table.spaces.get(&(namespace.to_string(), kind)) else { return BTreeMap::new() };
        let mut renewals = BTreeMap::new();
        for partition in partitions {
            if let Some(leases) = space.get(&partition.map(str::to_string)) {
                renewals.extend(leases.iter().map(|(key, at)| (key.clone(), *at)));
            }
        }
        renewals
    }

    pub fn forget_before(&self, cutoff_ms: u64) {
        let mut table = self.renewed_ms.lock().expect("lease table lock");
        for space in table.spaces.values_mut() {
            for leases in space.values_mut() {
                leases.retain(|_, at| *at >= cutoff_ms);
            }
            space.retain(|_, leases| !leases.is_empty());
        }
        table.spaces.retain(|_, space| !space.is_empty());
        table.tracked = table.spaces.values().flat_map(HashMap::values).map(HashMap::len).sum();
    }

    pub fn take_queued(&self) -> Vec<LeaseKey> {
        std::mem::take(&mut *self.queued.lock().expect("lease queue lock")).into()
    }

    /// How many leases this node tracks (for metrics).
    pub fn tracked(&self) -> usize {
        self.renewed_ms.lock().expect("lease table lock").tracked
    }

    pub fn preservation(&self) -> Preservation {
        *self.preservation.lock().expect("preservation lock")
    }

    /// Take a sweep round's counts; returns whether the node now preserves.
    pub fn judge(&self, policy: &crate::config::SelfPreservation, expected: u64, lapsed: u64) -> bool {
        let engaged = policy.engages(expected, lapsed);
        let mut state = self.preservation.lock().expect("preservation lock");
        if engaged != state.engaged {
            if engaged {
                tracing::warn!(
                    expected,
                    lapsed,
                    threshold = policy.threshold,
                    "self-preservation engaged: most heartbeats lapsed at once; this node expires nothing until they return"
                );
            } else {
                tracing::info!(expected, lapsed, "self-preservation released: heartbeats are back");
            }
        }
        *state = Preservation { engaged, expected, lapsed };
        engaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, partition: Option<&str>, key: &str) -> LeaseKey {
        LeaseKey {
            namespace: namespace.into(),
            kind: ModuleKind::Naming,
            partition: partition.map(str::to_string),
            key: key.into(),
        }
    }

    #[test]
    fn renewals_are_per_namespace_and_latest_wins() {
        let leases = Leases::default();
        leases.record(vec![key("a", Some("p"), "x"), key("b", Some("p"), "x")], 10);
        leases.record(vec![key("a", Some("p"), "x")], 20);
        let p = [Some("p")];
        assert_eq!(leases.renewals_in(Scope::new("a", ModuleKind::Naming), p), BTreeMap::from([("x".to_string(), 20)]));
        assert_eq!(leases.renewals_in(Scope::new("b", ModuleKind::Naming), p), BTreeMap::from([("x".to_string(), 10)]));
        assert!(leases.renewals_in(Scope::new("a", ModuleKind::Config), p).is_empty());
        assert_eq!(leases.tracked(), 2);
        leases.forget_before(15);
        assert_eq!(leases.tracked(), 1);
        assert!(leases.renewals_in(Scope::new("b", ModuleKind::Naming), p).is_empty(), "forgotten");
    }

    #[test]
    fn a_sweep_reads_only_the_renewals_of_the_partitions_it_asks_for() {
        let leases = Leases::default();
        leases.record(vec![key("a", Some("p"), "x"), key("a", Some("q"), "y"), key("a", None, "z")], 10);
        let of = |partitions: &[Option<&str>]| -> Vec<String> {
            leases.renewals_in(Scope::new("a", ModuleKind::Naming), partitions.iter().copied()).into_keys().collect()
        };
        assert_eq!(of(&[Some("p")]), ["x"]);
        assert_eq!(of(&[Some("q"), Some("p")]), ["x", "y"]);
        assert_eq!(of(&[None]), ["z"], "the leader's part: leases without a partition");
        assert!(of(&[Some("r")]).is_empty());
        assert!(of(&[]).is_empty());
        // The same guest key under two partitions is two leases.
        leases.record(vec![key("a", Some("q"), "x")], 30);
        assert_eq!(leases.tracked(), 4);
        assert_eq!(leases.renewals_in(Scope::new("a", ModuleKind::Naming), [Some("p")])["x"], 10);
        assert_eq!(leases.renewals_in(Scope::new("a", ModuleKind::Naming), [Some("q")])["x"], 30);
    }

    #[test]
    fn the_table_stops_at_its_limit_and_counts_each_lease_once() {
        let leases = Leases::default();
        let full: Vec<LeaseKey> =
            (0..MAX_TRACKED_LEASES).map(|i| key("a", Some(&format!("p{}", i % 7)), &i.to_string())).collect();
        leases.record(full, 1);
        assert_eq!(leases.tracked(), MAX_TRACKED_LEASES);
        leases.record(vec![key("a", Some("p0"), "0"), key("a", Some("new"), "n")], 2);
        assert_eq!(leases.tracked(), MAX_TRACKED_LEASES, "a known lease is renewed, a new one dropped");
        assert_eq!(leases.renewals_in(Scope::new("a", ModuleKind::Naming), [Some("p0")])["0"], 2);
        assert!(leases.renewals_in(Scope::new("a", ModuleKind::Naming), [Some("new")]).is_empty());
    }

    #[test]
    fn renewals_for_other_nodes_are_queued_with_their_holder() {
        let leases = Leases::default();
        leases.renew(key("a", Some("p"), "x"), false);
        leases.renew(key("a", None, "y"), false);
        leases.renew(key("a", Some("p"), "z"), true);
        let queued = leases.take_queued();
        let holders: Vec<LeaseHolder> = queued.iter().map(LeaseKey::holder).collect();
        let p = PartitionId { namespace: "a".into(), kind: ModuleKind::Naming, partition: "p".into() };
        assert_eq!(holders, [LeaseHolder::Partition(p), LeaseHolder::Leader]);
        assert!(leases.take_queued().is_empty());
        assert_eq!(
            leases.renewals_in(Scope::new("a", ModuleKind::Naming), [Some("p")]).len(),
            1,
            "held here: recorded"
        );
    }

    #[test]
    fn a_peer_may_not_send_oversized_names() {
        let long = "x".repeat(crate::runtime::limits::MAX_KEY_BYTES + 1);
        assert!(key("a", Some("p"), "x").validate().is_ok());
        assert!(key("a", None, "x").validate().is_ok());
        assert!(key("a", Some(&long), "x").validate().unwrap_err().contains("partition"));
        assert!(key("a", Some("p"), &long).validate().is_err());
        assert!(key("bad namespace!", Some("p"), "x").validate().is_err());
    }

    #[test]
    fn preservation_follows_each_rounds_counts() {
        let (leases, policy) = (Leases::default(), crate::config::SelfPreservation::default());
        assert!(!leases.judge(&policy, 20, 3));
        assert!(leases.judge(&policy, 20, 18), "90 % lapsed at once");
        assert_eq!(leases.preservation(), Preservation { engaged: true, expected: 20, lapsed: 18 });
        assert!(!leases.judge(&policy, 20, 2), "renewals are back");
    }
}
