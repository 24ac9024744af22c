//! Instance health set from outside a heartbeat: `naming.health` (a command from the sweep,
//! the leader's prober, or `PUT /nacos/v1/ns/health/instance`) and `naming.health.targets`
//! (the query that tells the prober what to probe).

use std::collections::BTreeMap;

use nacre_guest_sdk::sweep::SweepCommand;
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt, emit, store};
use serde::Serialize;

use crate::fields;
use crate::instance::Target;
use crate::lease::{Batch, identify};
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
///
/// The sweep's form names many ephemeral instances of one service at once (`instances`, see
/// [`Batch`], each with its own `registeredMs`, and `healthy`): an AP command the host runs
/// directly, never planned from a client's request ([`plan`] refuses it).
pub fn apply(_cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    if let Some(batch) = Batch::parse(req)? {
        req.required("healthy")?;
        let healthy = req.bool_or("healthy", true)?;
        let mut changed = false;
        for found in batch.found()?.into_iter().filter(|found| found.healthy != healthy) {
            store::put_json(&found.key(), &InstanceRecord { healthy, ..found });
            changed = true;
        }
        if changed {
            emit(TOPIC, &batch.service.grouped());
        }
        return Ok(GuestReply::text(OK));
    }
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
    if req.optional("instances").is_some() {
        return Err(GuestError::bad_request(
            "invalid instances: a health change names one instance (ip, port, clusterName)",
        ));
    }
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

/// One page of `naming.health.targets`, when the host asks for pages (`paged`).
#[derive(Serialize)]
struct TargetsPage {
    targets: Vec<ProbeTarget>,
    /// Where the next page starts (pass it as `after`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `naming.health.targets` (query): every persistent instance in a TCP or HTTP cluster, in key
/// order, with the command to commit (plus `healthy`) when the probe disagrees with `healthy`;
/// at most [`MAX_HEALTH_TARGETS`] per answer.
///
/// With `paged=true` the answer is a page, `{"targets": [...], "next": "<cursor>"}`: the
/// targets after the cursor `after` (absent: from the first), and where the next page starts
/// (pass it as `after`), absent when none follows. Without it, the bare array of the first
/// targets, as modules before paging answered (the host reads both).
pub fn targets(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let paged = req.bool_or("paged", false)?;
    let start = req.optional("after").map(|cursor| {
        // The smallest key after the cursor's instance.
        let mut key = [record::PERSISTENT_PREFIX.as_bytes(), cursor.as_bytes()].concat();
        key.push(0);
        key
    });
    let mut services: BTreeMap<String, Option<ServiceRecord>> = BTreeMap::new();
    let mut out = Vec::new();
    let (mut next, mut full) = (None, false);
    let prefix = record::PERSISTENT_PREFIX.as_bytes();
    record::for_each_row_from(prefix, start.as_deref(), |key, value| {
        if out.len() >= MAX_HEALTH_TARGETS {
            // A full page and more rows: resume after the last listed (or skipped) one.
            full = true;
            return Ok(false);
        }
        next = Some(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        let instance: InstanceRecord = record::decode(value)?;
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
        Ok(true)
    })?;
    if paged { Ok(json(&TargetsPage { targets: out, next: next.filter(|_| full) })) } else { Ok(json(&out)) }
}
