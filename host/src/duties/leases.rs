//! The lease tasks: forwarding renewals to the nodes that hold them, and the sweep.
//!
//! About once a second every node asks each namespace's guest to sweep the partitions it is
//! responsible for: it passes the renewal times it holds (`crate::leases`) and when it
//! started holding them, and runs the commands the guest answers with (mark an instance
//! unhealthy, expire it) on the path each names (`dispatch`): AP commands here, log commands
//! only on the leader.
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
use std::sync::Arc;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use nacre_protocol::sweep::SweepReply;

use super::Services;
use crate::clock::now_ms;
use crate::leases::FORGET_RENEWAL_AFTER_MS;
use crate::leases::LeaseHolder;
use crate::leases::LeaseKey;
use crate::leases::LeaseRenew;
use crate::members::responsible_among;
use crate::partition::PartitionId;
use crate::runtime::ModuleKind;

/// How often every node sweeps the partitions it is responsible for.
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
/// How often a node sends the renewals it served to the nodes that hold them.
pub const RENEWAL_FLUSH_INTERVAL_MS: u64 = 200;
/// How long a node waits for another to take a batch of renewals.
const FORWARD_TIMEOUT_MS: u64 = 2_000;

/// The sweep query of each module kind that has leases.
const SWEEPS: &[(ModuleKind, &str)] = &[(ModuleKind::Naming, "naming.sweep")];

/// Every [`RENEWAL_FLUSH_INTERVAL_MS`], send queued renewals to the nodes that hold them (as
/// they are now: responsibility may have moved since the beat).
pub async fn forward_renewals(services: Arc<Services>) {
    loop {
        tokio::time::sleep(Duration::from_millis(RENEWAL_FLUSH_INTERVAL_MS)).await;
        let queued = services.leases.take_queued();
        if queued.is_empty() {
            continue;
        }
        let mut here = Vec::new();
        let mut by_addr: BTreeMap<String, Vec<LeaseKey>> = BTreeMap::new();
        for (holder, key) in queued {
            if services.dispatch.holds(&holder) {
                here.push(key);
                continue;
            }
            let addr = match &holder {
                LeaseHolder::Partition(id) => {
                    services.members.addr(services.members.responsible(id)).map(str::to_string)
                }
                LeaseHolder::Leader => services.log.remote_leader_addr(),
            };
            if let Some(addr) = addr {
                by_addr.entry(addr).or_default().push(key);
            }
        }
        services.leases.record(here, now_ms());
        let sends = by_addr.into_iter().map(|(addr, keys)| {
            let services = services.clone();
            async move {
                let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
                if let Err(e) = services.peers.send::<LeaseRenew>(&addr, &keys, timeout).await {
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
pub async fn sweep_forever(services: Arc<Services>) {
    loop {
        tokio::time::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)).await;
        let now = now_ms();
        let term = services.log.leading_term();
        let preserve = services.leases.preservation().engaged;
        let (mut expected, mut lapsed) = (0, 0);
        for (kind, op) in SWEEPS {
            let mut namespaces: BTreeSet<String> = services.ap.store().namespaces(*kind).into_iter().collect();
            if term.is_some() {
                namespaces.extend(services.guests.replica().read().machine.namespaces_with_data(*kind));
            }
            for namespace in namespaces {
                let round = Round { namespace: &namespace, kind: *kind, now, term, preserve };
                if let Some(reply) = sweep(&services, op, &round).await {
                    expected += reply.expected;
                    lapsed += reply.lapsed;
                }
            }
        }
        services.leases.judge(&services.self_preservation, expected, lapsed);
        services.leases.forget_before(now.saturating_sub(FORGET_RENEWAL_AFTER_MS));
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
async fn sweep(services: &Services, op: &str, round: &Round<'_>) -> Option<SweepReply> {
    let Round { namespace, kind, now, term, preserve } = *round;
    let live = services.members.live();
    let me = services.members.me();
    let partitions: Vec<String> = services
        .ap
        .store()
        .live_partitions(namespace, kind)
        .into_iter()
        .filter(|partition| {
            let id = PartitionId { namespace: namespace.to_string(), kind, partition: partition.clone() };
            responsible_among(&live, &id) == me
        })
        .collect();
    if partitions.is_empty() && term.is_none() {
        return None;
    }
    let renewals = services.leases.renewals_in(namespace, kind);
    let request = GuestRequest::new(op)
        .param("nowMs", now.to_string())
        .param("sinceMs", services.members.view_since_ms().to_string())
        .param("beats", serde_json::to_string(&renewals).expect("a map of numbers serializes"))
        .param("partitions", serde_json::to_string(&partitions).expect("strings serialize"))
        .param("leader", term.is_some().to_string())
        .param("preserve", preserve.to_string());
    let reply: SweepReply = match services.guests.query(namespace, kind, &request) {
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
    services.dispatch.run_duty(namespace, kind, term, &reply.commands).await;
    Some(reply)
}
