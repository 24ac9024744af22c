//! The node's metrics for `GET /metrics`, in the OpenMetrics text format Prometheus scrapes,
//! on `prometheus-client` (the Prometheus project's Rust client).
//!
//! Two kinds: what the ports observe as they serve (requests by route and status, with latency
//! histograms; gRPC connections), recorded here as it happens; and what the node's services
//! know (Raft, the AP path, leases, held long-polls, pushes, memory), read from them at scrape
//! time by the API (`Snapshot`), so that nothing keeps a second copy of their state.
//!
//! Label values are bounded: routes are the route table's paths, gRPC requests their known
//! types, never a client's raw path or string.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

/// Latency buckets: 100 µs doubling to about 3.3 s.
const LATENCY_BUCKETS: (f64, f64, u16) = (0.000_1, 2.0, 16);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route table's path, or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// A known request type, or `other`.
    pub request: String,
    pub success: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// `naming` (NotifySubscriberRequest) or `config` (ConfigChangeNotifyRequest).
    pub kind: &'static str,
    /// Whether the client acked this attempt in time.
    pub acked: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub follower: String,
}

/// What the node's services know at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub term: u64,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    /// On the leader: each follower's address and how many entries it is behind.
    pub follower_lag: Vec<(String, u64)>,
    pub ap_records: u64,
    pub ap_outbox_waiting: u64,
    pub live_members: u64,
    pub leases_tracked: u64,
    pub long_polls_held: u64,
    pub udp_subscriptions: u64,
    pub udp_pushes_sent: u64,
    pub resident_bytes: u64,
    /// Times this node became a candidate, and a leader; vote requests it answered.
    pub raft_campaigns: u64,
    pub raft_leaderships: u64,
    pub raft_votes_handled: u64,
    pub ap_repairs: u64,
    pub guest_calls: u64,
    pub guest_fuel_consumed: u64,
    pub guest_faults: u64,
    pub module_compilations: u64,
    pub module_compile_micros: u64,
}

pub struct Telemetry {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<HttpLabels, Histogram>,
    grpc_requests: Family<GrpcLabels, Counter>,
    grpc_seconds: Family<GrpcLabels, Histogram>,
    grpc_connections: Gauge,
    grpc_pushes: Family<PushLabels, Counter>,
    /// One gauge per [`SCRAPED`] entry, in its order.
    scraped: Vec<Gauge>,
    follower_lag: Family<FollowerLabels, Gauge>,
    /// One scrape at a time sets the scraped gauges and encodes them.
    encoding: Mutex<()>,
}

/// The gauges set from a [`Snapshot`] at each scrape: name (after the `nacre_` prefix), help,
/// and the value.
type ScrapedGauge = (&'static str, &'static str, fn(&Snapshot) -> u64);
const SCRAPED: &[ScrapedGauge] = &[
    ("raft_term", "Current Raft term", |s| s.term),
    ("raft_is_leader", "1 while this node leads", |s| u64::from(s.is_leader)),
    ("raft_last_log_index", "Last log index", |s| s.last_log_index),
    ("raft_committed_index", "Highest index known committed", |s| s.committed_index),
    ("raft_applied_index", "Highest index applied here", |s| s.applied_index),
    ("raft_snapshot_index", "Index of the latest snapshot", |s| s.snapshot_index),
    ("ap_records", "Live records of the AP keyspace here", |s| s.ap_records),
    ("ap_outbox_waiting", "AP records waiting to ship to peers", |s| s.ap_outbox_waiting),
    ("live_members", "Members this node sees alive", |s| s.live_members),
    ("leases_tracked", "Leases this node keeps renewals of", |s| s.leases_tracked),
    ("long_polls_held", "Config long-polls held now", |s| s.long_polls_held),
    ("udp_subscriptions", "Nacos 1.x UDP push subscriptions", |s| s.udp_subscriptions),
    ("udp_pushes_sent", "UDP pushes sent since start", |s| s.udp_pushes_sent),
    ("resident_memory_bytes", "Resident set size", |s| s.resident_bytes),
    ("raft_campaigns", "Times this node became a candidate since start", |s| s.raft_campaigns),
    ("raft_leaderships", "Times this node became the leader since start", |s| s.raft_leaderships),
    ("raft_votes_handled", "Vote requests this node answered since start", |s| s.raft_votes_handled),
    ("ap_repairs", "AP verification rounds that repaired partitions since start", |s| s.ap_repairs),
    ("guest_calls", "Guest (Wasm module) calls since start", |s| s.guest_calls),
    ("guest_fuel_consumed", "Fuel guest calls consumed since start", |s| s.guest_fuel_consumed),
    ("guest_faults", "Guest calls that trapped or ran out of fuel or memory", |s| s.guest_faults),
    ("module_compilations", "Modules compiled from source since start", |s| s.module_compilations),
    ("module_compile_microseconds", "Time spent compiling modules since start", |s| s.module_compile_micros),
];

fn latency_histogram() -> Histogram {
    let (start, factor, count) = LATENCY_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, count))
}

fn gauge_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("nacre");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_seconds =
            Family::<HttpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        let grpc_seconds =
            Family::<GrpcLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let grpc_connections = Gauge::default();
        let grpc_pushes = Family::<PushLabels, Counter>::default();
        let follower_lag = Family::<FollowerLabels, Gauge>::default();
        registry.register("http_requests", "Client-port HTTP requests by route and status", http_requests.clone());
        registry.register("http_request_seconds", "Client-port HTTP request latency", http_seconds.clone());
        registry.register("grpc_requests", "Nacos gRPC requests by type and outcome", grpc_requests.clone());
        registry.register("grpc_request_seconds", "Nacos gRPC request latency", grpc_seconds.clone());
        registry.register("grpc_connections", "Open Nacos gRPC connections", grpc_connections.clone());
        registry.register("grpc_pushes", "Nacos gRPC server pushes by kind, acked or not", grpc_pushes.clone());
        registry.register(
            "raft_follower_lag_entries",
            "On the leader: entries each follower is behind",
            follower_lag.clone(),
        );
        let scraped = SCRAPED
            .iter()
            .map(|(name, help, _)| {
                let gauge = Gauge::default();
                registry.register(*name, *help, gauge.clone());
                gauge
            })
            .collect();
        Telemetry {
            registry,
            http_requests,
            http_seconds,
            grpc_requests,
            grpc_seconds,
            grpc_connections,
            grpc_pushes,
            scraped,
            follower_lag,
            encoding: Mutex::new(()),
        }
    }

    pub fn observe_http(&self, labels: HttpLabels, elapsed: Duration) {
        self.http_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.http_requests.get_or_create(&labels).inc();
    }

    pub fn observe_grpc(&self, labels: GrpcLabels, elapsed: Duration) {
        self.grpc_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.grpc_requests.get_or_create(&labels).inc();
    }

    pub fn count_grpc_push(&self, labels: PushLabels) {
        self.grpc_pushes.get_or_create(&labels).inc();
    }

    pub fn set_grpc_connections(&self, count: usize) {
        self.grpc_connections.set(gauge_of(count as u64));
    }

    /// The metrics as OpenMetrics text, with the scraped gauges set from `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let _one_at_a_time = self.encoding.lock().expect("encoding lock");
        for ((_, _, read), gauge) in SCRAPED.iter().zip(&self.scraped) {
            gauge.set(gauge_of(read(snapshot)));
        }
        self.follower_lag.clear();
        for (follower, lag) in &snapshot.follower_lag {
            self.follower_lag.get_or_create(&FollowerLabels { follower: follower.clone() }).set(gauge_of(*lag));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// This process's resident set size, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page_bytes).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_every_family_and_counts_requests_by_route() {
        let telemetry = Telemetry::new();
        let labels = HttpLabels { method: "GET".into(), route: "/nacos/v1/cs/configs".into(), status: 200 };
        telemetry.observe_http(labels.clone(), Duration::from_millis(3));
        telemetry.observe_http(labels, Duration::from_millis(5));
        let snapshot =
            Snapshot { term: 7, is_leader: true, follower_lag: vec![("n2".into(), 4)], ..Default::default() };
        let text = telemetry.encode(&snapshot);
        assert!(
            text.contains(r#"nacre_http_requests_total{method="GET",route="/nacos/v1/cs/configs",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains("nacre_raft_term 7"), "{text}");
        assert!(text.contains(r#"nacre_raft_follower_lag_entries{follower="n2"} 4"#), "{text}");
        assert!(text.contains("nacre_http_request_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with EOF");
        // A follower that left the leader's view leaves the listing.
        let text = telemetry.encode(&Snapshot::default());
        assert!(!text.contains("follower_lag_entries{"), "{text}");
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_bytes() > 0);
    }
}
