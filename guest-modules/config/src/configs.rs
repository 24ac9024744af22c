//! The config operations: publish and delete (commands), get and md5 (reads).

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt, emit, store};

use crate::group_key::group_key;
use crate::record::{ConfigMeta, config_type, content_type};
use crate::{keys, validate};
use nacre_guest_sdk::md5::md5_hex;

/// The event topic of config changes.
pub const TOPIC: &str = "config";
/// Nacos's body for a missing config (with status 404).
pub const NOT_FOUND_MESSAGE: &str = "config data not exist";
/// Nacos's body for a successful publish or delete.
const SUCCESS_BODY: &str = "true";
/// Nacos's message when a compare-and-set publish (`casMd5`) finds other content.
pub const CAS_FAILED_MESSAGE: &str = "Cas publish fail, server md5 may have changed.";

/// Parameters that select features this version does not have yet, with what they are:
/// refused with a 501 rather than ignored (ignoring `betaIps` would publish to everyone).
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[("betaIps", "beta (gray) release"), ("tag", "tag variants")];

/// Creates or replaces a config. Everything is validated before anything is written.
pub fn publish(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    let (data_id, group) = validate::data_id_and_group(req)?;
    let content = validate::content(req)?;
    let app_name = validate::optional_text(req, "appName", validate::MAX_APP_NAME_CHARS)?;
    let desc = validate::optional_text(req, "desc", validate::MAX_DESC_CHARS)?;
    let src_user = validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?;
    let config_tags = validate::config_tags(req)?;

    let meta_key = keys::meta(group, data_id);
    let previous: Option<ConfigMeta> = store::get_json(&meta_key)?;
    // Compare-and-set (Nacos 2.x `casMd5` header): a config that exists must still have the
    // content the caller saw; one that does not exist is simply created.
    if let (Some(expected), Some(current)) = (req.optional("casMd5"), &previous)
        && expected != current.md5
    {
        return Err(GuestError::conflict(CAS_FAILED_MESSAGE));
    }
    let (id, created_ms) = previous.map_or((cmd.index, cmd.timestamp_ms), |p| (p.id, p.created_ms));
    let meta = ConfigMeta {
        id,
        md5: md5_hex(content.as_bytes()),
        config_type: config_type(req.optional("type")).to_owned(),
        app_name: app_name.to_owned(),
        desc: desc.to_owned(),
        config_tags: config_tags.to_owned(),
        src_user: src_user.to_owned(),
        src_ip: req.client_ip.clone(),
        created_ms,
        modified_ms: cmd.timestamp_ms,
    };
    store::put_json(&meta_key, &meta);
    store::put(&keys::content(group, data_id), content.as_bytes());
    emit(TOPIC, &group_key(data_id, group, &cmd.namespace));
    Ok(GuestReply::text(SUCCESS_BODY))
}

/// Removes a config; removing one that does not exist is still a success (as in Nacos).
pub fn delete(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    let (data_id, group) = validate::data_id_and_group(req)?;
    let meta_key = keys::meta(group, data_id);
    if store::get(&meta_key).is_some() {
        store::delete(&meta_key);
        store::delete(&keys::content(group, data_id));
        emit(TOPIC, &group_key(data_id, group, &cmd.namespace));
    }
    Ok(GuestReply::text(SUCCESS_BODY))
}

/// The raw content, with `Content-MD5`, `Config-Type` and `Content-Type` headers.
pub fn get(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    let (data_id, group) = validate::data_id_and_group(req)?;
    let meta = load_meta(group, data_id)?;
    let content = store::get(&keys::content(group, data_id))
        .ok_or_else(|| GuestError::internal(format!("config {group}/{data_id} has metadata but no content")))?;
    let content = String::from_utf8(content)
        .map_err(|_| GuestError::internal(format!("config {group}/{data_id} content is not UTF-8")))?;
    Ok(GuestReply::text(content)
        .header("Content-MD5", meta.md5)
        .header("Config-Type", &meta.config_type)
        .header("Content-Type", content_type(&meta.config_type)))
}

/// Only the md5 of the content: what the long-poll compares with a listener's copy.
pub fn md5(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    Ok(GuestReply::text(load_meta(group, data_id)?.md5))
}

fn refuse_unsupported(req: &GuestRequest) -> Result<(), GuestError> {
    match NOT_YET_SUPPORTED.iter().find(|(param, _)| req.optional(param).is_some()) {
        Some((param, feature)) => Err(GuestError::new(
            GuestError::NOT_IMPLEMENTED,
            format!("{} with {param} ({feature}) is not implemented yet", req.op),
        )),
        None => Ok(()),
    }
}

fn load_meta(group: &str, data_id: &str) -> Result<ConfigMeta, GuestError> {
    store::get_json(&keys::meta(group, data_id))?.ok_or_else(|| GuestError::not_found(NOT_FOUND_MESSAGE))
}
