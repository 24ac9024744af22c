//! The AP path's peer RPCs (served by `node::peer_port`, through `Ap`'s `serve_*`).

use serde::Deserialize;
use serde::Serialize;

use super::ApApplied;
use super::ForwardedCommand;
use super::store::PartitionId;
use super::store::PartitionRecords;
use crate::net::Rpc;
use crate::runtime::GuestError;

/// A ping carries the caller's AP digest, its answer the callee's: a pair of nodes whose
/// digests agree skips verification.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    pub digest: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub digest: u64,
}

/// A client's AP command, sent to the node responsible for its partition.
pub struct Apply;
/// Liveness, and the caller's digest (the answer carries ours).
pub struct PingRpc;
/// Records from a peer's outbox.
pub struct Sync;
/// The caller's checksum of every partition; the answer: our records of each that differs.
pub struct Verify;
/// A page of whole partitions after the given one: a starting node's first pull.
pub struct SnapshotPage;

impl Rpc for Apply {
    const PATH: &'static str = "/nacre/ap/apply";
    type Request = ForwardedCommand;
    type Answer = Result<ApApplied, GuestError>;
}

impl Rpc for PingRpc {
    const PATH: &'static str = "/nacre/ap/ping";
    type Request = Ping;
    type Answer = Pong;
}

impl Rpc for Sync {
    const PATH: &'static str = "/nacre/ap/sync";
    type Request = Vec<PartitionRecords>;
    type Answer = ();
}

impl Rpc for Verify {
    const PATH: &'static str = "/nacre/ap/verify";
    type Request = Vec<(PartitionId, u64)>;
    type Answer = Vec<PartitionRecords>;
}

impl Rpc for SnapshotPage {
    const PATH: &'static str = "/nacre/ap/snapshot";
    type Request = Option<PartitionId>;
    type Answer = Vec<PartitionRecords>;
}
