//! Heartbeat leases of ephemeral instances: the host's periodic sweep (a query that answers
//! with the commands to run) and `naming.expire`, the removal it asks for.
//!
//! Each node keeps the beat times of the partitions (services) it is responsible for in memory
//! (they never enter the log or the store) and passes them in as `beats`. An instance's last
//! sign of life is the latest of its last beat, its registration and `sinceMs` (when this node
//! started watching its beats: a node that just took over a partition must not expire
//! instances whose beats went to the previous one).

use std::collections::{BTreeMap, BTreeSet};

use nacre_guest_sdk::sweep::{SweepCommand, SweepReply};
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt};

use crate::fields;
use crate::instance::{self, Target};
use crate::list::{
    DEFAULT_HEART_BEAT_TIMEOUT_MS, DEFAULT_IP_DELETE_TIMEOUT_MS, HEART_BEAT_TIMEOUT_KEY, IP_DELETE_TIMEOUT_KEY,
};
use crate::names::ServiceName;
use crate::ops::{EXPIRE, HEALTH, OK, SERVICE_REMOVE, json};
use crate::plan;
use crate::record::{self, InstanceRecord, ServiceRecord};

/// Commands one sweep answers with; the rest wait for the next sweep (about a second later).
pub const MAX_SWEEP_COMMANDS: usize = 256;
/// How long a service stays empty and unconfigured before the sweep removes it (Nacos's
/// empty-service auto-clean, `nacos.naming.clean.empty-service.expired-time`, 60 s).
pub const EMPTY_SERVICE_EXPIRE_MS: u64 = 60_000;

/// The parameters that name one instance in a host-originated command (`serviceName` grouped).
pub fn identify(instance: &InstanceRecord) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("serviceName".to_owned(), instance.service_name.clone()),
        ("clusterName".to_owned(), instance.cluster_name.clone()),
        ("ip".to_owned(), instance.ip.clone()),
        ("port".to_owned(), instance.port.to_string()),
        ("ephemeral".to_owned(), instance.ephemeral.to_string()),
    ])
}

/// `naming.sweep` (query), with the parameters of `nacre_protocol::sweep`: `nowMs`, `sinceMs`,
/// `beats` (JSON `{instanceId: lastBeatMs}`), `partitions` (JSON array of grouped service
/// names; absent: every service), `leader` and `preserve` (booleans, default false).
///
/// Reply: a `SweepReply`. Every ephemeral instance of the partitions counts in `expected`, and
/// in `lapsed` when silent past its heartbeat timeout. Commands, at most
/// [`MAX_SWEEP_COMMANDS`], in key order: `naming.health` (unhealthy) for an instance silent past
/// its heartbeat timeout, `naming.expire` past its delete timeout (none while `preserve`: the
/// node suspects itself, so it keeps registrations; it still marks them unhealthy, which a
/// returning beat heals), both AP commands at the instance's partition; then, on the leader
/// only, a log command `naming.service.remove` for each service left empty and unconfigured.
pub fn sweep(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let now = fields::required_millis(req, "nowMs")?;
    let since = fields::millis(req, "sinceMs")?.unwrap_or(0);
    let beats: BTreeMap<String, u64> = json_param(req, "beats", "a JSON object of instance ids to times")?;
    let partitions: Option<BTreeSet<String>> = json_param(req, "partitions", "a JSON array of service names")?;
    let leader = req.bool_or("leader", false)?;
    let preserve = req.bool_or("preserve", false)?;

    let mut reply = SweepReply::default();
    let mut visit = |instance: InstanceRecord| {
        let last = beats.get(&instance.instance_id()).copied().unwrap_or(0).max(since).max(instance.registered_ms);
        let silent = now.saturating_sub(last);
        let lapsed = silent > instance.preserved_ms(HEART_BEAT_TIMEOUT_KEY, DEFAULT_HEART_BEAT_TIMEOUT_MS);
        reply.expected += 1;
        reply.lapsed += u64::from(lapsed);
        // Past the cap, only the counts go on: self-preservation needs them whole.
        if reply.commands.len() >= MAX_SWEEP_COMMANDS {
            return Ok(true);
        }
        let expired = silent > instance.preserved_ms(IP_DELETE_TIMEOUT_KEY, DEFAULT_IP_DELETE_TIMEOUT_MS);
        let mut params = identify(&instance);
        params.insert("registeredMs".into(), instance.registered_ms.to_string());
        let op = if expired && !preserve {
            EXPIRE
        } else if lapsed && instance.healthy {
            params.insert("healthy".into(), "false".into());
            HEALTH
        } else {
            return Ok(true);
        };
        reply.commands.push(SweepCommand { op: op.to_owned(), params, partition: Some(instance.service_name) });
        Ok(true)
    };
    match &partitions {
        Some(partitions) => {
            for partition in partitions {
                record::for_each_row(&record::ephemeral_prefix(partition), |_, value| visit(record::decode(value)?))?;
            }
        }
        None => record::for_each_instance(true, &mut visit)?,
    }
    if leader && reply.commands.len() < MAX_SWEEP_COMMANDS {
        empty_services(now, &mut reply.commands)?;
    }
    Ok(json(&reply))
}

/// An optional JSON parameter; a 400 naming it when it is not `what`.
fn json_param<T: serde::de::DeserializeOwned + Default>(
    req: &GuestRequest,
    name: &str,
    what: &str,
) -> Result<T, GuestError> {
    match req.optional(name) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| GuestError::bad_request(format!("invalid {name}: not {what}: {e}")))
        }
        None => Ok(T::default()),
    }
}

/// Services that stayed empty (no instance of either kind) and unconfigured for
/// [`EMPTY_SERVICE_EXPIRE_MS`]: a guarded `naming.service.remove` each (see
/// [`crate::service::remove`]), a log command.
fn empty_services(now: u64, commands: &mut Vec<SweepCommand>) -> Result<(), GuestError> {
    let prefix = record::SERVICE_PREFIX.as_bytes();
    record::for_each_row(prefix, |key, value| {
        let service: ServiceRecord = record::decode(value)?;
        let empty_since = service.created_ms.max(service.empty_since_ms);
        if service.is_unused() && now.saturating_sub(empty_since) > EMPTY_SERVICE_EXPIRE_MS {
            let grouped = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if ServiceName::from_grouped(&grouped).is_some_and(|name| !record::has_instances(&name)) {
                let params = BTreeMap::from([
                    ("serviceName".to_owned(), grouped),
                    ("onlyIfUnused".to_owned(), "true".to_owned()),
                    ("emptySinceMs".to_owned(), empty_since.to_string()),
                ]);
                commands.push(SweepCommand { op: SERVICE_REMOVE.to_owned(), params, partition: None });
            }
        }
        Ok(commands.len() < MAX_SWEEP_COMMANDS)
    })
}

/// `naming.expire` (an AP command): removes an ephemeral instance whose beats stopped, unless
/// it was registered again after the sweep saw it (`registeredMs` older than the stored one).
pub fn expire(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, seen) = parse_expire(req)?;
    if let Some(found) = target.find_kind(Some(true))?
        && found.registered_ms <= seen
    {
        instance::remove(cmd, &target.service, &found)?;
    }
    Ok(GuestReply::text(OK))
}

/// The plan of `naming.expire` (the host normally runs the sweep's command directly): the AP
/// path, as it only ever removes an ephemeral instance.
pub fn plan_expire(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, _) = parse_expire(req)?;
    Ok(plan::to_ap(&target.service))
}

fn parse_expire(req: &GuestRequest) -> Result<(Target, u64), GuestError> {
    Ok((Target::parse(req)?, fields::required_millis(req, "registeredMs")?))
}
