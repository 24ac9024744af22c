//! The Wasm guest runtime: the only part of Nacre that names `wasmtime`.
//!
//! It loads state-machine components (validated, compiled, cached by content hash), and runs
//! their `apply`, `query`, `describe` and `migrate` exports deterministically under fuel and
//! memory limits. It never mutates replicated state itself: `apply` reads through [`KvRead`]
//! and returns each command's writes, which the caller commits in log order.
//!
//! Architecture Invariant: the runtime knows nothing of Raft, HTTP, namespaces' meaning or
//! what naming and config are. A guest failure (trap, fuel, memory, bad host-call argument)
//! is a deterministic [`GuestError`] result, never a [`RuntimeError`].

use serde::Deserialize;
use serde::Serialize;

mod apply;
mod bindings;
mod cache;
mod call;
mod engine;
mod host_state;
mod imports;
pub mod limits;
#[cfg(test)]
mod tests;

pub use call::{GuestStats, guest_stats};
pub use engine::{Runtime, module_id};

/// Fuel the last guest call on this thread consumed: for tests that size a limit from what an
/// operation costs (the sweep's chunks, `duties::leases`).
#[cfg(test)]
pub(crate) fn fuel_of_last_call() -> u64 {
    call::FUEL_OF_LAST_CALL.with(std::cell::Cell::get)
}

/// A module is known by the lowercase hex sha256 of its component bytes.
pub type ModuleId = String;

/// Which half of Nacre a module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ModuleKind {
    Naming,
    Config,
}

/// What a module says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub kind: ModuleKind,
    pub schema_version: u32,
}

/// One committed entry for a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCommand {
    pub index: u64,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// A deterministic refusal or failure of one command; `code` follows HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    pub code: u16,
    pub message: String,
}

/// Something a command changed, for watchers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub topic: String,
    pub key: String,
}

/// A key's new value, or `None` for a delete. Keys are the guest's own (unscoped) keys.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The result of one command: its writes and events are empty when `result` is a failure
/// caused by a trap or a limit (a guest that returns `Err` normally keeps its writes: the
/// guest contract says it validates before it writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub result: Result<Vec<u8>, GuestError>,
    pub writes: Vec<Write>,
    pub events: Vec<Event>,
}

/// Read access to one module keyspace as the caller scoped it (namespace and kind).
pub trait KvRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Keys in `[start, end)` ascending (`end` empty: unbounded), at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// Whether a command may write `key` in this view. A write to a key that is not is
    /// refused like any other bad host call: the command traps and its writes are discarded.
    fn writable(&self, _key: &[u8]) -> bool {
        true
    }
}

/// How much fuel a query or an AP command gets in this attempt (see [`limits::INLINE_FUEL`]).
/// Log commands always get their full budget: their outcomes are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A short first attempt on an async worker. Running out of fuel is not an outcome: the
    /// call fails with [`RuntimeError::OverInlineBudget`] and the caller runs it again, `Full`.
    Inline,
    /// The call's full fuel; running out of it is the outcome.
    Full,
    /// A host duty's query (the lease sweep of a chunk of a namespace): off the async workers,
    /// no client waiting, over more records than any client's read, so
    /// [`limits::DUTY_QUERY_FUEL`]. An AP command run as a duty gets its full fuel.
    Duty,
}

/// A [`Budget::Inline`] attempt ran out of its fuel, or would have had to compile its module
/// first. It had no effects; run it again with [`Budget::Full`] off the async worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverInlineBudget;

/// What a query sees of the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext {
    pub namespace: String,
    pub applied_index: u64,
    pub timestamp_ms: u64,
}

/// The outcome of `migrate`: on failure, no writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutcome {
    pub result: Result<(), String>,
    pub writes: Vec<Write>,
}

impl RuntimeError {
    /// Why an uploaded module was not accepted, said once ("module rejected: ...").
    pub fn rejection(&self) -> String {
        match self {
            RuntimeError::Invalid(_) => self.to_string(),
            other => format!("module rejected: {other}"),
        }
    }
}

/// Host-side failures: the caller's mistake or the machine's, never the guest's.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("module {0} is not loaded")]
    NotLoaded(ModuleId),
    #[error("module rejected: {0}")]
    Invalid(String),
    #[error("module is {size_bytes} bytes, over the limit of {limit_bytes}")]
    TooLarge { size_bytes: usize, limit_bytes: usize },
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The compiled-module cache directory is unusable.
    #[error("module cache: {0}")]
    Cache(String),
    /// Too many queries are running; retry later (HTTP 503).
    #[error("too many concurrent queries (limit {limit})")]
    Busy { limit: usize },
    /// A [`Budget::Inline`] attempt ran out of its fuel; it had no effects.
    #[error("over the inline fuel budget; run again with the full budget")]
    OverInlineBudget,
}

impl RuntimeError {
    /// Whether every replica, given the same module bytes, meets the same error. Only those
    /// may become a command's result; the others (machine trouble) must stop the apply
    /// rather than let replicas diverge.
    pub fn is_deterministic(&self) -> bool {
        match self {
            RuntimeError::NotLoaded(_) | RuntimeError::Invalid(_) | RuntimeError::TooLarge { .. } => true,
            RuntimeError::Engine(_)
            | RuntimeError::Cache(_)
            | RuntimeError::Busy { .. }
            | RuntimeError::OverInlineBudget => false,
        }
    }
}
