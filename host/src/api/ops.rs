//! Operations endpoints: health, cluster members, and the replica state used to prove that
//! replicas agree.

use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver as _;
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;

use crate::net;
use crate::net::HttpResponse;
use crate::net::Status;
use crate::node::Node;

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
}

pub fn state_of(node: &Node) -> NodeState {
    let metrics = node.raft.metrics().borrow_watched().clone();
    let (applied_index, digest, keys, bound) = {
        let replica = node.shared.read();
        (
            replica.applied_index(),
            replica.machine.digest_hex(),
            replica.machine.key_count(),
            replica.machine.has_default_bindings(),
        )
    };
    NodeState {
        node: node.id,
        address: node.config.me.api_addr(),
        role: format!("{:?}", metrics.state).to_uppercase(),
        term: metrics.current_term,
        leader: metrics.current_leader,
        leader_address: metrics.current_leader.and_then(|id| node.member(id)).map(|m| m.api_addr),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        applied_index,
        snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
        purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
        digest,
        keys,
        ready: bound && metrics.current_leader.is_some(),
    }
}

pub fn state(node: &Node) -> HttpResponse {
    net::json(Status::OK, &state_of(node))
}

pub fn liveness() -> HttpResponse {
    net::text(Status::OK, "OK")
}

/// Ready once a leader is known and the built-in modules are bound here (Nacos's wording
/// for the failure).
pub fn readiness(node: &Node) -> HttpResponse {
    if state_of(node).ready {
        net::text(Status::OK, "OK")
    } else {
        net::text(Status::INTERNAL_SERVER_ERROR, "Config and Naming are not in readiness")
    }
}

/// `GET /nacos/v1/core/cluster/nodes`: every member with its state as it reports it.
pub async fn cluster_nodes(node: &Node) -> HttpResponse {
    let probes = node.config.members.iter().map(|member| {
        let api_addr = member.api_addr();
        async move {
            let state = if api_addr == node.config.me.api_addr() {
                Some(state_of(node))
            } else {
                probe_state(node, &api_addr).await
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

async fn probe_state(node: &Node, api_addr: &str) -> Option<NodeState> {
    // The peer client speaks postcard; the state endpoint is JSON, so ask over plain HTTP.
    let url = format!("http://{api_addr}/nacre/v1/state");
    let body = node.peers.get_text(&url, Duration::from_millis(MEMBER_PROBE_TIMEOUT_MS)).await.ok()?;
    serde_json::from_str(&body).ok()
}
