//! The naming operations end to end through the SDK adapter, natively, against the in-memory
//! store. Requests are built the way the real clients send them (see
//! `shared/reference/nacos-clients.md`).

mod beat;
mod catalog;
mod health;
mod implicit;
mod instances;
mod list;
mod plans;
mod services;
mod sweep;
mod validation;

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, testing};
use serde_json::Value;

use crate::Naming;
use crate::ops::*;

pub const SVC: &str = "DEFAULT_GROUP@@svc";

pub fn req(op: &str, params: &[(&str, &str)]) -> GuestRequest {
    params.iter().fold(GuestRequest::new(op), |req, (name, value)| req.param(*name, *value))
}

/// A write at leader time `ms` (also its log index: both only grow), as the host's API layer
/// makes it: the plan query, then the command on the path the plan names (the log command
/// blind to `e/`, the AP command writing only `e/`), or the plan's own answer.
pub fn write_at(ms: u64, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    testing::write::<Naming>(&Command::new(ms, ms), req)
}

/// A log command at `ms`, without a plan (what the leader commits for a sweep or a probe).
pub fn apply_log_at(ms: u64, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    testing::apply_log::<Naming>(&Command::new(ms, ms), req)
}

/// An AP command at `ms`, without a plan (what a node runs for its sweep).
pub fn apply_ap_at(ms: u64, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    testing::apply_ap::<Naming>(&Command::new(ms, ms), req)
}

pub fn query_at(ms: u64, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    testing::query::<Naming>(&QueryContext::new(ms, ms), req)
}

pub fn body(reply: &GuestReply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.body))
}

/// What `nacos.NacosClient.add_naming_instance` sends (Python, plain name, `True`, `None`).
pub fn py_register(ip: &str, port: &str) -> GuestRequest {
    req(
        REGISTER,
        &[
            ("ip", ip),
            ("port", port),
            ("serviceName", "svc"),
            ("weight", "1.0"),
            ("enable", "True"),
            ("healthy", "True"),
            ("clusterName", "None"),
            ("ephemeral", "True"),
            ("groupName", "DEFAULT_GROUP"),
        ],
    )
}

/// What npm `nacos-naming` `registerInstance` sends (grouped name, lower-case booleans).
pub fn js_register(ip: &str, port: &str) -> GuestRequest {
    req(
        REGISTER,
        &[
            ("namespaceId", "public"),
            ("serviceName", SVC),
            ("groupName", "DEFAULT_GROUP"),
            ("clusterName", "DEFAULT"),
            ("ip", ip),
            ("port", port),
            ("weight", "1"),
            ("enable", "true"),
            ("healthy", "true"),
            ("ephemeral", "true"),
            ("metadata", "{}"),
        ],
    )
}

pub fn register(ms: u64, req: GuestRequest) {
    assert_eq!(write_at(ms, &req).unwrap().body, "ok");
}

/// `instance/list` of `svc` with extra parameters; the parsed body.
pub fn list(ms: u64, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("serviceName", SVC)];
    params.extend_from_slice(extra);
    body(&query_at(ms, &req(LIST, &params)).unwrap())
}

/// `(ip, port, healthy)` of each listed host, in order.
pub fn hosts(list: &Value) -> Vec<(String, u64, bool)> {
    list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["ip"].as_str().unwrap().to_owned(), h["port"].as_u64().unwrap(), h["healthy"].as_bool().unwrap()))
        .collect()
}

/// Sets fields of an instance of `svc` in cluster DEFAULT through `naming.patch`.
pub fn patch(ms: u64, ip: &str, port: &str, fields: &[(&str, &str)]) {
    let mut params = vec![("serviceName", SVC), ("ip", ip), ("port", port)];
    params.extend_from_slice(fields);
    assert_eq!(write_at(ms, &req(PATCH, &params)).unwrap().body, "ok");
}

pub fn events() -> Vec<(String, String)> {
    testing::take_events()
}

pub fn naming_event() -> Vec<(String, String)> {
    vec![("naming".to_owned(), SVC.to_owned())]
}
