//! The CP service: the replicated log as the rest of the host uses it. Writes go through the
//! leader wherever it is (a follower forwards them on the peer port) and are answered once
//! applied here too (read-your-writes); linearizable reads confirm the leader's commit index
//! (ReadIndex) first. Everything above this file sees writes, reads and a status, never
//! openraft.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::ReadPolicy;
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use serde::Deserialize;
use serde::Serialize;

use super::types::Member;
use super::types::NodeId;
use super::types::Raft;
use crate::clock::now_ms;
use crate::members::Members;
use crate::net::PeerClient;
use crate::net::Rpc;
use crate::raft::state_machine::Shared;
use crate::state::ApplyResponse;
use crate::state::InvalidOperation;
use crate::state::Operation;
use crate::state::Proposal;

/// How long a write waits for a leader to be elected before answering 503.
pub const LEADER_WAIT_MS: u64 = 3_000;
/// How long a write may take to commit before the client is told to retry.
pub const WRITE_TIMEOUT_MS: u64 = 10_000;
/// How long a node that forwarded a write waits to apply it locally, so that the client can
/// read its own write from the node it wrote through.
pub const LOCAL_APPLY_WAIT_MS: u64 = 3_000;
const _: () = assert!(LOCAL_APPLY_WAIT_MS <= WRITE_TIMEOUT_MS, "read-your-writes waits less than the write itself");

/// A committed write: the entry's index and what applying it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteOutcome {
    pub index: u64,
    pub response: ApplyResponse,
}

/// Why a write or a linearizable read could not be served: what a client is told, in plain
/// words. The internals (openraft's errors, peer addresses) go to this node's log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// Nothing was proposed: no leader is known.
    #[error("no leader is elected right now; nothing was written. Retry shortly")]
    NoLeader,
    /// Proposed (or maybe proposed) and not confirmed: the client cannot know whether it
    /// took effect.
    #[error("the write was not confirmed in time: it may or may not have been committed. Retry it, or read it back")]
    Unconfirmed,
    /// A linearizable read the leader did not confirm in time; nothing was read.
    #[error("the leader did not confirm this read in time; retry shortly")]
    ReadUnconfirmed,
    /// The operation is malformed (a 400, never retried); nothing was proposed.
    #[error("{0}")]
    Invalid(InvalidOperation),
    #[error(
        "this node reaches {reachable} of {members} members; a persistent write or a linearizable read needs a \
         majority ({majority}), so nothing was written. Ephemeral instances still register here (AP); retry on a \
         node in the majority"
    )]
    NoQuorum { reachable: usize, members: usize, majority: usize },
}

impl WriteError {
    /// The HTTP status a client is answered with: 400 for a malformed operation, else 503
    /// (worth a retry).
    pub fn status(&self) -> u16 {
        match self {
            WriteError::Invalid(_) => 400,
            _ => 503,
        }
    }
}

/// A follower's write, proposed by the leader.
pub struct ForwardWrite;

impl Rpc for ForwardWrite {
    const PATH: &'static str = "/nacre/forward-write";
    type Request = Operation;
    type Answer = Result<WriteOutcome, WriteError>;
}

/// A follower's linearizable read: the leader's confirmed commit index.
pub struct ReadIndex;

impl Rpc for ReadIndex {
    const PATH: &'static str = "/nacre/read-index";
    type Request = ();
    type Answer = Result<u64, WriteError>;
}

/// What this node knows of the log right now.
#[derive(Debug, Clone)]
pub struct LogStatus {
    /// `LEADER`, `FOLLOWER`, `CANDIDATE`, `LEARNER` or `SHUTDOWN`.
    pub role: String,
    pub term: u64,
    /// The leader of `term` as this node's vote names it: after a restart, the vote persisted
    /// before it, whether or not that leader still leads (see `leader_heard`).
    pub leader: Option<NodeId>,
    /// Whether this node leads, or has accepted the leader's entries of the current term
    /// since it started: a leader it actually hears, not one remembered from before a
    /// restart (a node reports ready only then).
    pub leader_heard: bool,
    pub last_log_index: u64,
    /// Index of the latest snapshot this node holds (0: none).
    pub snapshot_index: u64,
    /// Highest log index purged behind a snapshot (0: none).
    pub purged_index: u64,
    /// Highest index this node knows committed.
    pub committed_index: u64,
    /// On the leader: each other member and the highest index it has acknowledged.
    pub replication: Vec<(NodeId, u64)>,
}

pub struct Log {
    pub(super) id: NodeId,
    pub(super) raft: Raft,
    replica: Arc<Shared>,
    pub(super) peers: PeerClient,
    pub(super) members: Arc<Members>,
    /// The index of a membership entry the leader held without this node (0: none seen).
    pub(super) removed_at_index: std::sync::atomic::AtomicU64,
    /// Elections as openraft reports them (installed by [`Log::count_elections`]).
    counters: Arc<super::counters::RaftCounters>,
    /// The term of the last leader whose entries (or heartbeat) this node accepted since it
    /// started; 0 before any.
    heard_leader_term: std::sync::atomic::AtomicU64,
}

impl Log {
    pub fn new(id: NodeId, raft: Raft, replica: Arc<Shared>, peers: PeerClient, members: Arc<Members>) -> Log {
        Log {
            id,
            raft,
            replica,
            peers,
            members,
            removed_at_index: std::sync::atomic::AtomicU64::new(0),
            counters: Arc::default(),
            heard_leader_term: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The leader of `term` sent entries (or a heartbeat) that this node accepted.
    pub fn heard_leader(&self, term: u64) {
        self.heard_leader_term.fetch_max(term, std::sync::atomic::Ordering::Release);
    }

    /// The openraft handle, for the peer port's Raft RPCs and the snapshot policy.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Form the cluster if it was never initialized: every member initializes itself with the
    /// same membership; openraft accepts that, and the first election among a majority forms
    /// the cluster.
    /// Whether this node has a membership already (it was initialized, or a leader's entries
    /// reached it).
    pub async fn is_initialized(&self) -> anyhow::Result<bool> {
        Ok(self.raft.is_initialized().await?)
    }

    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> anyhow::Result<()> {
        if !self.raft.is_initialized().await?
            && let Err(e) = self.raft.initialize(members).await
        {
            tracing::info!(error = %e, "cluster already initialized");
        }
        Ok(())
    }

    /// Campaign now through a pre-vote, unless a leader is heard: the campaign goes on only if a
    /// majority would vote for this node, that is, none of them hears a leader and this log is
    /// at least as long as theirs. A voter that hears a leader refuses it, so it costs a
    /// running cluster nothing (no term is raised).
    /// Whether it campaigned.
    pub async fn campaign_unless_led(&self) -> anyhow::Result<bool> {
        if self.status().leader_heard {
            return Ok(false);
        }
        self.raft.trigger().elect(true).await?;
        Ok(true)
    }

    /// Have openraft report its elections and votes to this log's counters.
    pub async fn count_elections(&self) -> anyhow::Result<()> {
        let recorder: Arc<dyn openraft::metrics::MetricsRecorder> = self.counters.clone();
        self.raft.set_metrics_recorder(Some(recorder)).await?;
        Ok(())
    }

    pub fn elections(&self) -> super::counters::ElectionCounts {
        self.counters.counts()
    }

    /// Stop Raft on this node (its tasks, and with them the log's writer).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The current term, when this node leads it.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        (metrics.current_leader == Some(self.id)).then_some(metrics.current_term)
    }

    /// The peer address of the leader as this node knows it, unless that is this node.
    pub fn remote_leader_addr(&self) -> Option<String> {
        self.leader().filter(|leader| *leader != self.id).and_then(|leader| self.member(leader)).map(|m| m.raft_addr)
    }

    pub fn member(&self, id: NodeId) -> Option<Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.membership().get_node(&id).cloned()
    }

    pub fn status(&self) -> LogStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        LogStatus {
            role: format!("{:?}", metrics.state).to_uppercase(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            leader_heard: metrics.state == openraft::ServerState::Leader
                || (metrics.current_leader.is_some()
                    && self.heard_leader_term.load(std::sync::atomic::Ordering::Acquire) == metrics.current_term),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
            purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
            committed_index: metrics.local_committed.as_ref().map_or(0, |id| id.index),
            replication: metrics
                .replication
                .iter()
                .flatten()
                .filter(|(id, _)| **id != self.id)
                .map(|(id, matched)| (*id, matched.as_ref().map_or(0, |m| m.index)))
                .collect(),
        }
    }

    /// Wait (bounded) until some leader is known.
    pub(super) async fn wait_for_leader(&self, wait: Duration) -> Option<NodeId> {
        self.wait_leader_until(wait, |leader| leader.is_some()).await;
        self.leader()
    }

    /// Wait (bounded) until the leader this node knows satisfies `cond`; whether it did.
    pub(super) async fn wait_leader_until(&self, wait: Duration, cond: impl Fn(Option<NodeId>) -> bool) -> bool {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if cond(metrics.borrow_and_update().current_leader) {
                return true;
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }

    /// Commit `op` through the leader, wherever it is, and wait until this node has applied
    /// it too, so that the caller can read its own write here.
    pub async fn write(&self, op: Operation) -> Result<WriteOutcome, WriteError> {
        op.validate().map_err(WriteError::Invalid)?;
        self.check_quorum()?;
        let leader = self.wait_for_leader(Duration::from_millis(LEADER_WAIT_MS)).await.ok_or(WriteError::NoLeader)?;
        let outcome = if leader == self.id {
            self.write_as_leader(op).await?
        } else {
            let member = self.member(leader).ok_or(WriteError::NoLeader)?;
            let timeout = Duration::from_millis(WRITE_TIMEOUT_MS);
            let answer =
                self.peers.send_coalesced::<ForwardWrite>(&member.raft_addr, &op, timeout).await.map_err(|e| {
                    tracing::info!(leader, error = %e, "a forwarded write got no answer from the leader");
                    WriteError::Unconfirmed
                })?;
            answer?
        };
        self.wait_applied(outcome.index, Duration::from_millis(LOCAL_APPLY_WAIT_MS)).await;
        Ok(outcome)
    }

    /// Whether this node's view reaches a majority of the voters: a write here is not refused
    /// for lack of one (`check_quorum`).
    pub fn reaches_majority(&self) -> bool {
        self.check_quorum().is_ok()
    }

    /// Fail fast on the minority side of a partition: a write there could only time out.
    /// The view is this node's pings (`members`), refreshed every half second.
    fn check_quorum(&self) -> Result<(), WriteError> {
        let (reachable, members) = self.members.reachable_voters();
        if members == 0 {
            // Not a member yet (a joining node): the wait for a leader answers.
            return Ok(());
        }
        let majority = super::membership::majority(members);
        if reachable < majority { Err(WriteError::NoQuorum { reachable, members, majority }) } else { Ok(()) }
    }

    /// Propose as the leader, stamping the entry with this node's clock. The operation is
    /// validated here too: a follower's forwarded write is a peer message, not trusted to have
    /// passed the client API.
    pub async fn write_as_leader(&self, op: Operation) -> Result<WriteOutcome, WriteError> {
        op.validate().map_err(WriteError::Invalid)?;
        let proposal = Proposal { timestamp_ms: now_ms(), op };
        let write = self.raft.client_write(proposal);
        match tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write).await {
            Ok(Ok(resp)) => Ok(WriteOutcome { index: resp.log_id.index, response: resp.data }),
            Err(_) => {
                tracing::info!(timeout_ms = WRITE_TIMEOUT_MS, "a write was not committed in time");
                Err(WriteError::Unconfirmed)
            }
            // openraft also answers a proposal pending when leadership was lost this way,
            // so the entry may still be committed by the next leader: not "nothing written".
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                tracing::info!(leader = ?forward.leader_id, "leadership moved away from a write");
                Err(WriteError::Unconfirmed)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "raft refused a write");
                Err(WriteError::Unconfirmed)
            }
        }
    }

    /// Wait (bounded) until this replica has applied `index`.
    pub async fn wait_applied(&self, index: u64, wait: Duration) -> bool {
        let mut applied = self.replica.applied.subscribe();
        tokio::time::timeout(wait, applied.wait_for(|applied| *applied >= index)).await.is_ok_and(|r| r.is_ok())
    }

    /// Make the next local read linearizable: confirm with the leader (ReadIndex) and wait
    /// until this replica has applied up to the index it returns.
    pub async fn linearize(&self) -> Result<(), WriteError> {
        self.check_quorum()?;
        let leader = self.wait_for_leader(Duration::from_millis(LEADER_WAIT_MS)).await.ok_or(WriteError::NoLeader)?;
        let read_index = if leader == self.id {
            self.read_index_as_leader().await?
        } else {
            let member = self.member(leader).ok_or(WriteError::NoLeader)?;
            let timeout = Duration::from_millis(WRITE_TIMEOUT_MS);
            let answer = self.peers.send::<ReadIndex>(&member.raft_addr, &(), timeout).await.map_err(|e| {
                tracing::info!(leader, error = %e, "a read index request got no answer from the leader");
                WriteError::ReadUnconfirmed
            })?;
            answer?
        };
        if self.wait_applied(read_index, Duration::from_millis(WRITE_TIMEOUT_MS)).await {
            Ok(())
        } else {
            tracing::info!(read_index, "this replica did not apply up to a read index in time");
            Err(WriteError::ReadUnconfirmed)
        }
    }

    /// The commit index a linearizable read must wait for, confirmed by a quorum; only a
    /// leader that has committed an entry of its own term answers.
    pub async fn read_index_as_leader(&self) -> Result<u64, WriteError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(e) => {
                tracing::info!(error = %e, "raft could not confirm a read index");
                Err(WriteError::ReadUnconfirmed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client reads in a 503 is a plain sentence: no openraft `Debug` output, no member
    /// addresses, and a failed read does not talk of a write.
    #[test]
    fn unavailable_answers_are_plain_words() {
        let all = [
            WriteError::NoLeader,
            WriteError::Unconfirmed,
            WriteError::ReadUnconfirmed,
            WriteError::NoQuorum { reachable: 1, members: 3, majority: 2 },
        ];
        for error in &all {
            let text = error.to_string();
            for internal in ["{", "Some(", "LogId", "Vote", "Membership", "127.0.0.1"] {
                assert!(!text.contains(internal), "{text}");
            }
            assert_eq!(error.status(), 503);
        }
        assert!(!WriteError::ReadUnconfirmed.to_string().contains("write"));
        assert!(WriteError::NoLeader.to_string().contains("nothing was written"));
        assert!(all[3].to_string().contains("nothing was written"));
    }
}
