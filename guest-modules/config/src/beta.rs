//! Beta (gray) release: a publish with `betaIps` stores a variant that only those client IPs
//! are served (and compared against by their long-polls); the stable content is untouched.
//! Stopping drops the variant; promoting makes it the stable content.

use nacre_guest_sdk::md5::md5_hex;
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, emit, store};
use serde_json::Value;

use crate::configs::{self, NewContent};
use crate::group_key::group_key;
use crate::record::{BetaMeta, config_type};
use crate::{keys, validate, views};

/// Addresses one beta may name.
pub const MAX_BETA_IPS: usize = 256;
/// Longest address in `betaIps` (an IPv6 address with a zone fits).
pub const MAX_BETA_IP_CHARS: usize = 64;
const NO_BETA_MESSAGE: &str = "no beta is active for this config";

/// `config.publish` with `betaIps`: stores the beta variant. Reply `true`.
pub fn publish(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    let content = validate::content(req)?;
    let beta_ips = beta_ips(req.required("betaIps")?)?;
    let app_name = validate::optional_text(req, "appName", validate::MAX_APP_NAME_CHARS)?;
    let src_user = validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?;
    let meta = BetaMeta {
        beta_ips,
        md5: md5_hex(content.as_bytes()),
        config_type: config_type(req.optional("type")).to_owned(),
        app_name: app_name.to_owned(),
        src_user: src_user.to_owned(),
        src_ip: req.client_ip.clone(),
        id: cmd.index,
        modified_ms: cmd.timestamp_ms,
    };
    store::put_json(&keys::beta_meta(group, data_id), &meta);
    store::put(&keys::beta_content(group, data_id), content.as_bytes());
    emit(configs::TOPIC, &group_key(data_id, group, &cmd.namespace));
    Ok(GuestReply::text(configs::SUCCESS_BODY))
}

/// `config.delete` with `beta=true`: stops the beta. Nacos answers a `RestResult` whether
/// or not one was active.
pub fn stop(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    if remove(group, data_id)? {
        emit(configs::TOPIC, &group_key(data_id, group, &cmd.namespace));
    }
    Ok(views::rest_result("stop beta ok", Value::Bool(true)))
}

/// `config.get` with `beta=true`: the beta as `RestResult<ConfigInfo4Beta>`, `data` null when
/// there is none.
pub fn query(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    let data = match load_meta(group, data_id)? {
        Some(beta) => {
            let content = configs::load_content(&keys::beta_content(group, data_id), group, data_id)?;
            views::beta_info(&ctx.namespace, group, data_id, &beta, &content)
        }
        None => Value::Null,
    };
    Ok(views::rest_result("query beta ok", data))
}

/// `config.promoteBeta` (command): the beta content becomes the stable content (a new history
/// entry) and the beta stops. 404 when no beta is active.
pub fn promote(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    let beta = load_meta(group, data_id)?.ok_or_else(|| GuestError::not_found(NO_BETA_MESSAGE))?;
    let content = configs::load_content(&keys::beta_content(group, data_id), group, data_id)?;
    let previous = configs::load_meta(group, data_id)?;
    let new = NewContent {
        data_id,
        group,
        content: &content,
        config_type: &beta.config_type,
        app_name: &beta.app_name,
        desc: previous.as_ref().map_or("", |meta| meta.desc.as_str()),
        config_tags: previous.as_ref().map_or("", |meta| meta.config_tags.as_str()),
        src_user: validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?,
        src_ip: &req.client_ip,
    };
    configs::store_stable(cmd, &new, previous.as_ref())?;
    remove(group, data_id)?;
    Ok(GuestReply::text(configs::SUCCESS_BODY))
}

/// The beta variant if `client_ip` is in its audience.
pub fn for_client(group: &str, data_id: &str, client_ip: &str) -> Result<Option<(BetaMeta, String)>, GuestError> {
    match load_meta(group, data_id)? {
        Some(beta) if beta.includes(client_ip) => {
            let content = configs::load_content(&keys::beta_content(group, data_id), group, data_id)?;
            Ok(Some((beta, content)))
        }
        _ => Ok(None),
    }
}

pub fn load_meta(group: &str, data_id: &str) -> Result<Option<BetaMeta>, GuestError> {
    store::get_json(&keys::beta_meta(group, data_id))
}

/// Drops the beta; whether there was one.
fn remove(group: &str, data_id: &str) -> Result<bool, GuestError> {
    let existed = load_meta(group, data_id)?.is_some();
    store::delete(&keys::beta_meta(group, data_id));
    store::delete(&keys::beta_content(group, data_id));
    Ok(existed)
}

/// `betaIps`: comma-separated addresses, blanks ignored, at least one.
fn beta_ips(value: &str) -> Result<Vec<String>, GuestError> {
    let ips: Vec<String> = value.split(',').map(str::trim).filter(|ip| !ip.is_empty()).map(str::to_owned).collect();
    let invalid = |why: String| Err(GuestError::bad_request(format!("invalid betaIps: {why}")));
    if ips.is_empty() {
        return invalid("no address given".into());
    }
    if ips.len() > MAX_BETA_IPS {
        return invalid(format!("more than {MAX_BETA_IPS} addresses"));
    }
    if let Some(ip) = ips.iter().find(|ip| ip.len() > MAX_BETA_IP_CHARS || ip.chars().any(char::is_whitespace)) {
        return invalid(format!("{ip:?} is not an address"));
    }
    Ok(ips)
}
