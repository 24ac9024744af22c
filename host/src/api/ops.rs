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
    /// Config long-polls this node holds now (at most `api::listener::MAX_HELD_LISTENERS`).
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
    node_state(&ctx.log, &ctx.guests, &ctx.ap, &ctx.me)
}

/// What this node has applied and holds, from the services that know it.
pub fn node_state(log: &Log, guests: &Guests, ap: &Ap, me: &MemberAddr) -> NodeState {
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
        ready: bound && status.leader.is_some() && ap.is_ready(),
        ap_digest: format!("{:016x}", ap.store().digest()),
        ap_records: ap.store().live_records(),
        long_polls_held: super::listener::held(),
    }
}

pub fn state(ctx: &Context) -> HttpResponse {
    net::json(Status::OK, &state_of(ctx))
}

pub fn liveness() -> HttpResponse {
    net::text(Status::OK, "OK")
}

/// Ready once a leader is known and the built-in modules are bound here (Nacos's wording
/// for the failure).
pub fn readiness(ctx: &Context) -> HttpResponse {
    if state_of(ctx).ready {
        net::text(Status::OK, "OK")
    } else {
        net::text(Status::INTERNAL_SERVER_ERROR, "Config and Naming are not in readiness")
    }
}

/// `GET /nacos/v1/core/cluster/nodes`: every member with its state as it reports it.
pub async fn cluster_nodes(ctx: &Context) -> HttpResponse {
    let probes = ctx.members.iter().map(|member| {
        let api_addr = member.api_addr();
        async move {
            let state = if api_addr == ctx.me.api_addr() {
                Some(state_of(ctx))
            } else {
                let timeout = Duration::from_millis(MEMBER_PROBE_TIMEOUT_MS);
                ctx.peers.send::<NodeStateRpc>(&member.raft_addr(), &(), timeout).await.ok()
            };
            let (ip, port) = (member.ip.clone(), member.port);
            json!({
                "ip": ip,
                "port": port,
                "address": api_addr,
                "state": if state.is_some() { "UP" } else { "DOWN" },
                "extendInfo": {
                    "raftPort": member.raft_port.to_string(),
                    "raftMetaData": state.as_ref().map(|s| json!({
                        "role": s.role, "term": s.term, "leader": s.leader_address,
                        "appliedIndex": s.applied_index,
                    })),
                },
                "failAccessCnt": 0,
            })
        }
    });
    let members = futures_util::future::join_all(probes).await;
    net::json(Status::OK, &json!({ "code": 200, "message": null, "data": members }))
}

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
    let api_addr = |id: u64| ctx.members.iter().find(|m| m.node_id() == id).map(|m| m.api_addr()).unwrap_or_default();
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
