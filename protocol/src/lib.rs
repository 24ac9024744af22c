//! The envelope in which the host hands an operation to a guest module, and the reply.
//!
//! Both sides of the WIT boundary depend on this crate and nothing else of each other: the host's
//! API layer turns an HTTP request into a [`GuestRequest`] without knowing what the operation
//! means; the guest decides what it means. Encoded as JSON, because the payload of a command is
//! stored in the replicated log and must decode the same way in every future module version.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// One operation for a guest: a command (through the log, to `apply`) or a read (to `query`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestRequest {
    /// What to do, e.g. `"config.publish"` or `"naming.register"`.
    pub op: String,
    /// Request parameters, merged from the query string and the form body (first value wins,
    /// as Java's `request.getParameter` does), plus any headers the operation needs.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The caller's IP address; empty when unknown.
    #[serde(default)]
    pub client_ip: String,
}

impl GuestRequest {
    pub fn new(op: impl Into<String>) -> Self {
        Self { op: op.into(), ..Self::default() }
    }

    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a map of strings always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A successful answer: the body the client sees and the headers that go with it
/// (`Content-MD5`, `Config-Type`, ...). Failures travel as the WIT `guest-error` instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestReply {
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl GuestReply {
    pub fn text(body: impl Into<String>) -> Self {
        Self { body: body.into(), headers: BTreeMap::new() }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Instructions from a guest to the host, carried as reply headers whose names start with
/// [`directive::PREFIX`]. The host acts on them and strips them before answering the client.
/// They let the host run the timers, leases and pushes a guest asks for without knowing what
/// an instance or a config is.
pub mod directive {
    /// Every directive header starts with this; no client ever sees such a header.
    pub const PREFIX: &str = "Nacre-";
    /// On a query reply: commit this same request as a command (same op, same parameters)
    /// and answer with the command's result instead. Value: `true`. Lets a read-mostly
    /// operation (a heartbeat) reach the log only when it changes state.
    pub const COMMIT: &str = "Nacre-Commit";
    /// On a query reply: the lease with this key (guest-chosen, scoped to the namespace and
    /// kind) was renewed now. The leader keeps renewal times in memory and hands them to the
    /// guest's `<kind>.sweep` query, which answers with the commands to commit.
    pub const LEASE_RENEW: &str = "Nacre-Lease-Renew";
    /// On a query reply: the event keys (topic and key as the guest emits them, as a JSON
    /// array of `[topic, key]` pairs) whose change makes this answer stale. A client that
    /// subscribed (long-poll, UDP push) is answered again when one of them changes.
    pub const WATCH: &str = "Nacre-Watch";

    /// Whether a reply header is a directive.
    pub fn is_directive(header_name: &str) -> bool {
        header_name.len() >= PREFIX.len() && header_name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_json() {
        let req = GuestRequest::new("config.publish").param("dataId", "a b").param("content", "é\u{1}");
        let back = GuestRequest::decode(&req.encode()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.get("dataId"), Some("a b"));
        assert_eq!(back.get("missing"), None);
    }

    #[test]
    fn reply_without_headers_omits_them() {
        let reply = GuestReply::text("true");
        assert_eq!(String::from_utf8(reply.encode()).unwrap(), r#"{"body":"true"}"#);
        let with = reply.header("Content-MD5", "x");
        assert_eq!(GuestReply::decode(&with.encode()).unwrap(), with);
    }
}
