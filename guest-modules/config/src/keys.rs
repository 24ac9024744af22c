//! The layout of this module's keys (schema 1). The host scopes the store per namespace, so
//! no key holds the tenant.
//!
//! `/` separates the parts: it is not in the dataId/group alphabet `[A-Za-z0-9_.:-]`, so a key
//! parses back unambiguously and `<prefix>/<group>/` is an exact prefix scan of one group.
//!
//! | key                               | value                                  |
//! |-----------------------------------|----------------------------------------|
//! | `c/<group>/<dataId>`              | [`crate::record::ConfigMeta`] JSON     |
//! | `d/<group>/<dataId>`              | the content, raw UTF-8                 |
//! | `b/<group>/<dataId>`              | [`crate::record::BetaMeta`] JSON       |
//! | `t/<group>/<dataId>`              | the beta content, raw UTF-8            |
//! | `i/<id>`                          | [`crate::record::HistoryEntry`] JSON   |
//! | `h/<group>/<dataId>/<!id>`        | empty: the config's history index      |
//!
//! `<id>` is a history id (the log index of the change) as 16 lowercase hex digits, so byte
//! order is id order, which is also time order (the leader clock never goes back along the
//! log): retention pruning walks `i/` from the start. `<!id>` is `u64::MAX - id` the same way,
//! so a forward scan of one config's index lists its history newest first, as Nacos pages it.
//!
//! No key starts with `e/`: that prefix is the host's AP keyspace (`keyspace::AP_PREFIX`),
//! which log commands cannot write, and every config command is a log command.
//!
//! Metadata and content are apart so that md5 checks (every long-poll) and listings read a
//! small record instead of up to a megabyte of content.

const SEPARATOR: char = '/';
const META_PREFIX: &str = "c";
const CONTENT_PREFIX: &str = "d";
const BETA_META_PREFIX: &str = "b";
const BETA_CONTENT_PREFIX: &str = "t";
const HISTORY_PREFIX: &str = "i";
const HISTORY_INDEX_PREFIX: &str = "h";

/// Where a config's metadata lives. `data_id` and `group` must be validated first.
pub fn meta(group: &str, data_id: &str) -> Vec<u8> {
    key(META_PREFIX, group, data_id)
}

/// The prefix of every config's metadata: a scan of it lists the namespace's configs.
pub fn all_meta() -> Vec<u8> {
    format!("{META_PREFIX}{SEPARATOR}").into_bytes()
}

/// `(group, dataId)` of a metadata key found by scanning [`all_meta`].
pub fn parse_meta(key: &[u8]) -> Option<(&str, &str)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(META_PREFIX)?.strip_prefix(SEPARATOR)?;
    rest.split_once(SEPARATOR)
}

/// Where a config's content lives. `data_id` and `group` must be validated first.
pub fn content(group: &str, data_id: &str) -> Vec<u8> {
    key(CONTENT_PREFIX, group, data_id)
}

pub fn beta_meta(group: &str, data_id: &str) -> Vec<u8> {
    key(BETA_META_PREFIX, group, data_id)
}

pub fn beta_content(group: &str, data_id: &str) -> Vec<u8> {
    key(BETA_CONTENT_PREFIX, group, data_id)
}

/// A history entry by id.
pub fn history(id: u64) -> Vec<u8> {
    format!("{HISTORY_PREFIX}{SEPARATOR}{id:016x}").into_bytes()
}

/// The prefix of every history entry, oldest first.
pub fn all_history() -> Vec<u8> {
    format!("{HISTORY_PREFIX}{SEPARATOR}").into_bytes()
}

/// One config's history index entry for `id`.
pub fn history_index(group: &str, data_id: &str, id: u64) -> Vec<u8> {
    let mut key = history_index_prefix(group, data_id);
    key.extend_from_slice(format!("{:016x}", u64::MAX - id).as_bytes());
    key
}

/// The prefix of one config's history index (newest first).
pub fn history_index_prefix(group: &str, data_id: &str) -> Vec<u8> {
    let mut key = key(HISTORY_INDEX_PREFIX, group, data_id);
    key.push(SEPARATOR as u8);
    key
}

/// The history id of an index key found under [`history_index_prefix`].
pub fn parse_history_index(key: &[u8]) -> Option<u64> {
    let inverted = std::str::from_utf8(key).ok()?.rsplit(SEPARATOR).next()?;
    u64::from_str_radix(inverted, 16).ok().map(|inverted| u64::MAX - inverted)
}

fn key(prefix: &str, group: &str, data_id: &str) -> Vec<u8> {
    format!("{prefix}{SEPARATOR}{group}{SEPARATOR}{data_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_group_and_data_id() {
        assert_eq!(meta("DEFAULT_GROUP", "app.yaml"), b"c/DEFAULT_GROUP/app.yaml");
        assert_eq!(content("g", "d"), b"d/g/d");
        assert_eq!(parse_meta(&meta("g", "a.b:c")), Some(("g", "a.b:c")));
        // Groups that are prefixes of one another do not overlap as scan prefixes.
        assert!(!meta("a-b", "x").starts_with(b"c/a/"));
        assert!(!history_index("g", "a.b", 1).starts_with(&history_index_prefix("g", "a")));
    }

    #[test]
    fn no_key_is_in_the_ap_keyspace() {
        let keys = [meta("g", "d"), content("g", "d"), beta_meta("g", "d"), beta_content("g", "d"), history(1)];
        for key in keys.iter().chain([&history_index("g", "d", 1)]) {
            assert!(!nacre_protocol::keyspace::is_ap(key), "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn history_ids_sort_by_id_and_the_index_newest_first() {
        assert!(history(9) < history(10) && history(0xff) < history(0x100));
        assert!(history_index("g", "d", 10) < history_index("g", "d", 9));
        assert_eq!(parse_history_index(&history_index("g", "d", 42)), Some(42));
    }
}
