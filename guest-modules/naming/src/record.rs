//! What this module stores (schema 1) and where. The host scopes the store per namespace, so
//! no key holds the namespace.
//!
//! | key                                               | value (JSON)          | keyspace |
//! |---------------------------------------------------|-----------------------|----------|
//! | `s/<group>@@<service>`                            | [`ServiceRecord`]     | CP (log) |
//! | `p/<group>@@<service>/<cluster>/<ip>/<port:05>`   | [`InstanceRecord`], persistent | CP (log) |
//! | `e/<group>@@<service>/<cluster>/<ip>/<port:05>`   | [`InstanceRecord`], ephemeral  | AP       |
//!
//! `e/` is the host's AP keyspace (`keyspace::AP_PREFIX`): ephemeral instances are written by
//! AP commands on the node responsible for their service and replicated between nodes outside
//! the log; a log command cannot see them. So an ephemeral instance writes nothing else: no
//! service record, no cluster, no count. A service exists when it has a record (created by
//! `naming.service.create`, a settings update or a persistent registration) or any instance;
//! every reader here treats a service with ephemeral instances and no record as one with the
//! default settings ("implicit").
//!
//! `/` is in none of the name, cluster and ip alphabets, so `e/<grouped>/` is an exact prefix
//! of one service's instances, and `e/<grouped>/<cluster>/` of one cluster's. Ephemeral and
//! persistent instances live apart because the heartbeat sweep reads only the former and the
//! health prober only the latter.
//!
//! Field names are part of schema 1: fields added later must have a serde default.

use std::collections::BTreeMap;

use nacre_guest_sdk::{GuestError, store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::ServiceName;

pub type Metadata = BTreeMap<String, String>;

/// Rows asked of one `scan` call. Small enough that a page of instances with the largest
/// metadata (`fields::MAX_METADATA_BYTES`) stays well inside the host's scan byte limit.
pub const SCAN_PAGE_ROWS: u32 = 256;
/// Clusters one service may have, configured or used by an instance: every write of the
/// service record re-encodes the configured ones, and `service.get` lists them all.
pub const MAX_CLUSTERS_PER_SERVICE: usize = 256;
/// Instances one service may hold, both kinds: what one `instance/list` reply can render
/// within the host's fuel and result-size limits (about 400 bytes of JSON each). Persistent
/// ones are counted in the record; ephemeral ones by a scan that stops at this limit.
pub const MAX_INSTANCES_PER_SERVICE: u32 = 10_000;

pub const SERVICE_PREFIX: &str = "s/";
/// The host's AP prefix (`keyspace::AP_PREFIX`, checked by a test), as text for key building.
pub const EPHEMERAL_PREFIX: &str = "e/";
pub const PERSISTENT_PREFIX: &str = "p/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRecord {
    pub protect_threshold: f32,
    #[serde(default)]
    pub metadata: Metadata,
    pub selector: Value,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterRecord>,
    /// Persistent instances stored under this service: kept by every persistent insert and
    /// removal so that metrics and the per-service limit need no scan of them. Ephemeral
    /// instances are not counted: they are in the AP keyspace, which log commands (the only
    /// writers of this record) cannot see; they are counted by scanning `e/<grouped>/`.
    #[serde(default)]
    pub instance_count: u32,
    pub created_ms: u64,
    /// Leader time at which the last persistent instance left (0: never had one; then
    /// `created_ms` counts). The sweep removes services that stayed empty (of both kinds) and
    /// unconfigured.
    #[serde(default)]
    pub empty_since_ms: u64,
}

impl ServiceRecord {
    pub fn new(created_ms: u64) -> Self {
        Self {
            protect_threshold: 0.0,
            metadata: Metadata::new(),
            selector: serde_json::json!({"type": "none"}),
            clusters: BTreeMap::new(),
            instance_count: 0,
            created_ms,
            empty_since_ms: 0,
        }
    }

    /// Whether removing this record would lose nothing a user set: no persistent instance, and
    /// every setting (threshold, metadata, selector, clusters) still the default a
    /// registration gives. Ephemeral instances are for the caller to check ([`has_instances`]).
    pub fn is_unused(&self) -> bool {
        let defaults = Self::new(self.created_ms);
        self.instance_count == 0
            && self.protect_threshold == defaults.protect_threshold
            && self.metadata.is_empty()
            && self.selector == defaults.selector
            && self.clusters.values().all(|cluster| *cluster == ClusterRecord::default())
    }

    /// The cluster's settings, the Nacos defaults when it was never configured.
    pub fn cluster(&self, name: &str) -> ClusterRecord {
        self.clusters.get(name).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub health_checker: HealthChecker,
    pub check_port: u16,
    pub use_instance_port4_check: bool,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Nacos's defaults for a cluster created by a registration: TCP checks on the instance port.
impl Default for ClusterRecord {
    fn default() -> Self {
        Self {
            health_checker: HealthChecker::Tcp,
            check_port: 80,
            use_instance_port4_check: true,
            metadata: Metadata::new(),
        }
    }
}

/// How the leader probes persistent instances of a cluster (Nacos `AbstractHealthChecker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HealthChecker {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "HTTP", rename_all = "camelCase")]
    Http {
        #[serde(default)]
        path: String,
        #[serde(default)]
        headers: String,
        #[serde(default = "http_ok")]
        expected_response_code: u16,
    },
    /// Stored and shown; the host has no MySQL prober, so no probe targets come from it.
    #[serde(rename = "MYSQL")]
    Mysql {
        #[serde(default)]
        user: String,
        #[serde(default)]
        pwd: String,
        #[serde(default)]
        cmd: String,
    },
    /// Health is set by `PUT /nacos/v1/ns/health/instance` only.
    #[serde(rename = "NONE")]
    None,
}

fn http_ok() -> u16 {
    200
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub ip: String,
    pub port: u16,
    pub weight: f64,
    pub enabled: bool,
    pub healthy: bool,
    pub ephemeral: bool,
    pub cluster_name: String,
    /// Grouped: `group@@service`.
    pub service_name: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The Nacos 2.x connection that registered this instance (the `connectionId` parameter
    /// the host's gRPC port adds): the end of that connection removes it, unless another
    /// connection has registered it since ([`crate::instance::deregister`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Leader time of the last registration: the heartbeat sweep's floor, and the guard that
    /// stops an expiry computed before a re-registration from removing the new registration.
    pub registered_ms: u64,
}

impl InstanceRecord {
    /// Nacos's "simple" instance id: `ip#port#cluster#group@@service`.
    pub fn instance_id(&self) -> String {
        format!("{}#{}#{}#{}", self.ip, self.port, self.cluster_name, self.service_name)
    }

    pub fn key(&self) -> Vec<u8> {
        instance_key(self.ephemeral, &self.service_name, &self.cluster_name, &self.ip, self.port)
    }

    /// A `preserved.*` metadata number (heartbeat interval and timeouts), else `default`.
    pub fn preserved_ms(&self, key: &str, default: u64) -> u64 {
        self.metadata.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }
}

/// Where one instance is, given the parts of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAddr<'a> {
    pub service: &'a ServiceName,
    pub cluster: &'a str,
    pub ip: &'a str,
    pub port: u16,
}

impl InstanceAddr<'_> {
    pub fn instance_id(&self) -> String {
        format!("{}#{}#{}#{}", self.ip, self.port, self.cluster, self.service.grouped())
    }
}

/// Where an ephemeral instance at `addr` is (or would be) stored.
pub fn ephemeral_instance_key(addr: &InstanceAddr) -> Vec<u8> {
    instance_key(true, &addr.service.grouped(), addr.cluster, addr.ip, addr.port)
}

pub fn service_key(grouped: &str) -> Vec<u8> {
    format!("{SERVICE_PREFIX}{grouped}").into_bytes()
}

/// The prefix of every service key of a group.
pub fn group_prefix(group: &str) -> Vec<u8> {
    format!("{SERVICE_PREFIX}{group}@@").into_bytes()
}

fn instance_key(ephemeral: bool, grouped: &str, cluster: &str, ip: &str, port: u16) -> Vec<u8> {
    format!("{}{grouped}/{cluster}/{ip}/{port:05}", kind_prefix(ephemeral)).into_bytes()
}

fn kind_prefix(ephemeral: bool) -> &'static str {
    if ephemeral { EPHEMERAL_PREFIX } else { PERSISTENT_PREFIX }
}

pub fn load_service(name: &ServiceName) -> Result<Option<ServiceRecord>, GuestError> {
    store::get_json(&service_key(&name.grouped()))
}

pub fn save_service(name: &ServiceName, record: &ServiceRecord) {
    store::put_json(&service_key(&name.grouped()), record)
}

/// The instance with this id: of the kind asked for, or either kind (ephemeral first) when
/// `ephemeral` is `None`. A log command finds only persistent instances.
pub fn find_instance(addr: &InstanceAddr, ephemeral: Option<bool>) -> Result<Option<InstanceRecord>, GuestError> {
    for kind in [true, false] {
        if ephemeral.is_some_and(|wanted| wanted != kind) {
            continue;
        }
        let key = instance_key(kind, &addr.service.grouped(), addr.cluster, addr.ip, addr.port);
        if let Some(record) = store::get_json(&key)? {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// Every instance of a service, ordered by cluster, ip and port.
pub fn service_instances(name: &ServiceName) -> Result<Vec<InstanceRecord>, GuestError> {
    let mut all: Vec<InstanceRecord> = Vec::new();
    for ephemeral in [true, false] {
        let prefix = format!("{}{}/", kind_prefix(ephemeral), name.grouped()).into_bytes();
        for_each_row(&prefix, |_, value| {
            all.push(decode(value)?);
            Ok(true)
        })?;
    }
    all.sort_by(|a, b| (&a.cluster_name, &a.ip, a.port).cmp(&(&b.cluster_name, &b.ip, b.port)));
    Ok(all)
}

/// Whether the service holds any instance (a scan of at most one row per kind). A query sees
/// both kinds; a log command only persistent ones.
pub fn has_instances(name: &ServiceName) -> bool {
    [true, false].into_iter().any(|ephemeral| {
        let prefix = format!("{}{}/", kind_prefix(ephemeral), name.grouped()).into_bytes();
        !store::scan_prefix(&prefix, &prefix, 1).is_empty()
    })
}

/// Whether the service exists: it has a record, or (implicitly) an instance.
pub fn service_exists(name: &ServiceName, record: Option<&ServiceRecord>) -> bool {
    record.is_some() || has_instances(name)
}

/// The prefix of every ephemeral instance of the service `grouped` (its AP partition).
pub fn ephemeral_prefix(grouped: &str) -> Vec<u8> {
    format!("{EPHEMERAL_PREFIX}{grouped}/").into_bytes()
}

/// The prefix of the ephemeral instances of every service of a group.
pub fn ephemeral_group_prefix(group: &str) -> Vec<u8> {
    format!("{EPHEMERAL_PREFIX}{group}@@").into_bytes()
}

/// Ephemeral instances of the service, counted up to `limit` (the scan stops there).
pub fn count_ephemeral(name: &ServiceName, limit: u32) -> Result<u32, GuestError> {
    let mut count = 0;
    if limit > 0 {
        for_each_row(&ephemeral_prefix(&name.grouped()), |_, _| {
            count += 1;
            Ok(count < limit)
        })?;
    }
    Ok(count)
}

/// Whether some ephemeral instance of the service is in `cluster`.
pub fn cluster_has_ephemeral(name: &ServiceName, cluster: &str) -> bool {
    let prefix = format!("{EPHEMERAL_PREFIX}{}/{cluster}/", name.grouped()).into_bytes();
    !store::scan_prefix(&prefix, &prefix, 1).is_empty()
}

/// The distinct path segments right after `prefix` (up to the next `/`) among the keys under
/// it, in key order, until `visit` returns false: e.g. the services under `e/<group>@@`, or the
/// clusters under `e/<grouped>/`. One scan of one row per segment: it jumps past the rest of a
/// segment's keys instead of reading every instance (as `namespaces_with_data` does in the
/// host's state machine).
pub fn for_each_segment(
    prefix: &[u8],
    mut visit: impl FnMut(&str) -> Result<bool, GuestError>,
) -> Result<(), GuestError> {
    let mut start = prefix.to_vec();
    while let Some((key, _)) = store::scan_prefix(prefix, &start, 1).pop() {
        let rest = &key[prefix.len()..];
        let Some(end) = rest.iter().position(|b| *b == b'/') else {
            // Not a `<segment>/...` key (none is stored so): step over it.
            start = [key.as_slice(), b"\0"].concat();
            continue;
        };
        if !visit(&String::from_utf8_lossy(&rest[..end]))? {
            return Ok(());
        }
        // `0` sorts right after `/`: the first key past every `<segment>/...` key.
        start = [&key[..prefix.len() + end], b"0"].concat();
    }
    Ok(())
}

/// Every instance of one kind in the namespace, in key order, until `visit` returns false.
pub fn for_each_instance(
    ephemeral: bool,
    mut visit: impl FnMut(InstanceRecord) -> Result<bool, GuestError>,
) -> Result<(), GuestError> {
    for_each_row(kind_prefix(ephemeral).as_bytes(), |_, value| visit(decode(value)?))
}

/// Rows under `prefix` in key order, a page of [`SCAN_PAGE_ROWS`] at a time, until `visit`
/// returns false.
pub fn for_each_row(
    prefix: &[u8],
    visit: impl FnMut(&[u8], &[u8]) -> Result<bool, GuestError>,
) -> Result<(), GuestError> {
    for_each_row_from(prefix, None, visit)
}

/// [`for_each_row`] from the key `start` on (`None`: from the first key under `prefix`; a
/// start before the prefix is the prefix).
pub fn for_each_row_from(
    prefix: &[u8],
    start: Option<&[u8]>,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, GuestError>,
) -> Result<(), GuestError> {
    let mut start = start.filter(|start| *start > prefix).unwrap_or(prefix).to_vec();
    loop {
        let page = store::scan_prefix(prefix, &start, SCAN_PAGE_ROWS);
        let full = page.len() == SCAN_PAGE_ROWS as usize;
        for (key, value) in &page {
            if !visit(key, value)? {
                return Ok(());
            }
        }
        match page.last() {
            Some((last, _)) if full => {
                start = last.clone();
                start.push(0); // the smallest key after `last`
            }
            _ => return Ok(()),
        }
    }
}

pub fn decode<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T, GuestError> {
    serde_json::from_slice(value).map_err(|e| GuestError::internal(format!("stored record does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use nacre_guest_sdk::keyspace;

    use super::*;

    #[test]
    fn keys_and_ids() {
        let svc = ServiceName { group: "G".into(), service: "s".into() };
        let addr = InstanceAddr { service: &svc, cluster: "DEFAULT", ip: "1.2.3.4", port: 80 };
        assert_eq!(addr.instance_id(), "1.2.3.4#80#DEFAULT#G@@s");
        assert_eq!(instance_key(true, "G@@s", "DEFAULT", "1.2.3.4", 80), b"e/G@@s/DEFAULT/1.2.3.4/00080");
        assert!(!service_key("G@x@@s").starts_with(&group_prefix("G")), "groups do not overlap");
        assert_eq!(EPHEMERAL_PREFIX.as_bytes(), keyspace::AP_PREFIX, "ephemeral instances are the AP keyspace");
        assert!(!keyspace::is_ap(SERVICE_PREFIX.as_bytes()) && !keyspace::is_ap(PERSISTENT_PREFIX.as_bytes()));
    }

    #[test]
    fn segments_are_visited_once_each_in_key_order() {
        nacre_guest_sdk::testing::reset();
        // `svc.x/` sorts before `svc/` ('.' < '/'), `svc0/` after it.
        for key in ["e/G@@svc/c/1", "e/G@@svc/c/2", "e/G@@svc/d/1", "e/G@@svc.x/c/1", "e/G@@svc0/c/1", "e/H@@a/c/1"] {
            store::put(key.as_bytes(), b"{}");
        }
        let mut seen = Vec::new();
        for_each_segment(&ephemeral_group_prefix("G"), |s| {
            seen.push(s.to_owned());
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, ["svc.x", "svc", "svc0"]);
        let mut clusters = Vec::new();
        for_each_segment(&ephemeral_prefix("G@@svc"), |c| {
            clusters.push(c.to_owned());
            Ok(false) // stop after the first
        })
        .unwrap();
        assert_eq!(clusters, ["c"], "stops when asked");
    }

    #[test]
    fn paging_visits_every_row_once() {
        nacre_guest_sdk::testing::reset();
        let rows = SCAN_PAGE_ROWS as usize * 2 + 3;
        for i in 0..rows {
            store::put(format!("x/{i:06}").as_bytes(), b"1");
        }
        store::put(b"y", b"1");
        let mut seen = 0;
        for_each_row(b"x/", |_, _| {
            seen += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, rows);
    }
}
