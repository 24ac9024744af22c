//! Instance health set from outside a heartbeat: `naming.health` (a command from the sweep,
//! the leader's prober, or `PUT /nacos/v1/ns/health/instance`) and `naming.health.targets`
//! (the query that tells the prober what to probe).

use std::collections::BTreeMap;

use nacre_guest_sdk::sweep::SweepCommand;
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt, emit, store};
use serde::Serialize;

use crate::fields;
use crate::instance::Target;
use crate::lease::identify;
use crate::names::ServiceName;
use crate::ops::{HEALTH, OK, TOPIC, json};
use crate::plan;
use crate::record::{self, HealthChecker, InstanceRecord, ServiceRecord};

/// Probe targets one `naming.health.targets` answer lists (persistent instances, key order).
pub const MAX_HEALTH_TARGETS: usize = 4096;

/// A `naming.health` request, validated.
struct HealthChange {
    target: Target,
    healthy: bool,
    /// `ephemeral`: only an instance of this kind is changed (the sweep's and the prober's
    /// commands name it); `None`: either kind.
    ephemeral: Option<bool>,
    seen_registered_ms: Option<u64>,
    from_api: bool,
}

impl HealthChange {
    fn parse(req: &GuestRequest) -> Result<Self, GuestError> {
        let target = Target::parse(req)?;
        let field = if req.optional("healthy").is_some() { "healthy" } else { "valid" };
        req.required(field).map_err(|_| GuestError::bad_request("Param 'healthy' is required."))?;
        Ok(Self {
            target,
            healthy: req.bool_or(field, true)?,
            ephemeral: fields::optional_bool(req, "ephemeral")?,
            seen_registered_ms: fields::millis(req, "registeredMs")?,
            from_api: req.optional("source") == Some("api"),
        })
    }

    /// The instance to change (`None`: nothing to do), after Nacos's rule for the user's API:
    /// only a cluster whose health checker is NONE takes health from it.
    fn instance(&self) -> Result<Option<InstanceRecord>, GuestError> {
        let Some(found) = self.target.find_kind(self.ephemeral)? else { return Ok(None) };
        if self.from_api {
            let service = record::load_service(&self.target.service)?.unwrap_or_else(|| ServiceRecord::new(0));
            if service.cluster(&self.target.cluster).health_checker != HealthChecker::None {
                return Err(GuestError::bad_request(format!(
                    "health check is still working, service: {} (the health of an instance in cluster {} is set \
                     by its health checker; set the cluster's healthChecker to NONE to set it by API)",
                    self.target.service.grouped(),
                    self.target.cluster
                )));
            }
        }
        Ok(Some(found))
    }
}

/// `naming.health`: params identify the instance (`serviceName`, `groupName`, `clusterName`,
/// `ip`, `port`, optionally `ephemeral`) plus `healthy` (or Nacos's older `valid`). Optional
/// `registeredMs`: do nothing when the instance was registered again since (a sweep racing a
/// re-registration). With `source=api` (the user's health API) Nacos's rule applies: only a
/// cluster whose health checker is NONE takes health from the API. A missing instance is
/// `ok`, nothing changes.
pub fn apply(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let change = HealthChange::parse(req)?;
    let Some(found) = change.instance()? else { return Ok(GuestReply::text(OK)) };
    if found.healthy == change.healthy || change.seen_registered_ms.is_some_and(|seen| found.registered_ms > seen) {
        return Ok(GuestReply::text(OK));
    }
    let changed = InstanceRecord { healthy: change.healthy, ..found };
    store::put_json(&changed.key(), &changed);
    emit(TOPIC, &change.target.service.grouped());
    Ok(GuestReply::text(OK))
}

/// The plan of `naming.health`: the path of the kind `ephemeral` names, else of the stored
/// instance's kind; an instance this node does not hold goes to the AP path, as a
/// deregistration does ([`crate::instance::plan_deregister`]).
pub fn plan(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let change = HealthChange::parse(req)?;
    let found = change.instance()?;
    let ephemeral = change.ephemeral.or(found.map(|f| f.ephemeral)).unwrap_or(true);
    Ok(plan::by_kind(&change.target.service, ephemeral))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProbeTarget {
    instance_id: String,
    ip: String,
    port: u16,
    check: Check,
    healthy: bool,
    /// A log command: persistent instances are CP state.
    command: SweepCommand,
}

/// How to probe: always all four fields (TCP has an empty path and headers) so that the host
/// reads one shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    #[serde(rename = "type")]
    kind: &'static str,
    path: String,
    headers: String,
    expected_response_code: u16,
}

/// `naming.health.targets` (query): every persistent instance in a TCP or HTTP cluster, with
/// the command to commit (plus `healthy`) when the probe disagrees with `healthy`.
pub fn targets() -> Result<GuestReply, GuestError> {
    let mut services: BTreeMap<String, Option<ServiceRecord>> = BTreeMap::new();
    let mut out = Vec::new();
    record::for_each_instance(false, |instance| {
        if !services.contains_key(&instance.service_name) {
            let service = match ServiceName::from_grouped(&instance.service_name) {
                Some(name) => record::load_service(&name)?,
                None => None,
            };
            services.insert(instance.service_name.clone(), service);
        }
        let cluster = services[&instance.service_name].as_ref().map(|s| s.cluster(&instance.cluster_name));
        let cluster = cluster.unwrap_or_default();
        let check = match cluster.health_checker {
            HealthChecker::Tcp => {
                Check { kind: "TCP", path: String::new(), headers: String::new(), expected_response_code: 200 }
            }
            HealthChecker::Http { path, headers, expected_response_code } => {
                Check { kind: "HTTP", path, headers, expected_response_code }
            }
            HealthChecker::Mysql { .. } | HealthChecker::None => return Ok(true),
        };
        let port = if cluster.use_instance_port4_check { instance.port } else { cluster.check_port };
        out.push(ProbeTarget {
            instance_id: instance.instance_id(),
            ip: instance.ip.clone(),
            port,
            check,
            healthy: instance.healthy,
            command: SweepCommand { op: HEALTH.to_owned(), params: identify(&instance), partition: None },
        });
        Ok(out.len() < MAX_HEALTH_TARGETS)
    })?;
    Ok(json(&out))
}
