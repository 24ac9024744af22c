//! Instance and service fields as clients send them (every value a string), validated. Every
//! refusal is a 400 whose message names the parameter.

use std::collections::BTreeMap;

use nacre_guest_sdk::{GuestError, GuestRequest, RequestExt};
use serde_json::Value;

use crate::record::{HealthChecker, Metadata};

/// Longest `ip`, in characters: an IPv6 address with a zone, or a host name.
pub const MAX_IP_CHARS: usize = 128;
/// Weights Nacos accepts (`Instance.validate`: 0.0 to 10000.0).
pub const MAX_WEIGHT: f64 = 10_000.0;
/// Largest `metadata` parameter (and beat metadata), in bytes of its JSON or `k=v` text.
pub const MAX_METADATA_BYTES: usize = 16 << 10;
/// Largest `selector` or `healthChecker` JSON, in bytes.
pub const MAX_SETTING_JSON_BYTES: usize = 4 << 10;
/// Longest `app`, in characters.
pub const MAX_APP_CHARS: usize = 128;

fn bad(field: &str, why: impl std::fmt::Display) -> GuestError {
    GuestError::bad_request(format!("invalid {field}: {why}"))
}

/// An instance address: letters, digits and `.:-_%[]` (IPv4, IPv6 with zone, host names).
/// `/` and `#` never appear, so store keys and instance ids stay unambiguous.
pub fn ip(req: &GuestRequest) -> Result<&str, GuestError> {
    let ip = req.required("ip")?.trim();
    check_ip("ip", ip)?;
    Ok(ip)
}

pub fn check_ip(field: &str, ip: &str) -> Result<(), GuestError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_' | '%' | '[' | ']');
    if ip.is_empty() || !ip.chars().all(allowed) {
        return Err(bad(field, format!("ip {ip:?} is not an address")));
    }
    if ip.chars().count() > MAX_IP_CHARS {
        return Err(bad(field, format!("ip longer than {MAX_IP_CHARS} characters")));
    }
    Ok(())
}

/// A required port, 0..=65535 as a decimal integer.
pub fn port(req: &GuestRequest) -> Result<u16, GuestError> {
    req.required("port")?;
    Ok(req.parsed::<u16>("port")?.expect("checked present"))
}

/// `weight`, e.g. `1`, `1.0`, `2`; 0..=10000.
pub fn weight(req: &GuestRequest) -> Result<Option<f64>, GuestError> {
    req.parsed::<f64>("weight")?.map(|w| check_weight("weight", w)).transpose()
}

pub fn check_weight(field: &str, weight: f64) -> Result<f64, GuestError> {
    if !(0.0..=MAX_WEIGHT).contains(&weight) {
        return Err(bad(field, format!("weight {weight} is not within 0 and {MAX_WEIGHT}")));
    }
    Ok(weight)
}

/// `enabled`, or the older `enable` when `enabled` is absent (as Nacos reads them).
pub fn enabled(req: &GuestRequest) -> Result<Option<bool>, GuestError> {
    let field = if req.optional("enabled").is_some() { "enabled" } else { "enable" };
    optional_bool(req, field)
}

pub fn optional_bool(req: &GuestRequest, field: &str) -> Result<Option<bool>, GuestError> {
    if req.optional(field).is_none() {
        return Ok(None);
    }
    req.bool_or(field, false).map(Some)
}

/// `app`, at most [`MAX_APP_CHARS`].
pub fn app(req: &GuestRequest) -> Result<Option<String>, GuestError> {
    let Some(app) = req.optional("app") else { return Ok(None) };
    if app.chars().count() > MAX_APP_CHARS {
        return Err(bad("app", format!("longer than {MAX_APP_CHARS} characters")));
    }
    Ok(Some(app.to_owned()))
}

/// Longest `connectionId` (Nacos's ids are `<ms>_<ip>_<port>`, under 64 characters).
pub const MAX_OWNER_CHARS: usize = 128;

/// `connectionId`: the Nacos 2.x connection that owns an ephemeral instance (set by the host's
/// gRPC port, never by a v1 client).
pub fn owner(req: &GuestRequest) -> Result<Option<String>, GuestError> {
    let Some(owner) = req.optional("connectionId") else { return Ok(None) };
    if owner.chars().count() > MAX_OWNER_CHARS {
        return Err(bad("connectionId", format!("longer than {MAX_OWNER_CHARS} characters")));
    }
    Ok(Some(owner.to_owned()))
}

/// `metadata`: a JSON object (`{"k":"v"}`) or Nacos's legacy `k1=v1,k2=v2`.
pub fn metadata(req: &GuestRequest, field: &str) -> Result<Option<Metadata>, GuestError> {
    req.optional(field).map(|text| parse_metadata(field, text)).transpose()
}

pub fn parse_metadata(field: &str, text: &str) -> Result<Metadata, GuestError> {
    if text.len() > MAX_METADATA_BYTES {
        return Err(bad(field, format!("larger than {MAX_METADATA_BYTES} bytes")));
    }
    let text = text.trim();
    if text.starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| bad(field, format!("not a JSON object: {e}")))?;
        return metadata_from_json(field, &value);
    }
    // Legacy form: every item must be exactly `key=value` (Nacos `parseMetadata`).
    let mut map = BTreeMap::new();
    for item in text.split(',') {
        match item.split('=').collect::<Vec<_>>()[..] {
            [key, value] => map.insert(key.to_owned(), value.to_owned()),
            _ => return Err(bad(field, format!("metadata format incorrect: {item:?} is not key=value"))),
        };
    }
    Ok(map)
}

/// A JSON object whose values are strings (numbers and booleans are turned into their text, as
/// Jackson does when Nacos reads a `Map<String, String>`).
pub fn metadata_from_json(field: &str, value: &Value) -> Result<Metadata, GuestError> {
    let Value::Object(object) = value else { return Err(bad(field, "metadata must be a JSON object")) };
    object
        .iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key.clone(), s.clone())),
            Value::Number(n) => Ok((key.clone(), n.to_string())),
            Value::Bool(b) => Ok((key.clone(), b.to_string())),
            Value::Null => Ok((key.clone(), String::new())),
            _ => Err(bad(field, format!("metadata value of {key:?} is not a string"))),
        })
        .collect()
}

/// `protectThreshold`: 0.0..=1.0.
pub fn protect_threshold(req: &GuestRequest) -> Result<Option<f32>, GuestError> {
    let Some(threshold) = req.parsed::<f32>("protectThreshold")? else { return Ok(None) };
    if !(0.0..=1.0).contains(&threshold) {
        return Err(bad("protectThreshold", format!("{threshold} is not within 0 and 1")));
    }
    Ok(Some(threshold))
}

/// `selector`: `{"type":"none"}` or `{"type":"label","expression":"..."}`, kept normalized.
pub fn selector(req: &GuestRequest) -> Result<Option<Value>, GuestError> {
    let Some(value) = setting_json(req, "selector")? else { return Ok(None) };
    match value.get("type").and_then(Value::as_str) {
        Some("none") => Ok(Some(serde_json::json!({"type": "none"}))),
        Some("label") => {
            let expression = value.get("expression").and_then(Value::as_str).unwrap_or_default();
            Ok(Some(serde_json::json!({"type": "label", "expression": expression})))
        }
        _ => Err(bad("selector", "not match any type of selector! (type must be none or label)")),
    }
}

/// `healthChecker`: `{"type":"TCP"}`, `{"type":"HTTP","path":..,"headers":..,"expectedResponseCode":..}`,
/// `{"type":"MYSQL",...}` or `{"type":"NONE"}`; the type in any case.
pub fn health_checker(req: &GuestRequest) -> Result<Option<HealthChecker>, GuestError> {
    let Some(mut value) = setting_json(req, "healthChecker")? else { return Ok(None) };
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_ascii_uppercase) else {
        return Err(bad("healthChecker", "missing \"type\""));
    };
    value["type"] = Value::String(kind);
    serde_json::from_value(value).map(Some).map_err(|e| bad("healthChecker", e))
}

fn setting_json(req: &GuestRequest, field: &str) -> Result<Option<Value>, GuestError> {
    let Some(text) = req.optional(field) else { return Ok(None) };
    if text.len() > MAX_SETTING_JSON_BYTES {
        return Err(bad(field, format!("larger than {MAX_SETTING_JSON_BYTES} bytes")));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| bad(field, format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad(field, "must be a JSON object"));
    }
    Ok(Some(value))
}

/// A millisecond time or count parameter.
pub fn millis(req: &GuestRequest, field: &str) -> Result<Option<u64>, GuestError> {
    req.parsed::<u64>(field)
}

/// A millisecond time that must be present.
pub fn required_millis(req: &GuestRequest, field: &str) -> Result<u64, GuestError> {
    req.required(field)?;
    Ok(millis(req, field)?.expect("present"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> GuestRequest {
        GuestRequest::new("x").param(name, value)
    }

    #[test]
    fn metadata_json_and_legacy() {
        let json = metadata(&with("metadata", r#"{"k":"v","n":1,"b":true}"#), "metadata").unwrap().unwrap();
        assert_eq!(
            json,
            BTreeMap::from([("k".into(), "v".into()), ("n".into(), "1".into()), ("b".into(), "true".into())])
        );
        let legacy = metadata(&with("metadata", "a=1,b=2"), "metadata").unwrap().unwrap();
        assert_eq!(legacy, BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
        assert_eq!(metadata(&with("metadata", "{}"), "metadata").unwrap(), Some(BTreeMap::new()));
        for bad in ["{bad", "a", "a=1=2", r#"{"k":{}}"#, "[1]"] {
            let err = metadata(&with("metadata", bad), "metadata").unwrap_err();
            assert!(err.code == 400 && err.message.contains("metadata"), "{bad}: {err}");
        }
        let huge = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_METADATA_BYTES));
        assert!(metadata(&with("metadata", &huge), "metadata").unwrap_err().message.contains("metadata"));
    }

    #[test]
    fn numbers_have_ranges() {
        assert_eq!(weight(&with("weight", "1.0")).unwrap(), Some(1.0));
        assert_eq!(weight(&with("weight", "2")).unwrap(), Some(2.0));
        for bad in ["20000", "-1", "abc", "NaN"] {
            assert!(weight(&with("weight", bad)).unwrap_err().message.contains("weight"), "{bad}");
        }
        assert_eq!(port(&with("port", "8080")).unwrap(), 8080);
        for bad in ["abc", "65536", "-1", ""] {
            assert!(port(&with("port", bad)).unwrap_err().message.contains("port"), "{bad}");
        }
        assert!(protect_threshold(&with("protectThreshold", "1.5")).is_err());
        assert_eq!(protect_threshold(&with("protectThreshold", "0.5")).unwrap(), Some(0.5));
    }

    #[test]
    fn ips_and_enabled() {
        assert!(ip(&with("ip", "fe80::1%eth0")).is_ok());
        for bad in ["", "1.2.3.4/8", "a#b", "a b"] {
            assert!(ip(&with("ip", bad)).unwrap_err().message.contains("ip"), "{bad:?}");
        }
        assert_eq!(enabled(&with("enable", "False")).unwrap(), Some(false));
        assert_eq!(enabled(&with("enabled", "true").param("enable", "false")).unwrap(), Some(true));
        assert_eq!(enabled(&GuestRequest::new("x")).unwrap(), None);
    }

    #[test]
    fn settings_are_normalized() {
        let checker = health_checker(&with("healthChecker", r#"{"type":"http","path":"/h"}"#)).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&checker).unwrap(),
            serde_json::json!({"type":"HTTP","path":"/h","headers":"","expectedResponseCode":200})
        );
        assert!(health_checker(&with("healthChecker", r#"{"type":"UDP"}"#)).is_err());
        assert!(selector(&with("selector", r#"{"type":"magic"}"#)).unwrap_err().message.contains("selector"));
    }
}
