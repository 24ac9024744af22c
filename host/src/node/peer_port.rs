//! The peer port: the table of every peer RPC a node serves, each decoded as its request type
//! and answered with its answer type (`net::rpc`), and batches of them (`net::coalesce`).

use std::sync::Arc;

use serde_bytes::ByteBuf;
use tokio::net::TcpListener;

use crate::ap::Ap;
use crate::ap::rpc as ap_rpc;
use crate::api::ListenersOf;
use crate::api::NodeStateRpc;
use crate::api::SubscribersOf;
use crate::clock::now_ms;
use crate::config::MemberAddr;
use crate::guests::Guests;
use crate::leases::LeaseKey;
use crate::leases::LeaseRenew;
use crate::leases::Leases;
use crate::net;
use crate::net::Rpc;
use crate::net::coalesce;
use crate::net::peer_auth::PeerKey;
use crate::net::rpc::serve as answer;
use crate::raft::log::ForwardWrite;
use crate::raft::log::Log;
use crate::raft::log::ReadIndex;
use crate::raft::peer_server;
use crate::raft::reconfigure::ChangeMembership;
use crate::raft::reconfigure::MembershipOf;
use crate::watching::Watchers;

/// Largest body the peer port accepts: a snapshot or a batch of entries carrying modules.
pub const MAX_PEER_BODY_BYTES: usize = 256 * 1024 * 1024;
const _: () = assert!(coalesce::MAX_BATCH_BYTES < MAX_PEER_BODY_BYTES, "a batch fits in a peer body");
const _: () = assert!(
    crate::raft::backup::MAX_BACKUP_BYTES <= MAX_PEER_BODY_BYTES,
    "a state a client can back up can be sent to a member as a snapshot"
);

/// What the peer port serves from.
pub struct PeerPort {
    pub log: Arc<Log>,
    pub ap: Arc<Ap>,
    pub leases: Arc<Leases>,
    pub guests: Arc<Guests>,
    pub me: MemberAddr,
    /// Who watches what here: asked by the member a console or tool asked (`api::watchers`).
    pub watchers: Arc<Watchers>,
}

/// Bytes of peer request bodies held at once: the largest body, and room for the ordinary
/// traffic beside it. Only members get this far (their requests are authenticated first).
pub const MAX_PEER_BODY_BYTES_IN_FLIGHT: usize = MAX_PEER_BODY_BYTES + 64 * 1024 * 1024;
const _: () = assert!(MAX_PEER_BODY_BYTES_IN_FLIGHT > MAX_PEER_BODY_BYTES, "the largest body fits the budget");

/// Serve the peer port until `stop` resolves: only to members of this cluster (`key`), at most
/// `max_connections` at once.
pub async fn serve(
    port: Arc<PeerPort>,
    key: Arc<PeerKey>,
    listener: TcpListener,
    max_connections: usize,
    stop: impl Future<Output = ()>,
) {
    let limits = net::ServerLimits { max_connections, body_budget_bytes: MAX_PEER_BODY_BYTES_IN_FLIGHT };
    net::serve_peers(listener, key, limits, MAX_PEER_BODY_BYTES, stop, move |req| {
        let port = port.clone();
        async move { port.serve_request(req).await }
    })
    .await
}

impl PeerPort {
    async fn serve_request(&self, req: net::HttpRequest) -> Result<Vec<u8>, String> {
        if req.method != net::HttpMethod::POST {
            return Err("peer RPCs are POSTs".into());
        }
        if req.path == coalesce::BATCH_PATH {
            self.serve_batch(&req.body).await
        } else {
            self.serve_rpc(&req.path, &req.body).await
        }
    }

    /// Every call of a batch answered as it would be alone, all at once: the calls of one
    /// batch are independent (forwarded writes commit together, AP commands take their turns).
    async fn serve_batch(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let batch: coalesce::BatchRequest = postcard::from_bytes(body).map_err(|e| format!("malformed batch: {e}"))?;
        if batch.path == coalesce::BATCH_PATH {
            return Err("a batch cannot carry batches".into());
        }
        if batch.calls.len() > coalesce::MAX_BATCH_CALLS {
            return Err(format!(
                "a batch of {} calls, over the limit of {}",
                batch.calls.len(),
                coalesce::MAX_BATCH_CALLS
            ));
        }
        let calls = batch.calls.iter().map(|call| self.serve_rpc(&batch.path, call));
        let answers: coalesce::BatchAnswer =
            futures_util::future::join_all(calls).await.into_iter().map(|answer| answer.map(ByteBuf::from)).collect();
        Ok(postcard::to_stdvec(&answers).expect("peer answers always serialize"))
    }

    /// One peer RPC: the encoded answer, or why the request was refused.
    async fn serve_rpc(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        match path {
            ForwardWrite::PATH => {
                answer::<ForwardWrite, _>(body, |op| async { Ok(self.log.write_as_leader(op).await) }).await
            }
            ChangeMembership::PATH => {
                answer::<ChangeMembership, _>(body, |change| async { Ok(self.log.change_membership(change).await) })
                    .await
            }
            MembershipOf::PATH => {
                answer::<MembershipOf, _>(body, |()| async { Ok(self.log.membership_with_index()) }).await
            }
            ReadIndex::PATH => {
                answer::<ReadIndex, _>(body, |()| async { Ok(self.log.read_index_as_leader().await) }).await
            }
            LeaseRenew::PATH => {
                answer::<LeaseRenew, _>(body, |renewals| async move {
                    renewals
                        .iter()
                        .try_for_each(LeaseKey::validate)
                        .map_err(|e| format!("refused lease renewals: {e}"))?;
                    self.leases.record(renewals, now_ms());
                    Ok(())
                })
                .await
            }
            NodeStateRpc::PATH => {
                answer::<NodeStateRpc, _>(body, |()| async {
                    Ok(crate::api::node_state(&self.log, &self.guests, &self.ap, &self.me, &self.watchers.polls))
                })
                .await
            }
            SubscribersOf::PATH => {
                answer::<SubscribersOf, _>(body, |(namespace, service)| async move {
                    Ok(self.watchers.subscribers_of(&namespace, &service))
                })
                .await
            }
            ListenersOf::PATH => {
                answer::<ListenersOf, _>(body, |filter| async move { Ok(self.watchers.listeners(&filter)) }).await
            }
            ap_rpc::Apply::PATH => answer::<ap_rpc::Apply, _>(body, |command| self.ap.serve_apply(command)).await,
            ap_rpc::PingRpc::PATH => answer::<ap_rpc::PingRpc, _>(body, |_| async { Ok(self.ap.serve_ping()) }).await,
            ap_rpc::Sync::PATH => {
                answer::<ap_rpc::Sync, _>(body, |batches| async {
                    self.ap.serve_sync(batches);
                    Ok(())
                })
                .await
            }
            ap_rpc::Verify::PATH => {
                answer::<ap_rpc::Verify, _>(body, |theirs| async { Ok(self.ap.serve_verify(theirs)) }).await
            }
            ap_rpc::SnapshotPage::PATH => {
                answer::<ap_rpc::SnapshotPage, _>(body, |after| async { Ok(self.ap.serve_snapshot_page(after)) }).await
            }
            path => match peer_server::handle_rpc(&self.log, path, body).await {
                Some(answer) => answer,
                None => Err(format!("no such peer RPC: {path}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path the peer port serves but batches (a test keeps them distinct).
    const PATHS: [&str; 18] = [
        ForwardWrite::PATH,
        NodeStateRpc::PATH,
        SubscribersOf::PATH,
        ListenersOf::PATH,
        ChangeMembership::PATH,
        MembershipOf::PATH,
        ReadIndex::PATH,
        LeaseRenew::PATH,
        ap_rpc::Apply::PATH,
        ap_rpc::PingRpc::PATH,
        ap_rpc::Sync::PATH,
        ap_rpc::Verify::PATH,
        ap_rpc::SnapshotPage::PATH,
        peer_server::PATHS[0],
        peer_server::PATHS[1],
        peer_server::PATHS[2],
        peer_server::PATHS[3],
        peer_server::PATHS[4],
    ];

    #[test]
    fn every_peer_rpc_has_its_own_path() {
        let mut paths = PATHS.to_vec();
        paths.push(coalesce::BATCH_PATH);
        let distinct: std::collections::BTreeSet<_> = paths.iter().collect();
        assert_eq!(distinct.len(), paths.len(), "{paths:?}");
    }
}
