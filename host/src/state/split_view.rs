//! One guest keyspace seen as its two halves (see `nacre_protocol::keyspace`): keys under the
//! AP prefix come from the node's AP store, every other key from the replicated (CP) map.
//!
//! A log command is given an empty AP half ([`NoKeys`]): the AP keyspace differs between
//! replicas, so a command whose result must be the same on every replica cannot read it.

use nacre_protocol::keyspace;

use crate::runtime::KvRead;

/// The first key after the AP keyspace: its prefix with the last byte incremented.
fn ap_end() -> Vec<u8> {
    let mut end = keyspace::AP_PREFIX.to_vec();
    let last = end.last_mut().expect("the AP prefix is not empty");
    *last += 1;
    end
}

pub struct SplitView<'a> {
    cp: &'a dyn KvRead,
    ap: &'a dyn KvRead,
    /// Which half a command may write: the AP half for an AP command, the CP half otherwise.
    writes_ap: bool,
}

impl<'a> SplitView<'a> {
    /// What a log command sees: the CP half only; it may write nothing in the AP keyspace.
    pub fn for_log_command(cp: &'a dyn KvRead) -> Self {
        SplitView { cp, ap: &NoKeys, writes_ap: false }
    }

    /// What an AP command sees: both halves; it may write the AP keyspace only.
    pub fn for_ap_command(cp: &'a dyn KvRead, ap: &'a dyn KvRead) -> Self {
        SplitView { cp, ap, writes_ap: true }
    }

    /// What a query sees: both halves (a query writes nothing).
    pub fn for_query(cp: &'a dyn KvRead, ap: &'a dyn KvRead) -> Self {
        SplitView { cp, ap, writes_ap: false }
    }
}

/// A keyspace with nothing in it: the AP half a log command sees.
pub(crate) struct NoKeys;

impl KvRead for NoKeys {
    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn scan(&self, _start: &[u8], _end: &[u8], _limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
}

impl KvRead for SplitView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if keyspace::is_ap(key) { self.ap.get(key) } else { self.cp.get(key) }
    }

    fn writable(&self, key: &[u8]) -> bool {
        keyspace::is_ap(key) == self.writes_ap
    }

    /// The range cut into the part below the AP keyspace, the AP keyspace and the part above
    /// it, each read from its own half, concatenated in key order.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (ap_start, ap_end) = (keyspace::AP_PREFIX.to_vec(), ap_end());
        let parts: [(&dyn KvRead, &[u8], &[u8]); 3] =
            [(self.cp, b"", &ap_start), (self.ap, &ap_start, &ap_end), (self.cp, &ap_end, b"")];
        let mut rows = Vec::new();
        for (half, lo, hi) in parts {
            if rows.len() >= limit {
                break;
            }
            if let Some((from, to)) = intersect(start, end, lo, hi) {
                rows.extend(half.scan(&from, &to, limit - rows.len()));
            }
        }
        rows
    }
}

/// `[start, end) ∩ [lo, hi)`, where an empty upper bound means "unbounded"; `None` if empty.
fn intersect(start: &[u8], end: &[u8], lo: &[u8], hi: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let from = start.max(lo);
    let to = match (end.is_empty(), hi.is_empty()) {
        (true, _) => hi,
        (false, true) => end,
        (false, false) => end.min(hi),
    };
    (to.is_empty() || from < to).then(|| (from.to_vec(), to.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Kv;

    fn kv(keys: &[&str]) -> Kv {
        Kv::from_pairs(keys.iter().map(|k| (k.as_bytes().to_vec(), b"v".to_vec())))
    }

    fn keys(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
        rows.into_iter().map(|(k, _)| String::from_utf8(k).unwrap()).collect()
    }

    #[test]
    fn each_half_answers_for_its_own_keys_only() {
        // Stray keys in the wrong half (an `e/` key in the CP map) are never seen.
        let (cp, ap) = (kv(&["a", "e/stale", "p/1", "s/x"]), kv(&["e/1", "e/2", "p/wrong"]));
        let (cp, ap) = (cp.scoped(Vec::new()), ap.scoped(Vec::new()));
        let view = SplitView::for_query(&cp, &ap);
        assert_eq!(keys(view.scan(b"", b"", 100)), ["a", "e/1", "e/2", "p/1", "s/x"]);
        assert_eq!(keys(view.scan(b"e/", b"e0", 100)), ["e/1", "e/2"]);
        assert_eq!(keys(view.scan(b"b", b"p/2", 2)), ["e/1", "e/2"]);
        assert_eq!(keys(view.scan(b"e/2", b"", 2)), ["e/2", "p/1"]);
        assert_eq!(view.get(b"e/stale"), None);
        assert_eq!(view.get(b"p/wrong"), None);
        assert_eq!(view.get(b"e/1"), Some(b"v".to_vec()));
        let log_view = SplitView::for_log_command(&cp);
        assert_eq!(keys(log_view.scan(b"", b"", 100)), ["a", "p/1", "s/x"]);
        assert!(log_view.writable(b"p/1") && !log_view.writable(b"e/1"));
        let ap_view = SplitView::for_ap_command(&cp, &ap);
        assert!(ap_view.writable(b"e/1") && !ap_view.writable(b"s/x"));
    }
}
