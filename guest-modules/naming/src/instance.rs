//! Instances: register, deregister, update, patch (commands) and detail (read), plus the
//! insert and remove every other path (beats, expiry) goes through, which keep the service's
//! instance count and tell watchers.

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, emit, store};
use serde::Serialize;

use crate::fields;
use crate::names::{self, ServiceName};
use crate::ops::{OK, TOPIC, json};
use crate::record::{
    self, InstanceAddr, InstanceRecord, MAX_CLUSTERS_PER_SERVICE, MAX_INSTANCES_PER_SERVICE, Metadata, ServiceRecord,
};

/// The instance a request names: service, cluster, ip and port, all validated.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: ServiceName,
    pub cluster: String,
    pub ip: String,
    pub port: u16,
}

impl Target {
    pub fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        Ok(Self {
            service: names::service_name(req)?,
            cluster: names::cluster_name(req)?,
            ip: fields::ip(req)?.to_owned(),
            port: fields::port(req)?,
        })
    }

    pub fn addr(&self) -> InstanceAddr<'_> {
        InstanceAddr { service: &self.service, cluster: &self.cluster, ip: &self.ip, port: self.port }
    }

    pub fn find(&self) -> Result<Option<InstanceRecord>, GuestError> {
        record::find_instance(&self.addr())
    }
}

/// `POST /nacos/v1/ns/instance`. Registering an existing id replaces its fields (as Nacos).
pub fn register(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let record = InstanceRecord {
        ip: target.ip.clone(),
        port: target.port,
        weight: fields::weight(req)?.unwrap_or(1.0),
        enabled: fields::enabled(req)?.unwrap_or(true),
        healthy: fields::optional_bool(req, "healthy")?.unwrap_or(true),
        ephemeral: fields::optional_bool(req, "ephemeral")?.unwrap_or(true),
        cluster_name: target.cluster.clone(),
        service_name: target.service.grouped(),
        metadata: fields::metadata(req, "metadata")?.unwrap_or_default(),
        app: fields::app(req)?,
        registered_ms: cmd.timestamp_ms,
    };
    insert(cmd, &target.service, record)?;
    Ok(GuestReply::text(OK))
}

/// Stores a (re-)registration, creating its service and cluster when missing. Checks come
/// first: on an error nothing is written.
pub fn insert(cmd: &Command, name: &ServiceName, record: InstanceRecord) -> Result<(), GuestError> {
    let addr = InstanceAddr { service: name, cluster: &record.cluster_name, ip: &record.ip, port: record.port };
    let existing = record::find_instance(&addr)?;
    if let Some(old) = &existing
        && old.ephemeral != record.ephemeral
    {
        let (is, asked) = if old.ephemeral { ("ephemeral", "persistent") } else { ("persistent", "ephemeral") };
        return Err(GuestError::bad_request(format!(
            "invalid ephemeral: instance {} is registered as {is} and cannot be registered as {asked} \
             (ephemeral={}); deregister it first",
            record.instance_id(),
            record.ephemeral
        )));
    }
    let (mut service, mut service_changed) = match record::load_service(name)? {
        Some(service) => (service, false),
        None => (ServiceRecord::new(cmd.timestamp_ms), true),
    };
    if existing.is_none() {
        if service.instance_count >= MAX_INSTANCES_PER_SERVICE {
            return Err(GuestError::bad_request(format!(
                "invalid serviceName: {} already has {MAX_INSTANCES_PER_SERVICE} instances, the most a service may have",
                name.grouped()
            )));
        }
        service.instance_count += 1;
        service_changed = true;
    }
    if !service.clusters.contains_key(&record.cluster_name) {
        if service.clusters.len() >= MAX_CLUSTERS_PER_SERVICE {
            return Err(GuestError::bad_request(format!(
                "invalid clusterName: {} already has {MAX_CLUSTERS_PER_SERVICE} clusters, the most a service may have",
                name.grouped()
            )));
        }
        service.clusters.insert(record.cluster_name.clone(), Default::default());
        service_changed = true;
    }
    // A re-registration that changes nothing but its time is no news to subscribers.
    let instance_changed =
        existing.is_none_or(|old| InstanceRecord { registered_ms: record.registered_ms, ..old } != record);
    if service_changed {
        record::save_service(name, &service);
    }
    store::put_json(&record.key(), &record);
    if service_changed || instance_changed {
        emit(TOPIC, &name.grouped());
    }
    Ok(())
}

/// Removes a stored instance and counts it out of its service.
pub fn remove(cmd: &Command, name: &ServiceName, record: &InstanceRecord) -> Result<(), GuestError> {
    let service = record::load_service(name)?;
    store::delete(&record.key());
    if let Some(mut service) = service {
        service.instance_count = service.instance_count.saturating_sub(1);
        if service.instance_count == 0 {
            service.empty_since_ms = cmd.timestamp_ms;
        }
        record::save_service(name, &service);
    }
    emit(TOPIC, &name.grouped());
    Ok(())
}

/// `DELETE /nacos/v1/ns/instance`: `ok` also when nothing was there. With `ephemeral` given,
/// only an instance of that kind is removed (Nacos looks in that kind's store only).
pub fn deregister(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let ephemeral = fields::optional_bool(req, "ephemeral")?;
    if let Some(found) = target.find()?
        && ephemeral.is_none_or(|wanted| wanted == found.ephemeral)
    {
        remove(cmd, &target.service, &found)?;
    }
    Ok(GuestReply::text(OK))
}

/// `PUT /nacos/v1/ns/instance`: changes the supplied fields of an existing instance. `healthy`
/// applies to persistent instances only: heartbeats own an ephemeral instance's health.
pub fn update(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    modify(req, false, "instance not exist")
}

/// `PATCH /nacos/v1/ns/instance`: like update, `healthy` included whatever the kind (Nacos).
pub fn patch(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    modify(req, true, "instance not found")
}

fn modify(req: &GuestRequest, healthy_always: bool, missing: &str) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let (weight, enabled, metadata, app) =
        (fields::weight(req)?, fields::enabled(req)?, fields::metadata(req, "metadata")?, fields::app(req)?);
    let healthy = fields::optional_bool(req, "healthy")?;
    let Some(old) = target.find()? else {
        return Err(GuestError::bad_request(format!("{missing}: {}", target.addr().instance_id())));
    };
    let mut new = old.clone();
    new.weight = weight.unwrap_or(old.weight);
    new.enabled = enabled.unwrap_or(old.enabled);
    new.metadata = metadata.unwrap_or_else(|| old.metadata.clone());
    new.app = app.or_else(|| old.app.clone());
    if healthy_always || !old.ephemeral {
        new.healthy = healthy.unwrap_or(old.healthy);
    }
    if new != old {
        store::put_json(&new.key(), &new);
        emit(TOPIC, &target.service.grouped());
    }
    Ok(GuestReply::text(OK))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    service: String,
    ip: &'a str,
    port: u16,
    cluster_name: &'a str,
    weight: f64,
    healthy: bool,
    instance_id: String,
    metadata: &'a Metadata,
}

/// `GET /nacos/v1/ns/instance`: one instance; 404 when the service or the instance is missing.
pub fn detail(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    if record::load_service(&target.service)?.is_none() {
        return Err(GuestError::not_found(format!("no service {} found!", target.service.grouped())));
    }
    let Some(found) = target.find()? else {
        return Err(GuestError::not_found(format!("no matched ip found! (instance {})", target.addr().instance_id())));
    };
    Ok(json(&Detail {
        service: found.service_name.clone(),
        ip: &found.ip,
        port: found.port,
        cluster_name: &found.cluster_name,
        weight: found.weight,
        healthy: found.healthy,
        instance_id: found.instance_id(),
        metadata: &found.metadata,
    }))
}
