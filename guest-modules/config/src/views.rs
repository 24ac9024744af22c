//! The JSON shapes Nacos answers with (`ConfigInfo`, `ConfigAllInfo`, `ConfigHistoryInfo`,
//! `ConfigInfo4Beta`, `RestResult`), built from the stored records.

use nacre_guest_sdk::GuestReply;
use serde_json::{Value, json};

use crate::group_key::tenant_of;
use crate::record::{BetaMeta, ConfigMeta, HistoryEntry};

/// A JSON reply.
pub fn json(value: &Value) -> GuestReply {
    GuestReply::text(value.to_string()).header("Content-Type", "application/json;charset=UTF-8")
}

/// Nacos's `RestResult`: `{"code","message","data"}`.
pub fn rest_result(message: &str, data: Value) -> GuestReply {
    json(&json!({ "code": 200, "message": message, "data": data }))
}

/// A search result item (`ConfigInfo`). Ids are strings, as Nacos serializes its longs.
pub fn config_info(namespace: &str, group: &str, data_id: &str, meta: &ConfigMeta, content: &str) -> Value {
    json!({
        "id": meta.id.to_string(),
        "dataId": data_id,
        "group": group,
        "content": content,
        "md5": meta.md5,
        "tenant": tenant_of(namespace),
        "appName": meta.app_name,
        "type": meta.config_type,
    })
}

/// `GET ?show=all` (`ConfigAllInfo`).
pub fn config_all_info(namespace: &str, group: &str, data_id: &str, meta: &ConfigMeta, content: &str) -> Value {
    let mut info = config_info(namespace, group, data_id, meta, content);
    let extra = json!({
        "createTime": meta.created_ms,
        "modifyTime": meta.modified_ms,
        "createUser": meta.src_user,
        "createIp": meta.src_ip,
        "desc": meta.desc,
        "use": null,
        "effect": null,
        "schema": null,
        "configTags": if meta.config_tags.is_empty() { Value::Null } else { meta.config_tags.clone().into() },
    });
    if let (Value::Object(info), Value::Object(extra)) = (&mut info, extra) {
        info.extend(extra);
    }
    info
}

/// A history entry (`ConfigHistoryInfo`); times are leader milliseconds.
pub fn history_info(namespace: &str, entry: &HistoryEntry) -> Value {
    json!({
        "id": entry.id.to_string(),
        "lastId": -1,
        "dataId": entry.data_id,
        "group": entry.group,
        "tenant": tenant_of(namespace),
        "appName": entry.app_name,
        "md5": entry.md5,
        "content": entry.content,
        "srcIp": entry.src_ip,
        "srcUser": entry.src_user,
        "opType": entry.op.nacos(),
        "createdTime": entry.time_ms,
        "lastModifiedTime": entry.time_ms,
    })
}

/// `GET ?beta=true` data (`ConfigInfo4Beta`).
pub fn beta_info(namespace: &str, group: &str, data_id: &str, beta: &BetaMeta, content: &str) -> Value {
    json!({
        "id": beta.id.to_string(),
        "dataId": data_id,
        "group": group,
        "content": content,
        "md5": beta.md5,
        "tenant": tenant_of(namespace),
        "appName": beta.app_name,
        "type": beta.config_type,
        "betaIps": beta.beta_ips.join(","),
        "modifyTime": beta.modified_ms,
    })
}
