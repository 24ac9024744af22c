//! Answers to guest queries, kept until the state they were computed from changes.
//!
//! A query's answer is a pure function of the replica at its applied index (the bindings and
//! the entry clock included), this node's AP keyspace and the request bytes: guests see no
//! other clock, no randomness and no I/O. So an answer computed at a [`Stamp`] is the answer
//! to the same request at the same stamp, and a repeated read (a client polling its service
//! list, a config get) costs a lookup instead of a guest call. Nacos keeps a service's
//! answer the same way; here it needs no invalidation rules of its own: any committed entry
//! or AP change moves the stamp, and every older answer is dropped at once.
//!
//! Architecture Invariant: the cache never changes an answer. It keeps only successful
//! answers, computed under the same read locks the stamp was taken under.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;

use crate::scope::Scope;

/// Keys and answers kept, in bytes: a node serving many distinct reads recomputes some of
/// them rather than grow.
pub const MAX_ANSWER_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Answers larger than this are not kept (a big list would push out many small ones).
pub const MAX_CACHED_ANSWER_BYTES: usize = 64 * 1024;

/// The state an answer was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub applied_index: u64,
    /// [`crate::ap::store::ApStore::generation`]: moves with every change to the AP keyspace.
    pub ap_generation: u64,
}

/// The answers valid at one stamp.
#[derive(Default)]
pub struct Answers {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    stamp: Option<Stamp>,
    answers: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

/// The cache key of a request: the namespace and kind it is asked of, and its bytes.
pub fn key(scope: Scope<'_>, request: &[u8]) -> Vec<u8> {
    let Scope { namespace, kind } = scope;
    let mut key = Vec::with_capacity(2 + namespace.len() + request.len());
    key.push(kind as u8);
    key.extend_from_slice(namespace.as_bytes());
    // Namespaces are text, so no namespace holds a 0 byte: the key splits one way only.
    key.push(0);
    key.extend_from_slice(request);
    key
}

impl Answers {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding this lock leaves at worst a partly filled map of true answers.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to `key` computed at `stamp`, if one is kept.
    pub fn get(&self, stamp: Stamp, key: &[u8]) -> Option<Vec<u8>> {
        let kept = self.kept();
        if kept.stamp != Some(stamp) {
            return None;
        }
        kept.answers.get(key).cloned()
    }

    /// Keep `answer` to `key`, computed at `stamp`. A newer stamp drops every kept answer; an
    /// answer computed at an older one (a slow query that began before an apply) is not kept.
    pub fn put(&self, stamp: Stamp, key: Vec<u8>, answer: &[u8]) {
        if answer.len() > MAX_CACHED_ANSWER_BYTES {
            return;
        }
        let mut kept = self.kept();
        match kept.stamp {
            Some(current) if current == stamp => {}
            // Both parts only grow, so a stamp that is not newer in both is older in one.
            Some(current)
                if !(stamp.applied_index >= current.applied_index && stamp.ap_generation >= current.ap_generation) =>
            {
                return;
            }
            _ => {
                kept.stamp = Some(stamp);
                kept.answers.clear();
                kept.bytes = 0;
            }
        }
        let size = key.len() + answer.len();
        if kept.bytes + size > MAX_ANSWER_CACHE_BYTES {
            return;
        }
        if let Some(old) = kept.answers.insert(key.clone(), answer.to_vec()) {
            kept.bytes -= key.len() + old.len();
        }
        kept.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ModuleKind;

    const AT_1: Stamp = Stamp { applied_index: 1, ap_generation: 0 };
    const AT_2: Stamp = Stamp { applied_index: 2, ap_generation: 0 };
    const AT_2_AP_1: Stamp = Stamp { applied_index: 2, ap_generation: 1 };

    #[test]
    fn an_answer_is_served_only_at_the_stamp_it_was_computed_at() {
        let answers = Answers::default();
        let list = key(Scope::new("public", ModuleKind::Naming), b"list a");
        answers.put(AT_1, list.clone(), b"[a]");
        assert_eq!(answers.get(AT_1, &list).as_deref(), Some(&b"[a]"[..]));
        assert_eq!(answers.get(AT_2, &list), None, "an entry was applied since");
        assert_eq!(answers.get(AT_1, &key(Scope::new("public", ModuleKind::Config), b"list a")), None, "another kind");
        assert_eq!(
            answers.get(AT_1, &key(Scope::new("dev", ModuleKind::Naming), b"list a")),
            None,
            "another namespace"
        );

        // A newer stamp drops the older answers; an answer from an older stamp is not kept.
        answers.put(AT_2_AP_1, list.clone(), b"[a, b]");
        answers.put(AT_2, key(Scope::new("public", ModuleKind::Naming), b"list b"), b"[b]");
        assert_eq!(answers.get(AT_2_AP_1, &list).as_deref(), Some(&b"[a, b]"[..]));
        assert_eq!(answers.get(AT_2_AP_1, &key(Scope::new("public", ModuleKind::Naming), b"list b")), None);
        assert_eq!(answers.get(AT_1, &list), None);
    }

    #[test]
    fn the_cache_stays_within_its_byte_limit() {
        let answers = Answers::default();
        assert!(answers.get(AT_1, b"big").is_none());
        answers.put(AT_1, b"big".to_vec(), &vec![0; MAX_CACHED_ANSWER_BYTES + 1]);
        assert_eq!(answers.get(AT_1, b"big"), None, "too large to keep");
        let answer = vec![7u8; MAX_CACHED_ANSWER_BYTES];
        let fits = MAX_ANSWER_CACHE_BYTES / (MAX_CACHED_ANSWER_BYTES + 8);
        for i in 0..fits + 4 {
            answers.put(AT_1, format!("key {i:03}").into_bytes(), &answer);
        }
        let kept = (0..fits + 4).filter(|i| answers.get(AT_1, format!("key {i:03}").as_bytes()).is_some()).count();
        assert_eq!(kept, fits);
        assert!(answers.kept().bytes <= MAX_ANSWER_CACHE_BYTES);
        // The same key again replaces its answer without counting it twice.
        answers.put(AT_1, b"key 000".to_vec(), b"small");
        assert_eq!(answers.get(AT_1, b"key 000").as_deref(), Some(&b"small"[..]));
        assert_eq!(answers.kept().bytes, (fits - 1) * (MAX_CACHED_ANSWER_BYTES + 7) + 7 + 5);
    }
}
