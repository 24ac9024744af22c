//! Replication: the only part of Nacre that names `openraft`.
//!
//! - [`types`]: the Raft type configuration and the log entry envelope ([`Proposal`]).
//! - [`log_store`]: the durable log (redb), fsynced once per append batch before it is acknowledged.
//! - [`state_machine`]: openraft's state-machine trait over [`crate::state::Machine`], plus snapshots.
//! - [`network`]: the peer-port RPC client; [`peer_server`]: its server side, which refuses
//!   implausible messages ([`peer_guard`]) before openraft sees them.
//! - [`membership`]: which step a membership change takes next, or why it is refused (no I/O);
//!   [`reconfigure`]: the leader making those steps through openraft's joint consensus.
//! - [`backup`]: a backup of the state at one index, and a new cluster's members restored from it.
//! - [`snapshot_policy`]: when to snapshot (entry count, and the log's growth against the state's size).
//!
//! Architecture Invariant: this layer knows how to order and persist entries, not what they
//! mean. It hands every committed entry to `state::Machine` and never looks inside a guest
//! command.

pub mod backup;
pub mod checkpoint;
pub mod counters;
pub mod dry_run;
pub mod log;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod peer_guard;
pub mod peer_server;
pub mod reconfigure;
pub mod snapshot_policy;
pub mod state_machine;
pub mod types;

pub use types::*;
