//! Service reads: get, list, metrics. A service is explicit (it has a record) or implicit (it
//! has only ephemeral instances, which write no record; see [`crate::record`]): every read
//! here answers for both, an implicit one with the default settings.

use std::collections::{BTreeMap, BTreeSet};

use nacre_guest_sdk::{GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, store};
use serde::Serialize;
use serde_json::Value;

use crate::names::{self, ServiceName};
use crate::ops::json;
use crate::record::{self, ClusterRecord, HealthChecker, Metadata, ServiceRecord};

/// Names one `service/list` page may hold; a larger `pageSize` is cut to it (Spring Cloud asks
/// for `Integer.MAX_VALUE` to mean "all").
pub const MAX_SERVICE_PAGE_SIZE: u64 = 10_000;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDetail<'a> {
    name: &'a str,
    group_name: &'a str,
    namespace_id: &'a str,
    protect_threshold: f32,
    metadata: &'a Metadata,
    selector: &'a Value,
    clusters: Vec<ClusterDetail<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterDetail<'a> {
    name: &'a str,
    health_checker: &'a HealthChecker,
    metadata: &'a Metadata,
}

/// `GET /nacos/v1/ns/service`: 404 when missing (Nacos `NacosException.NOT_FOUND`). Clusters:
/// the configured ones, and those ephemeral instances are in (with the defaults); a persistent
/// instance's cluster is always configured (its registration adds it).
pub fn get(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let (service, clusters) = service_and_clusters(&name)?;
    let clusters = clusters
        .iter()
        .map(|(name, c)| ClusterDetail { name, health_checker: &c.health_checker, metadata: &c.metadata })
        .collect();
    Ok(json(&ServiceDetail {
        name: &name.service,
        group_name: &name.group,
        namespace_id: &ctx.namespace,
        protect_threshold: service.protect_threshold,
        metadata: &service.metadata,
        selector: &service.selector,
        clusters,
    }))
}

/// A service's record (the defaults for an implicit one) and its clusters: the configured
/// ones, and those ephemeral instances are in (with the defaults); 404 `service G@@S is not
/// found!` when it has neither a record nor an instance. Shared by every read of one service.
pub(crate) fn service_and_clusters(
    name: &ServiceName,
) -> Result<(ServiceRecord, BTreeMap<String, ClusterRecord>), GuestError> {
    let stored = record::load_service(name)?;
    if !record::service_exists(name, stored.as_ref()) {
        return Err(GuestError::not_found(format!("service {} is not found!", name.grouped())));
    }
    let service = stored.unwrap_or_else(|| ServiceRecord::new(0));
    let mut clusters: BTreeMap<String, ClusterRecord> = service.clusters.clone();
    record::for_each_segment(&record::ephemeral_prefix(&name.grouped()), |cluster| {
        clusters.entry(cluster.to_owned()).or_default();
        Ok(true)
    })?;
    Ok((service, clusters))
}

#[derive(Serialize)]
struct ServiceList {
    count: u64,
    doms: Vec<String>,
}

/// `GET /nacos/v1/ns/service/list`: `pageNo` (1-based; 0 reads as 1, as Nacos clamps it) and
/// `pageSize` over the group's plain service names (with a record or ephemeral instances) in
/// byte order; `count` is the group's total.
pub fn list(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    req.required("pageNo")?;
    req.required("pageSize")?;
    let page_no = req.parsed::<u64>("pageNo")?.expect("checked present").max(1);
    let page_size = req.parsed::<u64>("pageSize")?.expect("checked present").min(MAX_SERVICE_PAGE_SIZE);
    let group = names::group_name(req)?;
    // The two sources are ordered differently (`e/<group>@@svc.x/` sorts before
    // `e/<group>@@svc/`), so the names are merged in a set rather than streamed.
    let mut all = BTreeSet::new();
    let prefix = record::group_prefix(group);
    record::for_each_row(&prefix, |key, _| {
        all.insert(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        Ok(true)
    })?;
    record::for_each_segment(&record::ephemeral_group_prefix(group), |service| {
        all.insert(service.to_owned());
        Ok(true)
    })?;
    let skip = usize::try_from((page_no - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).expect("bounded by MAX_SERVICE_PAGE_SIZE");
    let count = all.len() as u64;
    Ok(json(&ServiceList { count, doms: all.into_iter().skip(skip).take(take).collect() }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    service_count: u64,
    instance_count: u64,
}

/// `GET /nacos/v1/ns/operator/metrics`, this namespace's share: services (with a record or
/// ephemeral instances) and instances of both kinds. Reads every ephemeral instance: they are
/// not counted anywhere else.
pub fn metrics() -> Result<GuestReply, GuestError> {
    let mut metrics = Metrics { service_count: 0, instance_count: 0 };
    record::for_each_row(record::SERVICE_PREFIX.as_bytes(), |_, value| {
        let service: ServiceRecord = record::decode(value)?;
        metrics.service_count += 1;
        metrics.instance_count += u64::from(service.instance_count);
        Ok(true)
    })?;
    // One service's ephemeral rows are contiguous (`e/<grouped>/...`): a service is new when
    // its name differs from the previous row's.
    let prefix = record::EPHEMERAL_PREFIX.as_bytes();
    let mut previous: Vec<u8> = Vec::new();
    record::for_each_row(prefix, |key, _| {
        metrics.instance_count += 1;
        let rest = &key[prefix.len()..];
        let grouped = &rest[..rest.iter().position(|b| *b == b'/').unwrap_or(rest.len())];
        if grouped != previous.as_slice() {
            previous = grouped.to_vec();
            let has_record = store::get(&record::service_key(&String::from_utf8_lossy(grouped))).is_some();
            metrics.service_count += u64::from(!has_record);
        }
        Ok(true)
    })?;
    Ok(json(&metrics))
}
