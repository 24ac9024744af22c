//! Membership changes through the log (openraft's joint consensus), as the rest of the host
//! asks for them: [`Log::change_membership`] on any node finds the leader and has it make the
//! change one step at a time, each step decided by [`super::membership::next_step`] on the
//! cluster as the leader sees it then.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::ChangeMembershipError;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use serde::Deserialize;
use serde::Serialize;

use super::log::LEADER_WAIT_MS;
use super::log::Log;
use super::membership::Change;
use super::membership::ClusterMembership;
use super::membership::MAX_CAUGHT_UP_LAG_ENTRIES;
use super::membership::MAX_STEPS;
use super::membership::Refused;
use super::membership::Step;
use super::membership::View;
use super::types::NodeId;
use super::types::TypeConfig;
use crate::net::Rpc;

/// Longest one step may take: a learner catching up (by snapshot when far behind), or a
/// membership entry committing.
pub const STEP_TIMEOUT_MS: u64 = 30_000;
/// How long a step that needs a caught-up member waits for one that was just added or just
/// changed leader to be seen so (pings and replication run every half second).
const HEALTHY_WAIT_MS: u64 = 10_000;
const HEALTHY_POLL_MS: u64 = 250;
/// How long a forwarded change may take on the leader, every step of it.
pub const CHANGE_TIMEOUT_MS: u64 = STEP_TIMEOUT_MS * MAX_STEPS as u64 + HEALTHY_WAIT_MS;

/// A membership change asked of the leader over the peer port (by a follower that was asked,
/// or by a node joining the cluster).
pub struct ChangeMembership;

impl Rpc for ChangeMembership {
    const PATH: &'static str = "/nacre/membership";
    type Request = Change;
    type Answer = Result<ClusterMembership, MembershipError>;
}

/// The membership a member holds, with the index of the log entry it comes from: asked by a
/// node that may have been removed (a removed node is not sent the entry that removes it).
pub struct MembershipOf;

impl Rpc for MembershipOf {
    const PATH: &'static str = "/nacre/membership-of";
    type Request = ();
    type Answer = (u64, ClusterMembership);
}

/// How long a node waits for a member's answer when it checks whether it was removed.
const REMOVED_CHECK_TIMEOUT_MS: u64 = 1_000;

/// Why a membership change was not made, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    /// Refused by a guard: nothing changed (409).
    #[error("{0}")]
    Refused(Refused),
    #[error("no leader is elected right now; nothing was changed. Retry shortly")]
    NoLeader,
    /// Leadership moved while the change was being made: the caller asks the new leader.
    #[error("leadership moved while the change was being made; retry it")]
    LeaderMoved,
    /// A step was not confirmed in time, or Raft refused it for a passing reason (another
    /// change in progress): retry, then read the members back.
    #[error("the change was not completed: {0}. Retry it, or read the members back")]
    Unconfirmed(String),
}

impl MembershipError {
    /// The HTTP status a client is answered with: 409 for a refusal, else 503 (retry).
    pub fn status(&self) -> u16 {
        match self {
            MembershipError::Refused(_) => 409,
            _ => 503,
        }
    }
}

impl Log {
    /// The members as this node's log says.
    pub fn membership(&self) -> ClusterMembership {
        self.membership_with_index().1
    }

    /// The members as this node's log says, and the index of the entry that says so.
    pub fn membership_with_index(&self) -> (u64, ClusterMembership) {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let index = metrics.membership_config.log_id().as_ref().map_or(0, |id| id.index);
        let membership = metrics.membership_config.membership();
        let membership = ClusterMembership {
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            nodes: membership.nodes().map(|(id, node)| (*id, node.clone())).collect(),
        };
        (index, membership)
    }

    /// Whether this node is a member in good standing: listed in its log's membership, and that
    /// membership no older than one the leader was found to hold without it
    /// ([`Log::check_removed`]; a node added back gets a newer entry that lists it).
    pub fn is_member(&self) -> bool {
        let (index, membership) = self.membership_with_index();
        membership.contains(self.id) && index >= self.removed_at_index.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ask the leader this node knows for its membership: when it comes from a later entry and
    /// does not list this node, this node was removed (the leader stops replicating to a
    /// removed node, so its own log may never say so).
    pub async fn check_removed(&self) {
        let (mine, membership) = self.membership_with_index();
        let Some(leader) = self.leader().filter(|leader| *leader != self.id) else { return };
        let Some(member) = membership.nodes.get(&leader) else { return };
        let timeout = Duration::from_millis(REMOVED_CHECK_TIMEOUT_MS);
        if let Ok((theirs, their_membership)) = self.peers.send::<MembershipOf>(&member.raft_addr, &(), timeout).await
            && theirs > mine
            && !their_membership.contains(self.id)
            && self.removed_at_index.fetch_max(theirs, std::sync::atomic::Ordering::Relaxed) < theirs
        {
            tracing::warn!(
                index = theirs,
                "this node was removed from the cluster: it reports not ready until it is added back; stop it"
            );
        }
    }

    /// Make `change` through the leader, wherever it is; the membership once it is made.
    pub async fn change_membership(&self, change: Change) -> Result<ClusterMembership, MembershipError> {
        for _ in 0..MAX_STEPS {
            let leader =
                self.wait_for_leader(Duration::from_millis(LEADER_WAIT_MS)).await.ok_or(MembershipError::NoLeader)?;
            let answer = if leader == self.id {
                self.change_membership_as_leader(change.clone()).await
            } else {
                let member = self.member(leader).ok_or(MembershipError::NoLeader)?;
                let timeout = Duration::from_millis(CHANGE_TIMEOUT_MS);
                match self.peers.send::<ChangeMembership>(&member.raft_addr, &change, timeout).await {
                    Ok(answer) => answer,
                    Err(e) => Err(MembershipError::Unconfirmed(format!("the leader did not answer ({e})"))),
                }
            };
            match answer {
                Err(MembershipError::LeaderMoved) => {
                    self.wait_leader_other_than(leader).await;
                    continue;
                }
                other => return other,
            }
        }
        Err(MembershipError::Unconfirmed("leadership kept moving".into()))
    }

    /// Make `change` as the leader: step after step until [`super::membership::next_step`]
    /// says it is made. [`MembershipError::LeaderMoved`] once this node stops leading.
    pub async fn change_membership_as_leader(&self, change: Change) -> Result<ClusterMembership, MembershipError> {
        for _ in 0..MAX_STEPS {
            let Some(step) = self.decide(&change).await? else { return Ok(self.membership()) };
            tracing::info!(?step, ?change, "membership change: next step");
            let step_timeout = Duration::from_millis(STEP_TIMEOUT_MS);
            let made = match step {
                Step::AddLearner(id, member) => {
                    tokio::time::timeout(step_timeout, self.raft.add_learner(id, member, true)).await
                }
                Step::Promote(id) => {
                    let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                    tokio::time::timeout(step_timeout, self.raft.change_membership(promote, false)).await
                }
                Step::RemoveVoter(id) => {
                    let remove = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                    tokio::time::timeout(step_timeout, self.raft.change_membership(remove, false)).await
                }
                Step::RemoveLearner(id) => {
                    let remove = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
                    tokio::time::timeout(step_timeout, self.raft.change_membership(remove, false)).await
                }
                Step::TransferLeader(to) => {
                    self.transfer_leadership(to).await?;
                    if change == Change::TransferLeader(to) {
                        return Ok(self.membership());
                    }
                    return Err(MembershipError::LeaderMoved);
                }
            };
            match made {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(raft_refusal(e)),
                Err(_) => {
                    return Err(MembershipError::Unconfirmed(format!(
                        "a step did not complete within {STEP_TIMEOUT_MS} ms (a new member may still be catching up)"
                    )));
                }
            }
        }
        Err(MembershipError::Unconfirmed(format!("the change took more than {MAX_STEPS} steps")))
    }

    /// The next step on the cluster as it is now, waiting (bounded) for a member that is not
    /// yet seen caught up: one just added, or a leader's view just after it was elected.
    async fn decide(&self, change: &Change) -> Result<Option<Step>, MembershipError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(HEALTHY_WAIT_MS);
        loop {
            let view = self.leader_view().ok_or(MembershipError::LeaderMoved)?;
            let name = |id: NodeId| self.member(id).map_or_else(|| format!("node {id}"), |m| m.api_addr);
            match super::membership::next_step(&view, change, name) {
                Ok(step) => return Ok(step),
                Err(
                    refused @ (Refused::NotCaughtUp(_)
                    | Refused::NoHealthyMajority { .. }
                    | Refused::WouldLoseMajority { .. }
                    | Refused::NoSuccessor),
                ) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%refused, "membership change waits for members to be seen caught up");
                    tokio::time::sleep(Duration::from_millis(HEALTHY_POLL_MS)).await;
                }
                Err(refused) => return Err(MembershipError::Refused(refused)),
            }
        }
    }

    /// The cluster as this leader sees it; `None` unless this node leads.
    fn leader_view(&self) -> Option<View> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader != Some(self.id) || !metrics.state.is_leader() {
            return None;
        }
        let last = metrics.last_log_index.unwrap_or(0);
        let live: BTreeSet<NodeId> = self.members.live().into_iter().collect();
        let mut healthy: BTreeSet<NodeId> = metrics
            .replication
            .iter()
            .flatten()
            .filter(|(id, matched)| {
                live.contains(id)
                    && last.saturating_sub(matched.as_ref().map_or(0, |m| m.index)) <= MAX_CAUGHT_UP_LAG_ENTRIES
            })
            .map(|(id, _)| *id)
            .collect();
        healthy.insert(self.id);
        let membership = metrics.membership_config.membership();
        Some(View {
            leader: self.id,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            healthy,
        })
    }

    /// Hand leadership to `to` and wait (bounded) until this node no longer leads.
    async fn transfer_leadership(&self, to: NodeId) -> Result<(), MembershipError> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| MembershipError::Unconfirmed(format!("raft stopped: {e}")))?;
        let me = self.id;
        let moved = |leader: Option<NodeId>| leader.is_some_and(|leader| leader != me);
        if self.wait_leader_until(Duration::from_millis(STEP_TIMEOUT_MS), moved).await {
            Ok(())
        } else {
            Err(MembershipError::Unconfirmed(format!("leadership did not move within {STEP_TIMEOUT_MS} ms")))
        }
    }

    /// Wait (bounded) until a leader other than `old` is known.
    async fn wait_leader_other_than(&self, old: NodeId) {
        let moved = |leader: Option<NodeId>| leader.is_some_and(|leader| leader != old);
        self.wait_leader_until(Duration::from_millis(LEADER_WAIT_MS), moved).await;
    }
}

/// openraft's refusal of a membership step, in the operator's terms.
fn raft_refusal(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => MembershipError::LeaderMoved,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_))) => {
            MembershipError::Unconfirmed("another membership change is still in progress".into())
        }
        other => {
            tracing::warn!(error = %other, "raft refused a membership step");
            MembershipError::Unconfirmed(format!("raft refused the step ({other})"))
        }
    }
}
