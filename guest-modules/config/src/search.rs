//! `GET /nacos/v1/cs/configs?search=accurate|blur`: a namespace's configs filtered by
//! dataId, group, appName, tags and content (`config_detail`, Nacos's content search), paged;
//! and the count the namespace listing shows.

use nacre_guest_sdk::{GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, store};

use crate::record::ConfigMeta;
use crate::{configs, keys, paging, views};

/// Nacos has no cap on config pages; the Python client asks for 1000 by default.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Metadata rows read per scan call.
const META_SCAN_ROWS: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each given field must equal the config's (an empty field matches everything).
    Accurate,
    /// As accurate, but `*` in dataId, group or appName matches any run of characters.
    Blur,
}

/// Lists matching configs with their content, in (group, dataId) order.
pub fn search(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let mode = match req.required("search")? {
        "accurate" => Mode::Accurate,
        "blur" => Mode::Blur,
        other => return Err(GuestError::bad_request(format!("invalid search: {other:?} (accurate or blur)"))),
    };
    let page = paging::Page::from_request(req, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let wanted_tags: Vec<&str> = req.optional("config_tags").map_or_else(Vec::new, |t| t.split(',').collect());
    let matches = |group: &str, data_id: &str, meta: &ConfigMeta| {
        let fields = [("dataId", data_id), ("group", group), ("appName", meta.app_name.as_str())];
        fields.iter().all(|(field, value)| req.optional(field).is_none_or(|pattern| mode.matches(pattern, value)))
            && (wanted_tags.is_empty() || meta.config_tags.split(',').any(|tag| wanted_tags.contains(&tag)))
    };
    // Nacos's content search: the text anywhere in the content (`*` a wildcard in blur mode).
    let content_pattern = req.optional("config_detail").map(|text| match mode {
        Mode::Blur if text.contains('*') => text.to_string(),
        _ => format!("*{text}*"),
    });
    let mut total = 0u64;
    let mut items = paging::PageItems::default();
    for_each_config(|group, data_id, meta| {
        if !matches(group, data_id, &meta) {
            return Ok(());
        }
        let mut content = None;
        if let Some(pattern) = &content_pattern {
            let loaded = configs::load_content(&keys::content(group, data_id), group, data_id)?;
            if !glob(pattern.as_bytes(), loaded.as_bytes()) {
                return Ok(());
            }
            content = Some(loaded);
        }
        if page.contains(total) {
            let content = match content {
                Some(content) => content,
                None => configs::load_content(&keys::content(group, data_id), group, data_id)?,
            };
            items.push(views::config_info(&ctx.namespace, group, data_id, &meta, &content))?;
        }
        total += 1;
        Ok(())
    })?;
    Ok(views::json(&page.render(total, items.into_vec())))
}

/// `config.count` (query): how many configs the namespace holds.
pub fn count() -> Result<GuestReply, GuestError> {
    let mut total = 0u64;
    for_each_config(|_, _, _| {
        total += 1;
        Ok(())
    })?;
    Ok(GuestReply::text(total.to_string()))
}

fn for_each_config(mut visit: impl FnMut(&str, &str, ConfigMeta) -> Result<(), GuestError>) -> Result<(), GuestError> {
    let prefix = keys::all_meta();
    let mut start = prefix.clone();
    loop {
        let rows = store::scan_prefix(&prefix, &start, META_SCAN_ROWS);
        for (key, value) in &rows {
            let (group, data_id) =
                keys::parse_meta(key).ok_or_else(|| GuestError::internal("malformed config metadata key"))?;
            let meta = serde_json::from_slice(value)
                .map_err(|e| GuestError::internal(format!("config {group}/{data_id} metadata does not decode: {e}")))?;
            visit(group, data_id, meta)?;
        }
        match rows.last() {
            Some((last, _)) if rows.len() == META_SCAN_ROWS as usize => {
                start = last.clone();
                start.push(0);
            }
            _ => return Ok(()),
        }
    }
}

impl Mode {
    fn matches(self, pattern: &str, value: &str) -> bool {
        match self {
            Mode::Accurate => pattern == value,
            Mode::Blur => glob(pattern.as_bytes(), value.as_bytes()),
        }
    }
}

/// `*` matches any run (also empty); everything else matches itself. Iterative with one
/// backtrack point, so linear-ish and never recursive.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, v));
            p += 1;
        } else if p < pattern.len() && pattern[p] == value[v] {
            p += 1;
            v += 1;
        } else if let Some((star_p, star_v)) = star {
            p = star_p + 1;
            v = star_v + 1;
            star = Some((star_p, star_v + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_stars_match_runs() {
        for (pattern, value, expected) in [
            ("*", "", true),
            ("app*", "app.yaml", true),
            ("*.yaml", "app.yaml", true),
            ("*pp*ml", "app.yaml", true),
            ("a*b", "ab", true),
            ("app", "app.yaml", false),
            ("*.json", "app.yaml", false),
            ("a*b*c", "abxbc", true),
        ] {
            assert_eq!(glob(pattern.as_bytes(), value.as_bytes()), expected, "{pattern} vs {value}");
        }
    }
}
