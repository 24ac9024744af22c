//! `config.listen` (query): the long-poll's check. The host parses the `Listening-Configs`
//! framing, groups the lines by namespace and asks each namespace's module which of its
//! lines are out of date; it holds the request and asks again when a watched key changes.

use nacre_guest_sdk::{GuestError, GuestReply, GuestRequest, QueryContext, RequestExt};
use nacre_protocol::directive;

use crate::configs::{self, visible_md5};
use crate::group_key::group_key;
use crate::validate;

/// Nacos's cap on the keys of one listener request.
pub const MAX_PROBES: usize = 10_000;
/// The parameter carrying the probes: a JSON array of `[dataId, group, md5]`, where md5 is
/// `""` for a config the client does not have.
pub const PROBES_PARAM: &str = "probes";

/// Reply: a JSON array of the positions (in `probes`) whose md5 differs from what this client
/// is served (beta-aware), and a `Nacre-Watch` directive naming every probed key.
pub fn listen(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let probes: Vec<(String, String, String)> = serde_json::from_str(req.required(PROBES_PARAM)?)
        .map_err(|e| GuestError::bad_request(format!("invalid Listening-Configs: {e}")))?;
    if probes.len() > MAX_PROBES {
        return Err(GuestError::bad_request("invalid protocol, too much listener"));
    }
    let mut changed = Vec::new();
    let mut watch = Vec::with_capacity(probes.len());
    for (position, (data_id, group, client_md5)) in probes.iter().enumerate() {
        validate::name_value("dataId", data_id, validate::MAX_DATA_ID_CHARS)
            .and_then(|_| validate::name_value("group", group, validate::MAX_GROUP_CHARS))
            .map_err(|e| GuestError::bad_request(format!("invalid Listening-Configs: {}", e.message)))?;
        let served = visible_md5(group, data_id, &req.client_ip)?.unwrap_or_default();
        if served != *client_md5 {
            changed.push(position);
        }
        watch.push((configs::TOPIC, group_key(data_id, group, &ctx.namespace)));
    }
    let watch = serde_json::to_string(&watch).expect("pairs of strings serialize");
    let changed = serde_json::to_string(&changed).expect("numbers serialize");
    Ok(GuestReply::text(changed).header(directive::WATCH, watch))
}
