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

use crate::net::PeerClient;
use crate::net::PeerError;
use crate::net::Rpc;

use super::types::Member;
use super::types::NodeId;
use super::types::SnapshotMeta;
use super::types::TypeConfig;
use super::types::Vote;

/// openraft's answers carry its own refusal: `Result<Answer, RaftError>`.
type RaftAnswer<T> = Result<T, RaftError<TypeConfig>>;

/// The Raft RPCs on the peer port, served by `raft::peer_server`.
pub struct AppendEntries;
pub struct RequestVote;
pub struct PreVote;
pub struct InstallSnapshot;
pub struct TransferLeader;

impl Rpc for AppendEntries {
    const PATH: &'static str = "/raft/append";
    type Request = AppendEntriesRequest<TypeConfig>;
    type Answer = RaftAnswer<AppendEntriesResponse<TypeConfig>>;
}

impl Rpc for RequestVote {
    const PATH: &'static str = "/raft/vote";
    type Request = VoteRequest<TypeConfig>;
    type Answer = RaftAnswer<VoteResponse<TypeConfig>>;
}

impl Rpc for PreVote {
    const PATH: &'static str = "/raft/pre-vote";
    type Request = VoteRequest<TypeConfig>;
    type Answer = RaftAnswer<VoteResponse<TypeConfig>>;
}

impl Rpc for InstallSnapshot {
    const PATH: &'static str = "/raft/snapshot";
    /// The sender's vote, the snapshot's metadata and its machine image.
    type Request = (Vote, SnapshotMeta, Vec<u8>);
    type Answer = RaftAnswer<SnapshotResponse<TypeConfig>>;
}

impl Rpc for TransferLeader {
    const PATH: &'static str = "/raft/transfer-leader";
    type Request = TransferLeaderRequest<TypeConfig>;
    type Answer = RaftAnswer<TransferLeaderResponse<TypeConfig>>;
}

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
    async fn rpc<R, Resp>(&self, req: &R::Request, option: &RPCOption) -> Result<Resp, RPCError<TypeConfig>>
    where
        R: Rpc<Answer = RaftAnswer<Resp>>,
    {
        let answer: RaftAnswer<Resp> =
            self.client.send::<R>(&self.addr, req, option.hard_ttl()).await.map_err(|e| match e {
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
        self.rpc::<AppendEntries, _>(&rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc::<RequestVote, _>(&rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc::<PreVote, _>(&rpc, &option).await
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
            res = self.rpc::<InstallSnapshot, _>(&req, &option) => match res {
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
        self.rpc::<TransferLeader, _>(&req, &option).await
    }
}
