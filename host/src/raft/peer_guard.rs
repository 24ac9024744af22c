//! Plausibility checks on the openraft messages a peer sends, made before the local Raft sees
//! them. No I/O: the caller passes what this node knows (its id, term and members).
//!
//! Whoever reaches the peer port (a buggy member, a replayed message, a stranger) must never be
//! able to panic a node, wrap a counter or plant state from the future. openraft trusts its
//! peers: a vote with a term near `u64::MAX` is persisted, and the next election's `term + 1`
//! then panics, on every restart after. So a message is refused here when:
//! - a term in it is more than [`MAX_TERM_AHEAD`] beyond this node's, or beyond [`MAX_TERM`];
//! - a log index in it is beyond [`MAX_LOG_INDEX`];
//! - its sender (the vote's node) is not a member: only voters lead or campaign (a joining
//!   node, which knows no members yet, takes the leader's word), and a transfer of leadership
//!   is only ever addressed to this node;
//! - it is inconsistent in itself (an entry of a later term than the vote that sends it,
//!   entries that are not consecutive after `prev_log_id`).
//!
//! Whether the sender is who it claims to be is the peer authentication's business
//! (issue 17), not this file's.

use std::collections::BTreeSet;

use openraft::raft::AppendEntriesRequest;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;

use super::types::LogId;
use super::types::NodeId;
use super::types::SnapshotMeta;
use super::types::TypeConfig;
use super::types::Vote;

/// How far beyond this node's term a peer's term may be. Terms rise by one per election, and
/// with pre-vote a node that cannot win does not raise its term at all; a million elections
/// this node never heard of is no real cluster's history.
pub const MAX_TERM_AHEAD: u64 = 1 << 20;
/// No term beyond this is accepted, whatever this node's own: far from the `u64` wrap, so no
/// `term + 1` anywhere can overflow.
pub const MAX_TERM: u64 = 1 << 48;
/// No log index beyond this is accepted (a million entries a second for eight years).
pub const MAX_LOG_INDEX: u64 = 1 << 48;
const _: () = assert!(MAX_TERM < u64::MAX / 2 && MAX_LOG_INDEX < u64::MAX / 2, "far from any wrap");

/// What this node knows when it judges a peer's message.
#[derive(Debug, Clone)]
pub struct LocalView {
    pub me: NodeId,
    pub current_term: u64,
    /// Voters of every configuration in force (joint included).
    pub voters: BTreeSet<NodeId>,
}

/// Why a peer's message was refused before Raft saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    #[error("term {claimed} is implausible here (this node is at term {current}; at most {MAX_TERM_AHEAD} ahead)")]
    Term { claimed: u64, current: u64 },
    #[error("log index {0} is beyond any plausible log ({MAX_LOG_INDEX})")]
    Index(u64),
    #[error("node {0} is not a voting member of this cluster")]
    NotAVoter(NodeId),
    #[error("leadership transfer addressed to node {0}, not this node")]
    NotForMe(NodeId),
    #[error("inconsistent message: {0}")]
    Inconsistent(&'static str),
}

impl LocalView {
    fn term(&self, claimed: u64) -> Result<(), Implausible> {
        let too_far = claimed > MAX_TERM || claimed.saturating_sub(self.current_term) > MAX_TERM_AHEAD;
        if too_far { Err(Implausible::Term { claimed, current: self.current_term }) } else { Ok(()) }
    }

    /// A vote whose node is a voter and whose term is plausible.
    fn vote(&self, vote: &Vote) -> Result<(), Implausible> {
        self.term(vote.leader_id().term)?;
        let node = vote.leader_id().node_id;
        // A node that joins has no membership until the leader's first entries reach it: it
        // takes them from any member (the peer authentication vouched for the sender).
        if !self.voters.is_empty() && !self.voters.contains(&node) {
            return Err(Implausible::NotAVoter(node));
        }
        Ok(())
    }

    /// A log id no newer than the vote that carries it, at a plausible index.
    fn log_id(&self, log_id: Option<&LogId>, vote: &Vote) -> Result<(), Implausible> {
        let Some(log_id) = log_id else { return Ok(()) };
        if log_id.index > MAX_LOG_INDEX {
            return Err(Implausible::Index(log_id.index));
        }
        if log_id.leader_id.term > vote.leader_id().term {
            return Err(Implausible::Inconsistent("a log id of a later term than the message's vote"));
        }
        Ok(())
    }

    pub fn vote_request(&self, req: &VoteRequest<TypeConfig>) -> Result<(), Implausible> {
        self.vote(&req.vote)?;
        self.log_id(req.last_log_id.as_ref(), &req.vote)
    }

    pub fn append_entries(&self, req: &AppendEntriesRequest<TypeConfig>) -> Result<(), Implausible> {
        self.vote(&req.vote)?;
        self.log_id(req.prev_log_id.as_ref(), &req.vote)?;
        self.log_id(req.leader_commit.as_ref(), &req.vote)?;
        let mut expected_index = req.prev_log_id.as_ref().map_or(0, |id| id.index + 1);
        let mut previous_term = req.prev_log_id.as_ref().map_or(0, |id| id.leader_id.term);
        for entry in &req.entries {
            self.log_id(Some(&entry.log_id), &req.vote)?;
            if entry.log_id.index != expected_index {
                return Err(Implausible::Inconsistent("entries are not consecutive after prev_log_id"));
            }
            if entry.log_id.leader_id.term < previous_term {
                return Err(Implausible::Inconsistent("entry terms go backwards"));
            }
            if let openraft::EntryPayload::Membership(membership) = &entry.payload
                && membership.voter_ids().next().is_none()
            {
                return Err(Implausible::Inconsistent("a membership entry with no voter"));
            }
            expected_index = entry.log_id.index + 1;
            previous_term = entry.log_id.leader_id.term;
        }
        Ok(())
    }

    /// The snapshot's metadata; its data is checked by decoding it (`state::MachineImage`).
    pub fn snapshot(&self, vote: &Vote, meta: &SnapshotMeta) -> Result<(), Implausible> {
        self.vote(vote)?;
        self.log_id(meta.last_log_id.as_ref(), vote)?;
        if meta.last_membership.membership().voter_ids().next().is_none() {
            return Err(Implausible::Inconsistent("a snapshot whose membership has no voter"));
        }
        if meta.last_membership.log_id().as_ref() > meta.last_log_id.as_ref() {
            return Err(Implausible::Inconsistent("a snapshot's membership is newer than its last log id"));
        }
        Ok(())
    }

    pub fn transfer_leader(&self, req: &TransferLeaderRequest<TypeConfig>) -> Result<(), Implausible> {
        self.vote(req.from_leader())?;
        if *req.to_node_id() != self.me {
            return Err(Implausible::NotForMe(*req.to_node_id()));
        }
        self.log_id(req.last_log_id(), req.from_leader())
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::raft::types::Entry;

    const ME: NodeId = 1;

    fn view() -> LocalView {
        LocalView { me: ME, current_term: 5, voters: BTreeSet::from([1, 2, 3]) }
    }

    fn vote(term: u64, node: NodeId) -> Vote {
        Vote::new(term, node)
    }

    fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
        LogId::new(openraft::alias::CommittedLeaderIdOf::<TypeConfig> { term, node_id: node }, index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: log_id(term, 2, index), payload: EntryPayload::Blank }
    }

    fn append(vote: Vote, prev: Option<LogId>, entries: Vec<Entry>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest { vote, prev_log_id: prev, entries, leader_commit: None }
    }

    #[test]
    fn a_term_far_ahead_or_near_the_wrap_is_refused() {
        let view = view();
        let request = |term| VoteRequest::new(vote(term, 2), None);
        assert!(view.vote_request(&request(6)).is_ok());
        assert!(view.vote_request(&request(5 + MAX_TERM_AHEAD)).is_ok());
        assert!(matches!(view.vote_request(&request(6 + MAX_TERM_AHEAD)), Err(Implausible::Term { .. })));
        assert!(matches!(view.vote_request(&request(u64::MAX)), Err(Implausible::Term { .. })));
        let near_the_top = LocalView { current_term: MAX_TERM, ..view };
        assert!(near_the_top.vote_request(&request(MAX_TERM + 1)).is_err(), "never past MAX_TERM");
    }

    #[test]
    fn only_voters_campaign_or_lead() {
        let view = view();
        assert_eq!(view.vote_request(&VoteRequest::new(vote(6, 99), None)), Err(Implausible::NotAVoter(99)));
        assert_eq!(view.append_entries(&append(vote(6, 99), None, vec![])), Err(Implausible::NotAVoter(99)));
        let joining = LocalView { voters: BTreeSet::new(), ..view };
        assert!(joining.append_entries(&append(vote(6, 99), None, vec![])).is_ok(), "a joining node knows no members");
    }

    #[test]
    fn entries_must_follow_prev_log_id_in_order_and_within_the_vote() {
        let view = view();
        let leader = Vote::new_committed(6, 2);
        let ok = append(leader, Some(log_id(5, 2, 10)), vec![entry(5, 11), entry(6, 12)]);
        assert!(view.append_entries(&ok).is_ok());
        let gap = append(leader, Some(log_id(5, 2, 10)), vec![entry(6, 12)]);
        assert!(matches!(view.append_entries(&gap), Err(Implausible::Inconsistent(_))));
        let future = append(leader, Some(log_id(5, 2, 10)), vec![entry(7, 11)]);
        assert!(matches!(view.append_entries(&future), Err(Implausible::Inconsistent(_))));
        let backwards = append(leader, Some(log_id(6, 2, 10)), vec![entry(5, 11)]);
        assert!(matches!(view.append_entries(&backwards), Err(Implausible::Inconsistent(_))));
        let huge = append(leader, Some(log_id(5, 2, u64::MAX - 1)), vec![]);
        assert!(matches!(view.append_entries(&huge), Err(Implausible::Index(_))));
    }

    #[test]
    fn a_transfer_is_only_for_this_node() {
        let view = view();
        let leader = Vote::new_committed(5, 2);
        assert!(view.transfer_leader(&TransferLeaderRequest::new(leader, ME, None)).is_ok());
        assert_eq!(view.transfer_leader(&TransferLeaderRequest::new(leader, 3, None)), Err(Implausible::NotForMe(3)));
    }
}
