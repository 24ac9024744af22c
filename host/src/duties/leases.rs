//! The lease tasks: forwarding renewals to the nodes that hold them, and the sweep.
//!
//! About once a second every node asks each namespace's guest to sweep the partitions it is
//! responsible for: it passes the renewal times it holds (`crate::leases`) and when it
//! started holding them, and runs the commands the guest answers with (mark an instance
//! unhealthy, expire it) on the path each names (`dispatch`): AP commands here, log commands
//! only on the leader.
//!
//! A round sweeps a namespace in chunks ([`chunks`]): one query per group of partitions whose
//! live records add up to at most [`SWEEP_CHUNK_RECORDS`], each passed only the renewals of
//! its own partitions, so that no query's fuel or parameters grow with the namespace. The
//! leader's part (the leases it holds itself, and the log commands such as removing empty
//! services) is one query of its own per namespace and round.
//!
//! A node that just became responsible knows no renewals; it passes the moment its view of
//! the members last changed as `sinceMs`, so every lease gets a full timeout of grace before
//! it can expire (Nacos does the same after a restart).
//!
//! Self-preservation: the sweep also reports how many leases it expected to be renewed and
//! how many lapsed. When too many lapse at once (`config::SelfPreservation`), the node
//! suspects its own network rather than every client, and tells the next sweeps to `preserve`:
//! the guest then expires nothing until renewals return.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use nacre_protocol::sweep::SweepReply;

use super::Services;
use crate::clock::now_ms;
use crate::leases::FORGET_RENEWAL_AFTER_MS;
use crate::leases::LeaseHolder;
use crate::leases::LeaseKey;
use crate::leases::LeaseRenew;
use crate::members::responsible_among;
use crate::runtime::ModuleKind;
use crate::scope::Scope;

/// How often every node sweeps the partitions it is responsible for.
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
/// How often a node sends the renewals it served to the nodes that hold them.
pub const RENEWAL_FLUSH_INTERVAL_MS: u64 = 200;
/// How long a node waits for another to take a batch of renewals.
const FORWARD_TIMEOUT_MS: u64 = 2_000;
/// Live records one sweep query covers at most: partitions are grouped into chunks up to this
/// many, and a partition larger than it is swept alone. Measured (the test
/// `a_chunk_and_the_largest_partition_fit_a_sweeps_fuel`): a sweep costs about 38,000 fuel per
/// instance when every one has a renewal and has lapsed, so a chunk takes about 75 M, far
/// inside `runtime::limits::DUTY_QUERY_FUEL`, and a partition of the naming guest's most
/// instances (10,000, alone whatever the budget) about 315 M, inside it too. Smaller chunks
/// would cost a guest instance each; larger ones hold the replica's read lock longer.
pub const SWEEP_CHUNK_RECORDS: usize = 2_000;

/// The sweep query of each module kind that has leases.
const SWEEPS: &[(ModuleKind, &str)] = &[(ModuleKind::Naming, "naming.sweep")];

/// Every [`RENEWAL_FLUSH_INTERVAL_MS`], send queued renewals to the nodes that hold them (as
/// they are now: responsibility may have moved since the beat).
pub async fn forward_renewals(services: Arc<Services>) {
    loop {
        tokio::time::sleep(Duration::from_millis(RENEWAL_FLUSH_INTERVAL_MS)).await;
        let queued = services.leases.take_queued();
        if queued.is_empty() {
            continue;
        }
        let mut here = Vec::new();
        let mut by_addr: BTreeMap<String, Vec<LeaseKey>> = BTreeMap::new();
        for key in queued {
            let holder = key.holder();
            if services.dispatch.holds(&holder) {
                here.push(key);
                continue;
            }
            let addr = match &holder {
                LeaseHolder::Partition(id) => services.members.addr(services.members.responsible(id)),
                LeaseHolder::Leader => services.log.remote_leader_addr(),
            };
            if let Some(addr) = addr {
                by_addr.entry(addr).or_default().push(key);
            }
        }
        services.leases.record(here, now_ms());
        let sends = by_addr.into_iter().map(|(addr, keys)| {
            let services = services.clone();
            async move {
                let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
                if let Err(e) = services.peers.send::<LeaseRenew>(&addr, &keys, timeout).await {
                    tracing::debug!(error = %e, count = keys.len(), "renewals not forwarded; the sweep's grace covers them");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

/// Every node, once per [`SWEEP_INTERVAL_MS`]: sweep the partitions it is responsible for in
/// every namespace (and, on the leader, the replicated state), run what the guest answers,
/// and judge self-preservation from the counts of every chunk of the round.
pub async fn sweep_forever(services: Arc<Services>) {
    loop {
        tokio::time::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)).await;
        let now = now_ms();
        let term = services.log.leading_term();
        let preserve = services.leases.preservation().engaged;
        let (mut expected, mut lapsed) = (0, 0);
        let (started, mut queries, mut commands) = (std::time::Instant::now(), 0, 0);
        for (kind, op) in SWEEPS {
            let mut namespaces: BTreeSet<String> = services.ap.store().namespaces(*kind).into_iter().collect();
            if term.is_some() {
                namespaces.extend(services.guests.replica().read().machine.namespaces_with_data(*kind));
            }
            for namespace in namespaces {
                let round = Round { scope: Scope::new(&namespace, *kind), now, term, preserve };
                for chunk in chunks(responsible_partitions(&services, &round), SWEEP_CHUNK_RECORDS, term.is_some()) {
                    queries += 1;
                    if let Some(reply) = sweep(&services, op, &round, &chunk).await {
                        expected += reply.expected;
                        lapsed += reply.lapsed;
                        commands += reply.commands.len();
                    }
                }
            }
        }
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(queries, commands, expected, lapsed, took_ms, "sweep round");
        services.leases.judge(&services.self_preservation, expected, lapsed);
        services.leases.forget_before(now.saturating_sub(FORGET_RENEWAL_AFTER_MS));
    }
}

/// One namespace's sweep in one round.
struct Round<'a> {
    scope: Scope<'a>,
    now: u64,
    /// The term this node leads, if it leads.
    term: Option<u64>,
    preserve: bool,
}

/// One query of a round's sweep of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// AP partitions this node is responsible for.
    pub partitions: Vec<String>,
    /// The leader's part: the leases the leader holds (those without a partition) and the
    /// log commands. In one chunk per namespace and round.
    pub leader: bool,
}

/// How a round sweeps one namespace: `partitions` (with their live records, in order) grouped
/// into chunks of at most `budget` records, a partition over the budget alone; and, when this
/// node leads, the leader's part first, in a chunk of its own (its cost is the replicated
/// services', not the partitions').
pub fn chunks(partitions: Vec<(String, usize)>, budget: usize, leader: bool) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    if leader {
        chunks.push(Chunk { partitions: Vec::new(), leader: true });
    }
    let mut current = Chunk::default();
    let mut records = 0;
    for (partition, live) in partitions {
        if !current.partitions.is_empty() && records + live > budget {
            chunks.push(std::mem::take(&mut current));
            records = 0;
        }
        current.partitions.push(partition);
        records += live;
    }
    if !current.partitions.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The partitions of the round's namespace this node is responsible for, with their live
/// records.
fn responsible_partitions(services: &Services, round: &Round<'_>) -> Vec<(String, usize)> {
    let live = services.members.live();
    let me = services.members.me();
    let partitions = services.ap.store().live_partitions(round.scope);
    partitions
        .into_iter()
        .filter(|(partition, _)| {
            let id = round.scope.partition(partition);
            responsible_among(&live, &id) == me
        })
        .collect()
}

/// Ask one namespace's guest what has expired in one chunk, and run its answer. `None` when
/// the guest failed.
async fn sweep(services: &Services, op: &str, round: &Round<'_>, chunk: &Chunk) -> Option<SweepReply> {
    let Round { scope, now, term, preserve } = *round;
    let Scope { namespace, .. } = scope;
    let parts = chunk.partitions.iter().map(|partition| Some(partition.as_str()));
    let renewals = services.leases.renewals_in(scope, parts.chain(chunk.leader.then_some(None)));
    let request = GuestRequest::new(op)
        .param("nowMs", now.to_string())
        .param("sinceMs", services.members.view_since_ms().to_string())
        .param("beats", serde_json::to_string(&renewals).expect("a map of numbers serializes"))
        .param("partitions", serde_json::to_string(&chunk.partitions).expect("strings serialize"))
        .param("leader", chunk.leader.to_string())
        .param("preserve", preserve.to_string());
    let reply: SweepReply = match services.guests.duty_query(scope, &request) {
        Ok(reply) => match serde_json::from_str(&reply.body) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(namespace, op, error = %e, "sweep answer is not a sweep reply");
                return None;
            }
        },
        Err(e) => {
            let partitions = chunk.partitions.len();
            tracing::warn!(namespace, op, partitions, code = e.code, message = %e.message, "sweep failed");
            return None;
        }
    };
    // Log commands only from the leader's part: a chunk of partitions has no business there.
    let term = if chunk.leader { term } else { None };
    services.dispatch.run_duty(scope, term, &reply.commands).await;
    Some(reply)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nacre_protocol::GuestReply;

    use super::*;
    use crate::runtime::Budget;
    use crate::runtime::GuestCommand;
    use crate::runtime::KvRead;
    use crate::runtime::QueryContext;
    use crate::runtime::Runtime;
    use crate::runtime::limits::DUTY_QUERY_FUEL;

    fn sized(sizes: &[(&str, usize)]) -> Vec<(String, usize)> {
        sizes.iter().map(|(name, live)| (name.to_string(), *live)).collect()
    }

    fn chunk(partitions: &[&str]) -> Chunk {
        Chunk { partitions: partitions.iter().map(|p| p.to_string()).collect(), leader: false }
    }

    #[test]
    fn partitions_are_chunked_by_live_records_and_the_leaders_part_is_swept_once() {
        let leader = Chunk { partitions: Vec::new(), leader: true };
        let partitions = sized(&[("a", 400), ("b", 600), ("c", 1), ("d", 2_500), ("e", 999), ("f", 1_000)]);
        assert_eq!(
            chunks(partitions.clone(), 1_000, false),
            [chunk(&["a", "b"]), chunk(&["c"]), chunk(&["d"]), chunk(&["e"]), chunk(&["f"])],
            "up to the budget; a partition over it alone; the order kept"
        );
        let led = chunks(partitions.clone(), 1_000, true);
        assert_eq!(led[0], leader);
        assert_eq!(led[1..], chunks(partitions, 1_000, false), "the leader's part besides, not in every chunk");
        assert_eq!(led.iter().filter(|c| c.leader).count(), 1);
        assert_eq!(chunks(Vec::new(), 1_000, true), [leader], "a leader responsible for no partition");
        assert!(chunks(Vec::new(), 1_000, false).is_empty(), "nothing to ask");
        let many: Vec<(String, usize)> = (0..10_000).map(|i| (format!("s{i:05}"), 10)).collect();
        let swept = chunks(many.clone(), SWEEP_CHUNK_RECORDS, false);
        assert_eq!(swept.len(), 10_000 * 10 / SWEEP_CHUNK_RECORDS);
        let every: Vec<String> = swept.into_iter().flat_map(|c| c.partitions).collect();
        assert_eq!(every, many.into_iter().map(|(p, _)| p).collect::<Vec<_>>(), "each partition once, in order");
    }

    /// A namespace's AP keyspace, as the guest reads it.
    #[derive(Default)]
    struct MemKv(BTreeMap<Vec<u8>, Vec<u8>>);

    impl KvRead for MemKv {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key).cloned()
        }

        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0
                .range(start.to_vec()..)
                .take_while(|(key, _)| end.is_empty() || key.as_slice() < end)
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }

    fn ip(i: usize) -> String {
        format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
    }

    /// `count` ephemeral instances of each of `services`, as a registration through the naming
    /// guest writes them (its record copied with another ip), with a quarter KiB of metadata
    /// besides the timeouts, as the benchmark registers them.
    fn instances(runtime: &Runtime, naming: &String, services: &[String], count: usize) -> MemKv {
        instances_padded(runtime, naming, services, count, 180)
    }

    fn instances_padded(runtime: &Runtime, naming: &String, services: &[String], count: usize, pad: usize) -> MemKv {
        let metadata = format!(
            r#"{{"preserved.heart.beat.timeout":"2000","preserved.ip.delete.timeout":"4000","pad":"{}"}}"#,
            "m".repeat(pad)
        );
        let mut kv = MemKv::default();
        for service in services {
            let register = GuestRequest::new("naming.register")
                .param("serviceName", service)
                .param("ip", "10.255.255.255")
                .param("port", "8080")
                .param("metadata", &metadata);
            let command = GuestCommand { index: 1, timestamp_ms: 1_000, payload: register.encode() };
            let outcome = runtime.apply_one(naming, "public", &command, &kv, Budget::Full).expect("apply");
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            let (key, value) = outcome.writes[0].clone();
            let (key, value) = (String::from_utf8(key).unwrap(), String::from_utf8(value.unwrap()).unwrap());
            for i in 0..count {
                let ip = ip(i);
                kv.0.insert(
                    key.replace("10.255.255.255", &ip).into_bytes(),
                    value.replace("10.255.255.255", &ip).into_bytes(),
                );
            }
        }
        kv
    }

    /// A sweep of `partitions` at `now_ms` with a renewal at 0 of every instance in `kv` (what a
    /// node passes: the beats of the chunk's partitions): its reply and the fuel it used.
    fn sweep_of(
        runtime: &Runtime,
        naming: &String,
        kv: &MemKv,
        partitions: &[String],
        now_ms: u64,
    ) -> (SweepReply, u64) {
        let beats: BTreeMap<String, u64> =
            kv.0.keys()
                .map(|key| {
                    // e/<grouped>/<cluster>/<ip>/<port:05> → ip#port#cluster#grouped
                    let parts: Vec<&str> = std::str::from_utf8(&key[2..]).unwrap().split('/').collect();
                    (format!("{}#{}#{}#{}", parts[2], parts[3].trim_start_matches('0'), parts[1], parts[0]), 0)
                })
                .collect();
        let request = GuestRequest::new("naming.sweep")
            .param("nowMs", now_ms.to_string())
            .param("beats", serde_json::to_string(&beats).unwrap())
            .param("partitions", serde_json::to_string(partitions).unwrap());
        let ctx = QueryContext { namespace: "public".into(), applied_index: 1, timestamp_ms: now_ms };
        let answer = runtime.query_within(naming, &ctx, &request.encode(), kv, Budget::Duty).expect("query");
        let fuel = crate::runtime::fuel_of_last_call();
        let reply = GuestReply::decode(&answer.expect("the sweep answers")).unwrap();
        (serde_json::from_str(&reply.body).unwrap(), fuel)
    }

    /// Sizes [`SWEEP_CHUNK_RECORDS`] from what a sweep costs per instance, and checks that a
    /// partition of the naming guest's most instances (`MAX_INSTANCES_PER_SERVICE`, 10,000),
    /// which goes alone whatever the budget, still fits a query's fuel. Worst case per
    /// instance: every one has a renewal to look up, and every one lapsed (commands to build).
    #[test]
    fn a_chunk_and_the_largest_partition_fit_a_sweeps_fuel() {
        const MAX_INSTANCES_PER_SERVICE: usize = 10_000;
        let runtime = Runtime::new(None).expect("runtime");
        let (naming, _) = runtime.load(crate::builtin::NAMING).expect("naming loads");
        let services: Vec<String> = (0..10).map(|i| format!("G@@svc{i}")).collect();
        let small = instances(&runtime, &naming, &services, 100);
        let large = instances(&runtime, &naming, &services, 300);
        for now in [1_000, 10_000] {
            let (reply, fuel_small) = sweep_of(&runtime, &naming, &small, &services, now);
            assert_eq!(reply.expected, 1_000);
            let (reply, fuel_large) = sweep_of(&runtime, &naming, &large, &services, now);
            assert_eq!(reply.expected, 3_000);
            let per_instance = (fuel_large - fuel_small) / 2_000;
            let chunk = fuel_large * SWEEP_CHUNK_RECORDS as u64 / 3_000;
            eprintln!(
                "sweep fuel (lapsed: {}): 1,000 instances {fuel_small}, 3,000 {fuel_large}; {per_instance} per instance; a chunk of {SWEEP_CHUNK_RECORDS} about {chunk}",
                now > 1_000
            );
            assert!(chunk < DUTY_QUERY_FUEL / 10, "a chunk of {SWEEP_CHUNK_RECORDS} records needs about {chunk} fuel");
        }
        let one = vec!["G@@largest".to_string()];
        let largest = instances(&runtime, &naming, &one, MAX_INSTANCES_PER_SERVICE);
        let (reply, fuel) = sweep_of(&runtime, &naming, &largest, &one, 10_000);
        eprintln!("sweep fuel of one partition of {MAX_INSTANCES_PER_SERVICE} lapsed instances: {fuel}");
        assert_eq!(
            (reply.expected, reply.lapsed),
            (MAX_INSTANCES_PER_SERVICE as u64, MAX_INSTANCES_PER_SERVICE as u64)
        );
        assert!(fuel < DUTY_QUERY_FUEL / 2, "the largest partition, alone, needs {fuel} of {DUTY_QUERY_FUEL}");
    }
}
