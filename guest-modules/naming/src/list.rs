//! `GET /nacos/v1/ns/instance/list`: the service info every client polls and subscribes to.
//!
//! The reply is the union of Nacos 1.4's `doSrvIpxt` JSON and 2.x's `ServiceInfo`, so that both
//! generations of clients find the fields they read (`name`, `clusters` echoed exactly, `hosts`,
//! `cacheMillis`, `checksum`, `lastRefTime`, ...).
//!
//! With `view=v2` it is the `ServiceInfo` of Nacos 2.x's gRPC protocol (queries, subscriptions
//! and pushes): the bare service name beside `groupName` (the client rebuilds the grouped name
//! from the two), `allIps` beside `allIPs`, the push cache time.

use nacre_guest_sdk::md5::md5_hex;
use nacre_guest_sdk::{GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, directive};
use serde::Serialize;

use crate::names::{self, ServiceName};
use crate::ops::{TOPIC, json_text};
use crate::record::{self, InstanceRecord, Metadata};

/// How often a client should poll when it is subscribed for UDP push (`udpPort` > 0), and when
/// it is not (Nacos `SwitchDomain` defaultPushCacheMillis / defaultCacheMillis).
pub const PUSH_CACHE_MILLIS: u64 = 10_000;
pub const POLL_CACHE_MILLIS: u64 = 3_000;
/// Nacos's heartbeat defaults (api `Constants`), overridable per instance by the metadata keys
/// below.
pub const DEFAULT_HEART_BEAT_INTERVAL_MS: u64 = 5_000;
pub const DEFAULT_HEART_BEAT_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_IP_DELETE_TIMEOUT_MS: u64 = 30_000;
pub const HEART_BEAT_INTERVAL_KEY: &str = "preserved.heart.beat.interval";
pub const HEART_BEAT_TIMEOUT_KEY: &str = "preserved.heart.beat.timeout";
pub const IP_DELETE_TIMEOUT_KEY: &str = "preserved.ip.delete.timeout";
const INSTANCE_ID_GENERATOR_KEY: &str = "preserved.instance.id.generator";
const DEFAULT_INSTANCE_ID_GENERATOR: &str = "simple";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceInfo<'a> {
    name: String,
    group_name: &'a str,
    clusters: &'a str,
    cache_millis: u64,
    // `hosts` is spliced in by `list` (see there).
    last_ref_time: u64,
    checksum: String,
    #[serde(rename = "allIPs")]
    all_ips: bool,
    /// The 3.x spelling, in the 2.x view only (Python and Java 3.x read it).
    #[serde(rename = "allIps", skip_serializing_if = "Option::is_none")]
    all_ips_v3: Option<bool>,
    reach_protection_threshold: bool,
    valid: bool,
    dom: String,
    env: &'a str,
    #[serde(rename = "useSpecifiedURL")]
    use_specified_url: bool,
    metadata: &'a Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Host<'a> {
    instance_id: String,
    ip: &'a str,
    port: u16,
    weight: f64,
    healthy: bool,
    enabled: bool,
    ephemeral: bool,
    cluster_name: &'a str,
    service_name: &'a str,
    metadata: &'a Metadata,
    valid: bool,
    marked: bool,
    instance_heart_beat_interval: u64,
    #[serde(rename = "instanceHeartBeatTimeOut")]
    instance_heart_beat_time_out: u64,
    ip_delete_timeout: u64,
    instance_id_generator: &'a str,
}

pub(crate) fn host(instance: &InstanceRecord, healthy: bool) -> Host<'_> {
    Host {
        instance_id: instance.instance_id(),
        ip: &instance.ip,
        port: instance.port,
        weight: instance.weight,
        healthy,
        enabled: instance.enabled,
        ephemeral: instance.ephemeral,
        cluster_name: &instance.cluster_name,
        service_name: &instance.service_name,
        metadata: &instance.metadata,
        valid: healthy,
        marked: false,
        instance_heart_beat_interval: instance.preserved_ms(HEART_BEAT_INTERVAL_KEY, DEFAULT_HEART_BEAT_INTERVAL_MS),
        instance_heart_beat_time_out: instance.preserved_ms(HEART_BEAT_TIMEOUT_KEY, DEFAULT_HEART_BEAT_TIMEOUT_MS),
        ip_delete_timeout: instance.preserved_ms(IP_DELETE_TIMEOUT_KEY, DEFAULT_IP_DELETE_TIMEOUT_MS),
        instance_id_generator: instance
            .metadata
            .get(INSTANCE_ID_GENERATOR_KEY)
            .map_or(DEFAULT_INSTANCE_ID_GENERATOR, String::as_str),
    }
}

/// The service's checksum as Nacos computes it (`Service.recalculateChecksum`): the MD5 of the
/// service's name and, per host served, `ip:port_weight_healthy_clusterName,`. Like Nacos's, it
/// leaves metadata out; hashing the whole answer instead cost a tenth of a node's CPU when
/// listing (MD5 of kilobytes in the guest, on every list).
fn checksum(name: &ServiceName, hosts: &[Host]) -> String {
    let mut summary = name.grouped();
    for host in hosts {
        // Java prints a double with at least one decimal ("1.0").
        let weight = if host.weight.fract() == 0.0 { format!("{:.1}", host.weight) } else { host.weight.to_string() };
        let line = format!("{}:{}_{}_{}_{},", host.ip, host.port, weight, host.healthy, host.cluster_name);
        summary.push_str(&line);
    }
    md5_hex(summary.as_bytes())
}

/// The watch directive of a service: answers about it are stale once it emits.
pub fn watch_header(name: &ServiceName) -> String {
    serde_json::json!([[TOPIC, name.grouped()]]).to_string()
}

pub fn list(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let clusters_param = req.optional("clusters").unwrap_or_default();
    let wanted = names::cluster_filter(req);
    let healthy_only = req.bool_or("healthyOnly", false)?;
    let udp_port = req.parsed::<u16>("udpPort")?.unwrap_or(0);
    let v2 = req.optional("view") == Some("v2");
    // The record, when there is one, holds the settings; a service known only by its
    // ephemeral instances lists them with the defaults, and an unknown one lists no hosts.
    let service = record::load_service(&name)?;
    let instances: Vec<InstanceRecord> = record::service_instances(&name)?
        .into_iter()
        .filter(|i| wanted.is_empty() || wanted.contains(&i.cluster_name.as_str()))
        .collect();

    // Protection (Nacos 1.4 `doSrvIpxt`): when too few of the selected instances are healthy,
    // serve them all as healthy rather than send every client to the few survivors. The ratio
    // counts disabled instances too, as Nacos does; disabled ones are never served.
    let threshold = service.as_ref().map_or(0.0, |s| s.protect_threshold);
    let healthy_count = instances.iter().filter(|i| i.healthy).count();
    let protected = !instances.is_empty() && (healthy_count as f32 / instances.len() as f32) <= threshold;
    let hosts: Vec<Host> = instances
        .iter()
        .filter(|i| i.enabled)
        .map(|i| (i, i.healthy || protected))
        .filter(|(_, healthy)| *healthy || !healthy_only)
        .map(|(i, healthy)| host(i, healthy))
        .collect();
    let checksum = checksum(&name, &hosts);
    let hosts = serde_json::to_string(&hosts).expect("hosts serialize");
    let empty = Metadata::new();
    let info = ServiceInfo {
        name: if v2 { name.service.clone() } else { name.grouped() },
        group_name: &name.group,
        clusters: clusters_param,
        cache_millis: if udp_port > 0 || v2 { PUSH_CACHE_MILLIS } else { POLL_CACHE_MILLIS },
        last_ref_time: ctx.timestamp_ms,
        checksum,
        all_ips: false,
        all_ips_v3: v2.then_some(false),
        reach_protection_threshold: protected,
        valid: true,
        dom: name.grouped(),
        env: "",
        use_specified_url: false,
        metadata: service.as_ref().map_or(&empty, |s| &s.metadata),
    };
    // The hosts are the bulk of the answer: appended as the object's last field, as serialized.
    let mut body = serde_json::to_string(&info).expect("service info serializes");
    debug_assert!(body.ends_with('}'));
    body.pop();
    body.push_str(r#","hosts":"#);
    body.push_str(&hosts);
    body.push('}');
    Ok(json_text(body).header(directive::WATCH, watch_header(&name)))
}
