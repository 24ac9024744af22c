//! The lease table: heartbeats that never become entries, kept in memory.
//!
//! A guest answering a heartbeat query names the lease it renews (its plan's lease renewal)
//! and, for an AP record, the partition it lives in. The renewal is kept by the node
//! responsible for that partition (or the leader, for a lease without one): recorded at once
//! when that is the node that served the beat, else queued here and forwarded in batches
//! (`duties::leases`). The sweep reads the renewal times of its namespace from here, and
//! leaves its self-preservation judgement here for the next sweep and the metrics.

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

/// One lease: a guest-chosen key within a namespace and module kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseKey {
    pub namespace: String,
    pub kind: ModuleKind,
    pub key: String,
}

impl LeaseKey {
    /// A valid namespace and a key no longer than a store key: what a peer may send.
    pub fn validate(&self) -> Result<(), String> {
        crate::state::namespace_id(&self.namespace, "namespace").map_err(|e| e.to_string())?;
        let limit = crate::runtime::limits::MAX_KEY_BYTES;
        if self.key.len() > limit {
            return Err(format!("a lease key over {limit} bytes"));
        }
        Ok(())
    }
}

/// Which node keeps a lease's renewals: the one responsible for its AP partition, or the
/// leader for a lease on replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseHolder {
    Partition(PartitionId),
    Leader,
}

/// Renewal times (ms) by guest key, for one namespace and kind: the unit a sweep reads.
type Renewals = HashMap<String, u64>;

/// This node's self-preservation state, as its last sweep left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Preservation {
    pub engaged: bool,
    /// Leases the last sweep expected to be renewed, and how many of them had lapsed.
    pub expected: u64,
    pub lapsed: u64,
}

#[derive(Default)]
pub struct Leases {
    /// Last renewal of each lease this node holds, by `(namespace, kind)` so that a sweep
    /// reads only its own namespace's.
    renewed_ms: Mutex<HashMap<(String, ModuleKind), Renewals>>,
    /// Renewals served here for leases another node holds, waiting to be forwarded.
    queued: Mutex<VecDeque<(LeaseHolder, LeaseKey)>>,
    preservation: Mutex<Preservation>,
}

impl Leases {
    /// A lease was renewed through this node: record it if this node holds it (`held_here`),
    /// else queue it for the node that does.
    pub fn renew(&self, key: LeaseKey, holder: LeaseHolder, held_here: bool) {
        if held_here {
            self.record(vec![key], now_ms());
        } else {
            let mut queued = self.queued.lock().expect("lease queue lock");
            if queued.len() >= MAX_QUEUED_RENEWALS {
                queued.pop_front();
            }
            queued.push_back((holder, key));
        }
    }

    /// Record renewals received at `at_ms`.
    pub fn record(&self, keys: Vec<LeaseKey>, at_ms: u64) {
        let mut renewed = self.renewed_ms.lock().expect("lease table lock");
        let mut tracked: usize = renewed.values().map(HashMap::len).sum();
        for LeaseKey { namespace, kind, key } in keys {
            let leases = renewed.entry((namespace, kind)).or_default();
            if !leases.contains_key(&key) {
                if tracked >= MAX_TRACKED_LEASES {
                    tracing::warn!(limit = MAX_TRACKED_LEASES, "lease table full; renewal dropped");
                    continue;
                }
                tracked += 1;
            }
            leases.insert(key, at_ms);
        }
    }

    /// The renewal times of one namespace and kind, by guest key.
    pub fn renewals_in(&self, namespace: &str, kind: ModuleKind) -> BTreeMap<String, u64> {
        let renewed = self.renewed_ms.lock().expect("lease table lock");
        renewed
            .get(&(namespace.to_string(), kind))
            .map(|leases| leases.iter().map(|(key, at)| (key.clone(), *at)).collect())
            .unwrap_or_default()
    }

    pub fn forget_before(&self, cutoff_ms: u64) {
        let mut renewed = self.renewed_ms.lock().expect("lease table lock");
        for leases in renewed.values_mut() {
            leases.retain(|_, at| *at >= cutoff_ms);
        }
        renewed.retain(|_, leases| !leases.is_empty());
    }

    pub fn take_queued(&self) -> Vec<(LeaseHolder, LeaseKey)> {
        std::mem::take(&mut *self.queued.lock().expect("lease queue lock")).into()
    }

    /// How many leases this node tracks (for metrics).
    pub fn tracked(&self) -> usize {
        self.renewed_ms.lock().expect("lease table lock").values().map(HashMap::len).sum()
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

    fn key(namespace: &str, key: &str) -> LeaseKey {
        LeaseKey { namespace: namespace.into(), kind: ModuleKind::Naming, key: key.into() }
    }

    #[test]
    fn renewals_are_per_namespace_and_latest_wins() {
        let leases = Leases::default();
        leases.record(vec![key("a", "x"), key("b", "x")], 10);
        leases.record(vec![key("a", "x")], 20);
        assert_eq!(leases.renewals_in("a", ModuleKind::Naming), BTreeMap::from([("x".to_string(), 20)]));
        assert_eq!(leases.renewals_in("b", ModuleKind::Naming), BTreeMap::from([("x".to_string(), 10)]));
        assert!(leases.renewals_in("a", ModuleKind::Config).is_empty());
        leases.forget_before(15);
        assert_eq!(leases.tracked(), 1);
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
