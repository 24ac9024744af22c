//! The Raft peer port, server side: decode an openraft RPC, hand it to the local Raft, encode
//! the answer. Transport-free: `node` owns the HTTP listener and calls [`handle_rpc`].

use std::io::Cursor;

use openraft::Snapshot;
use openraft::errors::RaftError;
use serde::Serialize;
use serde::de::DeserializeOwned;

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
}

/// Serve one peer RPC. The answer is postcard(`Result<Response, RaftError>`).
pub async fn handle_rpc(raft: &Raft, path: &str, body: &[u8]) -> Result<Vec<u8>, RpcError> {
    match path {
        "/raft/append" => answer(raft.append_entries(decode(body)?).await),
        "/raft/vote" => answer(raft.vote(decode(body)?).await),
        "/raft/pre-vote" => answer(raft.pre_vote(decode(body)?).await),
        "/raft/snapshot" => {
            let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = decode(body)?;
            let snapshot = Snapshot { meta, snapshot: Cursor::new(data) };
            let result: Result<_, RaftError<TypeConfig>> =
                raft.install_full_snapshot(vote, snapshot).await.map_err(RaftError::Fatal);
            answer(result)
        }
        "/raft/transfer-leader" => {
            let result: Result<_, RaftError<TypeConfig>> =
                raft.handle_transfer_leader(decode(body)?).await.map_err(RaftError::Fatal);
            answer(result)
        }
        other => Err(RpcError::UnknownPath(other.to_string())),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    postcard::from_bytes(body).map_err(|e| RpcError::Malformed(e.to_string()))
}

fn answer<T: Serialize>(value: T) -> Result<Vec<u8>, RpcError> {
    Ok(postcard::to_stdvec(&value).expect("openraft messages always serialize"))
}
