//! Nacos's gRPC framing: two protobuf messages (written here with prost's derive, so no
//! `.proto` and no protoc), whose body is the JSON of a Java class named by `metadata.type`.
//!
//! Inbound, every field is optional and may be `null` (Rust clients send nulls, Java omits,
//! Go sends zero values), and headers come from the body's `headers` overlaid by the
//! metadata's, names case-insensitive. Outbound, nothing is ever `null` (Python's pydantic
//! refuses a null string), and every response carries `resultCode`, `errorCode` and
//! `success`, kept consistent (each client reads a different one).

use std::collections::BTreeMap;
use std::collections::HashMap;

use serde_json::Map;
use serde_json::Value;
use serde_json::json;

/// `Metadata` (tags as in Nacos's `nacos_grpc_service.proto`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "3")]
    pub r#type: String,
    #[prost(string, tag = "8")]
    pub client_ip: String,
    #[prost(map = "string, string", tag = "7")]
    pub headers: HashMap<String, String>,
}

/// `google.protobuf.Any`: only `value` matters (clients disagree on `type_url`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `Payload`: one request or response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<Metadata>,
    #[prost(message, optional, tag = "3")]
    pub body: Option<Any>,
}

/// Largest payload a client may send (Nacos's `max-inbound-message-size`): a config of the
/// largest size the HTTP API takes, JSON-escaped, fits.
pub const MAX_INBOUND_BYTES: usize = 10 * 1024 * 1024;

/// Nacos's error codes, as clients act on them (reference §5).
pub mod code {
    /// `ErrorResponse`: the server is not serving yet.
    pub const SERVER_STARTING: u32 = 300;
    /// `ConfigQueryResponse`: no such config.
    pub const CONFIG_NOT_FOUND: u32 = 300;
    /// `ErrorResponse`: a call on a transport whose connection was never set up (or is gone):
    /// clients reconnect and redo.
    pub const UNREGISTERED: u32 = 301;
    /// `ErrorResponse`: an unknown request type.
    pub const NO_HANDLER: u32 = 302;
    pub const INVALID_PARAM: u32 = 400;
    /// A typed response: auth refused.
    pub const NO_RIGHT: u32 = 403;
    pub const SERVER_ERROR: u32 = 500;
    /// `ErrorResponse`: the body does not parse.
    pub const BAD_GATEWAY: u32 = 502;
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// One inbound message: its type, headers and JSON body.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub kind: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    pub body: Map<String, Value>,
    /// The client's own idea of its address (`metadata.clientIp`).
    pub client_ip: String,
}

impl Inbound {
    pub fn decode(payload: &Payload) -> Result<Inbound, String> {
        let metadata = payload.metadata.clone().unwrap_or_default();
        let raw = payload.body.as_ref().map_or(&[][..], |any| &any.value[..]);
        let body = match serde_json::from_slice::<Value>(raw) {
            _ if raw.trim_ascii().is_empty() => Map::new(),
            Ok(Value::Object(body)) => body,
            Ok(other) => return Err(format!("{} body is not a JSON object: {other}", metadata.r#type)),
            Err(e) => return Err(format!("{} body is not JSON: {e}", metadata.r#type)),
        };
        let mut headers = BTreeMap::new();
        if let Some(Value::Object(in_body)) = body.get("headers") {
            for (name, value) in in_body {
                if let Some(value) = value.as_str() {
                    headers.insert(name.to_ascii_lowercase(), value.to_string());
                }
            }
        }
        for (name, value) in metadata.headers {
            headers.insert(name.to_ascii_lowercase(), value);
        }
        Ok(Inbound { kind: metadata.r#type, headers, body, client_ip: metadata.client_ip })
    }

    /// A string field; absent, `null` and non-strings are `""` (numbers as their text).
    pub fn str(&self, field: &str) -> String {
        text(self.body.get(field))
    }

    pub fn field(&self, field: &str) -> Option<&Value> {
        self.body.get(field).filter(|v| !v.is_null())
    }

    pub fn bool(&self, field: &str) -> Option<bool> {
        bool_of(self.field(field))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The id a response to this (pushed) request must echo.
    pub fn request_id(&self) -> String {
        self.str("requestId")
    }
}

/// A JSON value read as text: strings as they are, numbers and booleans printed, the rest `""`.
pub fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A JSON boolean, or a string spelling one in any case (Python sends `"False"`).
pub fn bool_of(value: Option<&Value>) -> Option<bool> {
    match value {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn payload(kind: &str, body: Value) -> Payload {
    let value = serde_json::to_vec(&body).expect("JSON values serialize");
    Payload {
        metadata: Some(Metadata { r#type: kind.to_string(), ..Default::default() }),
        body: Some(Any { type_url: String::new(), value }),
    }
}

/// A response to a unary request, and whether it says success (what the metrics count,
/// known when it is built rather than read back from its JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub payload: Payload,
    pub success: bool,
}

/// A successful response of type `kind` with `fields` (an object) besides the common ones.
pub fn success(kind: &str, fields: Value) -> Reply {
    let mut body = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    body.insert("resultCode".into(), json!(200));
    body.insert("errorCode".into(), json!(0));
    body.insert("success".into(), json!(true));
    Reply { payload: payload(kind, Value::Object(body)), success: true }
}

/// A failed response of type `kind`: Nacos's `resultCode` 500 with `error_code` and `message`,
/// and `fields` some clients require even on failure (Rust's `lastModified` and `beta`).
pub fn failure(kind: &str, error_code: u32, message: &str, fields: Value) -> Reply {
    let mut body = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    body.insert("resultCode".into(), json!(500));
    body.insert("errorCode".into(), json!(error_code));
    body.insert("message".into(), json!(message));
    body.insert("success".into(), json!(false));
    Reply { payload: payload(kind, Value::Object(body)), success: false }
}

/// Nacos's generic failure (framework errors: unregistered connection, unknown type).
pub fn error_response(error_code: u32, message: &str) -> Reply {
    failure("ErrorResponse", error_code, message, json!({}))
}

/// A request the server pushes on a connection's stream, with its `requestId` (acks echo it).
pub fn server_request(kind: &str, request_id: &str, module: &str, fields: Value) -> Payload {
    let mut body = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    body.insert("headers".into(), json!({}));
    body.insert("requestId".into(), json!(request_id));
    body.insert("module".into(), json!(module));
    payload(kind, Value::Object(body))
}

/// Whether an inbound response (an ack) says success: clients set `resultCode` 200.
pub fn is_success(inbound: &Inbound) -> bool {
    inbound.field("resultCode").and_then(Value::as_u64) == Some(200) || inbound.bool("success") == Some(true)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn inbound(kind: &str, body: &str, headers: &[(&str, &str)]) -> Inbound {
        let metadata = Metadata {
            r#type: kind.into(),
            client_ip: "10.0.0.1".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let payload =
            Payload { metadata: Some(metadata), body: Some(Any { type_url: kind.into(), value: body.into() }) };
        // Through the wire form, as a client sends it.
        Inbound::decode(&Payload::decode(&payload.encode_to_vec()[..]).unwrap()).unwrap()
    }

    #[test]
    fn headers_from_the_body_are_overlaid_by_the_metadata_and_names_ignore_case() {
        let msg = inbound(
            "ConfigQueryRequest",
            r#"{"headers":{"accessToken":"old","notify":"False"},"dataId":"d","tenant":null,"port":8}"#,
            &[("AccessToken", "new")],
        );
        assert_eq!(msg.header("accesstoken"), Some("new"));
        assert_eq!(bool_of(msg.headers.get("notify").map(|v| Value::String(v.clone())).as_ref()), Some(false));
        assert_eq!(msg.str("dataId"), "d");
        assert_eq!(msg.str("tenant"), "", "null reads as empty");
        assert_eq!(msg.str("port"), "8");
        assert_eq!(msg.client_ip, "10.0.0.1");
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_garbage_is_an_error() {
        assert!(inbound("ServerCheckRequest", "", &[]).body.is_empty());
        let garbage = Payload {
            metadata: Some(Metadata { r#type: "X".into(), ..Default::default() }),
            body: Some(Any { type_url: String::new(), value: b"{nope".to_vec() }),
        };
        assert!(Inbound::decode(&garbage).is_err());
    }

    #[test]
    fn responses_carry_the_three_success_fields_consistently() {
        let read = |r: &Reply| -> Value { serde_json::from_slice(&r.payload.body.as_ref().unwrap().value).unwrap() };
        let ok = read(&success("HealthCheckResponse", json!({})));
        assert_eq!(
            (ok["resultCode"].clone(), ok["errorCode"].clone(), ok["success"].clone()),
            (json!(200), json!(0), json!(true))
        );
        let bad = read(&error_response(code::UNREGISTERED, "Connection is unregistered."));
        assert_eq!(
            (bad["resultCode"].clone(), bad["errorCode"].clone(), bad["success"].clone()),
            (json!(500), json!(301), json!(false))
        );
        assert!(!bad.to_string().contains("null"));
    }
}
