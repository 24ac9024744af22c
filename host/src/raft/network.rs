//! The Raft peer transport, client side: openraft's RPCs carried by [`PeerClient`]
//! (postcard over HTTP/1.1 keep-alive connections to each peer's Raft port).

use std::future::Future;
use std::io::Cursor;

use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::RaftError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::net::PeerClient;
use crate::net::PeerError;

use super::types::Member;
use super::types::NodeId;
use super::types::TypeConfig;
use super::types::Vote;

/// Builds one [`PeerConnection`] per target for openraft.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    client: PeerClient,
}

impl PeerNetwork {
    pub fn new(client: PeerClient) -> Self {
        PeerNetwork { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        PeerConnection { client: self.client.clone(), target, addr: node.raft_addr.clone() }
    }
}

pub struct PeerConnection {
    client: PeerClient,
    target: NodeId,
    addr: String,
}

impl PeerConnection {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let answer: Result<Resp, RaftError<TypeConfig>> =
            self.client.call(&self.addr, path, req, option.hard_ttl()).await.map_err(|e| match e {
                PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                PeerError::Timeout { .. } | PeerError::Protocol { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| {
            tracing::debug!(target = self.target, error = %e, "peer refused an RPC");
            RPCError::Network(NetworkError::new(&e))
        })
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("/raft/pre-vote", &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.rpc("/raft/snapshot", &req, &option) => match res {
                Ok(resp) => Ok(resp),
                Err(RPCError::Unreachable(e)) => Err(StreamingError::Unreachable(e)),
                Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
            },
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc("/raft/transfer-leader", &req, &option).await
    }
}
