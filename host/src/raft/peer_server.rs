//! The Raft peer port, server side: decode an openraft RPC, check it is plausible
//! ([`super::peer_guard`]), hand it to the local Raft, encode the answer. Transport-free:
//! `node` owns the HTTP listener and calls [`handle_rpc`].

use std::io::Cursor;

use openraft::Snapshot;
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::RaftError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::peer_guard::Implausible;
use super::peer_guard::LocalView;
use super::types::Raft;
use super::types::SnapshotMeta;
use super::types::TypeConfig;
use super::types::Vote;

/// Why an RPC could not be served; the transport turns it into an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("no such raft RPC: {0}")]
    UnknownPath(String),
    #[error("malformed raft RPC body: {0}")]
    Malformed(String),
    #[error("refused raft RPC: {0}")]
    Implausible(#[from] Implausible),
}

/// Serve one peer RPC. The answer is postcard(`Result<Response, RaftError>`).
pub async fn handle_rpc(raft: &Raft, path: &str, body: &[u8]) -> Result<Vec<u8>, RpcError> {
    let view = local_view(raft);
    match path {
        "/raft/append" => {
            let request = decode(body)?;
            view.append_entries(&request)?;
            answer(raft.append_entries(request).await)
        }
        "/raft/vote" => {
            let request = decode(body)?;
            view.vote_request(&request)?;
            answer(raft.vote(request).await)
        }
        "/raft/pre-vote" => {
            let request = decode(body)?;
            view.vote_request(&request)?;
            answer(raft.pre_vote(request).await)
        }
        "/raft/snapshot" => {
            let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = decode(body)?;
            view.snapshot(&vote, &meta)?;
            // Decoded once here, off the async workers, so that bytes openraft would fail to
            // install (a storage error, which stops Raft on this node) are refused instead.
            let data = crate::blocking::cpu_bound(move || {
                crate::state::MachineImage::validate(&data).map(|_| data).map_err(RpcError::Malformed)
            })?;
            let snapshot = Snapshot { meta, snapshot: Cursor::new(data) };
            let result: Result<_, RaftError<TypeConfig>> =
                raft.install_full_snapshot(vote, snapshot).await.map_err(RaftError::Fatal);
            answer(result)
        }
        "/raft/transfer-leader" => {
            let request = decode(body)?;
            view.transfer_leader(&request)?;
            let result: Result<_, RaftError<TypeConfig>> =
                raft.handle_transfer_leader(request).await.map_err(RaftError::Fatal);
            answer(result)
        }
        other => Err(RpcError::UnknownPath(other.to_string())),
    }
}

/// What this node knows now: its id, term and the voters of the membership in force.
fn local_view(raft: &Raft) -> LocalView {
    let metrics = raft.metrics();
    let metrics = metrics.borrow_watched();
    LocalView {
        me: metrics.id,
        current_term: metrics.current_term,
        voters: metrics.membership_config.membership().voter_ids().collect(),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    postcard::from_bytes(body).map_err(|e| RpcError::Malformed(e.to_string()))
}

fn answer<T: Serialize>(value: T) -> Result<Vec<u8>, RpcError> {
    Ok(postcard::to_stdvec(&value).expect("openraft messages always serialize"))
}
