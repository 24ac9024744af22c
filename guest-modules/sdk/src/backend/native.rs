//! Natively (`cargo test`) the generated imports cannot run, so the store and the event sink
//! are a thread-local in-memory stand-in with the host's semantics: ordered byte keys, `scan`
//! over `[start, end)` with an empty `end` meaning unbounded, writes refused inside a query,
//! and, when a test asks for it, the keyspace rules of log and AP commands
//! (`nacre_protocol::keyspace`). Each test thread gets its own store; `crate::testing` resets
//! and inspects it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

use nacre_protocol::keyspace;

#[derive(Default)]
pub struct Replica {
    pub store: BTreeMap<Vec<u8>, Vec<u8>>,
    pub events: Vec<(String, String)>,
    /// Every `begin_command` position, in call order.
    pub begun: Vec<u32>,
    /// Every key `delete` was called with, in call order, present or not (the host keeps a
    /// delete of an absent AP key as a tombstone).
    pub deletes: Vec<Vec<u8>>,
    /// What the running call may see and write.
    pub mode: Mode,
}

/// The host's rules for the call in progress. A refused write panics: on the host it fails
/// the call (a trap, or a refused command) and its writes are discarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every key, read and write: a command of a module with no AP keyspace.
    #[default]
    Unrestricted,
    /// A query: every key, read-only.
    Query,
    /// A log (Raft) command: keys under the AP prefix are invisible and may not be written.
    LogCommand,
    /// An AP command: every key is visible, only keys under the AP prefix may be written.
    ApCommand,
}

impl Mode {
    fn sees(self, key: &[u8]) -> bool {
        self != Mode::LogCommand || !keyspace::is_ap(key)
    }

    fn check_write(self, op: &str, key: &[u8]) {
        let refusal = match self {
            Mode::Unrestricted => return,
            Mode::Query => "inside a query",
            Mode::LogCommand if keyspace::is_ap(key) => "under the AP prefix by a log command",
            Mode::ApCommand if !keyspace::is_ap(key) => "outside the AP prefix by an AP command",
            Mode::LogCommand | Mode::ApCommand => return,
        };
        panic!("store.{op} of {:?} {refusal}", String::from_utf8_lossy(key));
    }
}

thread_local! {
    pub static REPLICA: RefCell<Replica> = RefCell::new(Replica::default());
}

fn with<R>(f: impl FnOnce(&mut Replica) -> R) -> R {
    REPLICA.with(|replica| f(&mut replica.borrow_mut()))
}

pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    with(|r| r.store.get(key).filter(|_| r.mode.sees(key)).cloned())
}

pub fn put(key: &[u8], value: &[u8]) {
    with(|r| {
        r.mode.check_write("put", key);
        r.store.insert(key.to_vec(), value.to_vec());
    })
}

pub fn delete(key: &[u8]) {
    with(|r| {
        r.mode.check_write("delete", key);
        r.store.remove(key);
        r.deletes.push(key.to_vec());
    })
}

pub fn scan(start: &[u8], end: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    if !end.is_empty() && start >= end {
        return Vec::new(); // an empty range; BTreeMap::range would panic on it
    }
    let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    with(|r| {
        r.store
            .range::<[u8], _>((Bound::Included(start), upper))
            .filter(|(k, _)| r.mode.sees(k))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

pub fn emit(topic: &str, key: &str) {
    with(|r| r.events.push((topic.to_owned(), key.to_owned())))
}

pub fn begin_command(position: u32) {
    with(|r| r.begun.push(position))
}
