//! Services and their clusters: create, remove, update, cluster update (log commands) and
//! their plans. Errors in Nacos 1.4's words (`ServiceController`, `ServiceManager`). The reads
//! are in [`crate::catalog`].
//!
//! A service exists when it has a record or any instance ([`crate::record`]). Log commands see
//! only the record and persistent instances, so each plan checks existence against ephemeral
//! instances too, and the commands that change settings create the record of a service that
//! has none (one known only by its ephemeral instances).

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt, emit, store};
use serde_json::Value;

use crate::fields;
use crate::names::{self, ServiceName};
use crate::ops::{OK, TOPIC};
use crate::plan;
use crate::record::{self, ClusterRecord, HealthChecker, MAX_CLUSTERS_PER_SERVICE, Metadata, ServiceRecord};

/// The settings a create or an update supplies, validated.
struct Settings {
    name: ServiceName,
    threshold: Option<f32>,
    metadata: Option<Metadata>,
    selector: Option<Value>,
}

impl Settings {
    fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        Ok(Self {
            name: names::service_name(req)?,
            threshold: fields::protect_threshold(req)?,
            metadata: fields::metadata(req, "metadata")?,
            selector: fields::selector(req)?,
        })
    }

    /// `old` with the supplied settings changed.
    fn applied_to(self, old: &ServiceRecord) -> ServiceRecord {
        let mut service = old.clone();
        service.protect_threshold = self.threshold.unwrap_or(old.protect_threshold);
        service.metadata = self.metadata.unwrap_or_else(|| old.metadata.clone());
        service.selector = self.selector.unwrap_or_else(|| old.selector.clone());
        service
    }
}

fn already_exists(name: &ServiceName) -> GuestError {
    GuestError::bad_request(format!("specified service already exists, serviceName : {}", name.grouped()))
}

/// `POST /nacos/v1/ns/service`: 400 when it exists.
pub fn create(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = Settings::parse(req)?;
    let name = settings.name.clone();
    if record::load_service(&name)?.is_some() {
        return Err(already_exists(&name));
    }
    record::save_service(&name, &settings.applied_to(&ServiceRecord::new(cmd.timestamp_ms)));
    emit(TOPIC, &name.grouped());
    Ok(GuestReply::text(OK))
}

/// The plan of a create: refused also for a service that exists by its ephemeral instances.
pub fn plan_create(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = Settings::parse(req)?;
    if record::service_exists(&settings.name, record::load_service(&settings.name)?.as_ref()) {
        return Err(already_exists(&settings.name));
    }
    Ok(plan::to_log())
}

/// What a remove asks, validated.
struct Removal {
    name: ServiceName,
    only_if_unused: bool,
    seen_empty_since: Option<u64>,
}

impl Removal {
    fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        Ok(Self {
            name: names::service_name(req)?,
            only_if_unused: req.bool_or("onlyIfUnused", false)?,
            seen_empty_since: fields::millis(req, "emptySinceMs")?,
        })
    }

    /// Nacos's refusals (`easyRemoveService` throws `IllegalArgumentException` for both), as
    /// far as the caller can see instances: a log command sees persistent ones only.
    fn check(&self, service: Option<&ServiceRecord>) -> Result<(), GuestError> {
        let has_instances = record::has_instances(&self.name);
        if service.is_none() && !has_instances {
            return Err(GuestError::bad_request(format!(
                "specified service not exist, serviceName : {}",
                self.name.grouped()
            )));
        }
        if has_instances {
            return Err(GuestError::bad_request(format!(
                "specified service has instances, serviceName : {}",
                self.name.grouped()
            )));
        }
        Ok(())
    }
}

/// `DELETE /nacos/v1/ns/service`: 400 when missing or when it still has instances.
///
/// With `onlyIfUnused=true` (the sweep's empty-service cleanup) a service that is missing, has
/// persistent instances or settings again, or became empty after `emptySinceMs` (emptied
/// again, or removed and created anew since the sweep looked: its creation time counts), is
/// left alone with `ok`: the sweep saw it before a registration, an update or a re-creation
/// that now keeps it. (An ephemeral instance registered since is invisible here; removing the
/// record then loses no setting, and the service lives on, implicitly.)
pub fn remove(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let removal = Removal::parse(req)?;
    let service = record::load_service(&removal.name)?;
    if removal.only_if_unused {
        let still_unused = service.as_ref().is_some_and(|s| {
            s.is_unused()
                && removal.seen_empty_since.is_none_or(|seen| s.created_ms.max(s.empty_since_ms) <= seen)
                && !record::has_instances(&removal.name)
        });
        if !still_unused {
            return Ok(GuestReply::text(OK));
        }
    }
    // Past the check the record exists: without a record or an instance the service does not.
    removal.check(service.as_ref())?;
    store::delete(&record::service_key(&removal.name.grouped()));
    emit(TOPIC, &removal.name.grouped());
    Ok(GuestReply::text(OK))
}

/// The plan of a remove: refused while the service has any instance, ephemeral included.
pub fn plan_remove(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let removal = Removal::parse(req)?;
    if !removal.only_if_unused {
        removal.check(record::load_service(&removal.name)?.as_ref())?;
    }
    Ok(plan::to_log())
}

/// `PUT /nacos/v1/ns/service`: changes the supplied `protectThreshold`, `metadata` and
/// `selector`, keeps the others. 400 when the service does not exist (Nacos: `INVALID_PARAM`):
/// the plan checks that; the command creates the record of a service known only by its
/// ephemeral instances, which it cannot see.
pub fn update(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = Settings::parse(req)?;
    let name = settings.name.clone();
    let old = record::load_service(&name)?.unwrap_or_else(|| ServiceRecord::new(cmd.timestamp_ms));
    let service = settings.applied_to(&old);
    if service != old {
        record::save_service(&name, &service);
        emit(TOPIC, &name.grouped());
    }
    Ok(GuestReply::text(OK))
}

/// The plan of a service update: 400 for a service that does not exist.
pub fn plan_update(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = Settings::parse(req)?;
    if !record::service_exists(&settings.name, record::load_service(&settings.name)?.as_ref()) {
        return Err(GuestError::bad_request(format!("service {} not found!", settings.name.grouped())));
    }
    Ok(plan::to_log())
}

/// What a cluster update supplies, validated.
struct ClusterSettings {
    name: ServiceName,
    cluster: String,
    check_port: Option<u16>,
    use_instance_port: Option<bool>,
    checker: Option<HealthChecker>,
    metadata: Option<Metadata>,
}

impl ClusterSettings {
    fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        let name = names::service_name(req)?;
        let cluster = req.required("clusterName")?.trim();
        names::check_cluster("clusterName", cluster)?;
        Ok(Self {
            name,
            cluster: cluster.to_owned(),
            check_port: req.parsed::<u16>("checkPort")?,
            use_instance_port: fields::optional_bool(req, "useInstancePort4Check")?,
            checker: fields::health_checker(req)?,
            metadata: fields::metadata(req, "metadata")?,
        })
    }

    /// The service's record with this cluster changed; 400 when it would add a cluster past
    /// [`MAX_CLUSTERS_PER_SERVICE`] (every write of the record re-encodes all of them).
    fn applied_to(self, old: &ServiceRecord) -> Result<ServiceRecord, GuestError> {
        if !old.clusters.contains_key(&self.cluster) && old.clusters.len() >= MAX_CLUSTERS_PER_SERVICE {
            return Err(GuestError::bad_request(format!(
                "invalid clusterName: {} already has {MAX_CLUSTERS_PER_SERVICE} clusters, the most a service may have",
                self.name.grouped()
            )));
        }
        let before = old.cluster(&self.cluster);
        let cluster = ClusterRecord {
            check_port: self.check_port.unwrap_or(before.check_port),
            use_instance_port4_check: self.use_instance_port.unwrap_or(before.use_instance_port4_check),
            health_checker: self.checker.unwrap_or(before.health_checker),
            metadata: self.metadata.unwrap_or(before.metadata),
        };
        let mut service = old.clone();
        service.clusters.insert(self.cluster, cluster);
        Ok(service)
    }
}

/// `PUT /nacos/v1/ns/cluster`: a cluster's health check settings and metadata; creates the
/// cluster entry (and, as [`update`] does, the record of a service known only by its ephemeral
/// instances). Supplied fields change, the others stay.
pub fn update_cluster(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = ClusterSettings::parse(req)?;
    let name = settings.name.clone();
    let old = record::load_service(&name)?;
    let service = settings.applied_to(old.as_ref().unwrap_or(&ServiceRecord::new(cmd.timestamp_ms)))?;
    if old.as_ref() != Some(&service) {
        record::save_service(&name, &service);
        emit(TOPIC, &name.grouped());
    }
    Ok(GuestReply::text(OK))
}

/// The plan of a cluster update: 400 for a service that does not exist, or one cluster too many.
pub fn plan_update_cluster(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let settings = ClusterSettings::parse(req)?;
    let service = record::load_service(&settings.name)?;
    if !record::service_exists(&settings.name, service.as_ref()) {
        return Err(GuestError::bad_request(format!("service not found, serviceName: {}", settings.name.grouped())));
    }
    settings.applied_to(service.as_ref().unwrap_or(&ServiceRecord::new(0)))?;
    Ok(plan::to_log())
}
