//! `PUT /nacos/v1/ns/instance/beat`: client heartbeats.
//!
//! A beat is a *query*: most beats change nothing, they only renew the instance's lease
//! (its [`Plan`]'s [`LeaseRenewal`]), which the host keeps in memory and hands back to
//! [`crate::lease::sweep`]. Only a beat that changes state (an unknown instance that sent its
//! description, or an instance marked unhealthy) asks the host to commit it, as an AP command
//! ([`Commit::Ap`]: it changes only ephemeral state), and then [`apply`] runs with the same
//! parameters. Renewals and commits go to the node responsible for the service (partition
//! `<group>@@<service>`), the one whose sweep reads the lease.

use nacre_guest_sdk::{
    Command, Commit, GuestError, GuestReply, GuestRequest, LeaseRenewal, Plan, RequestExt, emit, store,
};
use serde::Serialize;
use serde_json::Value;

use crate::fields::{self, MAX_METADATA_BYTES};
use crate::instance::{self, Target};
use crate::list::{DEFAULT_HEART_BEAT_INTERVAL_MS, HEART_BEAT_INTERVAL_KEY};
use crate::names;
use crate::ops::{TOPIC, json};
use crate::record::{InstanceRecord, Metadata};

/// Nacos `NamingResponseCode`: the instance is known / unknown (the client then re-registers).
pub const CODE_OK: u32 = 10200;
pub const CODE_RESOURCE_NOT_FOUND: u32 = 20404;
/// Largest `beat` JSON: its metadata plus the few other fields.
pub const MAX_BEAT_BYTES: usize = MAX_METADATA_BYTES + 4096;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BeatReply {
    client_beat_interval: u64,
    code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    light_beat_enabled: Option<bool>,
}

/// What a `beat` body says about the instance (Nacos `RsInfo`); what it leaves out comes from
/// the plain parameters.
#[derive(Debug, Default)]
struct BeatBody {
    ip: Option<String>,
    port: Option<u16>,
    cluster: Option<String>,
    weight: Option<f64>,
    metadata: Option<Metadata>,
}

pub fn query(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, body) = resolve(req)?;
    let partition = target.service.grouped();
    let renew = |key: String| Some(LeaseRenewal { key, partition: Some(partition.clone()) });
    let commit_ap = || Commit::Ap { partition: partition.clone() };
    Ok(match target.find()? {
        // Persistent instances are probed by the server; their beats renew nothing.
        Some(found) if !found.ephemeral => known(&found),
        Some(found) => {
            let commit = if found.healthy { Commit::None } else { commit_ap() };
            Plan { commit, renew: renew(found.instance_id()) }.onto(known(&found))
        }
        // The instance the commit will register carries the beat's metadata, so its interval
        // is the one to announce.
        None if body.is_some() => {
            let reply = json(&BeatReply {
                client_beat_interval: body
                    .as_ref()
                    .and_then(|b| b.metadata.as_ref())
                    .and_then(|m| m.get(HEART_BEAT_INTERVAL_KEY))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(DEFAULT_HEART_BEAT_INTERVAL_MS),
                code: CODE_OK,
                light_beat_enabled: Some(true),
            });
            Plan { commit: commit_ap(), renew: renew(target.addr().instance_id()) }.onto(reply)
        }
        None => unknown(),
    })
}

/// The committed beat (an AP command): re-registers an unknown instance from its `beat` body
/// (Nacos's "data compensation") or marks an unhealthy ephemeral instance healthy again.
pub fn apply(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let (target, body) = resolve(req)?;
    let instance = match (target.find()?, body) {
        (Some(found), _) if found.ephemeral && !found.healthy => {
            let healed = InstanceRecord { healthy: true, ..found };
            store::put_json(&healed.key(), &healed);
            emit(TOPIC, &target.service.grouped());
            healed
        }
        (Some(found), _) => found,
        (None, Some(body)) => {
            let record = InstanceRecord {
                ip: target.ip.clone(),
                port: target.port,
                weight: body.weight.unwrap_or(1.0),
                enabled: true,
                healthy: true,
                ephemeral: true,
                cluster_name: target.cluster.clone(),
                service_name: target.service.grouped(),
                metadata: body.metadata.unwrap_or_default(),
                app: None,
                owner: fields::owner(req)?,
                registered_ms: cmd.timestamp_ms,
            };
            instance::insert(cmd, &target.service, record.clone())?;
            record
        }
        (None, None) => return Ok(unknown()),
    };
    Ok(known(&instance))
}

fn known(instance: &InstanceRecord) -> GuestReply {
    json(&BeatReply {
        client_beat_interval: instance.preserved_ms(HEART_BEAT_INTERVAL_KEY, DEFAULT_HEART_BEAT_INTERVAL_MS),
        code: CODE_OK,
        light_beat_enabled: Some(true),
    })
}

fn unknown() -> GuestReply {
    json(&BeatReply {
        client_beat_interval: DEFAULT_HEART_BEAT_INTERVAL_MS,
        code: CODE_RESOURCE_NOT_FOUND,
        light_beat_enabled: None,
    })
}

/// The instance a beat is for: the `beat` body's ip, port and cluster win over the parameters
/// (as in Nacos); the service always comes from the parameters.
fn resolve(req: &GuestRequest) -> Result<(Target, Option<BeatBody>), GuestError> {
    let service = names::service_name(req)?;
    let body = req.optional("beat").map(parse_body).transpose()?;
    let body_ref = body.as_ref();
    let cluster = match body_ref.and_then(|b| b.cluster.clone()) {
        Some(cluster) => cluster,
        None => names::cluster_name(req)?,
    };
    let ip = match body_ref.and_then(|b| b.ip.clone()) {
        Some(ip) => ip,
        None => fields::ip(req)?.to_owned(),
    };
    let port = match body_ref.and_then(|b| b.port) {
        Some(port) => port,
        None => fields::port(req)?,
    };
    Ok((Target { service, cluster, ip, port }, body))
}

fn parse_body(text: &str) -> Result<BeatBody, GuestError> {
    let bad = |why: String| GuestError::bad_request(format!("invalid beat: {why}"));
    if text.len() > MAX_BEAT_BYTES {
        return Err(bad(format!("larger than {MAX_BEAT_BYTES} bytes")));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("must be a JSON object".into()));
    }
    let text_field = |name: &str| value.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let mut body = BeatBody::default();
    if let Some(ip) = text_field("ip") {
        fields::check_ip("beat", ip)?;
        body.ip = Some(ip.to_owned());
    }
    if let Some(cluster) = text_field("cluster") {
        names::check_cluster("beat", cluster)?;
        body.cluster = Some(cluster.to_owned());
    }
    body.port = match value.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad(format!("port {n}")))?)
        }
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| bad(format!("port {s:?}")))?),
        Some(other) => return Err(bad(format!("port {other}"))),
    };
    body.weight = match value.get("weight") {
        None | Some(Value::Null) => None,
        Some(w) => Some(fields::check_weight("beat", w.as_f64().ok_or_else(|| bad(format!("weight {w}")))?)?),
    };
    body.metadata = match value.get("metadata") {
        None | Some(Value::Null) => None,
        Some(metadata) => Some(fields::metadata_from_json("beat", metadata)?),
    };
    Ok(body)
}
