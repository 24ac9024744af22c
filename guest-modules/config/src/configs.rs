//! The stable config operations: publish and delete (commands), get and md5 (reads), and the
//! one write path every change of stable content goes through ([`store_stable`]).

use nacre_guest_sdk::md5::md5_hex;
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, emit, store};

use crate::group_key::group_key;
use crate::record::{ConfigMeta, HistoryOp, config_type, content_type};
use crate::{beta, history, keys, validate, views};

/// The event topic of config changes.
pub const TOPIC: &str = "config";
/// Nacos's body for a missing config (with status 404).
pub const NOT_FOUND_MESSAGE: &str = "config data not exist";
/// Nacos's body for a successful publish or delete.
pub const SUCCESS_BODY: &str = "true";
/// Nacos's message when a compare-and-set publish (`casMd5`) finds other content.
pub const CAS_FAILED_MESSAGE: &str = "Cas publish fail, server md5 may have changed.";

/// Parameters that select features this version does not have, with what they are: refused
/// with a 501 rather than ignored (ignoring `tag` would publish to everyone).
const NOT_YET_SUPPORTED: &[(&str, &str)] = &[("tag", "tag variants")];

/// A new stable version of a config, validated.
pub struct NewContent<'a> {
    pub data_id: &'a str,
    pub group: &'a str,
    pub content: &'a str,
    pub config_type: &'a str,
    pub app_name: &'a str,
    pub desc: &'a str,
    pub config_tags: &'a str,
    pub src_user: &'a str,
    pub src_ip: &'a str,
}

/// Creates or replaces a config (or, with `betaIps`, its beta variant). Everything is
/// validated before anything is written.
pub fn publish(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    if req.optional("betaIps").is_some() {
        return beta::publish(cmd, req);
    }
    let (data_id, group) = validate::data_id_and_group(req)?;
    let new = NewContent {
        data_id,
        group,
        content: validate::content(req)?,
        config_type: config_type(req.optional("type")),
        app_name: validate::optional_text(req, "appName", validate::MAX_APP_NAME_CHARS)?,
        desc: validate::optional_text(req, "desc", validate::MAX_DESC_CHARS)?,
        config_tags: validate::config_tags(req)?,
        src_user: validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?,
        src_ip: &req.client_ip,
    };
    let previous = load_meta(group, data_id)?;
    // Compare-and-set (Nacos 2.x `casMd5` header): a config that exists must still have the
    // content the caller saw; one that does not exist is simply created.
    if let (Some(expected), Some(current)) = (req.optional("casMd5"), &previous)
        && expected != current.md5
    {
        return Err(GuestError::conflict(CAS_FAILED_MESSAGE));
    }
    store_stable(cmd, &new, previous.as_ref())?;
    Ok(GuestReply::text(SUCCESS_BODY))
}

/// Writes `new` as the stable content, records the change in the history (Nacos's rule: an
/// insert keeps the new content, an update the content it replaced) and tells watchers.
/// `previous` is the config's current metadata. Callers validate first: this only writes.
pub fn store_stable(cmd: &Command, new: &NewContent<'_>, previous: Option<&ConfigMeta>) -> Result<(), GuestError> {
    let (group, data_id) = (new.group, new.data_id);
    let md5 = md5_hex(new.content.as_bytes());
    match previous {
        None => history::record(cmd, HistoryOp::Insert, new.content, &md5, new),
        Some(old) => {
            let old_content = load_content(&keys::content(group, data_id), group, data_id)?;
            let replaced = NewContent { content: &old_content, app_name: &old.app_name, ..*new };
            history::record(cmd, HistoryOp::Update, &old_content, &old.md5, &replaced);
        }
    }
    let (id, created_ms) = previous.map_or((cmd.index, cmd.timestamp_ms), |p| (p.id, p.created_ms));
    let meta = ConfigMeta {
        id,
        md5,
        config_type: new.config_type.to_owned(),
        app_name: new.app_name.to_owned(),
        desc: new.desc.to_owned(),
        config_tags: new.config_tags.to_owned(),
        src_user: new.src_user.to_owned(),
        src_ip: new.src_ip.to_owned(),
        created_ms,
        modified_ms: cmd.timestamp_ms,
    };
    store::put_json(&keys::meta(group, data_id), &meta);
    store::put(&keys::content(group, data_id), new.content.as_bytes());
    emit(TOPIC, &group_key(data_id, group, &cmd.namespace));
    Ok(())
}

/// Removes a config (or, with `beta=true`, stops its beta); removing one that does not exist
/// is still a success (as in Nacos).
pub fn delete(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    if req.bool_or("beta", false)? {
        return beta::stop(cmd, req);
    }
    let (data_id, group) = validate::data_id_and_group(req)?;
    let Some(meta) = load_meta(group, data_id)? else {
        return Ok(GuestReply::text(SUCCESS_BODY));
    };
    let content = load_content(&keys::content(group, data_id), group, data_id)?;
    let deleted = NewContent {
        data_id,
        group,
        content: &content,
        config_type: &meta.config_type,
        app_name: &meta.app_name,
        desc: "",
        config_tags: "",
        src_user: validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?,
        src_ip: &req.client_ip,
    };
    history::record(cmd, HistoryOp::Delete, &content, &meta.md5, &deleted);
    store::delete(&keys::meta(group, data_id));
    store::delete(&keys::content(group, data_id));
    emit(TOPIC, &group_key(data_id, group, &cmd.namespace));
    Ok(GuestReply::text(SUCCESS_BODY))
}

/// The content a client at this IP sees (the beta variant for its audience), with
/// `Content-MD5`, `Config-Type`, `Content-Type`, `Last-Modified` (and `isBeta`) headers; with `show=all`, the
/// whole record as Nacos's `ConfigAllInfo` JSON.
pub fn get(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    refuse_unsupported(req)?;
    let (data_id, group) = validate::data_id_and_group(req)?;
    if req.optional("show") == Some("all") {
        let meta = load_meta(group, data_id)?.ok_or_else(not_found)?;
        let content = load_content(&keys::content(group, data_id), group, data_id)?;
        return Ok(views::json(&views::config_all_info(&ctx.namespace, group, data_id, &meta, &content)));
    }
    if let Some((meta, content)) = beta::for_client(group, data_id, &req.client_ip)? {
        return Ok(content_reply(content, meta.md5, &meta.config_type, meta.modified_ms).header("isBeta", "true"));
    }
    let meta = load_meta(group, data_id)?.ok_or_else(not_found)?;
    let content = load_content(&keys::content(group, data_id), group, data_id)?;
    Ok(content_reply(content, meta.md5, &meta.config_type, meta.modified_ms))
}

/// Nacos's headers of a served config; `Last-Modified` is the leader time of the change, in
/// milliseconds (what the 2.x clients' `lastModified` carries).
fn content_reply(content: String, md5: String, config_type: &str, modified_ms: u64) -> GuestReply {
    GuestReply::text(content)
        .header("Content-MD5", md5)
        .header("Last-Modified", modified_ms.to_string())
        .header("Config-Type", config_type)
        .header("Content-Type", content_type(config_type))
}

/// Only the md5 of the content this client sees: what the long-poll compares.
pub fn md5(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    let md5 = visible_md5(group, data_id, &req.client_ip)?.ok_or_else(not_found)?;
    Ok(GuestReply::text(md5))
}

/// The md5 of what a client at `client_ip` is served, `None` when nothing is.
pub fn visible_md5(group: &str, data_id: &str, client_ip: &str) -> Result<Option<String>, GuestError> {
    if let Some(beta) = beta::load_meta(group, data_id)?
        && beta.includes(client_ip)
    {
        return Ok(Some(beta.md5));
    }
    Ok(load_meta(group, data_id)?.map(|meta| meta.md5))
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

pub fn not_found() -> GuestError {
    GuestError::not_found(NOT_FOUND_MESSAGE)
}

pub fn load_meta(group: &str, data_id: &str) -> Result<Option<ConfigMeta>, GuestError> {
    store::get_json(&keys::meta(group, data_id))
}

/// Content stored under `key`; its absence next to metadata is the module's own corruption.
pub fn load_content(key: &[u8], group: &str, data_id: &str) -> Result<String, GuestError> {
    let content = store::get(key)
        .ok_or_else(|| GuestError::internal(format!("config {group}/{data_id} has metadata but no content")))?;
    String::from_utf8(content)
        .map_err(|_| GuestError::internal(format!("config {group}/{data_id} content is not UTF-8")))
}
