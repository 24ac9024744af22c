//! Change notification latency: Nacre config publish → a long-poll listener held on another
//! node answers, and an instance registered over HTTP on one node → a Nacos 2.x gRPC
//! subscriber on another is pushed it, against etcd put → a watch event on another member,
//! ZooKeeper `setData` → a data watch set through another node fires, and r-nacos doing what
//! Nacre does, through the same requests. All measured from the
//! moment the write is sent to the moment the notification is read; the systems take turns,
//! one sample each.

use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::BodyExt;
use nacre::grpc::client::GrpcClient;
use nacre_guest_sdk::md5::md5_hex;
use serde_json::json;
use tokio::sync::mpsc;
use zookeeper_client as zk;

use super::throughput::etcd_put;
use super::throughput::nacre_publish;
use super::throughput::nacre_register;
use super::throughput::value;
use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::System;
use crate::http;
use crate::http::Conn;
use crate::report::Row;
use crate::stats;
use crate::zookeeper;

/// The listener asks to be held this long (Nacos clients' default).
const LONG_POLL_TIMEOUT_MS: u64 = 30_000;
/// Pause after sending the long-poll (or between samples) so the request is held, not
/// answered by its first check.
const SETTLE: Duration = Duration::from_millis(30);
/// Longest wait for a notification before the sample fails.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
const DATA_ID: &str = "bench.listen";
const GROUP: &str = "BENCH";
const WATCH_KEY: &str = "bench/watch";
const ZK_WATCH_PATH: &str = "/bench/watch";

/// Long-polls held open on the listening nodes while the loaded notification row is sampled
/// (issue 21's target: notified p99 ≤ 5 ms with 10k held).
pub const HELD_LONG_POLLS: usize = 10_000;
/// What the held long-polls listen to: a config nobody publishes, so they stay held.
const HELD_DATA_ID: &str = "bench.held";
/// Longest wait for every held long-poll to be sent.
const HOLD_TIMEOUT: Duration = Duration::from_secs(60);

/// The long-poll, signed in like every other request of the bench.
fn listener_req(addr: &str, md5: &str) -> http::Req {
    listen_to(addr, DATA_ID, md5)
}

fn listen_to(addr: &str, data_id: &str, md5: &str) -> http::Req {
    let field = format!("{data_id}\u{2}{GROUP}\u{2}{md5}\u{1}");
    let mut req = http::post_form(addr, "/nacos/v1/cs/configs/listener", &[("Listening-Configs", &field)]);
    req.headers_mut().insert("Long-Pulling-Timeout", LONG_POLL_TIMEOUT_MS.into());
    req
}

/// A Nacos server (Nacre, r-nacos): a config published on node 0 → a long-poll listener held
/// on node 1 or 2 answers.
struct LongPollSide {
    writer: Conn,
    listen_addrs: Vec<String>,
    md5: String,
}

impl LongPollSide {
    async fn open(addrs: &[String]) -> Result<LongPollSide> {
        let mut writer = Conn::connect(&addrs[0]).await?;
        let first = value(0);
        http::expect_ok(&mut writer, nacre_publish(&addrs[0], DATA_ID, &first)).await?;
        Ok(LongPollSide { writer, listen_addrs: addrs[1..].to_vec(), md5: md5_hex(first.as_bytes()) })
    }

    async fn sample(&mut self, i: u64) -> Result<Duration> {
        let addr = self.listen_addrs[i as usize % self.listen_addrs.len()].clone();
        let mut listener = Conn::connect(&addr).await?;
        let req = listener_req(&addr, &self.md5);
        let held = tokio::spawn(async move {
            let answer = listener.send(req, NOTIFY_TIMEOUT).await;
            (answer, Instant::now())
        });
        tokio::time::sleep(SETTLE).await;
        let content = value(i);
        let sent = Instant::now();
        let waddr = self.writer.addr().to_string();
        http::expect_ok(&mut self.writer, nacre_publish(&waddr, DATA_ID, &content)).await?;
        let (answer, at) = held.await?;
        let (status, body) = answer.context("long-poll listener")?;
        if status != 200 || !String::from_utf8_lossy(&body).contains(DATA_ID) {
            bail!("listener answered {status} {:?} instead of the changed key", String::from_utf8_lossy(&body));
        }
        self.md5 = md5_hex(content.as_bytes());
        Ok(at - sent)
    }
}

/// The service the gRPC subscribers watch.
const PUSH_SERVICE: &str = "bench.push";

/// A Nacos server (Nacre, r-nacos): an ephemeral instance registered (new metadata each time)
/// over HTTP on node 0 → `NotifySubscriberRequest` read by a gRPC subscriber on node 1 or 2.
struct ServicePushSide {
    writer: Conn,
    subscribers: Vec<GrpcClient>,
}

impl ServicePushSide {
    async fn open(writer_addr: &str, subscriber_addrs: &[String]) -> Result<ServicePushSide> {
        let mut subscribers = Vec::new();
        for addr in subscriber_addrs {
            let mut subscriber = GrpcClient::connect(addr, http::token(addr)).await?;
            let subscribe = json!({"namespace": "public", "serviceName": PUSH_SERVICE, "groupName": "DEFAULT_GROUP",
                "subscribe": true, "clusters": ""});
            subscriber.request("SubscribeServiceRequest", subscribe).await?;
            subscribers.push(subscriber);
        }
        Ok(ServicePushSide { writer: Conn::connect(writer_addr).await?, subscribers })
    }

    async fn sample(&mut self, i: u64) -> Result<Duration> {
        for subscriber in &mut self.subscribers {
            while subscriber.pushes.try_recv().is_ok() {}
        }
        tokio::time::sleep(SETTLE).await;
        let marker = format!("{i:016x}");
        let addr = self.writer.addr().to_string();
        let pairs = nacre_register(PUSH_SERVICE, 0, true, i);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sent = Instant::now();
        http::expect_ok(&mut self.writer, http::post_form(&addr, "/nacos/v1/ns/instance", &pairs)).await?;
        let n = self.subscribers.len();
        let subscriber = &mut self.subscribers[i as usize % n];
        let deadline = tokio::time::Instant::now() + NOTIFY_TIMEOUT;
        loop {
            let push = tokio::time::timeout_at(deadline, subscriber.pushes.recv())
                .await
                .context("gRPC push timed out")?
                .context("gRPC stream ended")?;
            let carries_it = push.message.kind == "NotifySubscriberRequest"
                && push.message.field("serviceInfo").is_some_and(|info| info.to_string().contains(&marker));
            if carries_it {
                return Ok(push.at.saturating_duration_since(sent));
            }
        }
    }
}

struct EtcdSide {
    writer: Conn,
    events: mpsc::Receiver<Instant>,
    _watch: tokio::task::JoinHandle<()>,
}

impl EtcdSide {
    async fn open(writer_addr: &str, watch_addr: &str) -> Result<EtcdSide> {
        let mut conn = Conn::connect(watch_addr).await?;
        let req = http::post_json(watch_addr, "/v3/watch", &json!({"create_request": {"key": B64.encode(WATCH_KEY)}}));
        let (status, mut body) = conn.send_streaming(req).await?;
        if status != 200 {
            bail!("etcd watch answered {status}");
        }
        let (tx, rx) = mpsc::channel(16);
        let watch = tokio::spawn(async move {
            let _conn = conn;
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                let at = Instant::now();
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if String::from_utf8_lossy(&line).contains("\"events\"") && tx.send(at).await.is_err() {
                        return;
                    }
                }
            }
        });
        // Let the watch be created before the first put.
        tokio::time::sleep(SETTLE * 10).await;
        Ok(EtcdSide { writer: Conn::connect(writer_addr).await?, events: rx, _watch: watch })
    }

    async fn sample(&mut self, i: u64) -> Result<Duration> {
        tokio::time::sleep(SETTLE).await;
        let addr = self.writer.addr().to_string();
        let sent = Instant::now();
        http::expect_ok(&mut self.writer, etcd_put(&addr, WATCH_KEY, &value(i))).await?;
        let at = tokio::time::timeout(NOTIFY_TIMEOUT, self.events.recv())
            .await
            .context("etcd watch event timed out")?
            .context("etcd watch stream ended")?;
        Ok(at.saturating_duration_since(sent))
    }
}

/// ZooKeeper: `setData` on node 0 → a one-shot data watch, set on node 1 or 2, fires.
struct ZkSide {
    writer: zk::Client,
    watchers: Vec<zk::Client>,
}

impl ZkSide {
    async fn open(addrs: &[String]) -> Result<ZkSide> {
        let writer = zookeeper::connect(&addrs[0]).await?;
        zookeeper::put(&writer, ZK_WATCH_PATH, value(0).as_bytes()).await?;
        let mut watchers = Vec::new();
        for addr in &addrs[1..] {
            watchers.push(zookeeper::connect(addr).await?);
        }
        Ok(ZkSide { writer, watchers })
    }

    async fn sample(&mut self, i: u64) -> Result<Duration> {
        let watcher = &self.watchers[i as usize % self.watchers.len()];
        let (_, _, watch) = watcher.get_and_watch_data(ZK_WATCH_PATH).await?;
        let fired = tokio::spawn(async move { (watch.changed().await, Instant::now()) });
        tokio::time::sleep(SETTLE).await;
        let sent = Instant::now();
        self.writer.set_data(ZK_WATCH_PATH, value(i).as_bytes(), None).await?;
        let (event, at) = tokio::time::timeout(NOTIFY_TIMEOUT, fired).await.context("ZooKeeper watch timed out")??;
        if event.event_type != zk::EventType::NodeDataChanged {
            bail!("ZooKeeper watch fired with {:?} instead of a data change", event.event_type);
        }
        Ok(at.saturating_duration_since(sent))
    }
}

/// A peer's notification path.
enum PeerSide {
    Etcd(EtcdSide),
    Zk(ZkSide),
    /// r-nacos: the long-poll, and the gRPC push of the second row.
    Nacos(LongPollSide, ServicePushSide),
}

impl PeerSide {
    async fn open(cluster: &Cluster) -> Result<PeerSide> {
        let addrs = cluster.addrs();
        Ok(match cluster.system {
            System::ZooKeeper => PeerSide::Zk(ZkSide::open(&addrs).await?),
            System::RNacos => PeerSide::Nacos(
                LongPollSide::open(&addrs).await?,
                ServicePushSide::open(&addrs[0], &cluster.grpc_addrs()[1..]).await?,
            ),
            System::Etcd | System::Nacre => PeerSide::Etcd(EtcdSide::open(&addrs[0], &addrs[1]).await?),
        })
    }

    /// One sample of the change notification, and of the instance push where the peer has one.
    async fn sample(&mut self, i: u64) -> Result<(Duration, Option<Duration>)> {
        match self {
            PeerSide::Etcd(e) => Ok((e.sample(i).await?, None)),
            PeerSide::Zk(z) => Ok((z.sample(i).await?, None)),
            PeerSide::Nacos(config, push) => Ok((config.sample(i).await?, Some(push.sample(i).await?))),
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            PeerSide::Etcd(_) => "put → watch event",
            PeerSide::Zk(_) => "setData → data watch fired",
            PeerSide::Nacos(..) => "the same publish → long-poll listener answers",
        }
    }
}

/// [`HELD_LONG_POLLS`] long-polls on `addrs` (round-robin), each re-sent when its hold ends,
/// until the returned set is dropped. Returns once every one has been sent.
async fn hold_long_polls(addrs: &[String]) -> Result<tokio::task::JoinSet<()>> {
    let sent = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut held = tokio::task::JoinSet::new();
    for i in 0..HELD_LONG_POLLS {
        let (addr, sent) = (addrs[i % addrs.len()].clone(), sent.clone());
        held.spawn(async move {
            let Ok(mut conn) = Conn::connect(&addr).await else { return };
            let mut first = true;
            loop {
                let req = listen_to(&addr, HELD_DATA_ID, "");
                let answer = conn.send(req, NOTIFY_TIMEOUT + Duration::from_millis(LONG_POLL_TIMEOUT_MS));
                if std::mem::take(&mut first) {
                    sent.add_permits(1);
                }
                if answer.await.is_err() {
                    return;
                }
            }
        });
    }
    let all = u32::try_from(HELD_LONG_POLLS).expect("a small count");
    tokio::time::timeout(HOLD_TIMEOUT, sent.acquire_many(all)).await.context("holding the long-polls")??.forget();
    // The last requests reach their node.
    tokio::time::sleep(SETTLE * 10).await;
    Ok(held)
}

/// The change notification of a Nacos server (Nacre, r-nacos) with [`HELD_LONG_POLLS`] other
/// long-polls held on its listening nodes.
async fn notified_while_held(cluster: &Cluster, samples: u64) -> Result<Vec<Duration>> {
    let addrs = cluster.addrs();
    let held = hold_long_polls(&addrs[1..]).await?;
    let mut side = LongPollSide::open(&addrs).await?;
    let mut latencies = Vec::new();
    for i in 0..=samples {
        let latency = side.sample(i + 1).await?;
        if i > 0 {
            latencies.push(latency);
        }
    }
    drop(held);
    Ok(latencies)
}

/// One peer's samples: its change notifications and, where it has them, its instance pushes.
struct PeerSamples {
    system: System,
    side: PeerSide,
    notified: Vec<Duration>,
    pushed: Vec<Duration>,
}

pub async fn run(settings: &Settings, nacre: &Cluster, peers: &[Cluster]) -> Result<Vec<Row>> {
    let naddrs = nacre.addrs();
    let mut n = LongPollSide::open(&naddrs).await?;
    let mut pushed = ServicePushSide::open(&naddrs[0], &nacre.grpc_addrs()[1..]).await?;
    let mut pl = Vec::new();
    let mut sides = Vec::new();
    for peer in peers {
        let side = PeerSide::open(peer).await?;
        sides.push(PeerSamples { system: peer.system, side, notified: Vec::new(), pushed: Vec::new() });
    }
    let mut nl = Vec::new();
    let samples = settings.notify_samples();
    // Sample 0 of each is warm-up; the systems take turns, one sample each.
    for i in 0..=samples {
        let a = n.sample(i + 1).await?;
        let p = pushed.sample(i + 1).await?;
        if i > 0 {
            nl.push(a);
            pl.push(p);
        }
        for peer in &mut sides {
            let (b, push) = peer.side.sample(i + 1).await?;
            if i > 0 {
                peer.notified.push(b);
                peer.pushed.extend(push);
            }
        }
    }
    let summary = |l: Vec<Duration>| stats::summarize(l, Duration::from_secs(1));
    let name = |peer: &PeerSamples| peer.system.name().to_string();
    let peer_runs: Vec<_> = sides
        .iter()
        .map(|peer| (name(peer), peer.side.operation().to_string(), Some(summary(peer.notified.clone()))))
        .collect();
    // The push row: a Nacos peer's own push; the others' watch samples above.
    let push_runs: Vec<_> = sides
        .into_iter()
        .zip(peer_runs.iter().cloned())
        .map(|(peer, watch)| match peer.pushed.is_empty() {
            true => watch,
            false => {
                (name(&peer), "the same register → gRPC subscriber pushed".to_string(), Some(summary(peer.pushed)))
            }
        })
        .collect();
    // With 10k long-polls held: Nacre, then r-nacos (one system's connections at a time).
    let loaded = notified_while_held(nacre, samples).await?;
    let mut loaded_peers = Vec::new();
    for peer in peers.iter().filter(|p| p.system == System::RNacos) {
        let latencies = notified_while_held(peer, samples).await?;
        loaded_peers.push((peer.system.name().to_string(), "the same".to_string(), Some(summary(latencies))));
    }
    Ok(vec![
        Row::latency(
            "config change → listener notified, 10k long-polls held",
            summary(loaded),
            loaded_peers,
            "write on node 0; the listener and 10,000 other long-polls held on node 1-2",
        ),
        Row::latency(
            "config change → listener notified",
            summary(nl),
            peer_runs.clone(),
            "write on node 0; long-poll listener / watch on node 1-2",
        ),
        Row::latency(
            "instance change → gRPC subscriber pushed",
            summary(pl),
            push_runs,
            "HTTP register on node 0 (AP path), NotifySubscriberRequest on node 1-2; r-nacos the same; etcd and ZooKeeper: the watch samples above",
        ),
    ])
}
