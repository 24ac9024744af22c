//! The Raft RPCs of the peer port, server side: decode an openraft RPC, check it is plausible
//! ([`super::peer_guard`]), hand it to the local Raft, encode the answer. Transport-free:
//! `node::peer_port` owns the table of RPCs and calls these.

use std::io::Cursor;

use openraft::Snapshot;
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::RaftError;
use openraft::raft::AppendEntriesResponse;

use super::log::Log;
use super::network::AppendEntries;
use super::network::InstallSnapshot;
use super::network::PreVote;
use super::network::RequestVote;
use super::network::TransferLeader;
use super::peer_guard::LocalView;
use super::types::Raft;
use super::types::TypeConfig;
use crate::net::Rpc;
use crate::net::rpc::serve;

/// The paths of the Raft RPCs this file serves.
pub const PATHS: [&str; 5] =
    [AppendEntries::PATH, RequestVote::PATH, PreVote::PATH, InstallSnapshot::PATH, TransferLeader::PATH];

/// Serve one Raft RPC; `None` for a path that is not one. `Err` is a refusal (malformed, or
/// implausible: see `peer_guard`), answered with 400.
pub async fn handle_rpc(log: &Log, path: &str, body: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let raft = log.raft();
    let view = local_view(raft);
    let refused = |e: super::peer_guard::Implausible| format!("refused raft RPC: {e}");
    let answer = match path {
        AppendEntries::PATH => {
            serve::<AppendEntries, _>(body, |request| async move {
                view.append_entries(&request).map_err(refused)?;
                let term = request.vote.leader_id().term;
                let answer = raft.append_entries(request).await;
                if matches!(&answer, Ok(response) if !matches!(response, AppendEntriesResponse::HigherVote(_))) {
                    log.heard_leader(term);
                }
                Ok(answer)
            })
            .await
        }
        RequestVote::PATH => {
            serve::<RequestVote, _>(body, |request| async move {
                view.vote_request(&request).map_err(refused)?;
                Ok(raft.vote(request).await)
            })
            .await
        }
        PreVote::PATH => {
            serve::<PreVote, _>(body, |request| async move {
                view.vote_request(&request).map_err(refused)?;
                Ok(raft.pre_vote(request).await)
            })
            .await
        }
        InstallSnapshot::PATH => {
            serve::<InstallSnapshot, _>(body, |(vote, meta, data)| async move {
                view.snapshot(&vote, &meta).map_err(refused)?;
                // Decoded once here, off the async workers, so that bytes openraft would fail
                // to install (a storage error, which stops Raft on this node) are refused.
                let data = crate::blocking::cpu_bound(move || {
                    crate::state::MachineImage::validate(&data)
                        .map(|()| data)
                        .map_err(|e| format!("malformed raft RPC body: {e}"))
                })?;
                let snapshot = Snapshot { meta, snapshot: Cursor::new(data) };
                Ok(raft.install_full_snapshot(vote, snapshot).await.map_err(RaftError::<TypeConfig>::Fatal))
            })
            .await
        }
        TransferLeader::PATH => {
            serve::<TransferLeader, _>(body, |request| async move {
                view.transfer_leader(&request).map_err(refused)?;
                Ok(raft.handle_transfer_leader(request).await.map_err(RaftError::<TypeConfig>::Fatal))
            })
            .await
        }
        _ => return None,
    };
    Some(answer)
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
