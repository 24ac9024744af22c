//! The SDK's own plain types: what a guest sees of the WIT types, without the plumbing.

/// Which half of Nacre a module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Naming,
    Config,
}

/// What a module says about itself (`describe`), and what `migrate` is told about the module
/// it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub name: String,
    /// Semantic version of the module, e.g. "1.2.0".
    pub version: String,
    pub kind: ModuleKind,
    /// Version of the layout of the module's keys and values.
    pub schema_version: u32,
}

/// One committed log entry, with what the batch it came in says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Raft log index of the entry: unique and increasing, so usable as a record id.
    pub index: u64,
    /// Leader-stamped time in milliseconds: the only clock a guest ever sees.
    pub timestamp_ms: u64,
    /// The namespace the host scoped the store to.
    pub namespace: String,
    /// The Raft term of the entry; 0 for an AP command (see [`Command::is_ap`]).
    pub term: u64,
}

impl Command {
    /// A command in the default namespace (for native tests).
    pub fn new(index: u64, timestamp_ms: u64) -> Self {
        Self { index, timestamp_ms, namespace: String::new(), term: 1 }
    }

    /// Whether this is an AP command: applied by the node responsible for its partition,
    /// outside the log, able to write the AP keyspace only. Log entries have a term of at
    /// least 1; the host applies AP commands with term 0.
    pub fn is_ap(&self) -> bool {
        self.term == 0
    }
}

/// What a read sees of the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext {
    pub namespace: String,
    /// The replica's applied index when the query started.
    pub applied_index: u64,
    /// Leader time of the last applied entry.
    pub timestamp_ms: u64,
}

impl QueryContext {
    /// A query in the default namespace (for native tests).
    pub fn new(applied_index: u64, timestamp_ms: u64) -> Self {
        Self { namespace: String::new(), applied_index, timestamp_ms }
    }
}

/// A deterministic refusal; `code` follows HTTP and becomes the client's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct GuestError {
    pub code: u16,
    pub message: String,
}

impl GuestError {
    pub const BAD_REQUEST: u16 = 400;
    pub const NOT_FOUND: u16 = 404;
    pub const CONFLICT: u16 = 409;
    pub const INTERNAL: u16 = 500;
    pub const NOT_IMPLEMENTED: u16 = 501;

    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Self::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Self::CONFLICT, message)
    }

    /// The module's own state is not what it expects (e.g. a stored value does not decode).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL, message)
    }

    /// An operation this module knows of but does not implement (yet).
    pub fn not_implemented(op: &str) -> Self {
        Self::new(Self::NOT_IMPLEMENTED, format!("{op} is not implemented yet"))
    }

    /// An operation name this module does not know at all.
    pub fn unknown_op(op: &str) -> Self {
        Self::bad_request(format!("unknown operation '{op}'"))
    }
}
