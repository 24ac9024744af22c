//! Heartbeat leases of ephemeral instances: the leader's periodic sweep (a query that answers
//! with the commands to commit) and `naming.expire`, the removal it asks for.
//!
//! The leader keeps beat times in memory (they never enter the log) and passes them in as
//! `beats`. An instance's last sign of life is the latest of its last beat, its registration
//! and `sinceMs` (when this leader started watching beats: a new leader must not expire
//! instances whose beats went to the old one).

use std::collections::BTreeMap;

use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt};
use serde::Serialize;

use crate::fields;
use crate::instance::{self, Target};
use crate::list::{
    DEFAULT_HEART_BEAT_TIMEOUT_MS, DEFAULT_IP_DELETE_TIMEOUT_MS, HEART_BEAT_TIMEOUT_KEY, IP_DELETE_TIMEOUT_KEY,
};
use crate::ops::{EXPIRE, HEALTH, OK, SERVICE_REMOVE, json};
use crate::record::{self, InstanceRecord, ServiceRecord};

/// Commands one sweep answers with; the rest wait for the next sweep (about a second later).
pub const MAX_SWEEP_COMMANDS: usize = 256;
/// How long a service stays empty and unconfigured before the sweep removes it (Nacos's
/// empty-service auto-clean, `nacos.naming.clean.empty-service.expired-time`, 60 s).
pub const EMPTY_SERVICE_EXPIRE_MS: u64 = 60_000;

/// One command for the host to commit: an op and its string parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCommand {
    pub op: &'static str,
    pub params: BTreeMap<String, String>,
}

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

/// `naming.sweep` (query): params `nowMs`, `sinceMs`, `beats` (JSON `{instanceId: lastBeatMs}`).
/// Reply: a JSON array of at most [`MAX_SWEEP_COMMANDS`] commands, in key order.
pub fn sweep(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let now = fields::required_millis(req, "nowMs")?;
    let since = fields::millis(req, "sinceMs")?.unwrap_or(0);
    let beats: BTreeMap<String, u64> = match req.optional("beats") {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            GuestError::bad_request(format!("invalid beats: not a JSON object of instance ids to times: {e}"))
        })?,
        None => BTreeMap::new(),
    };
    let mut commands = Vec::new();
    record::for_each_instance(true, |instance| {
        let last = beats.get(&instance.instance_id()).copied().unwrap_or(0).max(since).max(instance.registered_ms);
        let silent = now.saturating_sub(last);
        let mut params = identify(&instance);
        params.insert("registeredMs".into(), instance.registered_ms.to_string());
        if silent > instance.preserved_ms(IP_DELETE_TIMEOUT_KEY, DEFAULT_IP_DELETE_TIMEOUT_MS) {
            commands.push(HostCommand { op: EXPIRE, params });
        } else if instance.healthy
            && silent > instance.preserved_ms(HEART_BEAT_TIMEOUT_KEY, DEFAULT_HEART_BEAT_TIMEOUT_MS)
        {
            params.insert("healthy".into(), "false".into());
            commands.push(HostCommand { op: HEALTH, params });
        }
        Ok(commands.len() < MAX_SWEEP_COMMANDS)
    })?;
    if commands.len() < MAX_SWEEP_COMMANDS {
        empty_services(now, &mut commands)?;
    }
    Ok(json(&commands))
}

/// Services that stayed empty and unconfigured for [`EMPTY_SERVICE_EXPIRE_MS`]: a guarded
/// `naming.service.remove` each (see [`crate::service::remove`]).
fn empty_services(now: u64, commands: &mut Vec<HostCommand>) -> Result<(), GuestError> {
    let prefix = record::SERVICE_PREFIX.as_bytes();
    record::for_each_row(prefix, |key, value| {
        let service: ServiceRecord = record::decode(value)?;
        let empty_since = service.created_ms.max(service.empty_since_ms);
        if service.is_unused() && now.saturating_sub(empty_since) > EMPTY_SERVICE_EXPIRE_MS {
            let grouped = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let params = BTreeMap::from([
                ("serviceName".to_owned(), grouped),
                ("onlyIfUnused".to_owned(), "true".to_owned()),
                ("emptySinceMs".to_owned(), service.empty_since_ms.to_string()),
            ]);
            commands.push(HostCommand { op: SERVICE_REMOVE, params });
        }
        Ok(commands.len() < MAX_SWEEP_COMMANDS)
    })
}

/// `naming.expire` (command): removes an ephemeral instance whose beats stopped, unless it was
/// registered again after the sweep saw it (`registeredMs` older than the stored one).
pub fn expire(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let target = Target::parse(req)?;
    let seen = fields::required_millis(req, "registeredMs")?;
    if let Some(found) = target.find()?
        && found.ephemeral
        && found.registered_ms <= seen
    {
        instance::remove(cmd, &target.service, &found)?;
    }
    Ok(GuestReply::text(OK))
}
