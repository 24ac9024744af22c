//! Config history (Nacos `his_config_info`): one entry per change of stable content, kept for
//! [`RETENTION_MS`] of leader time and at most [`MAX_HISTORY_PER_CONFIG`] per config, listed
//! newest first, and rolled back to by republishing.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, store};

use crate::configs::{self, NewContent};
use crate::record::{HistoryEntry, HistoryOp, config_type};
use crate::{keys, paging, validate, views};

/// How long history is kept, by leader time (Nacos `nacos.config.retention.days`, 30).
pub const RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Expired entries one command removes at most, so pruning never makes one command slow; a
/// backlog (after a long quiet period) drains over the following commands.
pub const MAX_PRUNED_PER_COMMAND: usize = 16;
/// History entries kept per config (Nacos keeps all within the retention): past it, recording
/// an entry removes the config's oldest, so that one config published every second cannot grow
/// the state by thirty days of its content. Keeping it costs each record one scan of the
/// config's index rows (keys only, about 60 bytes each).
pub const MAX_HISTORY_PER_CONFIG: u32 = 1_000;
/// The host's most rows per scan (`runtime::limits::MAX_SCAN_ROWS`, restated: a guest cannot
/// import the host): the cap's scan must fit one.
const MAX_SCAN_ROWS: u32 = 4_096;
const _: () = assert!(
    MAX_HISTORY_PER_CONFIG + MAX_PRUNED_PER_COMMAND as u32 <= MAX_SCAN_ROWS,
    "the cap's scan reads the kept entries and the ones to remove in one call"
);
/// Nacos's default and largest history page (`HistoryController`).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Index rows read per scan call while paging one config's history.
const INDEX_SCAN_ROWS: u32 = 1024;
/// Nacos's message for a history entry that does not exist.
pub const NOT_FOUND_MESSAGE: &str = "history entry not found";

/// Records one change (at `cmd.index`, which is then its id) and prunes expired entries.
/// `fields` names the config and who changed it; `content` and `md5` are what the entry keeps.
pub fn record(cmd: &Command, op: HistoryOp, content: &str, md5: &str, fields: &NewContent<'_>) {
    prune(cmd.timestamp_ms);
    let entry = HistoryEntry {
        id: cmd.index,
        data_id: fields.data_id.to_owned(),
        group: fields.group.to_owned(),
        op,
        content: content.to_owned(),
        md5: md5.to_owned(),
        app_name: fields.app_name.to_owned(),
        src_ip: fields.src_ip.to_owned(),
        src_user: fields.src_user.to_owned(),
        time_ms: cmd.timestamp_ms,
    };
    store::put_json(&keys::history(entry.id), &entry);
    store::put(&keys::history_index(fields.group, fields.data_id, entry.id), b"");
    cap(fields.group, fields.data_id);
}

/// Removes a config's entries past the newest [`MAX_HISTORY_PER_CONFIG`], up to
/// [`MAX_PRUNED_PER_COMMAND`] (one per record once at the cap; a backlog, say after the cap
/// was lowered, drains over the following records).
fn cap(group: &str, data_id: &str) {
    let prefix = keys::history_index_prefix(group, data_id);
    let rows = store::scan_prefix(&prefix, &prefix, MAX_HISTORY_PER_CONFIG + MAX_PRUNED_PER_COMMAND as u32);
    for (key, _) in rows.iter().skip(MAX_HISTORY_PER_CONFIG as usize) {
        store::delete(key);
        if let Some(id) = keys::parse_history_index(key) {
            store::delete(&keys::history(id));
        }
    }
}

/// Removes up to [`MAX_PRUNED_PER_COMMAND`] of the oldest entries older than the retention.
/// Ids follow the log and the log's clock never goes back, so the oldest come first.
fn prune(now_ms: u64) {
    let cutoff = now_ms.saturating_sub(RETENTION_MS);
    let prefix = keys::all_history();
    for _ in 0..MAX_PRUNED_PER_COMMAND {
        // One row per scan: entries hold up to a megabyte of content each.
        let Some((key, value)) = store::scan_prefix(&prefix, &prefix, 1).pop() else { return };
        let Ok(entry) = serde_json::from_slice::<HistoryEntry>(&value) else {
            // Undecodable history is removed rather than left to block pruning forever.
            store::delete(&key);
            continue;
        };
        if entry.time_ms >= cutoff {
            return;
        }
        store::delete(&key);
        store::delete(&keys::history_index(&entry.group, &entry.data_id, entry.id));
    }
}

/// `GET /nacos/v1/cs/history`: with `nid`, that entry; else one config's entries
/// (`dataId`, `group`), newest first, paged (`pageNo`, `pageSize`).
pub fn query(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    if let Some(nid) = req.parsed::<u64>("nid")? {
        let entry = load_matching(req, nid)?;
        return Ok(views::json(&views::history_info(&ctx.namespace, &entry)));
    }
    let (data_id, group) = validate::data_id_and_group(req)?;
    let page = paging::Page::from_request(req, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let prefix = keys::history_index_prefix(group, data_id);
    let (mut total, mut ids) = (0u64, Vec::new());
    let mut start = prefix.clone();
    loop {
        let rows = store::scan_prefix(&prefix, &start, INDEX_SCAN_ROWS);
        for (key, _) in &rows {
            if page.contains(total) {
                ids.extend(keys::parse_history_index(key));
            }
            total += 1;
        }
        match rows.last() {
            Some((last, _)) if rows.len() == INDEX_SCAN_ROWS as usize => start = after(last),
            _ => break,
        }
    }
    let mut items = paging::PageItems::default();
    for id in ids {
        items.push(views::history_info(&ctx.namespace, &load(id)?))?;
    }
    Ok(views::json(&page.render(total, items.into_vec())))
}

/// `GET /nacos/v1/cs/history/previous?id=`: the entry of the same config just before `id`.
pub fn previous(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let id =
        req.parsed::<u64>("id")?.ok_or_else(|| GuestError::bad_request("Required parameter 'id' is not present"))?;
    let entry = load_matching(req, id)?;
    let prefix = keys::history_index_prefix(&entry.group, &entry.data_id);
    // The index is newest first: the previous entry is the first one after this entry's row.
    let start = after(&keys::history_index(&entry.group, &entry.data_id, entry.id));
    let (key, _) =
        store::scan_prefix(&prefix, &start, 1).pop().ok_or_else(|| GuestError::not_found(NOT_FOUND_MESSAGE))?;
    let id = keys::parse_history_index(&key).ok_or_else(|| GuestError::internal("malformed history index key"))?;
    Ok(views::json(&views::history_info(&ctx.namespace, &load(id)?)))
}

/// `config.rollback` (command): republishes history entry `nid` of config (`dataId`, `group`)
/// as its new stable content, which is itself a new history entry.
pub fn rollback(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (data_id, group) = validate::data_id_and_group(req)?;
    let nid =
        req.parsed::<u64>("nid")?.ok_or_else(|| GuestError::bad_request("Required parameter 'nid' is not present"))?;
    let entry = load_matching(req, nid)?;
    let previous = configs::load_meta(group, data_id)?;
    let kept_type = previous.as_ref().map(|meta| meta.config_type.clone());
    let new = NewContent {
        data_id,
        group,
        content: &entry.content,
        config_type: config_type(kept_type.as_deref()),
        app_name: &entry.app_name,
        desc: previous.as_ref().map_or("", |meta| meta.desc.as_str()),
        config_tags: previous.as_ref().map_or("", |meta| meta.config_tags.as_str()),
        src_user: validate::optional_text(req, "src_user", validate::MAX_SRC_USER_CHARS)?,
        src_ip: &req.client_ip,
    };
    configs::store_stable(cmd, &new, previous.as_ref())?;
    Ok(GuestReply::text(configs::SUCCESS_BODY))
}

/// Entry `id`, which must belong to `dataId`/`group` when the request names them.
fn load_matching(req: &GuestRequest, id: u64) -> Result<HistoryEntry, GuestError> {
    let entry = load(id)?;
    let names = [("dataId", entry.data_id.as_str()), ("group", entry.group.as_str())];
    if names.iter().any(|(field, value)| req.optional(field).is_some_and(|wanted| wanted != *value)) {
        return Err(GuestError::not_found(NOT_FOUND_MESSAGE));
    }
    Ok(entry)
}

fn load(id: u64) -> Result<HistoryEntry, GuestError> {
    store::get_json(&keys::history(id))?.ok_or_else(|| GuestError::not_found(NOT_FOUND_MESSAGE))
}

/// The smallest key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}
