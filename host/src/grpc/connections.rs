//! Nacos 2.x connections: one per client transport (TCP + HTTP/2), identified at accept time
//! and carried into every call on that transport (the unary calls and the bi-stream of one
//! client share it, and clients never name their connection).
//!
//! A connection is *set up* once the client's `ConnectionSetupRequest` arrives on its stream;
//! until then every call but `ServerCheckRequest` is refused (301), which is what makes a
//! client redo its handshake. It owns what the client did through it: ephemeral registrations,
//! subscriptions, listened configs. It ends when its transport closes, its stream ends, or the
//! server closes it (a client that does not take its pushes, one that stopped answering); the
//! table then hands it to the cleanup (`lifecycle`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nacre_protocol::GuestRequest;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::wire;
use super::wire::Payload;
use crate::clock::now_ms;
use crate::guests::WatchKey;
use crate::watching;
use crate::watching::ConfigListener;
use crate::watching::ListenerFilter;
use crate::watching::MAX_REPORTED_WATCHERS;
use crate::watching::Subscriber;
use crate::watching::WatcherSource;

/// How long a transport may stay without its client's setup before it is closed: a stranger
/// cannot hold connection slots by opening transports and saying nothing.
pub const SETUP_DEADLINE_MS: u64 = 10_000;
/// Pushes queued on one connection's stream; a client that lets this many pile up is
/// disconnected (it reconnects and re-syncs everything, which a lost push would not).
pub const PUSH_QUEUE_DEPTH: usize = 256;
/// Pushes awaiting an ack on one connection.
pub const MAX_PENDING_ACKS: usize = 1_024;
const _: () = assert!(MAX_PENDING_ACKS >= PUSH_QUEUE_DEPTH, "every queued push can await its ack");

/// What a client said about itself in `ConnectionSetupRequest`.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub client_version: String,
    pub tenant: String,
    pub labels: BTreeMap<String, String>,
}

/// A config a connection listens to, as the client named it (echoed in pushes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListenedConfig {
    pub data_id: String,
    pub group: String,
    pub tenant: String,
}

/// What a connection owns.
#[derive(Default)]
pub struct Owned {
    /// Ephemeral registrations per (namespace, group, service), as the client named them: the
    /// guest requests that made them. Nacos keeps one record per service per connection (a
    /// batch is one list).
    pub instances: BTreeMap<(String, String, String), Vec<GuestRequest>>,
    /// Subscribed services: per watched event, the query to re-run per `clusters` string.
    pub subscriptions: BTreeMap<WatchKey, BTreeMap<String, GuestRequest>>,
    /// Listened configs, per watched event.
    pub listens: BTreeMap<WatchKey, BTreeSet<ListenedConfig>>,
    /// Per listened config (and its namespace), the md5 the client last said it has: what the
    /// console's listener pages show.
    pub listened_md5: BTreeMap<(String, ListenedConfig), String>,
}

pub struct Connection {
    /// `<accept ms>_<ip>_<port>`, as Nacos names connections.
    pub id: String,
    /// The table's key: unique for the node's life (two transports may share an id: the same
    /// address and port reused within a millisecond).
    key: u64,
    pub remote: SocketAddr,
    setup: OnceLock<Setup>,
    close: CancellationToken,
    last_active_ms: AtomicU64,
    stream: Mutex<Option<mpsc::Sender<Result<Payload, tonic::Status>>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<bool>>>,
    pub owned: Mutex<Owned>,
}

impl Connection {
    fn new(key: u64, remote: SocketAddr) -> Connection {
        let now = now_ms();
        Connection {
            id: format!("{now}_{}_{}", remote.ip(), remote.port()),
            key,
            remote,
            setup: OnceLock::new(),
            close: CancellationToken::new(),
            last_active_ms: AtomicU64::new(now),
            stream: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            owned: Mutex::new(Owned::default()),
        }
    }

    pub fn is_set_up(&self) -> bool {
        self.setup.get().is_some()
    }

    pub fn setup(&self) -> Option<&Setup> {
        self.setup.get()
    }

    /// Record the client's setup; the first one counts.
    pub fn set_up(&self, setup: Setup) {
        let _ = self.setup.set(setup);
    }

    pub fn is_closed(&self) -> bool {
        self.close.is_cancelled()
    }

    /// Resolves once the connection is closed, by either side.
    pub fn closed(&self) -> WaitForCancellationFutureOwned {
        self.close.clone().cancelled_owned()
    }

    /// End the connection: its stream completes, its transport is cut (see [`Tracked`]), acks
    /// awaited fail. The table hands it to the cleanup when the transport is gone.
    pub fn close(&self) {
        self.close.cancel();
        self.stream.lock().expect("stream lock").take();
        self.pending.lock().expect("pending lock").clear();
    }

    /// The client did something: it is alive.
    pub fn touch(&self) {
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed))
    }

    /// The stream's sending side, once the client opened it.
    pub fn attach_stream(&self, sender: mpsc::Sender<Result<Payload, tonic::Status>>) {
        *self.stream.lock().expect("stream lock") = Some(sender);
    }

    /// Queue `payload` on the stream without waiting for an answer. A full queue ends the
    /// connection: the client reconnects and re-syncs.
    pub fn send(&self, payload: Payload) -> bool {
        let sender = self.stream.lock().expect("stream lock").clone();
        let Some(sender) = sender else { return false };
        match sender.try_send(Ok(payload)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(connection = %self.id, depth = PUSH_QUEUE_DEPTH, "client does not take its pushes; closing its connection");
                self.close();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Push a server request and wait (at most `timeout`) for the client's ack: whether it
    /// acked with success.
    pub async fn request(&self, request_id: String, payload: Payload, timeout: Duration) -> bool {
        let (acked, ack) = oneshot::channel();
        {
            let mut pending = self.pending.lock().expect("pending lock");
            if pending.len() >= MAX_PENDING_ACKS {
                tracing::warn!(connection = %self.id, limit = MAX_PENDING_ACKS, "too many pushes unanswered; closing the connection");
                drop(pending);
                self.close();
                return false;
            }
            pending.insert(request_id.clone(), acked);
        }
        if !self.send(payload) {
            self.pending.lock().expect("pending lock").remove(&request_id);
            return false;
        }
        let answered = tokio::time::timeout(timeout, ack).await;
        self.pending.lock().expect("pending lock").remove(&request_id);
        matches!(answered, Ok(Ok(true)))
    }

    /// A response on the stream: the ack of the push with its `requestId`.
    pub fn acked(&self, inbound: &wire::Inbound) {
        self.touch();
        if let Some(waiting) = self.pending.lock().expect("pending lock").remove(&inbound.request_id()) {
            let _ = waiting.send(wire::is_success(inbound));
        }
    }
}

/// Every live connection of this node, at most `cap` (the node derives it from its open-file
/// limit, `net::connections::connection_caps`); past it a new transport is closed at accept
/// and the client tries the next server.
pub struct Connections {
    cap: usize,
    telemetry: Arc<crate::telemetry::Telemetry>,
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    next_key: AtomicU64,
    /// Connections whose transport is gone, for the cleanup.
    ended: mpsc::UnboundedSender<Arc<Connection>>,
    next_request_id: AtomicU64,
    last_stamp_ms: AtomicU64,
}

impl Connections {
    pub fn new(
        cap: usize,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> (Arc<Connections>, mpsc::UnboundedReceiver<Arc<Connection>>) {
        let (ended, ended_rx) = mpsc::unbounded_channel();
        let table = Connections {
            cap,
            telemetry,
            live: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(0),
            ended,
            next_request_id: AtomicU64::new(1),
            last_stamp_ms: AtomicU64::new(0),
        };
        (Arc::new(table), ended_rx)
    }

    /// A new transport from `remote`, or `None` past the cap.
    pub(super) fn open(&self, remote: SocketAddr) -> Option<Arc<Connection>> {
        let mut live = self.live.lock().expect("connections lock");
        if live.len() >= self.cap {
            return None;
        }
        let connection = Arc::new(Connection::new(self.next_key.fetch_add(1, Ordering::Relaxed), remote));
        live.insert(connection.key, connection.clone());
        self.telemetry.set_grpc_connections(live.len());
        Some(connection)
    }

    /// The transport of `connection` is gone.
    pub(super) fn release(&self, connection: &Arc<Connection>) {
        connection.close();
        let removed = {
            let mut live = self.live.lock().expect("connections lock");
            let removed = live.remove(&connection.key).is_some();
            self.telemetry.set_grpc_connections(live.len());
            removed
        };
        if removed {
            let _ = self.ended.send(connection.clone());
        }
    }

    pub fn live(&self) -> Vec<Arc<Connection>> {
        self.live.lock().expect("connections lock").values().cloned().collect()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn count(&self) -> usize {
        self.live.lock().expect("connections lock").len()
    }

    /// Close every connection (the node is stopping).
    pub fn close_all(&self) {
        for connection in self.live() {
            connection.close();
        }
    }

    /// A fresh id for a server request (numeric, as Nacos's).
    pub fn next_request_id(&self) -> String {
        self.next_request_id.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// A service info's `lastRefTime`: the wall clock in ms, strictly increasing on this node.
    /// Clients drop a push whose time is not newer than what they hold, and a guest's answer
    /// carries the replica's time, which AP changes do not move.
    pub fn stamp_ms(&self) -> u64 {
        let now = now_ms();
        let previous = self.last_stamp_ms.fetch_max(now, Ordering::Relaxed);
        if previous < now { now } else { self.last_stamp_ms.fetch_add(1, Ordering::Relaxed) + 1 }
    }
}

/// The subscriptions and listeners of this node's connections.
impl WatcherSource for Connections {
    /// The connections subscribed to the service `grouped_service` of `namespace`, as Nacos
    /// lists a gRPC subscriber: its IP (port 0), its version, its app label.
    fn subscribers_of(&self, namespace: &str, grouped_service: &str) -> Vec<Subscriber> {
        let mut found = BTreeSet::new();
        for connection in self.live() {
            let owned = connection.owned.lock().expect("owned lock");
            let queries = owned.subscriptions.iter().filter(|(watch, _)| watch.namespace == namespace);
            for (clusters, request) in queries.flat_map(|(_, by_clusters)| by_clusters) {
                let service = request.get("serviceName").unwrap_or_default();
                if watching::grouped_service(service, request.get("groupName")) != grouped_service {
                    continue;
                }
                let setup = connection.setup().cloned().unwrap_or_default();
                let app = ["app", "AppName"].iter().find_map(|label| setup.labels.get(*label)).cloned();
                let ip = connection.remote.ip().to_string();
                found.insert(Subscriber {
                    addr_str: ip.clone(),
                    agent: setup.client_version,
                    app: app.filter(|a| !a.is_empty()).unwrap_or_else(|| "unknown".to_string()),
                    ip,
                    port: 0,
                    namespace_id: namespace.to_string(),
                    service_name: grouped_service.to_string(),
                    cluster: clusters.clone(),
                });
            }
            if found.len() >= MAX_REPORTED_WATCHERS {
                break;
            }
        }
        found.into_iter().take(MAX_REPORTED_WATCHERS).collect()
    }

    /// The configs this node's connections listen to that `filter` admits.
    fn listeners(&self, filter: &ListenerFilter) -> Vec<ConfigListener> {
        let mut found = Vec::new();
        for connection in self.live() {
            let owned = connection.owned.lock().expect("owned lock");
            let ip = connection.remote.ip().to_string();
            for ((namespace, config), md5) in &owned.listened_md5 {
                let listener = ConfigListener {
                    ip: ip.clone(),
                    namespace: namespace.clone(),
                    tenant: config.tenant.clone(),
                    group: config.group.clone(),
                    data_id: config.data_id.clone(),
                    md5: md5.clone(),
                };
                if filter.admits(&listener) {
                    found.push(listener);
                }
            }
            if found.len() >= MAX_REPORTED_WATCHERS {
                break;
            }
        }
        found.truncate(MAX_REPORTED_WATCHERS);
        found
    }
}

/// The setup a `ConnectionSetupRequest` body describes.
pub fn setup_of(inbound: &wire::Inbound) -> Setup {
    let labels = match inbound.field("labels") {
        Some(Value::Object(labels)) => labels.iter().map(|(k, v)| (k.clone(), wire::text(Some(v)))).collect(),
        _ => BTreeMap::new(),
    };
    Setup { client_version: inbound.str("clientVersion"), tenant: inbound.str("tenant"), labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_CAP: usize = 2;

    #[test]
    fn a_connection_is_named_as_nacos_names_it_and_the_table_is_bounded_by_its_limit() {
        let (table, _ended) = Connections::new(TEST_CAP, Default::default());
        let remote: SocketAddr = "127.0.0.1:41444".parse().unwrap();
        let connection = table.open(remote).unwrap();
        assert!(connection.id.ends_with("_127.0.0.1_41444"), "{}", connection.id);
        assert!(connection.id.split('_').next().unwrap().parse::<u64>().is_ok());
        assert_eq!(table.count(), 1);
        let second = table.open(remote).unwrap();
        assert!(table.open(remote).is_none(), "past the cap");
        table.release(&second);
        table.release(&connection);
        assert_eq!(table.count(), 0);
        assert!(connection.is_closed());
    }

    #[tokio::test]
    async fn a_full_push_queue_closes_the_connection() {
        let (table, _ended) = Connections::new(TEST_CAP, Default::default());
        let connection = table.open("127.0.0.1:1".parse().unwrap()).unwrap();
        let (sender, _receiver) = mpsc::channel(PUSH_QUEUE_DEPTH);
        connection.attach_stream(sender);
        for _ in 0..PUSH_QUEUE_DEPTH {
            assert!(connection.send(wire::error_response(0, "").payload));
        }
        assert!(!connection.is_closed());
        assert!(!connection.send(wire::error_response(0, "").payload));
        assert!(connection.is_closed());
    }

    #[tokio::test]
    async fn a_push_waits_for_the_ack_with_its_request_id() {
        let (table, _ended) = Connections::new(TEST_CAP, Default::default());
        let connection = Arc::new(Connection::new(0, "127.0.0.1:2".parse().unwrap()));
        let (sender, mut receiver) = mpsc::channel(PUSH_QUEUE_DEPTH);
        connection.attach_stream(sender);
        let id = table.next_request_id();
        let pushed = wire::server_request("ConfigChangeNotifyRequest", &id, "config", serde_json::json!({}));
        let waiting = {
            let connection = connection.clone();
            tokio::spawn(async move { connection.request(id, pushed, Duration::from_secs(5)).await })
        };
        let sent = receiver.recv().await.unwrap().unwrap();
        let sent = wire::Inbound::decode(&sent).unwrap();
        // Python answers a config push with the wrong type: only the id matters.
        let ack = wire::success("NotifySubscriberResponse", serde_json::json!({"requestId": sent.request_id()}));
        connection.acked(&wire::Inbound::decode(&ack.payload).unwrap());
        assert!(waiting.await.unwrap());
    }
}
