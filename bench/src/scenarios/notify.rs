//! Change notification latency: Nacre config publish → a long-poll listener held on another
//! node answers, against etcd put → a watch event on another member. Both measured from the
//! moment the write is sent to the moment the notification is read; samples of the two
//! systems alternate.

use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use nacre_guest_sdk::md5::md5_hex;
use serde_json::json;
use tokio::sync::mpsc;

use super::throughput::etcd_put;
use super::throughput::nacre_publish;
use super::throughput::value;
use crate::Settings;
use crate::cluster::Cluster;
use crate::http;
use crate::http::Conn;
use crate::report::Row;
use crate::stats;

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

fn listener_req(addr: &str, md5: &str) -> http::Req {
    let field = format!("{DATA_ID}\u{2}{GROUP}\u{2}{md5}\u{1}");
    let body = http::form(&[("Listening-Configs", &field)]);
    hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri("/nacos/v1/cs/configs/listener")
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("Long-Pulling-Timeout", LONG_POLL_TIMEOUT_MS.to_string())
        .body(Full::new(Bytes::from(body)))
        .expect("valid request")
}

struct NacreSide {
    writer: Conn,
    listen_addrs: Vec<String>,
    md5: String,
}

impl NacreSide {
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

pub async fn run(settings: &Settings, nacre: &Cluster, etcd: &Cluster) -> Result<Row> {
    let naddrs = nacre.addrs();
    let mut writer = Conn::connect(&naddrs[0]).await?;
    let first = value(0);
    http::expect_ok(&mut writer, nacre_publish(&naddrs[0], DATA_ID, &first)).await?;
    let mut n = NacreSide { writer, listen_addrs: naddrs[1..].to_vec(), md5: md5_hex(first.as_bytes()) };
    let eaddrs = etcd.addrs();
    let mut e = EtcdSide::open(&eaddrs[0], &eaddrs[1]).await?;
    let (mut nl, mut el) = (Vec::new(), Vec::new());
    let samples = settings.notify_samples();
    // Sample 0 of each is warm-up.
    for i in 0..=samples {
        let a = n.sample(i + 1).await?;
        let b = e.sample(i + 1).await?;
        if i > 0 {
            nl.push(a);
            el.push(b);
        }
    }
    let ns = stats::summarize(nl, Duration::from_secs(1));
    let es = stats::summarize(el, Duration::from_secs(1));
    Ok(Row::latency(
        "config change → listener notified",
        "etcd put → watch event",
        ns,
        es,
        "publish/put on node 0, listener/watch on node 1-2",
    ))
}
