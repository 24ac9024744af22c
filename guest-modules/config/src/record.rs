//! The stored records (JSON, keys in [`crate::keys`]): a config's metadata, its beta
//! variant's, and history entries.

use serde::{Deserialize, Serialize};

/// Field names are part of schema 1: renaming one is a schema change. Fields added later
/// must have a default, so that records written by this version still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigMeta {
    /// The log index of the command that created the config: unique, deterministic.
    pub id: u64,
    /// Lowercase hex MD5 of the UTF-8 content.
    pub md5: String,
    /// One of [`CONFIG_TYPES`].
    #[serde(rename = "type")]
    pub config_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_tags: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_ip: String,
    /// Leader time of the command that created the config.
    pub created_ms: u64,
    /// Leader time of the last publish.
    pub modified_ms: u64,
}

/// A beta (gray) variant: served instead of the stable content to `beta_ips` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BetaMeta {
    pub beta_ips: Vec<String>,
    pub md5: String,
    #[serde(rename = "type")]
    pub config_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_ip: String,
    /// Log index of the beta publish.
    pub id: u64,
    pub modified_ms: u64,
}

impl BetaMeta {
    /// Whether a client at `ip` is one of the beta's audience.
    pub fn includes(&self, ip: &str) -> bool {
        !ip.is_empty() && self.beta_ips.iter().any(|beta| beta == ip)
    }
}

/// What a history entry records, as Nacos's `his_config_info.op_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryOp {
    /// A config was created; the entry holds the new content.
    #[serde(rename = "I")]
    Insert,
    /// A config was replaced; the entry holds the content it had *before* (as Nacos records
    /// it), so rolling back to the entry undoes that update.
    #[serde(rename = "U")]
    Update,
    /// A config was deleted; the entry holds the deleted content.
    #[serde(rename = "D")]
    Delete,
}

impl HistoryOp {
    /// Nacos's JSON shows `op_type` as stored in a `char(10)` column, space-padded; clients
    /// and the console compare it after trimming, or against these exact strings.
    pub fn nacos(self) -> &'static str {
        match self {
            HistoryOp::Insert => "I  ",
            HistoryOp::Update => "U  ",
            HistoryOp::Delete => "D  ",
        }
    }
}

/// One change of one config (key `i/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The log index of the change: unique, increasing.
    pub id: u64,
    pub data_id: String,
    pub group: String,
    pub op: HistoryOp,
    pub content: String,
    pub md5: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src_user: String,
    /// Leader time of the change.
    pub time_ms: u64,
}

/// The content types Nacos knows (`ConfigType`); anything else is stored as the default.
pub const CONFIG_TYPES: &[&str] = &["text", "json", "xml", "yaml", "html", "properties", "toml"];
pub const DEFAULT_CONFIG_TYPE: &str = "text";

/// The `type` a publish asked for, or `text` when it is absent or unknown (as Nacos does).
pub fn config_type(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|wanted| CONFIG_TYPES.iter().find(|known| known.eq_ignore_ascii_case(wanted.trim())))
        .copied()
        .unwrap_or(DEFAULT_CONFIG_TYPE)
}

/// The HTTP `Content-Type` Nacos serves a config of this type with.
pub fn content_type(config_type: &str) -> &'static str {
    match config_type {
        "json" => "application/json;charset=UTF-8",
        "xml" => "application/xml;charset=UTF-8",
        "html" => "text/html;charset=UTF-8",
        _ => "text/plain;charset=UTF-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_or_missing_types_become_text() {
        assert_eq!(config_type(Some("yaml")), "yaml");
        assert_eq!(config_type(Some("JSON")), "json");
        assert_eq!(config_type(Some("exe")), "text");
        assert_eq!(config_type(None), "text");
    }

    #[test]
    fn empty_optional_fields_are_not_stored() {
        let meta = ConfigMeta {
            id: 3,
            md5: "m".into(),
            config_type: "text".into(),
            app_name: String::new(),
            desc: String::new(),
            config_tags: String::new(),
            src_user: String::new(),
            src_ip: String::new(),
            created_ms: 1,
            modified_ms: 2,
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(json, r#"{"id":3,"md5":"m","type":"text","created_ms":1,"modified_ms":2}"#);
        assert_eq!(serde_json::from_str::<ConfigMeta>(&json).unwrap(), meta);
    }
}
