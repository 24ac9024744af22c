//! Beats at scale (issue 21), Nacre alone: [`Settings::beat_instances`] ephemeral instances
//! (100,000 in a full run) over [`SERVICES`] services on a 3-node cluster of its own, each
//! beaten every [`BEAT_INTERVAL_MS`] the way Nacos's v1 clients do it. An instance joins with
//! a beat that carries its description (Nacos registers an unknown instance from it), then
//! sends light beats every interval, counted from its previous one; a light beat answered
//! `20404` (the instance is gone) is sent again with the description, and counted.
//!
//! [`CLIENTS`] connections, spread over the nodes, each own a share of the instances and keep
//! their beat schedule; a due beat goes before the next join, as a client's beat thread runs
//! beside its registrations. Once every instance has joined, the next interval lets the
//! schedule settle, then [`STEADY_INTERVALS`] intervals are measured: beats sent, their
//! latency, how late they went out against their schedule, and the cluster's CPU per beat.
//! At the end of the window, while the beats go on, every node lists every service and counts
//! the healthy instances: "sustained" means no beat of the window went out later than one
//! interval, none had to re-register, and every node lists all of them healthy.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use serde::Serialize;
use tokio::sync::watch;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::System;
use crate::http;
use crate::stats;

/// Services the instances are spread over.
pub const SERVICES: u64 = 100;
/// Nacos's default client beat interval (and the instance's heartbeat timeout is three).
pub const BEAT_INTERVAL_MS: u64 = 5_000;
/// Intervals measured once every instance has joined and one more interval has passed.
const STEADY_INTERVALS: u64 = 6;
/// Connections the beats go over (each a client with its share of the instances).
const CLIENTS: usize = 128;
/// Longest the joins may take before the scenario gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the joins in flight when they close are given to be answered.
const JOIN_SETTLE_MS: u64 = 1_000;
const JOIN_PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// A beat later than this against its schedule means the load is not sustained.
pub const SUSTAINED_LATENESS_MS: f64 = BEAT_INTERVAL_MS as f64;

#[derive(Debug, Clone, Serialize)]
pub struct Beats {
    pub instances: u64,
    /// Instances that joined within the join timeout (all of them, unless the cluster stopped
    /// taking joins while it kept the beats of those that had).
    pub joined: u64,
    pub services: u64,
    pub interval_ms: u64,
    /// First join → every instance joined.
    pub join_ms: f64,
    pub window_ms: f64,
    /// Beats sent in the measured window, and the rate the schedule asks for.
    pub beats: u64,
    pub beats_per_sec: f64,
    pub scheduled_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How late beats of the window went out against their schedule.
    pub late_p99_ms: f64,
    pub late_max_ms: f64,
    pub cpu_us_per_beat: f64,
    /// Light beats answered 20404 and sent again with the description, whole run.
    pub reregistered: u64,
    /// Healthy instances each node listed at the end of the window, of those that joined.
    pub healthy_per_node: Vec<u64>,
    /// Instances each node listed whose join was never answered (a join in flight when joins
    /// closed), or listed twice.
    pub unexpected_per_node: Vec<u64>,
}

impl Beats {
    pub fn sustained(&self) -> bool {
        self.joined == self.instances
            && self.late_max_ms <= SUSTAINED_LATENESS_MS
            && self.reregistered == 0
            && self.healthy_per_node.iter().all(|&h| h == self.joined)
    }
}

fn service(i: u64) -> String {
    format!("bench.beats.{}", i % SERVICES)
}

fn ip(i: u64) -> String {
    let n = i / SERVICES;
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

const PORT: u16 = 8080;

/// Instance `i`'s beat; `with_description` makes it the beat that registers it.
fn beat(addr: &str, i: u64, with_description: bool) -> http::Req {
    let (service, ip, port) = (service(i), ip(i), PORT.to_string());
    let mut pairs = vec![("serviceName", service.clone()), ("ip", ip.clone()), ("port", port)];
    if with_description {
        let body = serde_json::json!({"serviceName": service, "ip": ip, "port": PORT,
            "cluster": "DEFAULT", "weight": 1.0, "metadata": {}, "scheduled": true});
        pairs.push(("beat", body.to_string()));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::put(addr, &format!("/nacos/v1/ns/instance/beat?{}", http::form(&pairs)))
}

/// What one client measured in the window.
#[derive(Default)]
struct ClientTally {
    latencies: Vec<Duration>,
    lateness: Vec<Duration>,
}

/// Shared between the clients and the scenario.
struct Shared {
    joined: AtomicU64,
    /// Which instances had their join answered.
    joined_set: Vec<AtomicBool>,
    /// Set when the join timeout passes: the instances not joined by then stay out.
    joins_closed: AtomicBool,
    reregistered: AtomicU64,
    /// The measured window, once every instance has joined: (start, end).
    window: watch::Receiver<Option<(Instant, Instant)>>,
}

/// Sends `i`'s beat; on 20404 sends it again with the description (once). Errors on anything else.
async fn send_beat(conn: &mut http::Conn, i: u64, with_description: bool, shared: &Shared) -> Result<()> {
    let mut with_description = with_description;
    loop {
        let addr = conn.addr().to_string();
        let body = http::expect_ok(conn, beat(&addr, i, with_description)).await?;
        let reply: serde_json::Value = serde_json::from_slice(&body).context("a beat reply")?;
        match reply["code"].as_u64() {
            Some(10200) => return Ok(()),
            Some(20404) if !with_description => {
                shared.reregistered.fetch_add(1, Ordering::Relaxed);
                with_description = true;
            }
            _ => bail!("beat of instance {i} answered {reply}"),
        }
    }
}

/// One client: joins its instances, beats each every interval after its previous beat, and
/// tallies the window's beats; returns once the window has ended and `stop` is set.
async fn client(
    mut conn: http::Conn,
    mine: Vec<u64>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<ClientTally> {
    let interval = Duration::from_millis(BEAT_INTERVAL_MS);
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::with_capacity(mine.len());
    let mut to_join = mine.into_iter();
    let mut tally = ClientTally::default();
    loop {
        if *stop.borrow() {
            return Ok(tally);
        }
        let now = Instant::now();
        let next_due = due.peek().map(|Reverse((at, _))| *at);
        if let Some(at) = next_due.filter(|at| *at <= now) {
            let Reverse((_, i)) = due.pop().expect("peeked");
            let sent = Instant::now();
            send_beat(&mut conn, i, false, &shared).await?;
            let window = *shared.window.borrow();
            if window.is_some_and(|(start, end)| sent >= start && sent < end) {
                tally.latencies.push(sent.elapsed());
                tally.lateness.push(sent - at);
            }
            due.push(Reverse((Instant::now() + interval, i)));
        } else if let Some(i) = to_join.next().filter(|_| !shared.joins_closed.load(Ordering::Relaxed)) {
            send_beat(&mut conn, i, true, &shared).await?;
            shared.joined_set[i as usize].store(true, Ordering::Relaxed);
            shared.joined.fetch_add(1, Ordering::Relaxed);
            due.push(Reverse((Instant::now() + interval, i)));
        } else {
            let until = next_due.map_or(now + interval, |at| at);
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Instance `i` from its service number and address (the inverse of [`service`] and [`ip`]).
fn instance_of(service: u64, ip: &str) -> Option<u64> {
    let octets: Vec<u64> = ip.strip_prefix("10.")?.split('.').map(|o| o.parse().ok()).collect::<Option<_>>()?;
    let [a, b, c] = octets[..] else { return None };
    Some(((a << 16) | (b << 8) | c) * SERVICES + service)
}

/// What node `addr` lists over every service: (healthy instances that joined, instances
/// listed that never had a join answered or listed twice).
async fn healthy_listed(addr: &str, joined: &[AtomicBool]) -> Result<(u64, u64)> {
    let mut conn = http::Conn::connect(addr).await?;
    let (mut healthy, mut unexpected) = (0, 0);
    let mut seen = vec![false; joined.len()];
    for s in 0..SERVICES {
        let path = format!("/nacos/v1/ns/instance/list?{}", http::form(&[("serviceName", &service(s))]));
        let body = http::expect_ok(&mut conn, http::get(addr, &path)).await?;
        let listing: serde_json::Value = serde_json::from_slice(&body).context("a naming list")?;
        if listing["reachProtectionThreshold"].as_bool() == Some(true) {
            // Every instance unhealthy: Nacos then lists them all as healthy.
            continue;
        }
        let hosts = listing["hosts"].as_array().map(Vec::as_slice).unwrap_or_default();
        for host in hosts {
            let i = host["ip"].as_str().and_then(|ip| instance_of(s, ip)).filter(|&i| i < joined.len() as u64);
            match i {
                Some(i) if joined[i as usize].load(Ordering::Relaxed) && !seen[i as usize] => {
                    seen[i as usize] = true;
                    healthy += u64::from(host["healthy"].as_bool() == Some(true));
                }
                _ => unexpected += 1,
            }
        }
    }
    Ok((healthy, unexpected))
}

pub async fn run(settings: &Settings) -> Result<Beats> {
    let dir = crate::out_dir().join("run").join("nacre-beats");
    let (cluster, _) = Cluster::start(System::Nacre, &dir).await?;
    let addrs = cluster.addrs();
    let instances = settings.beat_instances();
    let (window_tx, window_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        joined: AtomicU64::new(0),
        joined_set: (0..instances).map(|_| AtomicBool::new(false)).collect(),
        joins_closed: AtomicBool::new(false),
        reregistered: AtomicU64::new(0),
        window: window_rx,
    });
    let mut tasks = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS {
        let conn = http::Conn::connect(&addrs[c % addrs.len()]).await?;
        let mine: Vec<u64> = (c as u64..instances).step_by(CLIENTS).collect();
        tasks.push(tokio::spawn(client(conn, mine, shared.clone(), stop_rx.clone())));
    }

    let started = Instant::now();
    let mut progress_at = started;
    while shared.joined.load(Ordering::Relaxed) < instances {
        if progress_at.elapsed() >= JOIN_PROGRESS_EVERY {
            eprintln!("beats: {} joined", shared.joined.load(Ordering::Relaxed));
            progress_at = Instant::now();
        }
        if let Some(failed) = tasks.iter().position(|t| t.is_finished()) {
            let outcome = tasks.swap_remove(failed).await;
            let error = match outcome {
                Ok(Err(e)) => format!("{e:#}"),
                Ok(Ok(_)) => "it ended".into(),
                Err(e) => e.to_string(),
            };
            bail!("a beating client stopped while joining: {error}");
        }
        if started.elapsed() > JOIN_TIMEOUT {
            // Beats go before joins, so a cluster at its limit stops taking joins: measure
            // the beats of those that joined; `sustained` is then false.
            shared.joins_closed.store(true, Ordering::Relaxed);
            eprintln!(
                "beats: {} of {instances} joined in {JOIN_TIMEOUT:?}; measuring those",
                shared.joined.load(Ordering::Relaxed)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_ms = stats::ms(started.elapsed());
    // A join in flight when they closed still counts: give it its answer.
    tokio::time::sleep(Duration::from_millis(JOIN_SETTLE_MS)).await;
    let joined = shared.joined.load(Ordering::Relaxed);
    eprintln!("beats: {joined} instances joined in {join_ms:.0} ms; measuring {STEADY_INTERVALS} intervals");
    let interval = Duration::from_millis(BEAT_INTERVAL_MS);
    tokio::time::sleep(interval).await;
    let window = interval * STEADY_INTERVALS as u32;
    let (start, cpu_before) = (Instant::now(), cluster.cpu_us()?);
    window_tx.send_replace(Some((start, start + window)));
    tokio::time::sleep_until((start + window).into()).await;
    let cpu_us = cluster.cpu_us()?.saturating_sub(cpu_before);
    let window_ms = stats::ms(start.elapsed());
    let (mut healthy_per_node, mut unexpected_per_node) = (Vec::new(), Vec::new());
    for addr in &addrs {
        let (healthy, unexpected) = healthy_listed(addr, &shared.joined_set).await?;
        healthy_per_node.push(healthy);
        unexpected_per_node.push(unexpected);
    }
    stop_tx.send_replace(true);
    let mut tally = ClientTally::default();
    for task in tasks {
        let t = task.await??;
        tally.latencies.extend(t.latencies);
        tally.lateness.extend(t.lateness);
    }
    let beats = tally.latencies.len() as u64;
    let latency = stats::summarize(tally.latencies, Duration::from_millis(window_ms as u64));
    tally.lateness.sort_unstable();
    let beats = Beats {
        instances,
        joined,
        services: SERVICES,
        interval_ms: BEAT_INTERVAL_MS,
        join_ms,
        window_ms,
        beats,
        beats_per_sec: latency.ops_per_sec,
        scheduled_per_sec: joined as f64 * 1e3 / BEAT_INTERVAL_MS as f64,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        late_p99_ms: stats::ms(stats::quantile(&tally.lateness, 0.99)),
        late_max_ms: stats::ms(tally.lateness.last().copied().unwrap_or_default()),
        cpu_us_per_beat: cpu_us as f64 / beats.max(1) as f64,
        reregistered: shared.reregistered.load(Ordering::Relaxed),
        healthy_per_node,
        unexpected_per_node,
    };
    eprintln!(
        "beats: {:.0} beats/s of {:.0} scheduled, p99 {:.1} ms, late p99 {:.0} ms max {:.0} ms, {:.0} µs CPU per beat, healthy {:?}, unexpected {:?}",
        beats.beats_per_sec,
        beats.scheduled_per_sec,
        beats.p99_ms,
        beats.late_p99_ms,
        beats.late_max_ms,
        beats.cpu_us_per_beat,
        beats.healthy_per_node,
        beats.unexpected_per_node
    );
    Ok(beats)
}
