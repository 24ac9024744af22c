//! Membership change decisions: which single step a requested change takes next, or why it is
//! refused. No I/O: [`Log::change_membership`](super::log::Log::change_membership) reads a
//! [`View`] from the leader's Raft, asks [`next_step`], runs the step, and asks again, until
//! the change is done.
//!
//! Why one step at a time: adding a voter is two log entries (learner first, so that it
//! catches up before it counts for a majority, then the promotion), and each step's guard must
//! be judged on the cluster as it is *after* the previous step (a learner that has caught up,
//! a leader that has moved).
//!
//! The guards: a change of the voters is refused unless the current voters have a healthy
//! majority (else the change cannot commit, and a half-made change is worse than none) and
//! the new voters will too (else writes would stop once it is made). Healthy means: this
//! leader, or a member it reaches whose log is within [`MAX_CAUGHT_UP_LAG_ENTRIES`] of its own.
//! The leader is never removed directly: leadership is handed to a healthy voter first, and
//! the new leader makes the removal.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::types::Member;
use super::types::NodeId;

/// A member whose log is this far behind the leader's or less counts as caught up: it may be
/// promoted, take over leadership, or count for a majority in the guards.
pub const MAX_CAUGHT_UP_LAG_ENTRIES: u64 = 1_000;
/// Members of a cluster at most, voters and learners together.
pub const MAX_MEMBERS: usize = crate::config::MAX_CLUSTER_MEMBERS;
/// Steps one change takes at most (add: learner, promote; remove a leader: transfer, then the
/// new leader's own removal).
pub const MAX_STEPS: usize = 4;

/// A change an operator (or a joining node) asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Add a node: as a learner that stays one (`learner`), or as a voter (learner first).
    Add { id: NodeId, member: Member, learner: bool },
    /// Make a learner a voter.
    Promote(NodeId),
    /// Take a member out, voter or learner.
    Remove(NodeId),
    /// Hand leadership to this voter.
    TransferLeader(NodeId),
}

/// The cluster as the leader sees it when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub leader: NodeId,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// Members the leader reaches whose log is caught up (the leader included).
    pub healthy: BTreeSet<NodeId>,
}

/// One membership step, made by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add a learner and wait until it has caught up with the log.
    AddLearner(NodeId, Member),
    Promote(NodeId),
    RemoveVoter(NodeId),
    RemoveLearner(NodeId),
    /// Hand leadership over; this node then stops deciding the change.
    TransferLeader(NodeId),
}

/// Why a change was refused: plain words for the operator, nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refused {
    #[error("{0} is already a voter; remove it first to make it a learner")]
    AlreadyVoter(String),
    #[error("{0} is not a member of this cluster")]
    NotAMember(String),
    #[error("{0} is a learner, not a voter: promote it first")]
    NotAVoter(String),
    #[error("the cluster has {0} members; at most {MAX_MEMBERS} are supported")]
    TooMany(usize),
    #[error("{0} is the last voter; a cluster needs one")]
    LastVoter(String),
    #[error("{0} is not caught up with the leader (or not reachable); wait until it is")]
    NotCaughtUp(String),
    #[error(
        "only {healthy} of the {voters} voters are reachable and caught up; a change needs a majority ({majority}) \
         to commit, so nothing was changed"
    )]
    NoHealthyMajority { healthy: usize, voters: usize, majority: usize },
    #[error(
        "after this change only {healthy} of its {voters} voters would be reachable and caught up, under a majority \
         ({majority}): the cluster would stop taking writes, so nothing was changed"
    )]
    WouldLoseMajority { healthy: usize, voters: usize, majority: usize },
    #[error("no other voter is caught up to take over leadership, so the leader cannot be removed now")]
    NoSuccessor,
    #[error("node {0}'s id does not match its address {1}")]
    WrongId(NodeId, String),
}

pub use crate::members::majority;

/// The next step of `change` on the cluster `view` shows; `Ok(None)` once it is made. `name`
/// says a node's address in refusals.
pub fn next_step(view: &View, change: &Change, name: impl Fn(NodeId) -> String) -> Result<Option<Step>, Refused> {
    match change {
        Change::Add { id, member, learner } => {
            if *id != crate::members::node_id_of(&member.api_addr) {
                return Err(Refused::WrongId(*id, member.api_addr.clone()));
            }
            if view.voters.contains(id) {
                return if *learner { Err(Refused::AlreadyVoter(name(*id))) } else { Ok(None) };
            }
            if view.learners.contains(id) {
                return if *learner { Ok(None) } else { promote(view, *id, &name) };
            }
            let members = view.voters.len() + view.learners.len();
            if members >= MAX_MEMBERS {
                return Err(Refused::TooMany(members));
            }
            Ok(Some(Step::AddLearner(*id, member.clone())))
        }
        Change::Promote(id) => {
            if view.voters.contains(id) {
                return Ok(None);
            }
            if !view.learners.contains(id) {
                return Err(Refused::NotAMember(name(*id)));
            }
            promote(view, *id, &name)
        }
        Change::Remove(id) => {
            if view.learners.contains(id) {
                return Ok(Some(Step::RemoveLearner(*id)));
            }
            if !view.voters.contains(id) {
                return Ok(None);
            }
            if view.voters.len() == 1 {
                return Err(Refused::LastVoter(name(*id)));
            }
            current_majority(view)?;
            if *id == view.leader {
                return successor(view).map(|to| Some(Step::TransferLeader(to))).ok_or(Refused::NoSuccessor);
            }
            let after: BTreeSet<NodeId> = view.voters.iter().copied().filter(|v| v != id).collect();
            keeps_majority(view, &after)?;
            Ok(Some(Step::RemoveVoter(*id)))
        }
        Change::TransferLeader(to) => {
            if *to == view.leader {
                return Ok(None);
            }
            if view.learners.contains(to) {
                return Err(Refused::NotAVoter(name(*to)));
            }
            if !view.voters.contains(to) {
                return Err(Refused::NotAMember(name(*to)));
            }
            if !view.healthy.contains(to) {
                return Err(Refused::NotCaughtUp(name(*to)));
            }
            Ok(Some(Step::TransferLeader(*to)))
        }
    }
}

fn promote(view: &View, id: NodeId, name: &impl Fn(NodeId) -> String) -> Result<Option<Step>, Refused> {
    if !view.healthy.contains(&id) {
        return Err(Refused::NotCaughtUp(name(id)));
    }
    current_majority(view)?;
    let mut after = view.voters.clone();
    after.insert(id);
    keeps_majority(view, &after)?;
    Ok(Some(Step::Promote(id)))
}

fn healthy_among(view: &View, voters: &BTreeSet<NodeId>) -> usize {
    voters.intersection(&view.healthy).count()
}

fn current_majority(view: &View) -> Result<(), Refused> {
    let (healthy, voters) = (healthy_among(view, &view.voters), view.voters.len());
    if healthy < majority(voters) {
        return Err(Refused::NoHealthyMajority { healthy, voters, majority: majority(voters) });
    }
    Ok(())
}

fn keeps_majority(view: &View, after: &BTreeSet<NodeId>) -> Result<(), Refused> {
    let (healthy, voters) = (healthy_among(view, after), after.len());
    if healthy < majority(voters) {
        return Err(Refused::WouldLoseMajority { healthy, voters, majority: majority(voters) });
    }
    Ok(())
}

/// The voter to hand leadership to when the leader leaves: a healthy one, the lowest id (any
/// rule would do; a fixed one keeps the choice predictable in logs and tests).
fn successor(view: &View) -> Option<NodeId> {
    view.voters.iter().copied().find(|v| *v != view.leader && view.healthy.contains(v))
}

/// The members as every node knows them from its log: the voters, the learners, and how to
/// reach each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMembership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    pub nodes: BTreeMap<NodeId, Member>,
}

impl ClusterMembership {
    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: NodeId) -> Member {
        Member { api_addr: format!("10.0.0.{id}:8848"), raft_addr: format!("10.0.0.{id}:7848") }
    }

    fn id(n: NodeId) -> NodeId {
        crate::members::node_id_of(&member(n).api_addr)
    }

    fn view(leader: NodeId, voters: &[NodeId], learners: &[NodeId], healthy: &[NodeId]) -> View {
        View {
            leader: id(leader),
            voters: voters.iter().map(|n| id(*n)).collect(),
            learners: learners.iter().map(|n| id(*n)).collect(),
            healthy: healthy.iter().map(|n| id(*n)).collect(),
        }
    }

    fn step(view: &View, change: Change) -> Result<Option<Step>, Refused> {
        next_step(view, &change, |n| n.to_string())
    }

    fn add(n: NodeId, learner: bool) -> Change {
        Change::Add { id: id(n), member: member(n), learner }
    }

    #[test]
    fn a_voter_is_added_as_a_learner_first_and_promoted_once_caught_up() {
        let three = view(1, &[1, 2, 3], &[], &[1, 2, 3]);
        assert_eq!(step(&three, add(4, false)), Ok(Some(Step::AddLearner(id(4), member(4)))));
        let lagging = view(1, &[1, 2, 3], &[4], &[1, 2, 3]);
        assert!(matches!(step(&lagging, add(4, false)), Err(Refused::NotCaughtUp(_))));
        let caught_up = view(1, &[1, 2, 3], &[4], &[1, 2, 3, 4]);
        assert_eq!(step(&caught_up, add(4, false)), Ok(Some(Step::Promote(id(4)))));
        let done = view(1, &[1, 2, 3, 4], &[], &[1, 2, 3, 4]);
        assert_eq!(step(&done, add(4, false)), Ok(None), "adding a voter twice is done, not an error");
    }

    #[test]
    fn a_learner_stays_one_and_a_voter_is_not_demoted_by_an_add() {
        let with_learner = view(1, &[1, 2, 3], &[5], &[1, 2, 3, 5]);
        assert_eq!(step(&with_learner, add(5, true)), Ok(None));
        assert!(matches!(step(&with_learner, add(2, true)), Err(Refused::AlreadyVoter(_))));
        assert_eq!(step(&with_learner, Change::Remove(id(5))), Ok(Some(Step::RemoveLearner(id(5)))));
    }

    #[test]
    fn an_add_names_the_id_its_address_gives() {
        let three = view(1, &[1, 2, 3], &[], &[1, 2, 3]);
        let forged = Change::Add { id: id(2), member: member(4), learner: true };
        assert!(matches!(step(&three, forged), Err(Refused::WrongId(..))));
    }

    #[test]
    fn removals_that_would_stop_writes_are_refused() {
        // Node 3 is down: removing a healthy voter would leave {1, 3} with one healthy.
        let one_down = view(1, &[1, 2, 3], &[], &[1, 2]);
        assert_eq!(
            step(&one_down, Change::Remove(id(2))),
            Err(Refused::WouldLoseMajority { healthy: 1, voters: 2, majority: 2 })
        );
        assert_eq!(step(&one_down, Change::Remove(id(3))), Ok(Some(Step::RemoveVoter(id(3)))), "the dead one goes");
        let two_down = view(1, &[1, 2, 3], &[], &[1]);
        assert_eq!(
            step(&two_down, Change::Remove(id(3))),
            Err(Refused::NoHealthyMajority { healthy: 1, voters: 3, majority: 2 })
        );
        let alone = view(1, &[1], &[], &[1]);
        assert!(matches!(step(&alone, Change::Remove(id(1))), Err(Refused::LastVoter(_))));
        assert_eq!(step(&alone, Change::Remove(id(9))), Ok(None), "a non-member is already removed");
    }

    #[test]
    fn promotions_that_would_stop_writes_are_refused() {
        // Two voters, one down: a third voter cannot be counted on until the change commits.
        let half_down = view(1, &[1, 2], &[3], &[1, 3]);
        assert_eq!(
            step(&half_down, Change::Promote(id(3))),
            Err(Refused::NoHealthyMajority { healthy: 1, voters: 2, majority: 2 })
        );
        // Four voters of which two are down: a fifth, healthy, keeps 3 of 5.
        let four = view(1, &[1, 2, 3, 4], &[5], &[1, 2, 3, 5]);
        assert_eq!(step(&four, Change::Promote(id(5))), Ok(Some(Step::Promote(id(5)))));
        assert!(matches!(step(&four, Change::Promote(id(7))), Err(Refused::NotAMember(_))));
    }

    #[test]
    fn the_leader_hands_over_before_it_is_removed() {
        let three = view(1, &[1, 2, 3], &[], &[1, 2, 3]);
        assert_eq!(step(&three, Change::Remove(id(1))), Ok(Some(Step::TransferLeader(successor(&three).unwrap()))));
        let successor_id = successor(&three).unwrap();
        assert!(successor_id != id(1) && three.healthy.contains(&successor_id));
        let others_down = view(1, &[1, 2, 3], &[4], &[1, 4]);
        assert!(matches!(step(&others_down, Change::Remove(id(1))), Err(Refused::NoHealthyMajority { .. })));
        let pair_one_lagging = View { healthy: [id(1), id(2)].into(), ..view(1, &[1, 2, 3], &[], &[]) };
        let next = step(&pair_one_lagging, Change::Remove(id(1)));
        assert_eq!(next, Ok(Some(Step::TransferLeader(id(2)))), "only the healthy voter takes over");
    }

    #[test]
    fn leadership_goes_only_to_a_caught_up_voter() {
        let v = view(1, &[1, 2, 3], &[4], &[1, 2, 4]);
        assert_eq!(step(&v, Change::TransferLeader(id(2))), Ok(Some(Step::TransferLeader(id(2)))));
        assert!(matches!(step(&v, Change::TransferLeader(id(3))), Err(Refused::NotCaughtUp(_))));
        assert!(matches!(step(&v, Change::TransferLeader(id(4))), Err(Refused::NotAVoter(_))));
        assert!(matches!(step(&v, Change::TransferLeader(id(8))), Err(Refused::NotAMember(_))));
        assert_eq!(step(&v, Change::TransferLeader(id(1))), Ok(None));
    }

    #[test]
    fn the_cluster_size_is_bounded() {
        let full: Vec<NodeId> = (1..=MAX_MEMBERS as NodeId).collect();
        let v = view(1, &full, &[], &full);
        assert_eq!(step(&v, add(99, true)), Err(Refused::TooMany(MAX_MEMBERS)));
    }
}
