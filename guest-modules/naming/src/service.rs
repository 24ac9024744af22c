//! Services and their clusters: create, remove, update, cluster update (commands); get, list,
//! metrics (reads). Errors in Nacos 1.4's words (`ServiceController`, `ServiceManager`).

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, RequestExt, emit, store};
use serde::Serialize;
use serde_json::Value;

use crate::fields;
use crate::names;
use crate::ops::{OK, TOPIC, json};
use crate::record::{self, HealthChecker, MAX_CLUSTERS_PER_SERVICE, Metadata, ServiceRecord};

/// Names one `service/list` page may hold; a larger `pageSize` is cut to it (Spring Cloud asks
/// for `Integer.MAX_VALUE` to mean "all").
pub const MAX_SERVICE_PAGE_SIZE: u64 = 10_000;

/// `POST /nacos/v1/ns/service`: 400 when it exists.
pub fn create(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let threshold = fields::protect_threshold(req)?;
    let metadata = fields::metadata(req, "metadata")?;
    let selector = fields::selector(req)?;
    if record::load_service(&name)?.is_some() {
        return Err(GuestError::bad_request(format!(
            "specified service already exists, serviceName : {}",
            name.grouped()
        )));
    }
    let mut service = ServiceRecord::new(cmd.timestamp_ms);
    service.protect_threshold = threshold.unwrap_or(0.0);
    service.metadata = metadata.unwrap_or_default();
    service.selector = selector.unwrap_or(service.selector);
    record::save_service(&name, &service);
    emit(TOPIC, &name.grouped());
    Ok(GuestReply::text(OK))
}

/// `DELETE /nacos/v1/ns/service`: 400 when missing or when it still has instances (Nacos
/// `easyRemoveService` throws `IllegalArgumentException` for both).
///
/// With `onlyIfUnused=true` (the sweep's empty-service cleanup) a service that is missing, has
/// instances or settings again, or was emptied after `emptySinceMs`, is left alone with `ok`:
/// the sweep saw it before a registration or an update that now keeps it.
pub fn remove(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let only_if_unused = req.bool_or("onlyIfUnused", false)?;
    let seen_empty_since = fields::millis(req, "emptySinceMs")?;
    let service = record::load_service(&name)?;
    if only_if_unused {
        let still_unused = service.as_ref().is_some_and(|s| {
            s.is_unused()
                && seen_empty_since.is_none_or(|seen| s.empty_since_ms <= seen)
                && !record::has_instances(&name)
        });
        if !still_unused {
            return Ok(GuestReply::text(OK));
        }
    }
    let Some(_) = service else {
        return Err(GuestError::bad_request(format!("specified service not exist, serviceName : {}", name.grouped())));
    };
    if record::has_instances(&name) {
        return Err(GuestError::bad_request(format!(
            "specified service has instances, serviceName : {}",
            name.grouped()
        )));
    }
    store::delete(&record::service_key(&name.grouped()));
    emit(TOPIC, &name.grouped());
    Ok(GuestReply::text(OK))
}

/// `PUT /nacos/v1/ns/service`: changes the supplied `protectThreshold`, `metadata` and
/// `selector`, keeps the others. 400 when missing (Nacos: `INVALID_PARAM`).
pub fn update(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let threshold = fields::protect_threshold(req)?;
    let metadata = fields::metadata(req, "metadata")?;
    let selector = fields::selector(req)?;
    let Some(old) = record::load_service(&name)? else {
        return Err(GuestError::bad_request(format!("service {} not found!", name.grouped())));
    };
    let mut service = old.clone();
    service.protect_threshold = threshold.unwrap_or(old.protect_threshold);
    service.metadata = metadata.unwrap_or_else(|| old.metadata.clone());
    service.selector = selector.unwrap_or_else(|| old.selector.clone());
    if service != old {
        record::save_service(&name, &service);
        emit(TOPIC, &name.grouped());
    }
    Ok(GuestReply::text(OK))
}

/// `PUT /nacos/v1/ns/cluster`: a cluster's health check settings and metadata; creates the
/// cluster entry when the service exists. Supplied fields change, the others stay.
pub fn update_cluster(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let cluster_name = req.required("clusterName")?.trim();
    names::check_cluster("clusterName", cluster_name)?;
    let check_port = req.parsed::<u16>("checkPort")?;
    let use_instance_port = fields::optional_bool(req, "useInstancePort4Check")?;
    let checker = fields::health_checker(req)?;
    let metadata = fields::metadata(req, "metadata")?;
    let Some(mut service) = record::load_service(&name)? else {
        return Err(GuestError::bad_request(format!("service not found, serviceName: {}", name.grouped())));
    };
    if !service.clusters.contains_key(cluster_name) && service.clusters.len() >= MAX_CLUSTERS_PER_SERVICE {
        return Err(GuestError::bad_request(format!(
            "invalid clusterName: {} already has {MAX_CLUSTERS_PER_SERVICE} clusters, the most a service may have",
            name.grouped()
        )));
    }
    let old = service.cluster(cluster_name);
    let mut cluster = old.clone();
    cluster.check_port = check_port.unwrap_or(old.check_port);
    cluster.use_instance_port4_check = use_instance_port.unwrap_or(old.use_instance_port4_check);
    cluster.health_checker = checker.unwrap_or(old.health_checker.clone());
    cluster.metadata = metadata.unwrap_or_else(|| old.metadata.clone());
    if service.clusters.get(cluster_name) != Some(&cluster) {
        service.clusters.insert(cluster_name.to_owned(), cluster);
        record::save_service(&name, &service);
        emit(TOPIC, &name.grouped());
    }
    Ok(GuestReply::text(OK))
}

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

/// `GET /nacos/v1/ns/service`: 404 when missing (Nacos `NacosException.NOT_FOUND`).
pub fn get(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let name = names::service_name(req)?;
    let Some(service) = record::load_service(&name)? else {
        return Err(GuestError::not_found(format!("service {} is not found!", name.grouped())));
    };
    let clusters = service
        .clusters
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

#[derive(Serialize)]
struct ServiceList {
    count: u64,
    doms: Vec<String>,
}

/// `GET /nacos/v1/ns/service/list`: `pageNo` (1-based; 0 reads as 1, as Nacos clamps it) and
/// `pageSize` over the group's plain service names in byte order; `count` is the group's total.
pub fn list(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    req.required("pageNo")?;
    req.required("pageSize")?;
    let page_no = req.parsed::<u64>("pageNo")?.expect("checked present").max(1);
    let page_size = req.parsed::<u64>("pageSize")?.expect("checked present").min(MAX_SERVICE_PAGE_SIZE);
    let group = names::group_name(req)?;
    let prefix = record::group_prefix(group);
    let skip = (page_no - 1).saturating_mul(page_size);
    let mut count = 0u64;
    let mut doms = Vec::new();
    record::for_each_row(&prefix, |key, _| {
        if count >= skip && (doms.len() as u64) < page_size {
            doms.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        count += 1;
        Ok(true)
    })?;
    Ok(json(&ServiceList { count, doms }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    service_count: u64,
    instance_count: u64,
}

/// `GET /nacos/v1/ns/operator/metrics`, this namespace's share: services and instances.
pub fn metrics() -> Result<GuestReply, GuestError> {
    let mut metrics = Metrics { service_count: 0, instance_count: 0 };
    record::for_each_row(record::SERVICE_PREFIX.as_bytes(), |_, value| {
        let service: ServiceRecord = record::decode(value)?;
        metrics.service_count += 1;
        metrics.instance_count += u64::from(service.instance_count);
        Ok(true)
    })?;
    Ok(json(&metrics))
}
