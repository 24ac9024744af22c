//! Leases: heartbeats that never become log entries.
//!
//! A guest answering a heartbeat query names the lease it renews (`Nacre-Lease-Renew`). The
//! node that served it records the renewal if it leads, or queues it for the leader, which
//! receives queued renewals in batches on the peer port. About once a second the leader asks
//! each namespace's guest to sweep: it passes the renewal times it holds and the moment it
//! started tracking them, and commits the commands the guest answers with (mark an instance
//! unhealthy, expire it). Only those state changes reach the log, stamped with leader time.
//!
//! A new leader knows no renewals; it passes its own start time as `sinceMs`, so every lease
//! gets a full timeout of grace before it can expire (Nacos does the same after a restart).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use serde::Deserialize;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::node::Node;
use crate::node::now_ms;
use crate::runtime::ModuleKind;

/// How often the leader sweeps every namespace for expired leases.
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
/// How often a follower sends the renewals it served to the leader.
pub const RENEWAL_FLUSH_INTERVAL_MS: u64 = 200;
/// Renewals a follower queues for the leader before it drops the oldest (the leader is
/// unreachable; the sweep's grace covers what is lost).
pub const MAX_QUEUED_RENEWALS: usize = 100_000;
/// Leases the leader remembers. Past this, renewals of new leases are dropped with a warning
/// (their holders then fall back to the grace of `sinceMs`/registration time).
pub const MAX_TRACKED_LEASES: usize = 1_000_000;
/// A renewal older than this is forgotten: no guest timeout is that long, and forgetting
/// keeps leases of deleted instances from accumulating.
pub const FORGET_RENEWAL_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a follower waits for the leader to take a batch of renewals.
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

/// Renewal times (ms) by guest key, for one namespace and kind: the unit a sweep reads.
type Renewals = HashMap<String, u64>;

#[derive(Default)]
pub struct Leases {
    /// Last renewal of each lease this node received while (or before) leading, by
    /// `(namespace, kind)` so that a sweep reads only its own namespace's.
    renewed_ms: Mutex<HashMap<(String, ModuleKind), Renewals>>,
    /// Renewals served here while another node leads, waiting to be forwarded.
    queued: Mutex<VecDeque<LeaseKey>>,
    /// `(term, since_ms)`: the term this node leads and when it started tracking in it.
    tracking: Mutex<Option<(u64, u64)>>,
}

impl Leases {
    /// A lease was renewed through this node: record it if this node leads, else queue it.
    pub fn renew(&self, node: &Node, key: LeaseKey) {
        if node.leading_term().is_some() {
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

    /// When tracking began in `term`: now, the first time it is asked in a new term.
    fn tracking_since(&self, term: u64, now_ms: u64) -> u64 {
        let mut tracking = self.tracking.lock().expect("lease tracking lock");
        match *tracking {
            Some((tracked_term, since)) if tracked_term == term => since,
            _ => {
                *tracking = Some((term, now_ms));
                now_ms
            }
        }
    }

    fn forget_before(&self, cutoff_ms: u64) {
        let mut renewed = self.renewed_ms.lock().expect("lease table lock");
        for leases in renewed.values_mut() {
            leases.retain(|_, at| *at >= cutoff_ms);
        }
        renewed.retain(|_, leases| !leases.is_empty());
    }

    fn take_queued(&self) -> Vec<LeaseKey> {
        std::mem::take(&mut *self.queued.lock().expect("lease queue lock")).into()
    }

    /// How many leases this node tracks (for metrics).
    pub fn tracked(&self) -> usize {
        self.renewed_ms.lock().expect("lease table lock").values().map(HashMap::len).sum()
    }
}

/// Follower side: every [`RENEWAL_FLUSH_INTERVAL_MS`], send queued renewals to the leader.
pub async fn forward_renewals(node: Arc<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(RENEWAL_FLUSH_INTERVAL_MS)).await;
        let queued = node.duties.leases.take_queued();
        if queued.is_empty() {
            continue;
        }
        let Some(leader) = node.remote_leader_addr() else {
            if node.leading_term().is_some() {
                node.duties.leases.record(queued, now_ms());
            }
            continue;
        };
        let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
        let sent: Result<(), _> = node.peers.call(&leader, "/nacre/lease-renew", &queued, timeout).await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, count = queued.len(), "lease renewals not forwarded; the sweep's grace covers them");
        }
    }
}

/// Leader side: sweep every namespace once per [`SWEEP_INTERVAL_MS`].
pub async fn sweep_when_leader(node: Arc<Node>) {
    loop {
        tokio::time::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)).await;
        let Some(term) = node.leading_term() else { continue };
        let now = now_ms();
        let since = node.duties.leases.tracking_since(term, now);
        for (kind, op) in SWEEPS {
            let namespaces = node.shared.read().machine.namespaces_with_data(*kind);
            for namespace in namespaces {
                sweep(&node, term, &namespace, *kind, op, now, since).await;
            }
        }
        node.duties.leases.forget_before(now.saturating_sub(FORGET_RENEWAL_AFTER_MS));
    }
}

/// Ask one namespace's guest what has expired, and commit its answer.
async fn sweep(node: &Arc<Node>, term: u64, namespace: &str, kind: ModuleKind, op: &str, now: u64, since: u64) {
    let renewals = node.duties.leases.renewals_in(namespace, kind);
    let request = GuestRequest::new(op)
        .param("nowMs", now.to_string())
        .param("sinceMs", since.to_string())
        .param("beats", serde_json::to_string(&renewals).expect("a map of numbers serializes"));
    let commands: Vec<GuestRequest> = match node.query(namespace, kind, &request) {
        Ok(reply) => match serde_json::from_str(&reply.body) {
            Ok(commands) => commands,
            Err(e) => return tracing::warn!(namespace, op, error = %e, "sweep answer is not a list of commands"),
        },
        Err(e) => return tracing::warn!(namespace, op, code = e.code, message = %e.message, "sweep failed"),
    };
    commit_all(node, term, namespace, kind, commands).await;
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
    fn tracking_restarts_with_each_term() {
        let leases = Leases::default();
        assert_eq!(leases.tracking_since(3, 100), 100);
        assert_eq!(leases.tracking_since(3, 900), 100, "same term keeps its start");
        assert_eq!(leases.tracking_since(5, 1000), 1000, "a new term starts over");
    }
}
