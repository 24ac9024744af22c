//! The console's catalog reads, with Nacos's exact answers (`CatalogController`):
//! `GET /nacos/v1/ns/catalog/services` (services with their cluster, instance and healthy
//! counts), `GET /nacos/v1/ns/catalog/service` (one service and its clusters) and
//! `GET /nacos/v1/ns/catalog/instances` (one cluster's instances, paged).
//!
//! Deliberate differences from Nacos 2.x, each a fix of a reported problem: the name and group
//! filters are plain substrings (Nacos builds a regex from the raw text, so `(` breaks it),
//! and a page past the end is empty (Nacos returns the whole set when it is smaller than a
//! page, alibaba/nacos#3439).

use std::collections::BTreeSet;

use nacre_guest_sdk::{GuestError, GuestReply, GuestRequest, RequestExt};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::MAX_SERVICE_PAGE_SIZE;
use crate::list::host;
use crate::names::{self, ServiceName};
use crate::ops::json;
use crate::record::{self, HealthChecker, Metadata};

/// Instances one `catalog/instances` page may hold.
pub const MAX_INSTANCE_PAGE_SIZE: u64 = 1_000;

fn page(req: &GuestRequest, max: u64) -> Result<(usize, usize), GuestError> {
    let page_no = req.parsed::<u64>("pageNo")?.unwrap_or(1).max(1);
    let page_size = req.parsed::<u64>("pageSize")?.unwrap_or(10).clamp(1, max);
    let skip = usize::try_from((page_no - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    Ok((skip, usize::try_from(page_size).expect("bounded by the max")))
}

/// Every service of the namespace (with a record or ephemeral instances), as grouped names in
/// byte order.
fn all_services() -> Result<BTreeSet<String>, GuestError> {
    let mut all = BTreeSet::new();
    let prefix = record::SERVICE_PREFIX.as_bytes();
    record::for_each_row(prefix, |key, _| {
        all.insert(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        Ok(true)
    })?;
    let mut previous = String::new();
    let prefix = record::EPHEMERAL_PREFIX.as_bytes();
    record::for_each_row(prefix, |key, _| {
        let rest = String::from_utf8_lossy(&key[prefix.len()..]);
        let grouped = rest.split('/').next().unwrap_or_default();
        if grouped != previous {
            previous = grouped.to_owned();
            all.insert(previous.clone());
        }
        Ok(true)
    })?;
    Ok(all)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceView {
    name: String,
    group_name: String,
    cluster_count: usize,
    ip_count: usize,
    healthy_instance_count: usize,
    /// Nacos sends the string `"true"` or `"false"`.
    trigger_flag: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceViews {
    count: usize,
    service_list: Vec<ServiceView>,
}

/// A service's counts: its clusters (configured, or holding an instance), instances, healthy
/// ones, and whether the protect threshold is reached (healthy share at or under it).
fn view(name: &ServiceName) -> Result<ServiceView, GuestError> {
    let stored = record::load_service(name)?;
    let instances = record::service_instances(name)?;
    let mut clusters: BTreeSet<&str> = stored.iter().flat_map(|s| s.clusters.keys().map(String::as_str)).collect();
    clusters.extend(instances.iter().map(|i| i.cluster_name.as_str()));
    let healthy = instances.iter().filter(|i| i.healthy).count();
    let threshold = stored.as_ref().map_or(0.0, |s| s.protect_threshold);
    let triggered = !instances.is_empty() && (healthy as f32 / instances.len() as f32) <= threshold;
    Ok(ServiceView {
        name: name.service.clone(),
        group_name: name.group.clone(),
        cluster_count: clusters.len(),
        ip_count: instances.len(),
        healthy_instance_count: healthy,
        trigger_flag: if triggered { "true" } else { "false" },
    })
}

/// `GET /nacos/v1/ns/catalog/services` (`pageNo`, `pageSize` required, as Nacos's):
/// `serviceNameParam` and `groupNameParam` (substrings),
/// `hasIpCount=true` drops services without instances; `count` is before paging.
pub fn services(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    req.required("pageNo")?;
    req.required("pageSize")?;
    let (skip, take) = page(req, MAX_SERVICE_PAGE_SIZE)?;
    let name_part = req.optional("serviceNameParam").unwrap_or_default().trim();
    let group_part = req.optional("groupNameParam").unwrap_or_default().trim();
    let has_ip_count = req.bool_or("hasIpCount", false)?;
    let matching: Vec<ServiceName> = all_services()?
        .iter()
        .filter_map(|grouped| ServiceName::from_grouped(grouped))
        .filter(|n| n.service.contains(name_part) && n.group.contains(group_part))
        .filter(|n| !has_ip_count || record::has_instances(n))
        .collect();
    let service_list = matching.iter().skip(skip).take(take).map(view).collect::<Result<_, _>>()?;
    Ok(json(&ServiceViews { count: matching.len(), service_list }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CatalogService<'a> {
    service: ServiceSummary<'a>,
    clusters: Vec<ClusterSummary<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSummary<'a> {
    name: &'a str,
    group_name: &'a str,
    protect_threshold: f32,
    selector: &'a Value,
    metadata: &'a Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSummary<'a> {
    service_name: String,
    name: &'a str,
    health_checker: &'a HealthChecker,
    default_port: u16,
    default_check_port: u16,
    #[serde(rename = "useIPPort4Check")]
    use_ip_port4_check: bool,
    metadata: &'a Metadata,
}

/// `GET /nacos/v1/ns/catalog/service`: the service's settings and its clusters (configured, or
/// holding an ephemeral instance, with the defaults); 404 `service G@@S is not found!`.
pub fn service(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let (service, clusters) = crate::catalog::service_and_clusters(&name)?;
    let no_selector = serde_json::json!({ "type": "none" });
    let selector = if service.selector.is_null() { &no_selector } else { &service.selector };
    Ok(json(&CatalogService {
        service: ServiceSummary {
            name: &name.service,
            group_name: &name.group,
            protect_threshold: service.protect_threshold,
            selector,
            metadata: &service.metadata,
        },
        clusters: clusters
            .iter()
            .map(|(cluster, c)| ClusterSummary {
                service_name: name.grouped(),
                name: cluster,
                health_checker: &c.health_checker,
                default_port: 80,
                default_check_port: c.check_port,
                use_ip_port4_check: c.use_instance_port4_check,
                metadata: &c.metadata,
            })
            .collect(),
    }))
}

#[derive(Serialize)]
struct Instances<T> {
    list: Vec<T>,
    count: usize,
}

/// `GET /nacos/v1/ns/catalog/instances` (`clusterName`, `pageNo`, `pageSize` required): the
/// cluster's instances as the instance list shows them, and their number before paging;
/// 404 `cluster C is not found!`.
pub fn instances(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let cluster = req.required("clusterName")?.trim();
    req.required("pageNo")?;
    req.required("pageSize")?;
    let (skip, take) = page(req, MAX_INSTANCE_PAGE_SIZE)?;
    let stored = record::load_service(&name)?;
    let instances: Vec<_> =
        record::service_instances(&name)?.into_iter().filter(|i| i.cluster_name == cluster).collect();
    let configured = stored.as_ref().is_some_and(|s| s.clusters.contains_key(cluster));
    if instances.is_empty() && !configured {
        return Err(GuestError::not_found(format!("cluster {cluster} is not found!")));
    }
    let list = instances.iter().skip(skip).take(take).map(|i| host(i, i.healthy)).collect();
    Ok(json(&Instances { list, count: instances.len() }))
}
