//! Input checks, in Nacos's words where it has them. Every refusal is a 400 naming the field.

use nacre_guest_sdk::{GuestError, GuestRequest, RequestExt};

/// Longest dataId, in characters.
pub const MAX_DATA_ID_CHARS: usize = 256;
/// Longest group, in characters.
pub const MAX_GROUP_CHARS: usize = 256;
/// Largest content, in UTF-8 bytes.
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
/// Nacos's limits on the optional descriptive fields.
pub const MAX_DESC_CHARS: usize = 128;
pub const MAX_CONFIG_TAGS: usize = 5;
pub const MAX_CONFIG_TAG_CHARS: usize = 64;
pub const MAX_APP_NAME_CHARS: usize = 128;
pub const MAX_SRC_USER_CHARS: usize = 128;

/// Characters besides ASCII letters and digits that Nacos allows in a dataId or group.
const EXTRA_NAME_CHARS: &[char] = &['_', '-', '.', ':'];

/// The `dataId` and `group` of a request: present, in the Nacos alphabet, not too long.
pub fn data_id_and_group(req: &GuestRequest) -> Result<(&str, &str), GuestError> {
    let data_id = name(req, "dataId", MAX_DATA_ID_CHARS)?;
    let group = name(req, "group", MAX_GROUP_CHARS)?;
    Ok((data_id, group))
}

fn name<'a>(req: &'a GuestRequest, field: &str, max_chars: usize) -> Result<&'a str, GuestError> {
    let value = req.required(field)?;
    name_value(field, value, max_chars)?;
    Ok(value)
}

/// A dataId or group from elsewhere than a parameter (a listener line): non-empty, in the
/// Nacos alphabet, at most `max_chars`.
pub fn name_value(field: &str, value: &str, max_chars: usize) -> Result<(), GuestError> {
    if value.is_empty() {
        return Err(GuestError::bad_request(format!("invalid {field}: empty")));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || EXTRA_NAME_CHARS.contains(&c)) {
        return Err(GuestError::bad_request(format!(
            "invalid {field}: {value:?} (allowed characters: A-Z a-z 0-9 _ - . :)"
        )));
    }
    if value.chars().count() > max_chars {
        return Err(too_long(field, max_chars, "characters"));
    }
    Ok(())
}

/// The content of a publish: not blank (as Nacos), at most `MAX_CONTENT_BYTES`.
pub fn content(req: &GuestRequest) -> Result<&str, GuestError> {
    let content = req.required("content")?;
    if content.trim().is_empty() {
        return Err(GuestError::bad_request("invalid content: content is blank"));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(too_long("content", MAX_CONTENT_BYTES, "bytes"));
    }
    Ok(content)
}

/// An optional free-text field, `""` when absent.
pub fn optional_text<'a>(req: &'a GuestRequest, field: &str, max_chars: usize) -> Result<&'a str, GuestError> {
    let value = req.optional(field).unwrap_or_default();
    if value.chars().count() > max_chars {
        return Err(too_long(field, max_chars, "characters"));
    }
    Ok(value)
}

/// `config_tags`: a comma-separated list, at most `MAX_CONFIG_TAGS` of at most
/// `MAX_CONFIG_TAG_CHARS` each.
pub fn config_tags(req: &GuestRequest) -> Result<&str, GuestError> {
    let tags = req.optional("config_tags").unwrap_or_default();
    if tags.is_empty() {
        return Ok(tags);
    }
    let list: Vec<&str> = tags.split(',').collect();
    if list.len() > MAX_CONFIG_TAGS {
        return Err(GuestError::bad_request(format!("invalid config_tags: more than {MAX_CONFIG_TAGS} tags")));
    }
    if list.iter().any(|tag| tag.chars().count() > MAX_CONFIG_TAG_CHARS) {
        return Err(GuestError::bad_request(format!(
            "invalid config_tags: a tag is longer than {MAX_CONFIG_TAG_CHARS} characters"
        )));
    }
    Ok(tags)
}

fn too_long(field: &str, max: usize, unit: &str) -> GuestError {
    GuestError::bad_request(format!("invalid {field}: longer than {max} {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(data_id: &str, group: &str) -> GuestRequest {
        GuestRequest::new("x").param("dataId", data_id).param("group", group)
    }

    #[test]
    fn names_use_the_nacos_alphabet() {
        assert_eq!(data_id_and_group(&req("a-b_c.d:e9", "G")), Ok(("a-b_c.d:e9", "G")));
        for (data_id, group, field) in [
            ("a/b", "g", "dataId"),
            ("a b", "g", "dataId"),
            ("é", "g", "dataId"),
            ("a", "g+", "group"),
            ("", "g", "dataId"),
        ] {
            let err = data_id_and_group(&req(data_id, group)).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.message.contains(field), "{data_id:?}/{group:?}: {err}");
        }
    }

    #[test]
    fn names_have_a_length_limit() {
        let longest = "a".repeat(MAX_DATA_ID_CHARS);
        assert!(data_id_and_group(&req(&longest, "g")).is_ok());
        let err = data_id_and_group(&req(&format!("{longest}a"), "g")).unwrap_err();
        assert!(err.message.contains("dataId"), "{err}");
        let err = data_id_and_group(&req("d", &"g".repeat(MAX_GROUP_CHARS + 1))).unwrap_err();
        assert!(err.message.contains("group"), "{err}");
    }

    #[test]
    fn content_is_not_blank_nor_too_big() {
        let with = |content: &str| GuestRequest::new("x").param("content", content);
        assert_eq!(content(&with("x")), Ok("x"));
        assert!(content(&with(" \n\t")).unwrap_err().message.contains("content"));
        assert!(content(&GuestRequest::new("x")).unwrap_err().message.contains("content"));
        assert!(content(&with(&"x".repeat(MAX_CONTENT_BYTES))).is_ok());
        // The limit is in bytes: 2-byte characters reach it at half the count.
        let err = content(&with(&"é".repeat(MAX_CONTENT_BYTES / 2 + 1))).unwrap_err();
        assert!(err.code == 400 && err.message.contains("content"), "{err}");
    }

    #[test]
    fn tags_are_counted_and_measured() {
        let with = |tags: &str| GuestRequest::new("x").param("config_tags", tags);
        assert_eq!(config_tags(&with("a,b")), Ok("a,b"));
        assert!(config_tags(&with("1,2,3,4,5,6")).is_err());
        assert!(config_tags(&with(&"t".repeat(MAX_CONFIG_TAG_CHARS + 1))).is_err());
        assert!(optional_text(&with(""), "desc", MAX_DESC_CHARS).is_ok());
    }
}
