//! The Raft type configuration and what one log entry carries.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

pub use crate::state::ApplyResponse;
pub use crate::state::Operation;
pub use crate::state::Proposal;

pub use crate::members::NodeId;

/// How to reach a member: its client API address and its Raft peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub api_addr: String,
    pub raft_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (raft {})", self.api_addr, self.raft_addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = Member,
);

pub type Raft = openraft::Raft<TypeConfig, state_machine_alias::StateMachine>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;

mod state_machine_alias {
    pub use super::super::state_machine::StateMachine;
}
