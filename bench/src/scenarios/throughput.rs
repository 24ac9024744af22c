//! Closed-loop throughput and latency: each Nacre scenario beside its etcd counterpart, at
//! each concurrency, rounds interleaved (Nacre, etcd, etcd, Nacre, ...), the first round of
//! each discarded as warm-up, medians of the rest.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use anyhow::Context;
use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::Settings;
use crate::cluster::Cluster;
use crate::http;
use crate::http::Conn;
use crate::load;
use crate::load::MakeReq;
use crate::report::Row;
use crate::stats;

/// Every value written (config content, etcd value, instance metadata) is this long.
pub const VALUE_BYTES: usize = 256;
/// Services the persistent registrations are spread over.
const PERSISTENT_SERVICES: u64 = 100;
/// Ephemeral registrations cycle over this many instances (in this many services), so that
/// the instances left to expire (nobody beats for them) stay bounded and their expiry does
/// not load later scenarios.
const EPHEMERAL_POOL: u64 = 1_000;
const EPHEMERAL_SERVICES: u64 = 20;
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

fn ip(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

pub fn nacre_register(service: &str, n: u64, ephemeral: bool, op: u64) -> Vec<(String, String)> {
    vec![
        ("serviceName".into(), service.into()),
        ("ip".into(), ip(n)),
        ("port".into(), "8080".into()),
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

/// One comparison: a Nacre workload and its peer's (either may be absent).
struct Pair {
    name: &'static str,
    peer_name: &'static str,
    write: bool,
    nacre: Option<MakeReq>,
    peer: Option<MakeReq>,
    note: &'static str,
}

fn pairs() -> Vec<Pair> {
    let etcd_put_req: MakeReq =
        Arc::new(|addr, op| etcd_put(addr, &format!("bench/put/{}", op % PUBLISH_POOL), &value(op)));
    vec![
        Pair {
            name: "persistent instance register",
            peer_name: "etcd put",
            write: true,
            nacre: Some(Arc::new(|addr, op| {
                let service = format!("bench.persistent.{}", op % PERSISTENT_SERVICES);
                form_req(addr, "/nacos/v1/ns/instance", &nacre_register(&service, op, false, op))
            })),
            peer: Some(etcd_put_req.clone()),
            note: "Raft write, 256-B metadata",
        },
        Pair {
            name: "ephemeral instance register",
            peer_name: "etcd put",
            write: true,
            nacre: Some(Arc::new(|addr, op| {
                let n = op % EPHEMERAL_POOL;
                let service = format!("bench.ephemeral.{}", n % EPHEMERAL_SERVICES);
                form_req(addr, "/nacos/v1/ns/instance", &nacre_register(&service, n, true, op))
            })),
            peer: Some(etcd_put_req.clone()),
            note: "today through Raft (no AP path yet)",
        },
        Pair {
            name: "config publish",
            peer_name: "etcd put",
            write: true,
            nacre: Some(Arc::new(|addr, op| {
                nacre_publish(addr, &format!("bench.pub.{}", op % PUBLISH_POOL), &value(op))
            })),
            peer: Some(etcd_put_req),
            note: "256-B content",
        },
        Pair {
            name: "instance list (serializable)",
            peer_name: "etcd range serializable",
            write: false,
            nacre: Some(Arc::new(|addr, _| {
                http::get(addr, &format!("/nacos/v1/ns/instance/list?serviceName={LIST_SERVICE}"))
            })),
            peer: Some(Arc::new(|addr, _| etcd_range(addr, "bench/list/", Some("bench/list0"), true))),
            note: "10 instances / 10 keys",
        },
        Pair {
            name: "instance list (linearizable)",
            peer_name: "etcd range linearizable",
            write: false,
            nacre: Some(Arc::new(|addr, _| {
                http::get_linearizable(addr, &format!("/nacos/v1/ns/instance/list?serviceName={LIST_SERVICE}"))
            })),
            peer: Some(Arc::new(|addr, _| etcd_range(addr, "bench/list/", Some("bench/list0"), false))),
            note: "X-Nacre-Consistency: linearizable (ReadIndex)",
        },
        Pair {
            name: "config get",
            peer_name: "etcd get serializable",
            write: false,
            nacre: Some(Arc::new(|addr, op| {
                http::get(addr, &format!("/nacos/v1/cs/configs?dataId=bench.get.{}&group={GROUP}", op % GET_POOL))
            })),
            peer: Some(Arc::new(|addr, op| etcd_range(addr, &format!("bench/get/{}", op % GET_POOL), None, true))),
            note: "local replica reads on both",
        },
    ]
}

/// Writes the data the read scenarios read, on both systems.
async fn preload(nacre: &Cluster, etcd: &Cluster) -> Result<()> {
    let naddr = nacre.nodes[0].addr.clone();
    let eaddr = etcd.nodes[0].addr.clone();
    let mut n = Conn::connect(&naddr).await?;
    let mut e = Conn::connect(&eaddr).await?;
    for i in 0..LIST_INSTANCES {
        http::expect_ok(&mut n, form_req(&naddr, "/nacos/v1/ns/instance", &nacre_register(LIST_SERVICE, i, false, i)))
            .await?;
        http::expect_ok(&mut e, etcd_put(&eaddr, &format!("bench/list/{i}"), &value(i))).await?;
    }
    for i in 0..GET_POOL {
        http::expect_ok(&mut n, nacre_publish(&naddr, &format!("bench.get.{i}"), &value(i))).await?;
        http::expect_ok(&mut e, etcd_put(&eaddr, &format!("bench/get/{i}"), &value(i))).await?;
    }
    Ok(())
}

pub async fn run(settings: &Settings, nacre: &Cluster, etcd: &Cluster) -> Result<Vec<Row>> {
    preload(nacre, etcd).await?;
    let op_counter = AtomicU64::new(1_000_000);
    let nacre_addrs = match settings.leader_only {
        true => vec![nacre.addrs()[nacre.nacre_leader().await.context("a Nacre leader")?].clone()],
        false => nacre.addrs(),
    };
    let mut rows = Vec::new();
    let selected = pairs().into_iter().filter(|p| settings.only.as_deref().is_none_or(|only| p.name.contains(only)));
    for pair in selected {
        for &c in &settings.concurrency {
            let ops = settings.ops(pair.write, c);
            let mut nacre_rounds = Vec::new();
            let mut peer_rounds = Vec::new();
            for round in 0..=settings.rounds {
                // Alternate who goes first, so neither always runs on the warmer machine.
                let order: [bool; 2] = if round % 2 == 0 { [true, false] } else { [false, true] };
                for is_nacre in order {
                    let (make, addrs, out) = if is_nacre {
                        (&pair.nacre, nacre_addrs.clone(), &mut nacre_rounds)
                    } else {
                        (&pair.peer, etcd.addrs(), &mut peer_rounds)
                    };
                    let Some(make) = make else { continue };
                    let base = op_counter.fetch_add(ops, Ordering::Relaxed);
                    let summary = load::run_round(&addrs, c, ops, base, make).await?;
                    if round > 0 {
                        out.push(summary);
                    }
                }
            }
            let row = Row::throughput(
                pair.name,
                pair.peer_name,
                c,
                (!nacre_rounds.is_empty()).then(|| stats::median_of(&nacre_rounds)),
                (!peer_rounds.is_empty()).then(|| stats::median_of(&peer_rounds)),
                pair.note,
            );
            eprintln!("{}", row.progress_line());
            rows.push(row);
        }
    }
    Ok(rows)
}
