//! The layout of this module's keys (schema 1). The host scopes the store per namespace, so
//! no key holds the tenant.
//!
//! `/` separates the parts: it is not in the dataId/group alphabet `[A-Za-z0-9_.:-]`, so a key
//! parses back unambiguously and `<prefix>/<group>/` is an exact prefix scan of one group.
//!
//! | key                            | value                           | since            |
//! |--------------------------------|---------------------------------|------------------|
//! | `c/<group>/<dataId>`           | [`crate::record::ConfigMeta`] JSON | schema 1      |
//! | `d/<group>/<dataId>`           | the content, raw UTF-8          | schema 1         |
//!
//! Reserved for the later config features (so they need no rewrite of the above):
//! `h/<group>/<dataId>/<id>` history entries and `i/<id>` history by id (`id` = the log
//! index of the change as 16 lowercase hex digits, so byte order is id order), `b/<group>/<dataId>`
//! the beta (gray) variant, `t/<group>/<dataId>/<tag>` tag variants.
//!
//! Metadata and content are apart so that md5 checks (every long-poll) and listings read a
//! small record instead of up to a megabyte of content.

const SEPARATOR: char = '/';
const META_PREFIX: &str = "c";
const CONTENT_PREFIX: &str = "d";

/// Where a config's metadata lives. `data_id` and `group` must be validated first.
pub fn meta(group: &str, data_id: &str) -> Vec<u8> {
    key(META_PREFIX, group, data_id)
}

/// Where a config's content lives. `data_id` and `group` must be validated first.
pub fn content(group: &str, data_id: &str) -> Vec<u8> {
    key(CONTENT_PREFIX, group, data_id)
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
        // Groups that are prefixes of one another do not overlap as scan prefixes.
        assert!(!meta("a-b", "x").starts_with(b"c/a/"));
    }
}
