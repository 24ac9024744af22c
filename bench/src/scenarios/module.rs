//! Module switch (issue 5): the time from an `activate` answer to every node serving writes
//! with the new module, and the register throughput around a switch (from the answer, and
//! from the moment the activation is sent), when every node has the module compiled already
//! (warm) and when it has not (cold).
//!
//! A cold switch needs a module id no node has compiled. Appending a custom section to the
//! example component gives new bytes (so a new sha256, the module id) with the same code: cold
//! and warm runs differ only in whether the nodes must compile. The node that takes the upload
//! compiles it to validate it, so "cold" is cold on the other two nodes, which compile when
//! they apply the activation; the upload's own cost is reported separately. Uploads and
//! activations go through a follower, so that the leader, which applies every write first, is
//! one of the nodes that compile (through the leader, the activation would be answered before
//! any node compiled, and the figures would depend on where the leader happened to be).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use nacre::builtin;
use nacre::runtime::Runtime;
use serde::Serialize;
use tokio::task::JoinSet;

use super::throughput::nacre_register;
use crate::Settings;
use crate::cluster::Cluster;
use crate::http;
use crate::http::Conn;
use crate::load;
use crate::load::Load;
use crate::stats;
use crate::stats::Summary;

/// The namespace whose naming module is switched; the others keep the built-in module.
const NAMESPACE: &str = "bench-module";
/// Services the registrations are spread over, as in the throughput scenario.
const SERVICES: u64 = 100;
/// Clients of the after-switch load: the throughput scenario's c=64 shape.
pub const CLIENTS: usize = 64;
/// Longest wait for every node to answer a write with the new module.
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Name of the custom section that makes a fresh module id.
const SECTION_NAME: &str = "nacre-bench";
/// Operation numbers of this scenario's registrations start here, clear of other scenarios'.
const OP_BASE: u64 = 50_000_000;

/// One side of the comparison: switches to an id every node has compiled (warm) or to a
/// fresh one (cold). Each figure is the median over rounds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Switch {
    /// `POST /nacre/v1/bindings` sent → answered.
    pub activate_ack_ms: f64,
    /// The answer → the last node's first write answered with the new module's id.
    pub serving_ms: f64,
    /// The worst round of `serving_ms`.
    pub serving_max_ms: f64,
    /// Persistent registrations at c = [`CLIENTS`]: the first operations after the answer.
    pub after_answer: Summary,
    /// The same, starting the instant the activation is sent: what the switch costs the
    /// writes around it (a cold activation is compiled inside the apply of its log entry).
    pub from_send: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleSwitch {
    pub rounds: usize,
    pub module_kib: f64,
    pub ops_after_switch: u64,
    pub cold: Switch,
    pub warm: Switch,
    /// Upload of a fresh id: validated (compiled) by the receiving node, then committed.
    pub install_fresh_ms: f64,
    /// The same bytes again: already loaded there, so only the commit.
    pub install_again_ms: f64,
    /// Compiling the component in this process with the nodes' engine configuration.
    pub compile_ms: f64,
}

/// `component` with a custom section (id 0) appended: a LEB128 size, then the section's name
/// (LEB128 length, bytes) and `payload`. Custom sections may appear anywhere in a component
/// and carry no semantics, so the code is the same and only the bytes (and id) differ.
pub fn with_custom_section(component: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut content = leb128(SECTION_NAME.len());
    content.extend_from_slice(SECTION_NAME.as_bytes());
    content.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    out.extend(leb128(content.len()));
    out.extend(content);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A registration in the switched namespace.
fn register(addr: &str, op: u64) -> http::Req {
    let service = format!("bench.module.{}", op % SERVICES);
    let mut pairs = nacre_register(&service, op, false, op);
    pairs.push(("namespaceId".into(), NAMESPACE.into()));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    http::post_form(addr, "/nacos/v1/ns/instance", &pairs)
}

struct Bench<'a> {
    cluster: &'a Cluster,
    /// A follower's connection, for uploads and activations.
    admin: Conn,
    ops: Arc<AtomicU64>,
}

impl Bench<'_> {
    fn admin_addr(&self) -> String {
        self.admin.addr().to_string()
    }

    /// Uploads a module; its id and the time the upload took.
    async fn install(&mut self, bytes: &[u8]) -> Result<(String, Duration)> {
        let addr = self.admin_addr();
        let sent = Instant::now();
        let body = http::expect_ok(&mut self.admin, http::post_bytes(&addr, "/nacre/v1/modules", bytes)).await?;
        let took = sent.elapsed();
        let answer: serde_json::Value = serde_json::from_slice(&body).context("install answer")?;
        Ok((answer["id"].as_str().context("install answer without id")?.to_string(), took))
    }

    /// Binds the namespace to `id`; the time to the answer.
    async fn activate(&mut self, id: &str) -> Result<Duration> {
        let addr = self.admin_addr();
        let path = format!(
            "/nacre/v1/bindings?{}",
            http::form(&[("namespace", NAMESPACE), ("kind", "naming"), ("module", id)])
        );
        let sent = Instant::now();
        http::expect_ok(&mut self.admin, http::post_form(&addr, &path, &[])).await?;
        Ok(sent.elapsed())
    }

    /// From now until every node has answered a write with module `id` (each node polled
    /// with back-to-back registrations).
    async fn until_serving(&self, id: &str) -> Result<Duration> {
        let start = Instant::now();
        let mut polls = JoinSet::new();
        for addr in self.cluster.addrs() {
            let (id, ops) = (id.to_string(), self.ops.clone());
            polls.spawn(async move {
                let mut conn = Conn::connect(&addr).await?;
                while start.elapsed() < SERVE_TIMEOUT {
                    let req = register(&addr, ops.fetch_add(1, Ordering::Relaxed));
                    let (status, headers, body) = conn.send_with_headers(req, http::REQUEST_TIMEOUT).await?;
                    if status != 200 {
                        bail!("HTTP {status} from {addr}: {}", String::from_utf8_lossy(&body));
                    }
                    if headers.get("x-nacre-module").is_some_and(|v| v.as_bytes() == id.as_bytes()) {
                        return Ok(start.elapsed());
                    }
                }
                bail!("{addr} did not serve module {id} within {SERVE_TIMEOUT:?}")
            });
        }
        let mut last = Duration::ZERO;
        while let Some(done) = polls.join_next().await {
            last = last.max(done??);
        }
        Ok(last)
    }

    /// Activates `id` and waits until every node serves it: (ack, serving).
    async fn switch(&mut self, id: &str) -> Result<(Duration, Duration)> {
        let ack = self.activate(id).await?;
        Ok((ack, self.until_serving(id).await?))
    }

    /// Activates `id` with `ops` registrations, over connections made beforehand, starting
    /// with the activation's request or right after its answer.
    async fn switch_under_load(
        &mut self,
        id: &str,
        ops: u64,
        load: &Load,
        start: Start,
    ) -> Result<(Duration, Summary)> {
        let clients = load::connect(&self.cluster.addrs(), CLIENTS, load).await?;
        let base = self.ops.fetch_add(ops, Ordering::Relaxed);
        match start {
            Start::AtRequest => {
                let (ack, summary) = tokio::join!(self.activate(id), load::run_on(clients, ops, base));
                Ok((ack?, summary?))
            }
            Start::AtAnswer => {
                let ack = self.activate(id).await?;
                Ok((ack, load::run_on(clients, ops, base).await?))
            }
        }
    }
}

/// When the load of a switch starts.
#[derive(Clone, Copy)]
enum Start {
    AtRequest,
    AtAnswer,
}

/// Collects one side's samples.
#[derive(Default)]
struct Samples {
    ack: Vec<f64>,
    serving: Vec<f64>,
    after_answer: Vec<Summary>,
    from_send: Vec<Summary>,
}

impl Samples {
    fn switched(&mut self, (ack, serving): (Duration, Duration)) {
        self.ack.push(stats::ms(ack));
        self.serving.push(stats::ms(serving));
    }

    fn loaded(&mut self, start: Start, (ack, summary): (Duration, Summary)) {
        self.ack.push(stats::ms(ack));
        match start {
            Start::AtRequest => self.from_send.push(summary),
            Start::AtAnswer => self.after_answer.push(summary),
        }
    }

    fn summary(&self) -> Switch {
        Switch {
            activate_ack_ms: stats::median(self.ack.clone()),
            serving_ms: stats::median(self.serving.clone()),
            serving_max_ms: self.serving.iter().copied().fold(0.0, f64::max),
            after_answer: stats::median_of(&self.after_answer),
            from_send: stats::median_of(&self.from_send),
        }
    }
}

pub async fn run(settings: &Settings, cluster: &Cluster) -> Result<ModuleSwitch> {
    let base = builtin::examples::ZONE_FIRST;
    // Compile once here: the host's validation must accept the extra section, and this is
    // the compile time free of Raft and HTTP.
    let probe = with_custom_section(base, b"compile probe");
    let runtime = Runtime::new(None).context("wasm runtime")?;
    let t = Instant::now();
    runtime.load(&probe).context("the component with a custom section is refused")?;
    let compile_ms = stats::ms(t.elapsed());

    let registrations = Load::Http(Arc::new(register));
    let follower = (cluster.nacre_leader().await.context("a Nacre leader")? + 1) % cluster.nodes.len();
    let admin = Conn::connect(&cluster.nodes[follower].addr).await?;
    let mut b = Bench { cluster, admin, ops: Arc::new(AtomicU64::new(OP_BASE)) };
    // Services exist before the first measured load; the built-in module is the other side
    // of every back-and-forth switch (already compiled everywhere: the node bound it at start).
    load::run_round(&cluster.addrs(), CLIENTS, SERVICES, OP_BASE, &registrations).await?;
    let (naming, _) = b.install(builtin::NAMING).await?;
    b.switch(&naming).await?;

    let ops = settings.module_ops();
    let (mut cold, mut warm) = (Samples::default(), Samples::default());
    let (mut fresh, mut again) = (Vec::new(), Vec::new());
    let rounds = settings.module_rounds();
    for round in 0..rounds {
        // Switch latency: to a fresh id (cold), back to the built-in, to the fresh id again.
        let bytes = with_custom_section(base, format!("switch {round}").as_bytes());
        let (id, took) = b.install(&bytes).await?;
        fresh.push(stats::ms(took));
        again.push(stats::ms(b.install(&bytes).await?.1));
        cold.switched(b.switch(&id).await?);
        warm.switched(b.switch(&naming).await?);
        warm.switched(b.switch(&id).await?);

        // Throughput around the switch: another fresh id, then the same id again after
        // switching away, so both loads run the same code.
        for (start, name) in [(Start::AtAnswer, "answer"), (Start::AtRequest, "request")] {
            let bytes = with_custom_section(base, format!("load from {name} {round}").as_bytes());
            let (id, _) = b.install(&bytes).await?;
            cold.loaded(start, b.switch_under_load(&id, ops, &registrations, start).await?);
            b.switch(&naming).await?;
            warm.loaded(start, b.switch_under_load(&id, ops, &registrations, start).await?);
            b.switch(&naming).await?;
        }
        let last = |s: &Samples| {
            (s.after_answer.last().map_or(0.0, |x| x.ops_per_sec), s.from_send.last().map_or(0.0, |x| x.ops_per_sec))
        };
        eprintln!(
            "module round {round}: ops/s after the answer / from the request: cold {:.0} / {:.0}, warm {:.0} / {:.0}",
            last(&cold).0,
            last(&cold).1,
            last(&warm).0,
            last(&warm).1
        );
    }
    Ok(ModuleSwitch {
        rounds,
        module_kib: base.len() as f64 / 1024.0,
        ops_after_switch: ops,
        cold: cold.summary(),
        warm: warm.summary(),
        install_fresh_ms: stats::median(fresh),
        install_again_ms: stats::median(again),
        compile_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_encodes_seven_bits_a_byte() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [127]);
        assert_eq!(leb128(128), [0x80, 1]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    /// The host loads the variant (same name, version and kind) under a new id.
    #[test]
    fn a_custom_section_makes_a_new_id_for_the_same_module() {
        let base = builtin::examples::ZONE_FIRST;
        let variant = with_custom_section(base, b"test");
        let runtime = Runtime::new(None).expect("runtime");
        let (base_id, base_info) = runtime.load(base).expect("base loads");
        let (id, info) = runtime.load(&variant).expect("the variant loads");
        assert_ne!(id, base_id);
        assert_eq!((info.name, info.version, info.kind), (base_info.name, base_info.version, base_info.kind));
    }
}
