//! Leases: heartbeats that never become entries.
//!
//! A guest answering a heartbeat query names the lease it renews (`Nacre-Lease-Renew`) and,
//! for an AP record, the partition it lives in (`Nacre-Partition`). The renewal is kept in the
//! memory of the node responsible for that partition (or of the leader, for a lease without
//! a partition): recorded at once when that is the node that served the beat, else queued
//! and forwarded in batches on the peer port.
//!
//! About once a second every node asks each namespace's guest to sweep the partitions it is
//! responsible for: it passes the renewal times it holds and when it started holding them,
//! and runs the commands the guest answers with (mark an instance unhealthy, expire it) on
//! the path each names: AP commands here, log commands only on the leader.
//!
//! A node that just became responsible knows no renewals; it passes the moment its view of
//! the members last changed as `sinceMs`, so every lease gets a full timeout of grace before
//! it can expire (Nacos does the same after a restart).
//!
//! Self-preservation: the sweep also reports how many leases it expected to be renewed and
//! how many lapsed. When too many lapse at once (`config::SelfPreservation`), the node
//! suspects its own network rather than every client, and tells the next sweeps to `preserve`:
//! the guest then expires nothing until renewals return.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use nacre_protocol::sweep::SweepCommand;
use nacre_protocol::sweep::SweepReply;
use serde::Deserialize;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::ap::members::responsible_among;
use crate::ap::store::Origin;
use crate::ap::store::PartitionId;
use crate::node::Node;
use crate::node::now_ms;
use crate::runtime::ModuleKind;

/// How often every node sweeps the partitions it is responsible for.
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
/// How often a node sends the renewals it served to the nodes that hold them.
pub const RENEWAL_FLUSH_INTERVAL_MS: u64 = 200;
/// Renewals a node queues for others before it drops the oldest (their holder is
/// unreachable; the sweep's grace covers what is lost).
pub const MAX_QUEUED_RENEWALS: usize = 100_000;
/// Leases one node remembers. Past this, renewals of new leases are dropped with a warning
/// (their holders then fall back to the grace of `sinceMs`/registration time).
pub const MAX_TRACKED_LEASES: usize = 1_000_000;
/// A renewal older than this is forgotten: no guest timeout is that long, and forgetting
/// keeps leases of deleted instances from accumulating.
pub const FORGET_RENEWAL_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a node waits for another to take a batch of renewals.
const FORWARD_TIMEOUT_MS: u64 = 2_000;

/// The sweep query of each module kind that has leases.
const SWEEPS: &[(ModuleKind, &str)] = &[(ModuleKind::Naming, "naming.sweep")];

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
    /// A lease was renewed through this node: record it if this node holds it, else queue it.
    pub fn renew(&self, node: &Node, key: LeaseKey, holder: LeaseHolder) {
        if holds_here(node, &holder) {
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
    fn renewals_in(&self, namespace: &str, kind: ModuleKind) -> BTreeMap<String, u64> {
        let renewed = self.renewed_ms.lock().expect("lease table lock");
        renewed
            .get(&(namespace.to_string(), kind))
            .map(|leases| leases.iter().map(|(key, at)| (key.clone(), *at)).collect())
            .unwrap_or_default()
    }

    fn forget_before(&self, cutoff_ms: u64) {
        let mut renewed = self.renewed_ms.lock().expect("lease table lock");
        for leases in renewed.values_mut() {
            leases.retain(|_, at| *at >= cutoff_ms);
        }
        renewed.retain(|_, leases| !leases.is_empty());
    }

    fn take_queued(&self) -> Vec<(LeaseHolder, LeaseKey)> {
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
    fn judge(&self, policy: &crate::config::SelfPreservation, expected: u64, lapsed: u64) -> bool {
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

fn holds_here(node: &Node, holder: &LeaseHolder) -> bool {
    match holder {
        LeaseHolder::Partition(id) => node.ap.members.is_responsible(id),
        LeaseHolder::Leader => node.leading_term().is_some(),
    }
}

/// Every [`RENEWAL_FLUSH_INTERVAL_MS`], send queued renewals to the nodes that hold them (as
/// they are now: responsibility may have moved since the beat).
pub async fn forward_renewals(node: Arc<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(RENEWAL_FLUSH_INTERVAL_MS)).await;
        let queued = node.duties.leases.take_queued();
        if queued.is_empty() {
            continue;
        }
        let mut here = Vec::new();
        let mut by_addr: BTreeMap<String, Vec<LeaseKey>> = BTreeMap::new();
        for (holder, key) in queued {
            if holds_here(&node, &holder) {
                here.push(key);
                continue;
            }
            let addr = match &holder {
                LeaseHolder::Partition(id) => node.ap.members.addr(node.ap.members.responsible(id)).map(str::to_string),
                LeaseHolder::Leader => node.remote_leader_addr(),
            };
            if let Some(addr) = addr {
                by_addr.entry(addr).or_default().push(key);
            }
        }
        node.duties.leases.record(here, now_ms());
        let sends = by_addr.into_iter().map(|(addr, keys)| {
            let node = node.clone();
            async move {
                let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
                let sent: Result<(), _> = node.peers.call(&addr, "/nacre/lease-renew", &keys, timeout).await;
                if let Err(e) = sent {
                    tracing::debug!(error = %e, count = keys.len(), "renewals not forwarded; the sweep's grace covers them");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

/// Every node, once per [`SWEEP_INTERVAL_MS`]: sweep the partitions it is responsible for in
/// every namespace (and, on the leader, the replicated state), run what the guest answers,
/// and judge self-preservation from the counts.
pub async fn sweep_forever(node: Arc<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)).await;
        let now = now_ms();
        let term = node.leading_term();
        let preserve = node.duties.leases.preservation().engaged;
        let (mut expected, mut lapsed) = (0, 0);
        for (kind, op) in SWEEPS {
            let mut namespaces: BTreeSet<String> = node.ap.store().namespaces(*kind).into_iter().collect();
            if term.is_some() {
                namespaces.extend(node.shared.read().machine.namespaces_with_data(*kind));
            }
            for namespace in namespaces {
                let round = Round { namespace: &namespace, kind: *kind, now, term, preserve };
                if let Some(reply) = sweep(&node, op, &round).await {
                    expected += reply.expected;
                    lapsed += reply.lapsed;
                }
            }
        }
        node.duties.leases.judge(&node.config.self_preservation, expected, lapsed);
        node.duties.leases.forget_before(now.saturating_sub(FORGET_RENEWAL_AFTER_MS));
    }
}

/// One namespace's sweep in one round.
struct Round<'a> {
    namespace: &'a str,
    kind: ModuleKind,
    now: u64,
    /// The term this node leads, if it leads.
    term: Option<u64>,
    preserve: bool,
}

/// Ask one namespace's guest what has expired among what this node is responsible for, and
/// run its answer. `None` when there was nothing to ask or the guest failed.
async fn sweep(node: &Arc<Node>, op: &str, round: &Round<'_>) -> Option<SweepReply> {
    let Round { namespace, kind, now, term, preserve } = *round;
    let live = node.ap.members.live();
    let partitions: Vec<String> = node
        .ap
        .store()
        .live_partitions(namespace, kind)
        .into_iter()
        .filter(|partition| responsible_among(&live, &partition_id(namespace, kind, partition)) == node.id)
        .collect();
    if partitions.is_empty() && term.is_none() {
        return None;
    }
    let renewals = node.duties.leases.renewals_in(namespace, kind);
    let request = GuestRequest::new(op)
        .param("nowMs", now.to_string())
        .param("sinceMs", node.ap.members.view_since_ms().to_string())
        .param("beats", serde_json::to_string(&renewals).expect("a map of numbers serializes"))
        .param("partitions", serde_json::to_string(&partitions).expect("strings serialize"))
        .param("leader", term.is_some().to_string())
        .param("preserve", preserve.to_string());
    let reply: SweepReply = match node.query(namespace, kind, &request) {
        Ok(reply) => match serde_json::from_str(&reply.body) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(namespace, op, error = %e, "sweep answer is not a sweep reply");
                return None;
            }
        },
        Err(e) => {
            tracing::warn!(namespace, op, code = e.code, message = %e.message, "sweep failed");
            return None;
        }
    };
    let (ap_commands, log_commands): (Vec<&SweepCommand>, Vec<&SweepCommand>) =
        reply.commands.iter().partition(|command| command.partition.is_some());
    for command in ap_commands {
        let id = partition_id(namespace, kind, command.partition.as_deref().expect("partitioned above"));
        if !node.ap.members.is_responsible(&id) {
            continue; // moved since the query; its new holder sweeps it
        }
        let request = GuestRequest { op: command.op.clone(), params: command.params.clone(), client_ip: String::new() };
        let failure = match node.ap.apply_here(node, &id, &request, Origin::Duty).await {
            Ok(applied) => applied.result.err(),
            Err(error) => Some(error),
        };
        if let Some(e) = failure {
            tracing::warn!(namespace, op = command.op, code = e.code, message = %e.message, "duty command failed");
        }
    }
    if let Some(term) = term {
        let requests = log_commands
            .into_iter()
            .map(|c| GuestRequest { op: c.op.clone(), params: c.params.clone(), client_ip: String::new() })
            .collect();
        commit_all(node, term, namespace, kind, requests).await;
    }
    Some(reply)
}

fn partition_id(namespace: &str, kind: ModuleKind, partition: &str) -> PartitionId {
    PartitionId { namespace: namespace.to_string(), kind, partition: partition.to_string() }
}

/// Commit guest-named commands concurrently (one batch reaches the log together) and wait
/// for all of them, so the next sweep sees their effect; only while leading `term`.
pub async fn commit_all(node: &Arc<Node>, term: u64, namespace: &str, kind: ModuleKind, commands: Vec<GuestRequest>) {
    let mut writes = JoinSet::new();
    for command in commands {
        let (node, namespace) = (node.clone(), namespace.to_string());
        writes.spawn(async move {
            if let Err(e) = node.write_guest_as_leader(term, namespace.clone(), kind, &command).await {
                tracing::warn!(namespace, op = command.op, code = e.code, message = %e.message, "duty command failed");
            }
        });
    }
    while writes.join_next().await.is_some() {}
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
