//! Operations endpoints: health, cluster members, and the replica state used to prove that
//! replicas agree.

use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::ap::Ap;
use crate::config::MemberAddr;
use crate::guests::Guests;
use crate::net;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::raft::log::Log;
use crate::watching::HeldPolls;

/// How long the members listing waits for each peer's state before calling it DOWN.
const MEMBER_PROBE_TIMEOUT_MS: u64 = 500;

/// `GET /nacre/v1/state`: what this replica has applied, and the digest of its state there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub node: u64,
    pub address: String,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub leader_address: Option<String>,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// Index of the latest snapshot this node holds (0: none).
    pub snapshot_index: u64,
    /// Highest log index purged behind a snapshot (0: none).
    pub purged_index: u64,
    pub digest: String,
    pub keys: usize,
    pub ready: bool,
    /// Digest of this node's AP keyspace (live records and their versions): equal on nodes
    /// that hold the same ephemeral state. It is not tied to an index; nodes converge to it.
    #[serde(default)]
    pub ap_digest: String,
    #[serde(default)]
    pub ap_records: usize,
    /// Config long-polls this node holds now (at most `watching::MAX_HELD_LISTENERS`).
    #[serde(default)]
    pub long_polls_held: usize,
}

/// A member's state, asked over the peer port (signed like every peer message), so that the
/// members listing needs neither the caller's credentials nor the client port's scheme.
pub struct NodeStateRpc;

impl crate::net::Rpc for NodeStateRpc {
    const PATH: &'static str = "/nacre/node-state";
    type Request = ();
    type Answer = NodeState;
}

pub fn state_of(ctx: &Context) -> NodeState {
    node_state(&ctx.log, &ctx.guests, &ctx.ap, &ctx.me, &ctx.watchers.polls)
}

/// What this node has applied and holds, from the services that know it.
pub fn node_state(log: &Log, guests: &Guests, ap: &Ap, me: &MemberAddr, polls: &HeldPolls) -> NodeState {
    let status = log.status();
    let (applied_index, digest, keys, bound) = {
        let replica = guests.replica().read();
        (
            replica.applied_index(),
            replica.machine.digest_hex(),
            replica.machine.key_count(),
            replica.machine.has_default_bindings(),
        )
    };
    NodeState {
        node: log.id(),
        address: me.api_addr(),
        role: status.role,
        term: status.term,
        leader: status.leader,
        leader_address: status.leader.and_then(|id| log.member(id)).map(|m| m.api_addr),
        last_log_index: status.last_log_index,
        applied_index,
        snapshot_index: status.snapshot_index,
        purged_index: status.purged_index,
        digest,
        keys,
        // A node not (or no longer) in the membership serves nothing a client should use.
        // Nor does one whose view lacks a majority: it would refuse every persistent write.
        // Nor one that has not heard the leader since it started: after a restart its vote
        // still names the leader from before, which may lead no longer.
        ready: bound && status.leader_heard && ap.is_ready() && log.is_member() && log.reaches_majority(),
        ap_digest: format!("{:016x}", ap.store().digest()),
        ap_records: ap.store().live_records(),
        long_polls_held: polls.count(),
    }
}

pub fn state(ctx: &Context) -> HttpResponse {
    net::json(Status::OK, &state_of(ctx))
}

pub fn liveness() -> HttpResponse {
    net::text(Status::OK, "OK")
}

/// Ready once a leader is heard and the built-in modules are bound here (Nacos's wording
/// for the failure).
pub fn readiness(ctx: &Context) -> HttpResponse {
    if state_of(ctx).ready {
        net::text(Status::OK, "OK")
    } else {
        net::text(Status::INTERNAL_SERVER_ERROR, "Config and Naming are not in readiness")
    }
}

/// Every member, as the log's membership lists them, with its state as it reports it over
/// the peer port (`None`: it did not answer within [`MEMBER_PROBE_TIMEOUT_MS`]).
pub(super) async fn member_states(ctx: &Context) -> Vec<(MemberAddr, Option<NodeState>)> {
    let members: Vec<MemberAddr> = ctx.log.membership().nodes.values().filter_map(MemberAddr::of_member).collect();
    let probes = members.into_iter().map(|member| async move {
        let state = if member.api_addr() == ctx.me.api_addr() {
            Some(state_of(ctx))
        } else {
            let timeout = Duration::from_millis(MEMBER_PROBE_TIMEOUT_MS);
            ctx.peers.send::<NodeStateRpc>(&member.raft_addr(), &(), timeout).await.ok()
        };
        (member, state)
    });
    futures_util::future::join_all(probes).await
}

/// Nacos's `maxFailAccessCnt`: a member that failed this many checks in a row is DOWN.
const NACOS_MAX_FAIL_ACCESS_COUNT: u32 = 3;

/// A member's state as Nacos computes it, and its count of failed checks: UP when it answered
/// now; SUSPICIOUS when it did not but this node's pings still saw it within the liveness
/// timeout (one failure, as Nacos marks a member after a failed report); DOWN past that.
fn nacos_member_state(ctx: &Context, member: &MemberAddr, state: Option<&NodeState>) -> (&'static str, u32) {
    if state.is_some() {
        ("UP", 0)
    } else if ctx.ap.members().live().contains(&member.node_id()) {
        ("SUSPICIOUS", 1)
    } else {
        ("DOWN", NACOS_MAX_FAIL_ACCESS_COUNT)
    }
}

/// A member as Nacos's `Member` JSON.
fn member_json(ctx: &Context, member: &MemberAddr, state: Option<&NodeState>) -> serde_json::Value {
    let (nacos_state, failed_checks) = nacos_member_state(ctx, member, state);
    json!({
        "ip": member.ip,
        "port": member.port,
        "address": member.api_addr(),
        "state": nacos_state,
        "extendInfo": {
            "raftPort": member.raft_port.to_string(),
            "raftMetaData": state.map(|s| json!({
                "role": s.role, "term": s.term, "leader": s.leader_address,
                "appliedIndex": s.applied_index,
            })),
        },
        "failAccessCnt": failed_checks,
    })
}

/// `GET /nacos/v1/core/cluster/nodes`: every member with its state as it reports it.
pub async fn cluster_nodes(ctx: &Context) -> HttpResponse {
    let members: Vec<_> = member_states(ctx).await.iter().map(|(m, s)| member_json(ctx, m, s.as_ref())).collect();
    net::json(Status::OK, &json!({ "code": 200, "message": null, "data": members }))
}

/// `GET /nacos/v1/ns/operator/servers` (Nacos 1.x): the members, as `{"servers": [Member]}`.
pub async fn operator_servers(ctx: &Context) -> HttpResponse {
    let members: Vec<_> = member_states(ctx).await.iter().map(|(m, s)| member_json(ctx, m, s.as_ref())).collect();
    net::json(Status::OK, &json!({ "servers": members }))
}

/// A member as Nacos 1.x's `RaftPeer`: its address, the leader it follows (`voteFor`), its term
/// and role (`LEADER`, `FOLLOWER`, `CANDIDATE`, or `LEARNER`; `DOWN` when it did not answer).
/// Nacos's election timers (`leaderDueMs`, `heartbeatDueMs`) are openraft's own here and left out.
fn raft_peer(member: &MemberAddr, state: Option<&NodeState>) -> serde_json::Value {
    json!({
        "ip": member.api_addr(),
        "voteFor": state.and_then(|s| s.leader_address.clone()).unwrap_or_default(),
        "term": state.map_or(0, |s| s.term),
        "state": state.map_or("DOWN", |s| s.role.as_str()),
    })
}

/// `GET /nacos/v1/ns/raft/state` (Nacos 1.x): every member as a `RaftPeer`, the leader this node
/// knows (`leader`, its client address; `null` while there is none) and the service count.
pub async fn raft_state(ctx: &Context) -> HttpResponse {
    let members = member_states(ctx).await;
    let peers: Vec<_> = members.iter().map(|(m, s)| raft_peer(m, s.as_ref())).collect();
    let (services, _, _) = super::naming::counts(ctx);
    net::json(Status::OK, &json!({ "services": services, "leader": state_of(ctx).leader_address, "peers": peers }))
}

/// `GET /nacos/v1/ns/raft/leader` (Nacos 1.x): `{"leader": "<the leader's RaftPeer as JSON>"}`
/// (a string, as Nacos sends it); 503 while no leader is known.
pub async fn raft_leader(ctx: &Context) -> HttpResponse {
    let Some(leader) = state_of(ctx).leader_address else {
        return net::text(Status::SERVICE_UNAVAILABLE, "no leader yet; retry");
    };
    let members = member_states(ctx).await;
    match members.iter().find(|(m, _)| m.api_addr() == leader) {
        Some((m, s)) => net::json(Status::OK, &json!({ "leader": raft_peer(m, s.as_ref()).to_string() })),
        None => net::text(Status::SERVICE_UNAVAILABLE, "the leader is not a listed member; retry"),
    }
}

/// `GET /metrics`: the node's metrics as OpenMetrics text (`telemetry`), Raft and the AP
/// path as its services know them now.
pub fn metrics(ctx: &Context) -> HttpResponse {
    let status = ctx.log.status();
    let applied_index = ctx.guests.replica().read().applied_index();
    let follower_lag = status
        .replication
        .iter()
        .map(|(id, matched)| {
            let address = ctx.log.member(*id).map_or_else(|| id.to_string(), |m| m.api_addr);
            (address, status.last_log_index.saturating_sub(*matched))
        })
        .collect();
    let (elections, guest) = (ctx.log.elections(), crate::runtime::guest_stats());
    let snapshot = crate::telemetry::Snapshot {
        term: status.term,
        is_leader: status.role == "LEADER",
        last_log_index: status.last_log_index,
        committed_index: status.committed_index,
        applied_index,
        snapshot_index: status.snapshot_index,
        follower_lag,
        ap_records: ctx.ap.store().live_records() as u64,
        ap_outbox_waiting: ctx.ap.outbox.waiting() as u64,
        live_members: ctx.ap.members().live().len() as u64,
        leases_tracked: ctx.leases.tracked() as u64,
        long_polls_held: ctx.watchers.polls.count() as u64,
        udp_subscriptions: ctx.push.subscriber_count() as u64,
        udp_pushes_sent: ctx.push.pushes_sent(),
        resident_bytes: crate::telemetry::resident_bytes(),
        raft_campaigns: elections.campaigns,
        raft_leaderships: elections.leaderships,
        raft_votes_handled: elections.votes_handled,
        ap_repairs: ctx.ap.repairs(),
        guest_calls: guest.calls,
        guest_fuel_consumed: guest.fuel_consumed,
        guest_faults: guest.faults,
        module_compilations: guest.compilations,
        module_compile_micros: guest.compile_micros,
    };
    net::response(Status::OK, OPENMETRICS_CONTENT_TYPE, ctx.telemetry.encode(&snapshot))
}

/// What `GET /metrics` answers in (Prometheus negotiates it).
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /nacre/v1/ap?namespaceId=&kind=naming&partition=`: where an AP partition lives in this
/// node's view (its responsible member, the live members) and this node's checksum of it.
pub fn ap_partition(ctx: &Context, req: &crate::net::HttpRequest) -> HttpResponse {
    let params = super::params::Params::from_request(req);
    let namespace = match super::params::namespace(params.get("namespaceId"), "namespaceId") {
        Ok(ns) => ns,
        Err(message) => return net::text(Status::BAD_REQUEST, message),
    };
    let kind = match params.get("kind").unwrap_or("naming") {
        "naming" => crate::runtime::ModuleKind::Naming,
        "config" => crate::runtime::ModuleKind::Config,
        other => return net::text(Status::BAD_REQUEST, format!("invalid kind: {other:?} (naming or config)")),
    };
    let Some(partition) = params.get("partition").filter(|p| !p.is_empty()) else {
        return net::text(Status::BAD_REQUEST, "missing partition");
    };
    let id = crate::ap::store::PartitionId { namespace, kind, partition: partition.to_string() };
    let api_addr = |id: u64| ctx.log.member(id).map(|m| m.api_addr).unwrap_or_default();
    let live: Vec<String> = ctx.ap.members().live().into_iter().map(api_addr).collect();
    net::json(
        Status::OK,
        &json!({
            "responsible": api_addr(ctx.ap.members().responsible(&id)),
            "live": live,
            "checksum": format!("{:016x}", ctx.ap.store().checksum(&id)),
        }),
    )
}
