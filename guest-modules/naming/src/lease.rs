//! Heartbeat leases of ephemeral instances: the host's periodic sweep (a query that answers
//! with the commands to run) and `naming.expire`, the removal it asks for.
//!
//! Each node keeps the beat times of the partitions (services) it is responsible for in memory
//! (they never enter the log or the store) and passes them in as `beats`. An instance's last
//! sign of life is the latest of its last beat, its registration and `sinceMs` (when this node
//! started watching its beats: a node that just took over a partition must not expire
//! instances whose beats went to the previous one).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use nacre_guest_sdk::sweep::{SweepCommand, SweepReply};
use nacre_guest_sdk::{Command, GuestError, GuestReply, GuestRequest, RequestExt, emit, store};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::fields;
use crate::instance::{self, Target};
use crate::list::{
    DEFAULT_HEART_BEAT_TIMEOUT_MS, DEFAULT_IP_DELETE_TIMEOUT_MS, HEART_BEAT_TIMEOUT_KEY, IP_DELETE_TIMEOUT_KEY,
};
use crate::names::{self, ServiceName};
use crate::ops::{EXPIRE, HEALTH, OK, SERVICE_REMOVE, TOPIC, json};
use crate::plan;
use crate::record::{self, InstanceAddr, InstanceRecord, ServiceRecord};

/// Instances one sweep's commands name at most (marked unhealthy or expired); the rest wait
/// for the next sweep (about a second later). The host sweeps a namespace in chunks of fewer
/// live records than this, so that one answer judges a whole chunk.
pub const MAX_SWEEP_INSTANCES: usize = 4096;
/// Instances one of the sweep's commands names: the instances of one partition that one
/// `naming.expire` removes, or one `naming.health` marks unhealthy, in one AP command (a
/// command per instance would cost the host a guest call each).
pub const MAX_INSTANCES_PER_COMMAND: usize = 128;
/// Empty-service removals (log commands) one leader's sweep answers with; the rest wait.
pub const MAX_SERVICE_REMOVALS: usize = 256;
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

/// What the sweep reads of a stored ephemeral instance: who it is, its health, when it was
/// registered and the two timeouts of its metadata, borrowed from the stored JSON, the rest
/// skipped unread. A sweep reads every instance of its partitions, so this decode is most of
/// its cost per instance (a whole [`InstanceRecord`] costs several times more fuel).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lease<'a> {
    #[serde(borrow)]
    ip: Cow<'a, str>,
    port: u16,
    healthy: bool,
    #[serde(borrow)]
    cluster_name: Cow<'a, str>,
    #[serde(borrow)]
    service_name: Cow<'a, str>,
    #[serde(default)]
    metadata: Timeouts,
    registered_ms: u64,
}

/// The `preserved.*` timeouts of an instance's metadata, as [`InstanceRecord::preserved_ms`]
/// reads them (a value that is not a number is no value); every other entry skipped.
#[derive(Default)]
struct Timeouts {
    heart_beat_ms: Option<u64>,
    delete_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for Timeouts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Timeouts;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("instance metadata")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Timeouts, A::Error> {
                let mut timeouts = Timeouts::default();
                while let Some(key) = map.next_key::<MetadataKey>()? {
                    match key {
                        MetadataKey::HeartBeat => timeouts.heart_beat_ms = map.next_value::<Millis>()?.0,
                        MetadataKey::Delete => timeouts.delete_ms = map.next_value::<Millis>()?.0,
                        MetadataKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(timeouts)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// A metadata key, read without copying it.
enum MetadataKey {
    HeartBeat,
    Delete,
    Other,
}

impl<'de> Deserialize<'de> for MetadataKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = MetadataKey;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata key")
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<MetadataKey, E> {
                Ok(match key {
                    HEART_BEAT_TIMEOUT_KEY => MetadataKey::HeartBeat,
                    IP_DELETE_TIMEOUT_KEY => MetadataKey::Delete,
                    _ => MetadataKey::Other,
                })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A metadata value read as milliseconds, `None` when it is not a number.
struct Millis(Option<u64>);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Millis;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata value")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Millis, E> {
                Ok(Millis(value.trim().parse().ok()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// The renewal times the host passes (`beats`), keyed by lease key. Borrowed from the
/// parameter when its keys need no unescaping (instance ids never do), else copied.
enum Beats<'a> {
    Borrowed(BTreeMap<&'a str, u64>),
    Owned(BTreeMap<String, u64>),
}

impl<'a> Beats<'a> {
    fn parse(req: &'a GuestRequest) -> Result<Self, GuestError> {
        let Some(text) = req.optional("beats") else { return Ok(Beats::Borrowed(BTreeMap::new())) };
        if let Ok(borrowed) = serde_json::from_str(text) {
            return Ok(Beats::Borrowed(borrowed));
        }
        json_param(req, "beats", "a JSON object of instance ids to times").map(Beats::Owned)
    }

    fn get(&self, key: &str) -> Option<u64> {
        match self {
            Beats::Borrowed(beats) => beats.get(key).copied(),
            Beats::Owned(beats) => beats.get(key).copied(),
        }
    }
}

/// One instance a batched `naming.expire` or `naming.health` names, in its `instances`
/// parameter (a JSON array), with the registration time the sweep saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Swept {
    pub cluster_name: String,
    pub ip: String,
    pub port: u16,
    pub registered_ms: u64,
}

/// The instances of one service a batched command names, validated.
pub struct Batch {
    pub service: ServiceName,
    pub instances: Vec<Swept>,
}

impl Batch {
    /// The batch a request carries in `instances` (with `serviceName`), `None` when it names
    /// one instance the usual way. Names are checked as a request's are, so that no crafted
    /// entry addresses another key.
    pub fn parse(req: &GuestRequest) -> Result<Option<Batch>, GuestError> {
        let Some(text) = req.optional("instances") else { return Ok(None) };
        let instances: Vec<Swept> = serde_json::from_str(text).map_err(|e| {
            GuestError::bad_request(format!("invalid instances: not a JSON array of swept instances: {e}"))
        })?;
        if instances.len() > MAX_INSTANCES_PER_COMMAND {
            return Err(GuestError::bad_request(format!(
                "invalid instances: {} of them, over the {MAX_INSTANCES_PER_COMMAND} one command may name",
                instances.len()
            )));
        }
        for swept in &instances {
            names::check_cluster("instances", &swept.cluster_name)?;
            fields::check_ip("instances", &swept.ip)?;
        }
        Ok(Some(Batch { service: names::service_name(req)?, instances }))
    }

    /// Each named instance still stored as the ephemeral instance the sweep saw (not
    /// registered again since).
    pub fn found(&self) -> Result<Vec<InstanceRecord>, GuestError> {
        let mut found = Vec::with_capacity(self.instances.len());
        for swept in &self.instances {
            let addr =
                InstanceAddr { service: &self.service, cluster: &swept.cluster_name, ip: &swept.ip, port: swept.port };
            if let Some(instance) = record::find_instance(&addr, Some(true))?
                && instance.registered_ms <= swept.registered_ms
            {
                found.push(instance);
            }
        }
        Ok(found)
    }
}

/// What the sweep does to an instance.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unhealthy,
    Expire,
}

/// The sweep's commands as they fill: per partition, the instances to mark unhealthy and to
/// expire, cut into commands of [`MAX_INSTANCES_PER_COMMAND`]. Instances arrive in key order,
/// so one partition's are contiguous.
#[derive(Default)]
struct Commands {
    partition: String,
    unhealthy: Vec<Swept>,
    expire: Vec<Swept>,
    out: Vec<SweepCommand>,
    named: usize,
}

impl Commands {
    fn add(&mut self, verdict: Verdict, lease: &Lease<'_>) {
        if self.partition != lease.service_name {
            self.flush();
            self.partition = lease.service_name.clone().into_owned();
        }
        let swept = Swept {
            cluster_name: lease.cluster_name.clone().into_owned(),
            ip: lease.ip.clone().into_owned(),
            port: lease.port,
            registered_ms: lease.registered_ms,
        };
        let list = match verdict {
            Verdict::Unhealthy => &mut self.unhealthy,
            Verdict::Expire => &mut self.expire,
        };
        list.push(swept);
        self.named += 1;
        if list.len() >= MAX_INSTANCES_PER_COMMAND {
            self.flush_one(verdict);
        }
    }

    fn flush(&mut self) {
        self.flush_one(Verdict::Unhealthy);
        self.flush_one(Verdict::Expire);
    }

    fn flush_one(&mut self, verdict: Verdict) {
        let (list, op) = match verdict {
            Verdict::Unhealthy => (&mut self.unhealthy, HEALTH),
            Verdict::Expire => (&mut self.expire, EXPIRE),
        };
        if list.is_empty() {
            return;
        }
        let instances = serde_json::to_string(&std::mem::take(list)).expect("swept instances serialize");
        let mut params = BTreeMap::from([
            ("serviceName".to_owned(), self.partition.clone()),
            ("ephemeral".to_owned(), "true".to_owned()),
            ("instances".to_owned(), instances),
        ]);
        if verdict == Verdict::Unhealthy {
            params.insert("healthy".into(), "false".into());
        }
        self.out.push(SweepCommand { op: op.to_owned(), params, partition: Some(self.partition.clone()) });
    }

    fn finish(mut self) -> Vec<SweepCommand> {
        self.flush();
        self.out
    }
}

/// `naming.sweep` (query), with the parameters of `nacre_protocol::sweep`: `nowMs`, `sinceMs`,
/// `beats` (JSON `{instanceId: lastBeatMs}`), `partitions` (JSON array of grouped service
/// names; absent: every service), `leader` and `preserve` (booleans, default false).
///
/// Reply: a `SweepReply`. Every ephemeral instance of the partitions counts in `expected`, and
/// in `lapsed` when silent past its heartbeat timeout. Commands, in key order, AP commands at
/// the instances' partition, each naming up to [`MAX_INSTANCES_PER_COMMAND`] instances of it
/// (`instances`, see [`Batch`]), at most [`MAX_SWEEP_INSTANCES`] in all: `naming.health`
/// (unhealthy) for instances silent past their heartbeat timeout, `naming.expire` past their
/// delete timeout (none while `preserve`: the node suspects itself, so it keeps
/// registrations; it still marks them unhealthy, which a returning beat heals); then, on the
/// leader only, a log command `naming.service.remove` for each service left empty and
/// unconfigured (at most [`MAX_SERVICE_REMOVALS`]).
pub fn sweep(req: &GuestRequest) -> Result<GuestReply, GuestError> {
    let now = fields::required_millis(req, "nowMs")?;
    let since = fields::millis(req, "sinceMs")?.unwrap_or(0);
    let beats = Beats::parse(req)?;
    let partitions: Option<BTreeSet<String>> = json_param(req, "partitions", "a JSON array of service names")?;
    let leader = req.bool_or("leader", false)?;
    let preserve = req.bool_or("preserve", false)?;

    let mut reply = SweepReply::default();
    let mut commands = Commands::default();
    let mut id = String::new();
    let mut visit = |value: &[u8]| {
        let lease: Lease = serde_json::from_slice(value)
            .map_err(|e| GuestError::internal(format!("stored record does not decode: {e}")))?;
        id.clear();
        write!(id, "{}#{}#{}#{}", lease.ip, lease.port, lease.cluster_name, lease.service_name).expect("to a string");
        let last = beats.get(&id).unwrap_or(0).max(since).max(lease.registered_ms);
        let silent = now.saturating_sub(last);
        let lapsed = silent > lease.metadata.heart_beat_ms.unwrap_or(DEFAULT_HEART_BEAT_TIMEOUT_MS);
        reply.expected += 1;
        reply.lapsed += u64::from(lapsed);
        // Past the cap, only the counts go on: self-preservation needs them whole.
        if commands.named >= MAX_SWEEP_INSTANCES {
            return Ok(true);
        }
        let expired = silent > lease.metadata.delete_ms.unwrap_or(DEFAULT_IP_DELETE_TIMEOUT_MS);
        if expired && !preserve {
            commands.add(Verdict::Expire, &lease);
        } else if lapsed && lease.healthy {
            commands.add(Verdict::Unhealthy, &lease);
        }
        Ok(true)
    };
    match &partitions {
        Some(partitions) => {
            for partition in partitions {
                record::for_each_row(&record::ephemeral_prefix(partition), |_, value| visit(value))?;
            }
        }
        None => record::for_each_row(record::EPHEMERAL_PREFIX.as_bytes(), |_, value| visit(value))?,
    }
    reply.commands = commands.finish();
    if leader {
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
/// [`crate::service::remove`]), a log command; at most [`MAX_SERVICE_REMOVALS`].
fn empty_services(now: u64, commands: &mut Vec<SweepCommand>) -> Result<(), GuestError> {
    let prefix = record::SERVICE_PREFIX.as_bytes();
    let mut removals = 0;
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
                removals += 1;
            }
        }
        Ok(removals < MAX_SERVICE_REMOVALS)
    })
}

/// `naming.expire` (an AP command): removes an ephemeral instance whose beats stopped, unless
/// it was registered again after the sweep saw it (`registeredMs` older than the stored one).
/// The sweep's form names many instances of one service at once (`instances`, see [`Batch`],
/// each with its own `registeredMs`): one event for the service when any is removed.
pub fn expire(cmd: &Command, req: &GuestRequest) -> Result<GuestReply, GuestError> {
    if let Some(batch) = Batch::parse(req)? {
        let found = batch.found()?;
        for instance in &found {
            store::delete(&instance.key());
        }
        if !found.is_empty() {
            emit(TOPIC, &batch.service.grouped());
        }
        return Ok(GuestReply::text(OK));
    }
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
    if let Some(batch) = Batch::parse(req)? {
        return Ok(plan::to_ap(&batch.service));
    }
    let (target, _) = parse_expire(req)?;
    Ok(plan::to_ap(&target.service))
}

fn parse_expire(req: &GuestRequest) -> Result<(Target, u64), GuestError> {
    Ok((Target::parse(req)?, fields::required_millis(req, "registeredMs")?))
}
