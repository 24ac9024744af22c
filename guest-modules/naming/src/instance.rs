//! Instances: register and deregister (commands and their plans) and detail (read), plus the
//! insert and remove every other path (beats, expiry) goes through. Update and patch are in
//! [`crate::modify`].
//!
//! An ephemeral instance is written by an AP command and touches nothing but its own key; a
//! persistent one is written by a log command, which also keeps its service record (created
//! when missing, its count, its cluster). See [`crate::record`].

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, QueryContext, emit, store};
use serde::Serialize;

use crate::fields;
use crate::names::{self, ServiceName};
use crate::ops::{OK, TOPIC, json};
use crate::plan;
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

    /// The instance of either kind (ephemeral first; a log command sees persistent ones only).
    pub fn find(&self) -> Result<Option<InstanceRecord>, GuestError> {
        self.find_kind(None)
    }

    /// The instance of the kind asked for, or of either kind when `None`.
    pub fn find_kind(&self, ephemeral: Option<bool>) -> Result<Option<InstanceRecord>, GuestError> {
        record::find_instance(&self.addr(), ephemeral)
    }
}

/// The instance a registration describes, validated, stamped `registered_ms`.
fn registration(req: &GuestRequest, registered_ms: u64) -> Result<(Target, InstanceRecord), GuestError> {
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
        owner: fields::owner(req)?,
        registered_ms,
    };
    Ok((target, record))
}

/// `POST /nacos/v1/ns/instance`. Registering an existing id replaces its fields (as Nacos).
pub fn register(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, record) = registration(req, cmd.timestamp_ms)?;
    insert(cmd, &target.service, record)?;
    Ok(GuestReply::text(OK))
}

/// The plan of a registration: the checks of [`insert`], here seeing both kinds (a log
/// command cannot see the ephemeral instance a persistent registration would collide with).
pub fn plan_register(ctx: &QueryContext, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, record) = registration(req, ctx.timestamp_ms)?;
    let existing = target.find()?;
    check_insert(&target.service, &record, existing.as_ref(), record::load_service(&target.service)?.as_ref())?;
    Ok(plan::by_kind(&target.service, record.ephemeral))
}

/// Whether `record` may be stored over `existing`: the kinds agree, and a new instance or
/// cluster fits the per-service limits. Counts what the caller can see: a query or an AP
/// command both kinds, a log command persistent instances only.
fn check_insert(
    name: &ServiceName,
    record: &InstanceRecord,
    existing: Option<&InstanceRecord>,
    service: Option<&ServiceRecord>,
) -> Result<(), GuestError> {
    if let Some(old) = existing
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
    if existing.is_none() {
        let persistent = service.map_or(0, |s| s.instance_count);
        let ephemeral = record::count_ephemeral(name, MAX_INSTANCES_PER_SERVICE.saturating_sub(persistent))?;
        if persistent.saturating_add(ephemeral) >= MAX_INSTANCES_PER_SERVICE {
            return Err(GuestError::bad_request(format!(
                "invalid serviceName: {} already has {MAX_INSTANCES_PER_SERVICE} instances, the most a service may have",
                name.grouped()
            )));
        }
    }
    let cluster = &record.cluster_name;
    let configured = service.is_some_and(|s| s.clusters.contains_key(cluster));
    if !configured
        && !record::cluster_has_ephemeral(name, cluster)
        && cluster_count(name, service)? >= MAX_CLUSTERS_PER_SERVICE
    {
        return Err(GuestError::bad_request(format!(
            "invalid clusterName: {} already has {MAX_CLUSTERS_PER_SERVICE} clusters, the most a service may have",
            name.grouped()
        )));
    }
    Ok(())
}

/// The service's clusters (configured, or used by a visible ephemeral instance), counted up to
/// [`MAX_CLUSTERS_PER_SERVICE`].
fn cluster_count(name: &ServiceName, service: Option<&ServiceRecord>) -> Result<usize, GuestError> {
    let configured = service.map(|s| &s.clusters);
    let mut count = configured.map_or(0, |c| c.len());
    if count < MAX_CLUSTERS_PER_SERVICE {
        record::for_each_segment(&record::ephemeral_prefix(&name.grouped()), |cluster| {
            if configured.is_none_or(|c| !c.contains_key(cluster)) {
                count += 1;
            }
            Ok(count < MAX_CLUSTERS_PER_SERVICE)
        })?;
    }
    Ok(count)
}

/// Stores a (re-)registration. A persistent one also keeps its service record: created when
/// missing, the instance counted, its cluster added. Checks come first: on an error nothing is
/// written.
pub fn insert(cmd: &Command, name: &ServiceName, record: InstanceRecord) -> Result<(), GuestError> {
    let addr = InstanceAddr { service: name, cluster: &record.cluster_name, ip: &record.ip, port: record.port };
    let existing = record::find_instance(&addr, None)?;
    let service = record::load_service(name)?;
    check_insert(name, &record, existing.as_ref(), service.as_ref())?;
    let mut service_changed = false;
    if !record.ephemeral {
        let mut service = service.unwrap_or_else(|| {
            service_changed = true;
            ServiceRecord::new(cmd.timestamp_ms)
        });
        if existing.is_none() {
            service.instance_count += 1;
            service_changed = true;
        }
        if !service.clusters.contains_key(&record.cluster_name) {
            service.clusters.insert(record.cluster_name.clone(), Default::default());
            service_changed = true;
        }
        if service_changed {
            record::save_service(name, &service);
        }
    }
    // A re-registration that changes nothing but its time is no news to subscribers.
    let instance_changed =
        existing.is_none_or(|old| InstanceRecord { registered_ms: record.registered_ms, ..old } != record);
    store::put_json(&record.key(), &record);
    if service_changed || instance_changed {
        emit(TOPIC, &name.grouped());
    }
    Ok(())
}

/// Removes a stored instance; a persistent one is counted out of its service record.
pub fn remove(cmd: &Command, name: &ServiceName, record: &InstanceRecord) -> Result<(), GuestError> {
    if !record.ephemeral
        && let Some(mut service) = record::load_service(name)?
    {
        service.instance_count = service.instance_count.saturating_sub(1);
        if service.instance_count == 0 {
            service.empty_since_ms = cmd.timestamp_ms;
        }
        record::save_service(name, &service);
    }
    store::delete(&record.key());
    emit(TOPIC, &name.grouped());
    Ok(())
}

/// `DELETE /nacos/v1/ns/instance`: `ok` also when nothing was there. With `ephemeral` given,
/// only an instance of that kind is removed (Nacos looks in that kind's store only).
///
/// On the AP path, an ephemeral instance this node does not hold is deleted all the same: the
/// tombstone reaches the nodes that do hold it (a registration made on the other side of a
/// partition, not seen here yet) and wins over it, since it is the later client write. Without
/// it, the deregistration would be acknowledged and the instance would come back at the heal.
pub fn deregister(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let ephemeral = fields::optional_bool(req, "ephemeral")?;
    // The end of a connection removes what that connection registered, not what another one
    // registered since (a client that reconnected elsewhere and registered again).
    let owner = fields::owner(req)?;
    match target.find_kind(ephemeral)? {
        Some(found) if owner.is_some() && found.owner.is_some() && found.owner != owner => {}
        Some(found) => remove(cmd, &target.service, &found)?,
        None if cmd.is_ap() && ephemeral != Some(false) && owner.is_none() => {
            let addr = target.addr();
            store::delete(&record::ephemeral_instance_key(&addr));
            emit(TOPIC, &target.service.grouped());
        }
        None => {}
    }
    Ok(GuestReply::text(OK))
}

/// The plan of a deregistration: the kind `ephemeral` names, else the stored instance's kind.
/// An instance this node does not hold is routed to the AP path (Nacos's default is
/// `ephemeral=true`), not answered `ok` here: the responsible node may hold an ephemeral
/// registration that has not reached this node yet, and it answers `ok` when it has none.
pub fn plan_deregister(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let ephemeral = match fields::optional_bool(req, "ephemeral")? {
        Some(ephemeral) => ephemeral,
        None => target.find()?.is_none_or(|found| found.ephemeral),
    };
    Ok(plan::by_kind(&target.service, ephemeral))
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

/// `GET /nacos/v1/ns/instance`: one instance; 404 when the service (neither a record nor an
/// instance) or the instance is missing.
pub fn detail(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    if !record::service_exists(&target.service, record::load_service(&target.service)?.as_ref()) {
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
