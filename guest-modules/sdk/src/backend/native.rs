//! Natively (`cargo test`) the generated imports cannot run, so the store and the event sink
//! are a thread-local in-memory stand-in with the host's semantics: ordered byte keys, `scan`
//! over `[start, end)` with an empty `end` meaning unbounded, and writes refused inside a
//! query. Each test thread gets its own store; `crate::testing` resets and inspects it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Default)]
pub struct Replica {
    pub store: BTreeMap<Vec<u8>, Vec<u8>>,
    pub events: Vec<(String, String)>,
    /// Every `begin_command` position, in call order.
    pub begun: Vec<u32>,
    /// Set while a query runs: the host traps writes there, so this panics.
    pub read_only: bool,
}

thread_local! {
    pub static REPLICA: RefCell<Replica> = RefCell::new(Replica::default());
}

fn with<R>(f: impl FnOnce(&mut Replica) -> R) -> R {
    REPLICA.with(|replica| f(&mut replica.borrow_mut()))
}

pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    with(|r| r.store.get(key).cloned())
}

pub fn put(key: &[u8], value: &[u8]) {
    with(|r| {
        assert!(!r.read_only, "store.put inside a query");
        r.store.insert(key.to_vec(), value.to_vec());
    })
}

pub fn delete(key: &[u8]) {
    with(|r| {
        assert!(!r.read_only, "store.delete inside a query");
        r.store.remove(key);
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
