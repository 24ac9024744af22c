//! Which members are live, and which one is responsible for an AP partition.
//!
//! Liveness is this node's own view: a peer is live while it answered a ping within
//! [`LIVENESS_TIMEOUT_MS`]. Views may differ for a moment between nodes (then two nodes may
//! both apply commands for one partition; the versioned merge reconciles them). Responsibility
//! is rendezvous hashing over the live members: each partition goes to the member with the
//! highest hash of (member, partition), so a member leaving or returning moves only the
//! partitions it wins, and every node with the same view picks the same member.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::partition::PartitionId;

/// A node is known by a stable hash of its advertised client address ([`node_id_of`]).
pub type NodeId = u64;

/// A node's id from its client address (`ip:port` or `host:port`): every node computes the same
/// id for the same member without coordination, whatever the order it learned of it.
pub fn node_id_of(api_addr: &str) -> NodeId {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    api_addr.bytes().fold(OFFSET_BASIS, |hash, b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// How often each node pings each peer.
pub const PING_INTERVAL_MS: u64 = 500;
/// A peer silent this long is no longer live: its partitions move to the others.
pub const LIVENESS_TIMEOUT_MS: u64 = 2_000;

/// How many of `voters` make a majority.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

#[derive(Debug)]
pub struct Members {
    me: NodeId,
    state: Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    /// Peer id → peer address: every member of the cluster but this node, voters and learners,
    /// as the log's membership says (`set_membership`).
    peers: BTreeMap<NodeId, String>,
    /// The voting members (this node among them when it votes): a majority of these is what a
    /// write needs.
    voters: BTreeSet<NodeId>,
    /// Last successful ping of each peer (local ms).
    last_seen_ms: BTreeMap<NodeId, u64>,
    /// The live set as last computed, and since when it has been that.
    live: Vec<NodeId>,
    since_ms: u64,
}

impl Members {
    /// `peers` are the other members and `voters` the voting ones, as this node knows them at
    /// start; the log's membership replaces them as it changes.
    pub fn new(me: NodeId, peers: BTreeMap<NodeId, String>, voters: BTreeSet<NodeId>, now_ms: u64) -> Members {
        let state = LiveState { peers, voters, last_seen_ms: BTreeMap::new(), live: vec![me], since_ms: now_ms };
        Members { me, state: Mutex::new(state) }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Every other member and its peer address.
    pub fn peers(&self) -> BTreeMap<NodeId, String> {
        self.lock().peers.clone()
    }

    pub fn addr(&self, id: NodeId) -> Option<String> {
        self.lock().peers.get(&id).cloned()
    }

    /// The membership changed (a member joined, left, or was promoted): peers no longer listed
    /// leave the live view at once. Returns whether anything changed.
    pub fn set_membership(&self, peers: BTreeMap<NodeId, String>, voters: BTreeSet<NodeId>, now_ms: u64) -> bool {
        let mut state = self.lock();
        if state.peers == peers && state.voters == voters {
            return false;
        }
        tracing::info!(peers = ?peers.keys().collect::<Vec<_>>(), voters = ?voters, "membership changed");
        state.last_seen_ms.retain(|id, _| peers.contains_key(id));
        state.peers = peers;
        state.voters = voters;
        drop(state);
        self.refresh(now_ms);
        true
    }

    /// How many voters this node reaches (itself included when it votes), and how many there
    /// are: what a write's majority check needs.
    pub fn reachable_voters(&self) -> (usize, usize) {
        let state = self.lock();
        let reachable = state.live.iter().filter(|id| state.voters.contains(id)).count();
        (reachable, state.voters.len())
    }

    /// Whether this node's view holds a majority of the voters (or there are none yet: a
    /// joining node waits for its leader instead).
    pub fn sees_majority(&self) -> bool {
        let (reachable, voters) = self.reachable_voters();
        voters == 0 || reachable >= majority(voters)
    }

    /// A peer answered now.
    pub fn seen(&self, peer: NodeId, now_ms: u64) {
        let mut state = self.lock();
        if !state.peers.contains_key(&peer) {
            return;
        }
        state.last_seen_ms.insert(peer, now_ms);
        drop(state);
        self.refresh(now_ms);
    }

    /// A call to a peer failed to connect: take it out of the view now rather than after
    /// the timeout, so that its partitions move at once.
    pub fn lost(&self, peer: NodeId, now_ms: u64) {
        self.lock().last_seen_ms.remove(&peer);
        self.refresh(now_ms);
    }

    /// Recompute the live set; returns whether it changed.
    pub fn refresh(&self, now_ms: u64) -> bool {
        let mut state = self.lock();
        let mut live: Vec<NodeId> = state
            .last_seen_ms
            .iter()
            .filter(|(id, seen)| now_ms.saturating_sub(**seen) <= LIVENESS_TIMEOUT_MS && state.peers.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        live.push(self.me);
        live.sort_unstable();
        if live == state.live {
            return false;
        }
        tracing::info!(live = ?live, was = ?state.live, "AP membership view changed; partitions move");
        state.live = live;
        state.since_ms = now_ms;
        true
    }

    /// The live members (this node included), in id order.
    pub fn live(&self) -> Vec<NodeId> {
        self.lock().live.clone()
    }

    /// When the live set last changed: every lease this node tracks is granted a full
    /// timeout from then, since it may have just become responsible for it.
    pub fn view_since_ms(&self) -> u64 {
        self.lock().since_ms
    }

    /// The member responsible for `id` in this node's current view.
    pub fn responsible(&self, id: &PartitionId) -> NodeId {
        responsible_among(&self.live(), id)
    }

    pub fn is_responsible(&self, id: &PartitionId) -> bool {
        self.responsible(id) == self.me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().expect("members lock is never poisoned")
    }
}

/// Rendezvous hashing: the member with the highest `hash(member, partition)`.
pub fn responsible_among(live: &[NodeId], id: &PartitionId) -> NodeId {
    *live.iter().max_by_key(|member| score(**member, id)).expect("the live set always holds this node")
}

fn score(member: NodeId, id: &PartitionId) -> u64 {
    let kind = crate::state::kind_tag(id.kind).as_bytes();
    crate::partition::stable_hash(&[&member.to_be_bytes(), id.namespace.as_bytes(), kind, id.partition.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ModuleKind;

    fn partition(i: usize) -> PartitionId {
        PartitionId { namespace: "public".into(), kind: ModuleKind::Naming, partition: format!("G@@s{i}") }
    }

    #[test]
    fn responsibility_spreads_and_moves_only_what_the_lost_member_held() {
        let all = [1, 2, 3];
        let before: Vec<NodeId> = (0..300).map(|i| responsible_among(&all, &partition(i))).collect();
        for member in all {
            let held = before.iter().filter(|m| **m == member).count();
            assert!((60..=140).contains(&held), "member {member} holds {held} of 300");
        }
        let after: Vec<NodeId> = (0..300).map(|i| responsible_among(&[1, 3], &partition(i))).collect();
        for (was, now) in before.iter().zip(&after) {
            if *was != 2 {
                assert_eq!(was, now, "a partition of a surviving member moved");
            }
        }
    }

    /// The AP path's fallback (`ap::Ap::apply`): a responsible member that cannot be reached
    /// is taken out of the view and the next one answers, ending with this node itself, so an
    /// AP write succeeds while any node serves it.
    #[test]
    fn an_unreachable_responsible_member_hands_its_partitions_to_the_next_and_finally_to_me() {
        let members = Members::new(1, BTreeMap::from([(2, "b".into()), (3, "c".into())]), BTreeSet::from([1, 2, 3]), 0);
        members.seen(2, 10);
        members.seen(3, 10);
        let owned_by_2 = (0..100).map(partition).find(|p| members.responsible(p) == 2).expect("2 owns some");
        members.lost(2, 20);
        let next = members.responsible(&owned_by_2);
        assert_ne!(next, 2);
        assert_eq!(next, responsible_among(&[1, 3], &owned_by_2), "the same rule over the remaining view");
        members.lost(3, 30);
        assert!(members.is_responsible(&owned_by_2), "with every peer gone, this node serves it");
        members.seen(2, 40);
        assert_eq!(members.responsible(&owned_by_2), responsible_among(&[1, 2], &owned_by_2), "a return moves it back");
    }

    #[test]
    fn the_view_follows_pings_and_records_when_it_changed() {
        let members = Members::new(1, BTreeMap::from([(2, "b".into()), (3, "c".into())]), BTreeSet::from([1, 2, 3]), 0);
        assert_eq!(members.live(), [1]);
        members.seen(2, 100);
        members.seen(3, 100);
        assert_eq!((members.live(), members.view_since_ms()), (vec![1, 2, 3], 100));
        assert!(!members.refresh(100 + LIVENESS_TIMEOUT_MS), "still within the timeout");
        members.seen(2, 2_000);
        assert!(members.refresh(100 + LIVENESS_TIMEOUT_MS + 1));
        assert_eq!((members.live(), members.view_since_ms()), (vec![1, 2], 100 + LIVENESS_TIMEOUT_MS + 1));
        members.lost(2, 2_200);
        assert_eq!(members.live(), [1]);
    }

    #[test]
    fn the_view_follows_the_membership_and_counts_voters_only() {
        let members = Members::new(1, BTreeMap::from([(2, "b".into())]), BTreeSet::from([1, 2]), 0);
        members.seen(2, 10);
        members.seen(4, 10);
        assert_eq!(members.live(), [1, 2], "a ping from a non-member does not make it live");
        assert_eq!(members.reachable_voters(), (2, 2));
        let grown = BTreeMap::from([(2, "b".into()), (3, "c".into()), (4, "d".into())]);
        assert!(members.set_membership(grown.clone(), BTreeSet::from([1, 2, 3]), 20));
        assert!(!members.set_membership(grown, BTreeSet::from([1, 2, 3]), 20), "the same membership again");
        members.seen(4, 30);
        assert_eq!(members.live(), [1, 2, 4]);
        assert_eq!(members.reachable_voters(), (2, 3), "learner 4 is live but does not vote");
        assert!(members.set_membership(BTreeMap::from([(4, "d".into())]), BTreeSet::from([1, 4]), 40));
        assert_eq!(members.live(), [1, 4], "removed members leave the view at once");
        assert_eq!(members.addr(2), None);
    }
}
