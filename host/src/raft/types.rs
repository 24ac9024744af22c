//! The Raft type configuration and what one log entry carries.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::runtime::ModuleKind;
use crate::state::NamespaceChange;

/// A node is known by a stable hash of its advertised `ip:port` (see `config::node_id`).
pub type NodeId = u64;

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

/// One log entry's application payload: what to do, stamped with the leader's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing leader's wall clock. The state machine never lets the time a guest sees
    /// go backwards (a new leader's clock may lag the old one's), see `state::Machine`.
    pub timestamp_ms: u64,
    pub op: Operation,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.op, self.timestamp_ms)
    }
}

/// What an entry asks the replicated state machine to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// A command for the module bound to `(namespace, kind)`; the bytes are the guest's.
    Guest {
        namespace: String,
        kind: ModuleKind,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Store a module's bytes, content-addressed. Idempotent.
    InstallModule {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Bind `(namespace, kind)` to an installed module from this entry's index on.
    Activate { namespace: String, kind: ModuleKind, module_id: ModuleId, by: String },
    /// Install the built-in modules and bind them as the cluster-wide default, if no default
    /// binding exists yet. Proposed by every new leader; only the first one takes effect.
    Bootstrap {
        #[serde(with = "serde_bytes")]
        naming: Vec<u8>,
        #[serde(with = "serde_bytes")]
        config: Vec<u8>,
    },
    /// Create, update or delete a namespace record. Last: entries are postcard, which numbers
    /// variants by position, so new variants go at the end.
    Namespace(NamespaceChange),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Guest { namespace, kind, payload } => {
                write!(f, "guest({namespace}, {kind:?}, {} bytes)", payload.len())
            }
            Operation::InstallModule { bytes } => write!(f, "install({} bytes)", bytes.len()),
            Operation::Activate { namespace, kind, module_id, .. } => {
                write!(f, "activate({namespace}, {kind:?}, {module_id})")
            }
            Operation::Namespace(change) => write!(f, "namespace({change:?})"),
            Operation::Bootstrap { .. } => write!(f, "bootstrap"),
        }
    }
}

/// What applying one entry produced, and which module produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The module that produced `result`; `None` for entries the host applies itself.
    pub module_id: Option<ModuleId>,
    pub result: Result<Vec<u8>, GuestError>,
}

impl ApplyResponse {
    pub fn host(result: Result<Vec<u8>, GuestError>) -> Self {
        Self { module_id: None, result }
    }
}
