//! The envelope in which the host hands an operation to a guest module, and the reply.
//!
//! Both sides of the WIT boundary depend on this crate and nothing else of each other: the host's
//! API layer turns an HTTP request into a [`GuestRequest`] without knowing what the operation
//! means; the guest decides what it means. A request is encoded as JSON, because the payload of
//! a command is stored in the replicated log and must decode the same way in every future
//! module version. A reply is never stored, so it takes the cheaper binary form
//! ([`reply_format`]); the JSON form of older modules still decodes.
//!
//! A reply can also carry instructions to the host, as [`directive`] headers. The ones that say
//! how a write is carried out (commit it through the log or on the AP path, renew a lease) have
//! a typed form, the [`Plan`]: guests write it with [`Plan::onto`] and the host reads it with
//! [`Plan::from_reply`], so that both sides agree on one decision.

mod plan;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

pub use crate::plan::{Commit, LeaseRenewal, Plan, PlanError};

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

    /// The binary form (see [`reply_format`]): the body is copied as it is, where JSON would
    /// escape every quote of a JSON body on the way out and unescape it on the way in (a
    /// fifth of a node's CPU when listing services).
    pub fn encode(&self) -> Vec<u8> {
        let headers_len: usize = self.headers.iter().map(|(name, value)| 8 + name.len() + value.len()).sum();
        let mut bytes = Vec::with_capacity(1 + 4 + self.body.len() + 4 + headers_len);
        bytes.push(reply_format::BINARY);
        put_str(&mut bytes, &self.body);
        put_len(&mut bytes, self.headers.len());
        for (name, value) in &self.headers {
            put_str(&mut bytes, name);
            put_str(&mut bytes, value);
        }
        bytes
    }

    /// Either form: binary, or the JSON object of modules built before it.
    pub fn decode(bytes: &[u8]) -> Result<Self, MalformedReply> {
        match bytes.first() {
            Some(&reply_format::BINARY) => decode_binary(&bytes[1..]),
            Some(&reply_format::JSON_OBJECT) => {
                serde_json::from_slice(bytes).map_err(|e| MalformedReply(e.to_string()))
            }
            Some(other) => Err(MalformedReply(format!("unknown reply format byte {other:#04x}"))),
            None => Err(MalformedReply("empty reply".into())),
        }
    }
}

/// How a [`GuestReply`] is encoded: its first byte says which form follows.
pub mod reply_format {
    /// Binary: the body, then the number of headers, then each header's name and value; every
    /// string as a little-endian `u32` byte length and its UTF-8 bytes.
    pub const BINARY: u8 = 0x01;
    /// A JSON object `{"body": ..., "headers": {...}}`: what modules built before the binary
    /// form answer, still accepted.
    pub const JSON_OBJECT: u8 = b'{';
}

/// Reply bytes that are neither form of [`GuestReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply(pub String);

impl std::fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed guest reply: {}", self.0)
    }
}

impl std::error::Error for MalformedReply {}

fn put_len(bytes: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("a guest reply is far below 4 GiB");
    bytes.extend_from_slice(&len.to_le_bytes());
}

fn put_str(bytes: &mut Vec<u8>, text: &str) {
    put_len(bytes, text.len());
    bytes.extend_from_slice(text.as_bytes());
}

fn decode_binary(mut rest: &[u8]) -> Result<GuestReply, MalformedReply> {
    fn take<'a>(rest: &mut &'a [u8], len: usize, what: &str) -> Result<&'a [u8], MalformedReply> {
        if rest.len() < len {
            return Err(MalformedReply(format!("{what} cut short")));
        }
        let (taken, left) = rest.split_at(len);
        *rest = left;
        Ok(taken)
    }
    fn take_len(rest: &mut &[u8], what: &str) -> Result<usize, MalformedReply> {
        let bytes = take(rest, 4, what)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize)
    }
    fn take_str(rest: &mut &[u8], what: &str) -> Result<String, MalformedReply> {
        let len = take_len(rest, what)?;
        let bytes = take(rest, len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| MalformedReply(format!("{what} is not UTF-8")))
    }
    let body = take_str(&mut rest, "body")?;
    let count = take_len(&mut rest, "header count")?;
    let mut headers = BTreeMap::new();
    for _ in 0..count {
        let name = take_str(&mut rest, "header name")?;
        let value = take_str(&mut rest, "header value")?;
        headers.insert(name, value);
    }
    if !rest.is_empty() {
        return Err(MalformedReply(format!("{} bytes after the last header", rest.len())));
    }
    Ok(GuestReply { body, headers })
}

/// The two keyspaces of a guest's store.
///
/// Keys under [`keyspace::AP_PREFIX`] form the AP keyspace: written only by AP commands
/// ([`Commit::Ap`]), kept per node in memory, replicated between nodes by record version (not through
/// the log), so they stay writable on every side of a network partition and converge after it
/// heals. Every other key is the CP keyspace: written only by log commands, identical on every
/// replica at the same applied index.
///
/// - a log command sees the CP keyspace only (the AP keyspace differs between replicas, so a
///   log command must not depend on it) and fails if it writes under the AP prefix;
/// - an AP command sees both, and fails if it writes outside the AP prefix;
/// - a query sees both.
pub mod keyspace {
    /// The prefix of every key in the AP keyspace.
    pub const AP_PREFIX: &[u8] = b"e/";

    /// Whether `key` is in the AP keyspace.
    pub fn is_ap(key: &[u8]) -> bool {
        key.starts_with(AP_PREFIX)
    }
}

/// Instructions from a guest to the host, carried as reply headers whose names start with
/// [`directive::PREFIX`]. The host acts on them and strips them before answering the client.
/// They let the host run the timers, leases and pushes a guest asks for without knowing what
/// an instance or a config is.
///
/// [`directive::COMMIT`], [`directive::PARTITION`] and [`directive::LEASE_RENEW`] are the wire
/// form of a write's plan, whose typed form is [`Plan`]: guests write them with [`Plan::onto`]
/// and the host reads them with [`Plan::from_reply`], never one header at a time, so that both
/// sides read the same plan. [`directive::WATCH`] is not part of the plan.
pub mod directive {
    /// Every directive header starts with this; no client ever sees such a header.
    pub const PREFIX: &str = "Nacre-";
    /// On a query reply: commit this same request as a command (same op, same parameters)
    /// and answer with the command's result instead. Lets a read-mostly operation (a
    /// heartbeat) become a command only when it changes state, and lets a guest choose, per
    /// request, the path its command takes. Values: [`COMMIT_LOG`] or [`COMMIT_AP`]; the
    /// typed form is [`crate::Commit`].
    pub const COMMIT: &str = "Nacre-Commit";
    /// [`COMMIT`] value: through the Raft log (CP): committed by a majority, applied by every
    /// replica in log order. Fails when no majority is reachable. [`crate::Commit::Log`].
    pub const COMMIT_LOG: &str = "true";
    /// [`COMMIT`] value: on the AP path: applied by the node responsible for the request's
    /// [`PARTITION`] to the AP keyspace ([`super::keyspace::AP_PREFIX`]) and replicated to
    /// the other nodes asynchronously. Works on any side of a network partition.
    /// [`crate::Commit::Ap`].
    pub const COMMIT_AP: &str = "ap";
    /// On a query reply: the AP partition (guest-chosen, e.g. a service name) the request
    /// concerns. Its `COMMIT_AP` command and its lease renewals go to the one node
    /// responsible for that partition (by a stable hash over the live members). One header
    /// for both: a plan's AP commit and its renewal name the same partition.
    pub const PARTITION: &str = "Nacre-Partition";
    /// On a query reply: the lease with this key (guest-chosen, scoped to the namespace and
    /// kind) was renewed now. It is held by the node responsible for the [`PARTITION`] when
    /// the reply names one, else by the leader; that node keeps renewal times in memory and
    /// hands them to the guest's `<kind>.sweep` query, which answers with the commands to run.
    /// The typed form is [`crate::LeaseRenewal`].
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

/// The `<kind>.sweep` query: the host's once-a-second question "what has expired?".
///
/// Parameters the host passes (all strings): `nowMs` (this node's clock), `sinceMs` (when this
/// node started tracking the leases it holds: every lease gets a full timeout from then),
/// `beats` (JSON `{leaseKey: lastRenewalMs}`, the renewals this node holds), `partitions`
/// (JSON array: sweep only the AP partitions this node is responsible for; absent: all),
/// `leader` (`true` when this node leads the log: only then may log commands be answered)
/// and `preserve` (`true` while the node is in self-preservation: the guest must not expire
/// anything). The reply body is a [`sweep::SweepReply`] as JSON.
pub mod sweep {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde::Serialize;

    /// What a sweep found.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct SweepReply {
        /// The commands to run, in order.
        #[serde(default)]
        pub commands: Vec<SweepCommand>,
        /// Leases swept that were expected to be renewed (the base of self-preservation).
        #[serde(default)]
        pub expected: u64,
        /// Of those, how many have gone without a renewal past their own timeout.
        #[serde(default)]
        pub lapsed: u64,
    }

    /// One command a sweep asks for: applied on the AP path at `partition`'s responsible
    /// node when `partition` is set, else committed through the log by the leader.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SweepCommand {
        pub op: String,
        #[serde(default)]
        pub params: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub partition: Option<String>,
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
    fn replies_round_trip_in_binary_and_decode_from_json() {
        let reply = GuestReply::text(r#"{"hosts":["é\u0001"]}"#).header("Content-MD5", "x").header("Nacre-Watch", "");
        let bytes = reply.encode();
        assert_eq!(bytes[0], reply_format::BINARY);
        assert_eq!(GuestReply::decode(&bytes).unwrap(), reply);
        assert_eq!(GuestReply::decode(&GuestReply::text("").encode()).unwrap(), GuestReply::text(""));
        // What modules built before the binary form answer.
        let json = serde_json::to_vec(&reply).unwrap();
        assert_eq!(GuestReply::decode(&json).unwrap(), reply);
        assert_eq!(GuestReply::decode(br#"{"body":"true"}"#).unwrap(), GuestReply::text("true"));
    }

    #[test]
    fn malformed_replies_are_refused_not_misread() {
        let bytes = GuestReply::text("body").header("a", "b").encode();
        for cut in 0..bytes.len() {
            assert!(GuestReply::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(GuestReply::decode(&longer).is_err());
        let mut not_utf8 = GuestReply::text("ab").encode();
        not_utf8[5] = 0xff;
        assert!(GuestReply::decode(&not_utf8).is_err());
        assert!(GuestReply::decode(b"\x07").is_err());
    }
}
