//! UDP push (Nacos 1.x): a client that reads with `udpPort` > 0 subscribes for
//! [`SUBSCRIPTION_TTL_MS`]; while subscribed, every change of a key the guest's `Nacre-Watch`
//! directive named re-runs the client's read and sends the answer to `clientIP:udpPort` as
//! `{"type":"dom","data":"<answer>","lastRefTime":n}`, gzipped past [`GZIP_OVER_BYTES`].
//! Clients acknowledge with `push-ack`; a lost push is repaired by the client's next poll.
//!
//! Every node applies every entry, so each node pushes to the clients that subscribed
//! through it; nothing about subscriptions is replicated.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use nacre_protocol::GuestRequest;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;

use crate::clock::now_ms;
use crate::guests::Guests;
use crate::guests::WatchKey;
use crate::scope::Scope;
use crate::watching::MAX_REPORTED_WATCHERS;
use crate::watching::Subscriber;
use crate::watching::WatcherSource;

/// How long one read keeps a client subscribed (Nacos's `pushCacheMillis`).
pub const SUBSCRIPTION_TTL_MS: u64 = 10_000;
/// Subscriptions one node keeps; past it new subscribers are not added (they still poll).
pub const MAX_SUBSCRIPTIONS: usize = 100_000;
/// Pushes larger than this are gzipped (Nacos's threshold).
pub const GZIP_OVER_BYTES: usize = 1024;
/// Largest datagram sent; a larger answer is left to the client's poll.
pub const MAX_DATAGRAM_BYTES: usize = 65_000;
/// Events arriving this close together are pushed once.
const COALESCE_MS: u64 = 5;

struct Subscription {
    /// The read to re-run for this client.
    request: GuestRequest,
    /// Who the client is, as the subscriber lists show it.
    subscriber: Subscriber,
    expires_at: Instant,
}

pub struct Push {
    socket: Arc<UdpSocket>,
    subscriptions: Mutex<HashMap<WatchKey, HashMap<SocketAddr, Subscription>>>,
    pushes_sent: AtomicU64,
    acks_received: AtomicU64,
}

impl Push {
    pub async fn open(bind_ip: &str) -> std::io::Result<Push> {
        let socket = UdpSocket::bind((bind_ip, 0)).await?;
        Ok(Push {
            socket: Arc::new(socket),
            subscriptions: Mutex::default(),
            pushes_sent: AtomicU64::new(0),
            acks_received: AtomicU64::new(0),
        })
    }

    /// Subscribe the client at `addr` to the keys in the reply's `Nacre-Watch` directive, to
    /// be answered with `request` re-run. A reply without the directive subscribes nothing.
    pub fn subscribe(
        &self,
        scope: Scope<'_>,
        watch_directive: Option<&String>,
        addr: SocketAddr,
        request: GuestRequest,
        subscriber: Subscriber,
    ) {
        let watches = WatchKey::from_directive(scope.namespace, scope.kind, watch_directive);
        if watches.is_empty() {
            return;
        }
        let expires_at = Instant::now() + Duration::from_millis(SUBSCRIPTION_TTL_MS);
        let mut subscriptions = self.subscriptions.lock().expect("subscriptions lock");
        let mut total: usize = subscriptions.values().map(HashMap::len).sum();
        if total >= MAX_SUBSCRIPTIONS {
            // Expired subscriptions of keys that never fire are otherwise only counted.
            let now = Instant::now();
            for clients in subscriptions.values_mut() {
                clients.retain(|_, s| s.expires_at > now);
            }
            subscriptions.retain(|_, clients| !clients.is_empty());
            total = subscriptions.values().map(HashMap::len).sum();
        }
        for watch in watches {
            let clients = subscriptions.entry(watch).or_default();
            if total >= MAX_SUBSCRIPTIONS && !clients.contains_key(&addr) {
                tracing::warn!(limit = MAX_SUBSCRIPTIONS, "push subscriptions full; client left to poll");
                continue;
            }
            clients.insert(addr, Subscription { request: request.clone(), subscriber: subscriber.clone(), expires_at });
        }
    }

    /// Live subscriptions (for metrics).
    pub fn subscriber_count(&self) -> usize {
        self.subscriptions.lock().expect("subscriptions lock").values().map(HashMap::len).sum()
    }

    pub fn pushes_sent(&self) -> u64 {
        self.pushes_sent.load(Ordering::Relaxed)
    }

    pub fn acks_received(&self) -> u64 {
        self.acks_received.load(Ordering::Relaxed)
    }

    /// The live subscribers of `watch`, dropping expired ones.
    fn subscribers(&self, watch: &WatchKey) -> Vec<(SocketAddr, GuestRequest)> {
        let now = Instant::now();
        let mut subscriptions = self.subscriptions.lock().expect("subscriptions lock");
        let Some(clients) = subscriptions.get_mut(watch) else { return Vec::new() };
        clients.retain(|_, s| s.expires_at > now);
        let live = clients.iter().map(|(addr, s)| (*addr, s.request.clone())).collect();
        if clients.is_empty() {
            subscriptions.remove(watch);
        }
        live
    }
}

/// The UDP subscribers of a service, once per client and clusters.
impl WatcherSource for Push {
    fn subscribers_of(&self, namespace: &str, grouped_service: &str) -> Vec<Subscriber> {
        let now = Instant::now();
        let subscriptions = self.subscriptions.lock().expect("subscriptions lock");
        let found: BTreeSet<&Subscriber> = subscriptions
            .iter()
            .filter(|(watch, _)| watch.namespace == namespace)
            .flat_map(|(_, clients)| clients.values())
            .filter(|s| s.expires_at > now)
            .map(|s| &s.subscriber)
            .filter(|s| s.service_name == grouped_service)
            .collect();
        found.into_iter().take(MAX_REPORTED_WATCHERS).cloned().collect()
    }
}

/// The address to push to: the `clientIP` the client reported (Nacos does the same; it is the
/// host's LAN address, where the client's UDP socket listens), else the connection's IP.
pub fn push_addr(client_ip_param: Option<&str>, peer_ip: IpAddr, udp_port: u16) -> SocketAddr {
    let ip = client_ip_param.and_then(|ip| ip.trim().parse().ok()).unwrap_or(peer_ip);
    SocketAddr::new(ip, udp_port)
}

/// Push to subscribers whenever an event they watch is applied on this node.
pub async fn push_on_events(guests: Arc<Guests>, push: Arc<Push>) {
    let mut events = guests.subscribe();
    loop {
        let mut changed = BTreeSet::new();
        match events.recv().await {
            Ok(event) => changed.insert(WatchKey::of(&event)),
            Err(RecvError::Lagged(skipped)) => {
                tracing::warn!(skipped, "push fell behind; clients repair by polling");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // One committed batch fires many events for the same key: push once.
        tokio::time::sleep(Duration::from_millis(COALESCE_MS)).await;
        while let Ok(event) = events.try_recv() {
            changed.insert(WatchKey::of(&event));
        }
        for watch in changed {
            for (addr, request) in push.subscribers(&watch) {
                match guests.query(Scope::new(&watch.namespace, watch.kind), &request) {
                    Ok(reply) => send(&push, addr, &reply.body).await,
                    Err(e) => tracing::debug!(code = e.code, message = %e.message, "push read failed"),
                }
            }
        }
    }
}

async fn send(push: &Push, addr: SocketAddr, data: &str) {
    let packet = push_packet(data, now_ms());
    if packet.len() > MAX_DATAGRAM_BYTES {
        tracing::debug!(bytes = packet.len(), "push too large for a datagram; client will poll");
        return;
    }
    match push.socket.send_to(&packet, addr).await {
        Ok(_) => {
            push.pushes_sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(%addr, error = %e, "push not sent"),
    }
}

/// The datagram Nacos 1.x clients expect, gzipped when large.
pub fn push_packet(data: &str, last_ref_time: u64) -> Vec<u8> {
    let packet = json!({ "type": "dom", "data": data, "lastRefTime": last_ref_time }).to_string().into_bytes();
    if packet.len() <= GZIP_OVER_BYTES {
        return packet;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&packet).expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

/// Count `push-ack`s; the ack itself needs no answer.
pub async fn read_acks(push: Arc<Push>) {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    loop {
        let Ok((len, from)) = push.socket.recv_from(&mut buf).await else { continue };
        let ack: Option<serde_json::Value> = serde_json::from_slice(&buf[..len]).ok();
        match ack.as_ref().and_then(|a| a.get("type")).and_then(|t| t.as_str()) {
            Some("push-ack") => {
                push.acks_received.fetch_add(1, Ordering::Relaxed);
            }
            other => tracing::debug!(%from, kind = ?other, "unexpected datagram on the push socket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn small_pushes_are_plain_json_and_large_ones_gzip() {
        let small = push_packet(r#"{"hosts":[]}"#, 7);
        let value: serde_json::Value = serde_json::from_slice(&small).unwrap();
        assert_eq!(value, json!({"type": "dom", "data": "{\"hosts\":[]}", "lastRefTime": 7}));

        let data = "x".repeat(4 * GZIP_OVER_BYTES);
        let large = push_packet(&data, 8);
        assert_eq!(&large[..2], &[0x1f, 0x8b], "gzip magic");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&large[..]).read_to_string(&mut text).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"], data.as_str());
    }

    #[test]
    fn push_goes_to_the_reported_client_ip() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(push_addr(Some("10.0.0.5"), peer, 9000), "10.0.0.5:9000".parse().unwrap());
        assert_eq!(push_addr(Some("not-an-ip"), peer, 9000), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(push_addr(None, peer, 9000), "127.0.0.1:9000".parse().unwrap());
    }
}
