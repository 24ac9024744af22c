//! Closed-loop throughput and latency: each Nacre scenario beside its etcd and ZooKeeper
//! counterparts and r-nacos answering the very same Nacos request, at each concurrency, rounds interleaved (Nacre, etcd, ZooKeeper, then etcd,
//! ZooKeeper, Nacre, ...), the first round of each discarded as warm-up, medians of the rest.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use zookeeper_client as zk;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::System;
use crate::http;
use crate::http::Conn;
use crate::load;
use crate::load::Load;
use crate::load::ZkFuture;
use crate::load::ZkOp;
use crate::report::Row;
use crate::stats;
use crate::stats::Summary;
use crate::zookeeper;

/// Every value written (config content, etcd value, instance metadata) is this long.
pub const VALUE_BYTES: usize = 256;
/// Longest wait, before a round, for the other systems to go quiet.
const ROUND_SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Services the persistent registrations are spread over.
const PERSISTENT_SERVICES: u64 = 100;
/// Persistent registrations cycle over this many instances, re-registered with new metadata
/// (a Raft write that changes state each time), as etcd's puts cycle over 1000 keys: the state
/// stays the same size through the run instead of growing by every write, which would make the
/// later rows measure snapshots of a state the peers do not hold.
const PERSISTENT_POOL: u64 = 1_000;
/// Ephemeral registrations cycle over this many instances, so that the instances left to
/// expire (nobody beats for them) stay bounded and their expiry does not load later scenarios.
const EPHEMERAL_POOL: u64 = 1_000;
/// Services the ephemeral registrations are spread over. On the AP path a service is a
/// partition, applied by the one node responsible for it, one command at a time: a registry's
/// many services spread its writes over every node, and one service would measure one node
/// (the single-service row shows that ceiling).
const EPHEMERAL_SERVICES: u64 = 128;
const EPHEMERAL_ONE_SERVICE: &str = "bench.ephemeral.one";
/// Services of the gRPC registrations. A connection keeps one registration per service (Nacos
/// 2.x), re-registered with new metadata by each operation, and deregistered when the round's
/// connections close: few services keep that cleanup small.
const GRPC_SERVICES: u64 = 16;
/// In the mixed scenarios, one operation in this many is a write, the rest reads.
const MIX_WRITE_EVERY: u64 = 10;
/// Configs published in the publish scenario cycle over this many data ids (etcd: keys).
const PUBLISH_POOL: u64 = 1_000;
/// The list scenario's service holds this many instances (etcd: keys under one prefix).
pub const LIST_INSTANCES: u64 = 10;
/// The get scenario reads over this many configs (etcd: keys).
const GET_POOL: u64 = 100;
const GROUP: &str = "BENCH";
const LIST_SERVICE: &str = "bench.list";

/// A 256-byte value that differs per operation.
pub fn value(op: u64) -> String {
    let head = format!("{op:016x}");
    format!("{head}{}", "v".repeat(VALUE_BYTES - head.len()))
}

/// Instance metadata of exactly [`VALUE_BYTES`] bytes of JSON.
fn metadata(op: u64) -> String {
    let head = format!("{{\"op\":\"{op:016x}\",\"pad\":\"");
    let tail = "\"}";
    format!("{head}{}{tail}", "m".repeat(VALUE_BYTES - head.len() - tail.len()))
}

/// Instance `n`'s address: one of 127/8, all of which is this machine, so that together with
/// [`instance_port`] every registered instance is up when a registry probes it.
fn ip(n: u64) -> String {
    format!("127.{}.{}.{}", 1 + (n >> 16) % 254, (n >> 8) & 255, n & 255)
}

/// The port every registered instance listens on: a listener this process keeps for its whole
/// life, accepting and closing connections. A registry health-checks persistent instances
/// (Nacre's leader, r-nacos, Nacos: a TCP connect every few seconds), and a real registry's
/// instances answer. Unroutable addresses made every probe wait out its timeout, and the
/// probes then marked every instance unhealthy through the log: writes of the leader's own
/// that no peer's workload has. Bound to every address because 127.0.0.1 alone does not
/// accept connections to the rest of 127/8.
pub fn instance_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("a listener for the instances");
        let port = listener.local_addr().expect("its address").port();
        std::thread::spawn(move || {
            // Each connection is dropped, so closed, at once: a TCP probe only connects.
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        port
    })
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

pub fn nacre_register(service: &str, n: u64, ephemeral: bool, op: u64) -> Vec<(String, String)> {
    vec![
        ("serviceName".into(), service.into()),
        ("ip".into(), ip(n)),
        ("port".into(), instance_port().to_string()),
        ("ephemeral".into(), ephemeral.to_string()),
        ("metadata".into(), metadata(op)),
    ]
}

fn form_req(addr: &str, path: &str, pairs: &[(String, String)]) -> http::Req {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    http::post_form(addr, path, &pairs)
}

pub fn nacre_publish(addr: &str, data_id: &str, content: &str) -> http::Req {
    http::post_form(addr, "/nacos/v1/cs/configs", &[("dataId", data_id), ("group", GROUP), ("content", content)])
}

pub fn etcd_put(addr: &str, key: &str, val: &str) -> http::Req {
    http::post_json(addr, "/v3/kv/put", &json!({"key": b64(key), "value": b64(val)}))
}

fn etcd_range(addr: &str, key: &str, range_end: Option<&str>, serializable: bool) -> http::Req {
    let mut body = json!({"key": b64(key), "serializable": serializable});
    if let Some(end) = range_end {
        body["range_end"] = json!(b64(end));
    }
    http::post_json(addr, "/v3/kv/range", &body)
}

const ZK_LIST: &str = "/bench/list";

fn http(make: impl Fn(&str, u64) -> http::Req + Send + Sync + 'static) -> Load {
    Load::Http(Arc::new(make))
}

fn grpc(make: impl Fn(u64) -> (&'static str, serde_json::Value) + Send + Sync + 'static) -> Load {
    Load::Grpc(Arc::new(make))
}

fn zk(run: impl Fn(zk::Client, u64) -> ZkFuture + Send + Sync + 'static) -> ZkOp {
    Arc::new(run)
}

/// ZooKeeper: a new znode with a 256-byte value (parents exist).
pub fn zk_create(path: impl Fn(u64) -> String + Send + Sync + 'static, mode: zk::CreateMode) -> ZkOp {
    zk(move |session, op| {
        let path = path(op);
        Box::pin(async move {
            session.create(&path, value(op).as_bytes(), &zookeeper::create_options(mode)).await?;
            Ok(())
        })
    })
}

/// ZooKeeper: a new 256-byte value for an existing znode.
pub fn zk_set(path: impl Fn(u64) -> String + Send + Sync + 'static) -> ZkOp {
    zk(move |session, op| {
        let path = path(op);
        Box::pin(async move {
            session.set_data(&path, value(op).as_bytes(), None).await?;
            Ok(())
        })
    })
}

/// ZooKeeper has no read that returns children with their data: the list is `getChildren`,
/// then one multi-read of every child's data (two round trips), after a `sync` when it must
/// be linearizable.
fn zk_list(linearizable: bool) -> ZkOp {
    zk(move |session, _| {
        Box::pin(async move {
            if linearizable {
                session.sync(ZK_LIST).await?;
            }
            let (children, _) = session.get_children(ZK_LIST).await?;
            let mut reader = session.new_multi_reader();
            for child in &children {
                reader.add_get_data(&format!("{ZK_LIST}/{child}"))?;
            }
            let read = reader.commit().await?;
            if read.len() as u64 != LIST_INSTANCES {
                bail!("ZooKeeper list read {} of {LIST_INSTANCES} children", read.len());
            }
            Ok(())
        })
    })
}

/// One comparison: a Nacre workload and each peer's (the operation's name, the load).
struct Pair {
    name: &'static str,
    write: bool,
    nacre: Load,
    peers: Vec<(System, &'static str, Load)>,
    note: &'static str,
}

/// What an ephemeral registration is compared with: an etcd put, a ZooKeeper ephemeral znode.
fn ephemeral_peers(etcd_put_req: &Load) -> Vec<(System, &'static str, Load)> {
    vec![
        (System::Etcd, "put", etcd_put_req.clone()),
        (
            System::ZooKeeper,
            "create ephemeral",
            Load::Zk(zk_create(
                |op| format!("/bench/eph/s{}/{op}", op % EPHEMERAL_SERVICES),
                zk::CreateMode::Ephemeral,
            )),
        ),
    ]
}

/// Nacre and r-nacos: a persistent instance of the pool re-registered with new metadata.
fn persistent_register() -> Load {
    http(|addr, op| {
        let n = op % PERSISTENT_POOL;
        let service = format!("bench.persistent.{}", n % PERSISTENT_SERVICES);
        form_req(addr, "/nacos/v1/ns/instance", &nacre_register(&service, n, false, op))
    })
}

fn config_publish() -> Load {
    http(|addr, op| nacre_publish(addr, &format!("bench.pub.{}", op % PUBLISH_POOL), &value(op)))
}

/// The 10-instance list, from the local replica or linearizable.
fn list(linearizable: bool) -> Load {
    let path = format!("/nacos/v1/ns/instance/list?serviceName={LIST_SERVICE}");
    http(move |addr, _| if linearizable { http::get_linearizable(addr, &path) } else { http::get(addr, &path) })
}

fn config_get() -> Load {
    http(|addr, op| http::get(addr, &format!("/nacos/v1/cs/configs?dataId=bench.get.{}&group={GROUP}", op % GET_POOL)))
}

/// ZooKeeper: a get's counterpart.
fn zk_get() -> ZkOp {
    zk(|session, op| {
        Box::pin(async move {
            session.get_data(&format!("/bench/get/{}", op % GET_POOL)).await?;
            Ok(())
        })
    })
}

/// What a config get is compared with: local reads of a key and a znode.
fn config_get_peers() -> Vec<(System, &'static str, Load)> {
    vec![
        (
            System::Etcd,
            "get serializable",
            http(|addr, op| etcd_range(addr, &format!("bench/get/{}", op % GET_POOL), None, true)),
        ),
        (System::ZooKeeper, "getData", Load::Zk(zk_get())),
    ]
}

/// r-nacos speaks the Nacos API too: it is sent the very request Nacre is.
const SAME_REQUEST: &str = "the same Nacos request";

impl Pair {
    fn with_rnacos(mut self) -> Pair {
        self.peers.push((System::RNacos, SAME_REQUEST, self.nacre.clone()));
        self
    }
}

fn pairs() -> Vec<Pair> {
    let etcd_put_req = http(|addr, op| etcd_put(addr, &format!("bench/put/{}", op % PUBLISH_POOL), &value(op)));
    vec![
        Pair {
            name: "persistent instance register",
            write: true,
            nacre: persistent_register(),
            peers: vec![
                (System::Etcd, "put", etcd_put_req.clone()),
                (
                    System::ZooKeeper,
                    "create",
                    Load::Zk(zk_create(
                        |op| format!("/bench/reg/s{}/{op}", op % PERSISTENT_SERVICES),
                        zk::CreateMode::Persistent,
                    )),
                ),
            ],
            note: "Raft/ZAB write, 256-B metadata/value; Nacre and r-nacos: 1000 instances re-registered with new metadata (etcd: 1000 keys; ZooKeeper: a new znode each time)",
        }
        .with_rnacos(),
        Pair {
            name: "ephemeral instance register",
            write: true,
            nacre: http(|addr, op| {
                let n = op % EPHEMERAL_POOL;
                let service = format!("bench.ephemeral.{}", n % EPHEMERAL_SERVICES);
                form_req(addr, "/nacos/v1/ns/instance", &nacre_register(&service, n, true, op))
            }),
            peers: ephemeral_peers(&etcd_put_req),
            note: "Nacre: AP path (no log; journaled, one fsync per group of writes, before the answer), 128 services spread over the nodes responsible for them, replicated asynchronously; ZooKeeper: removed when the session closes",
        }
        .with_rnacos(),
        Pair {
            name: "ephemeral instance register, one service",
            write: true,
            nacre: http(|addr, op| {
                let n = op % EPHEMERAL_POOL;
                form_req(addr, "/nacos/v1/ns/instance", &nacre_register(EPHEMERAL_ONE_SERVICE, n, true, op))
            }),
            peers: Vec::new(),
            note: "Nacre alone: every write applied by the one node responsible for the service",
        },
        Pair {
            name: "ephemeral instance register (gRPC)",
            write: true,
            nacre: grpc(|op| {
                let n = op % GRPC_SERVICES;
                let metadata: serde_json::Value = serde_json::from_str(&metadata(op)).expect("metadata is JSON");
                let instance = json!({"ip": ip(n), "port": instance_port(), "weight": 1.0, "healthy": true, "enabled": true,
                    "ephemeral": true, "metadata": metadata});
                let service = format!("bench.grpc.{n}");
                (
                    "InstanceRequest",
                    json!({"namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
                    "type": "registerInstance", "instance": instance}),
                )
            }),
            peers: ephemeral_peers(&etcd_put_req),
            note: "Nacos 2.x InstanceRequest over gRPC, the instance owned by its connection; AP path as above, 16 services",
        }
        .with_rnacos(),
        Pair {
            name: "config publish",
            write: true,
            nacre: config_publish(),
            peers: vec![
                (System::Etcd, "put", etcd_put_req.clone()),
                (System::ZooKeeper, "setData", Load::Zk(zk_set(|op| format!("/bench/pub/{}", op % PUBLISH_POOL)))),
            ],
            note: "256-B content over 1000 keys",
        }
        .with_rnacos(),
        Pair {
            name: "instance list (serializable)",
            write: false,
            nacre: list(false),
            peers: vec![
                (
                    System::Etcd,
                    "range serializable",
                    http(|addr, _| etcd_range(addr, "bench/list/", Some("bench/list0"), true)),
                ),
                (System::ZooKeeper, "getChildren + multi getData", Load::Zk(zk_list(false))),
            ],
            note: "10 instances / keys / znodes, local replica reads",
        }
        .with_rnacos(),
        Pair {
            name: "instance list (linearizable)",
            write: false,
            nacre: list(true),
            peers: vec![
                (
                    System::Etcd,
                    "range linearizable",
                    http(|addr, _| etcd_range(addr, "bench/list/", Some("bench/list0"), false)),
                ),
                (System::ZooKeeper, "sync + getChildren + multi getData", Load::Zk(zk_list(true))),
            ],
            note: "Nacre: X-Nacre-Consistency: linearizable (ReadIndex)",
        },
        Pair {
            name: "config get",
            write: false,
            nacre: config_get(),
            peers: config_get_peers(),
            note: "local replica reads on all three",
        }
        .with_rnacos(),
        Pair {
            name: "config get (gRPC)",
            write: false,
            nacre: grpc(|op| {
                let data_id = format!("bench.get.{}", op % GET_POOL);
                ("ConfigQueryRequest", json!({"dataId": data_id, "group": GROUP, "tenant": ""}))
            }),
            peers: config_get_peers(),
            note: "Nacos 2.x ConfigQueryRequest over gRPC; local replica reads on all three",
        }
        .with_rnacos(),
        Pair {
            name: "naming mix, 90% list / 10% register",
            write: false,
            nacre: mix(persistent_register(), list(false)),
            peers: vec![
                (
                    System::Etcd,
                    "90% range serializable / 10% put",
                    mix(etcd_put_req.clone(), http(|addr, _| etcd_range(addr, "bench/list/", Some("bench/list0"), true))),
                ),
                (
                    System::ZooKeeper,
                    "90% getChildren + multi getData / 10% create",
                    zk_mix(zk_create(|op| format!("/bench/reg/s{}/{op}", op % PERSISTENT_SERVICES), zk::CreateMode::Persistent), zk_list(false)),
                ),
            ],
            note: "one operation in ten a persistent registration (the pool above), the rest the 10-instance list; reads from the local replica",
        }
        .with_rnacos(),
        Pair {
            name: "config mix, 90% get / 10% publish",
            write: false,
            nacre: mix(config_publish(), config_get()),
            peers: vec![
                (
                    System::Etcd,
                    "90% get serializable / 10% put",
                    mix(etcd_put_req, http(|addr, op| etcd_range(addr, &format!("bench/get/{}", op % GET_POOL), None, true))),
                ),
                (
                    System::ZooKeeper,
                    "90% getData / 10% setData",
                    zk_mix(zk_set(|op| format!("/bench/pub/{}", op % PUBLISH_POOL)), zk_get()),
                ),
            ],
            note: "one operation in ten a config publish (the pool above), the rest a get; reads from the local replica",
        }
        .with_rnacos(),
    ]
}

/// One operation in [`MIX_WRITE_EVERY`] from `write`, the rest from `read`.
fn mix(write: Load, read: Load) -> Load {
    let (Load::Http(write), Load::Http(read)) = (write, read) else { unreachable!("HTTP mixes only") };
    http(move |addr, op| if op % MIX_WRITE_EVERY == 0 { write(addr, op) } else { read(addr, op) })
}

/// [`mix`] for ZooKeeper sessions.
fn zk_mix(write: ZkOp, read: ZkOp) -> Load {
    Load::Zk(zk(move |session, op| if op % MIX_WRITE_EVERY == 0 { write(session, op) } else { read(session, op) }))
}

/// Nacre and r-nacos: the instances the list reads and the configs the get reads.
async fn nacos_preload(addr: &str) -> Result<()> {
    let mut n = Conn::connect(addr).await?;
    for i in 0..LIST_INSTANCES {
        http::expect_ok(&mut n, form_req(addr, "/nacos/v1/ns/instance", &nacre_register(LIST_SERVICE, i, false, i)))
            .await?;
    }
    for i in 0..GET_POOL {
        http::expect_ok(&mut n, nacre_publish(addr, &format!("bench.get.{i}"), &value(i))).await?;
    }
    Ok(())
}

/// Writes the data the read scenarios read, and the parents and keys the writes need.
async fn preload(nacre: &Cluster, peers: &[Cluster]) -> Result<()> {
    nacos_preload(&nacre.nodes[0].addr).await?;
    for peer in peers {
        let addr = peer.nodes[0].addr.clone();
        match peer.system {
            System::RNacos => nacos_preload(&addr).await?,
            System::Etcd => {
                let mut e = Conn::connect(&addr).await?;
                for i in 0..LIST_INSTANCES {
                    http::expect_ok(&mut e, etcd_put(&addr, &format!("bench/list/{i}"), &value(i))).await?;
                }
                for i in 0..GET_POOL {
                    http::expect_ok(&mut e, etcd_put(&addr, &format!("bench/get/{i}"), &value(i))).await?;
                }
            }
            System::ZooKeeper => {
                let z = zookeeper::connect(&addr).await?;
                let dir = zookeeper::create_options(zk::CreateMode::Persistent);
                for i in 0..PERSISTENT_SERVICES {
                    z.mkdir(&format!("/bench/reg/s{i}"), &dir).await?;
                }
                for i in 0..EPHEMERAL_SERVICES {
                    z.mkdir(&format!("/bench/eph/s{i}"), &dir).await?;
                }
                for i in 0..LIST_INSTANCES {
                    zookeeper::put(&z, &format!("{ZK_LIST}/{i}"), value(i).as_bytes()).await?;
                }
                for i in 0..GET_POOL {
                    zookeeper::put(&z, &format!("/bench/get/{i}"), value(i).as_bytes()).await?;
                }
                for i in 0..PUBLISH_POOL {
                    zookeeper::put(&z, &format!("/bench/pub/{i}"), value(i).as_bytes()).await?;
                }
            }
            System::Nacre => {}
        }
    }
    Ok(())
}

pub async fn run(settings: &Settings, nacre: &Cluster, peers: &[Cluster]) -> Result<Vec<Row>> {
    preload(nacre, peers).await?;
    let op_counter = AtomicU64::new(1_000_000);
    let leader = match settings.leader_only {
        true => Some(nacre.nacre_leader().await.context("a Nacre leader")?),
        false => None,
    };
    // A gRPC load dials the nodes' gRPC ports.
    let addrs_for = |cluster: &Cluster, load: &Load| match load {
        Load::Grpc(_) => cluster.grpc_addrs(),
        _ => cluster.addrs(),
    };
    let nacre_addrs = |load: &Load| {
        let addrs = addrs_for(nacre, load);
        match leader {
            Some(i) => vec![addrs[i].clone()],
            None => addrs,
        }
    };
    let mut rows = Vec::new();
    let selected = pairs().into_iter().filter(|p| settings.only.as_deref().is_none_or(|only| p.name.contains(only)));
    for pair in selected {
        // Nacre first, then each peer that runs: (cluster, its operation, load, addresses).
        let mut sides = vec![(nacre, "", pair.nacre.clone(), nacre_addrs(&pair.nacre))];
        for (system, op, load) in &pair.peers {
            if let Some(cluster) = peers.iter().find(|c| c.system == *system) {
                sides.push((cluster, op, load.clone(), addrs_for(cluster, load)));
            }
        }
        // The rows before may have left a system working in the background: not into these.
        let clusters: Vec<&Cluster> = sides.iter().map(|side| side.0).collect();
        let (took, busy) =
            Cluster::wait_quiet(&clusters, crate::cluster::QUIET_SAMPLE, crate::run::SETTLE_LIMIT).await?;
        // Quiet at the first reading is the usual case: said only when it was not.
        if took > crate::cluster::QUIET_SAMPLE * 3 / 2 {
            let busy: Vec<&str> = busy.iter().map(|s| s.name()).collect();
            eprintln!("{}: waited {took:?} for quiet; still busy: [{}]", pair.name, busy.join(", "));
        }
        for &c in &settings.concurrency {
            let ops = settings.ops(pair.write, c);
            let mut rounds: Vec<Vec<Summary>> = vec![Vec::new(); sides.len()];
            let mut waited = Duration::ZERO;
            for round in 0..=settings.rounds {
                // Rotate who goes first, so that no system always runs on the warmer machine.
                for k in 0..sides.len() {
                    let i = (k + round) % sides.len();
                    let (cluster, _, load, addrs) = &sides[i];
                    // A system may go on working after its own round (r-nacos did for tens of
                    // seconds after its write rounds, on 1.2 of the 2 cores): the next
                    // system's round starts when the others are quiet.
                    let others: Vec<&Cluster> =
                        sides.iter().filter(|side| side.0.system != cluster.system).map(|side| side.0).collect();
                    let (took, busy) =
                        Cluster::wait_quiet(&others, crate::cluster::ROUND_QUIET_SAMPLE, ROUND_SETTLE_LIMIT).await?;
                    waited += took.saturating_sub(crate::cluster::ROUND_QUIET_SAMPLE);
                    if !busy.is_empty() {
                        let busy: Vec<&str> = busy.iter().map(|s| s.name()).collect();
                        eprintln!(
                            "{} c={c}: {} still busy before {}'s round",
                            pair.name,
                            busy.join(", "),
                            cluster.system.name()
                        );
                    }
                    let base = op_counter.fetch_add(ops, Ordering::Relaxed);
                    let cpu_before = cluster.cpu_us()?;
                    let mut summary = load::run_round(addrs, c, ops, base, load).await?;
                    // Every node's CPU over the round, background work included: what an
                    // operation costs the cluster.
                    summary.cpu_us_per_op = cluster.cpu_us()?.saturating_sub(cpu_before) as f64 / ops as f64;
                    if round > 0 {
                        rounds[i].push(summary);
                    }
                }
            }
            let median = |r: &Vec<Summary>| (!r.is_empty()).then(|| stats::median_of(r));
            let peer_runs = sides[1..]
                .iter()
                .zip(&rounds[1..])
                .map(|((cluster, op, _, _), r)| (cluster.system.name().to_string(), op.to_string(), median(r)))
                .collect();
            let mut row = Row::throughput(pair.name, c, median(&rounds[0]), peer_runs, pair.note);
            if waited >= Duration::from_secs(1) {
                row.note.push_str(&format!(
                    "; rounds waited {:.0} s in all for the other systems to go quiet",
                    waited.as_secs_f64()
                ));
            }
            eprintln!("{}", row.progress_line());
            rows.push(row);
        }
    }
    Ok(rows)
}
