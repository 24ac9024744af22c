//! The report: markdown tables on stdout, the same data as JSON under `target/bench/`. Every
//! comparison has one column group per peer (etcd, ZooKeeper), all from the same run.

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenarios::beats::Beats;
use crate::scenarios::expiry::Expiry;
use crate::scenarios::heal::Heal;
use crate::scenarios::module::ModuleSwitch;
use crate::scenarios::restart::Restart;
use crate::scenarios::wasm::WasmCost;
use crate::stats::Summary;

/// A peer's side of one comparison. `ratio` is Nacre ÷ peer: of ops/s for throughput rows, of
/// p99 latency for latency rows (there, lower is better).
#[derive(Debug, Clone, Serialize)]
pub struct PeerResult {
    pub peer: String,
    /// What the peer was asked to do (e.g. `put`, `setData`).
    pub op: String,
    pub result: Option<Summary>,
    pub ratio: Option<f64>,
}

/// One comparison at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub concurrency: Option<usize>,
    pub nacre: Option<Summary>,
    pub peers: Vec<PeerResult>,
    pub ratio_of: &'static str,
    pub note: String,
}

/// A peer's part of a row before the ratio: its name, its operation, its result.
pub type PeerRun = (String, String, Option<Summary>);

impl Row {
    pub fn throughput(scenario: &str, c: usize, nacre: Option<Summary>, peers: Vec<PeerRun>, note: &str) -> Row {
        let ratio = |p: &Option<Summary>| match (nacre, p) {
            (Some(n), Some(p)) if p.ops_per_sec > 0.0 => Some(n.ops_per_sec / p.ops_per_sec),
            _ => None,
        };
        let peers = peers.into_iter().map(|(peer, op, result)| PeerResult { ratio: ratio(&result), peer, op, result });
        Row {
            scenario: scenario.into(),
            concurrency: Some(c),
            nacre,
            peers: peers.collect(),
            ratio_of: "ops/s",
            note: note.into(),
        }
    }

    pub fn latency(scenario: &str, nacre: Summary, peers: Vec<PeerRun>, note: &str) -> Row {
        let ratio = |p: &Option<Summary>| p.filter(|p| p.p99_ms > 0.0).map(|p| nacre.p99_ms / p.p99_ms);
        let peers = peers.into_iter().map(|(peer, op, result)| PeerResult { ratio: ratio(&result), peer, op, result });
        Row {
            scenario: scenario.into(),
            concurrency: Some(1),
            nacre: Some(nacre),
            peers: peers.collect(),
            ratio_of: "p99 latency",
            note: note.into(),
        }
    }

    /// "N retried after a 503" for each side whose requests were answered 503 and sent again.
    fn retries(&self) -> Vec<String> {
        let nacre = ("Nacre", self.nacre.as_ref());
        let peers = self.peers.iter().map(|p| (p.peer.as_str(), p.result.as_ref()));
        std::iter::once(nacre)
            .chain(peers)
            .filter_map(|(who, result)| result.filter(|r| r.retried_503 > 0).map(|r| (who, r.retried_503)))
            .map(|(who, n)| format!("{who}: {n} retried after a 503"))
            .collect()
    }

    pub fn progress_line(&self) -> String {
        let f = |s: &Option<Summary>| {
            s.map_or("n/a".to_string(), |s| {
                format!(
                    "{:.0} ops/s p50 {:.2} p99 {:.2} cpu {:.0} µs/op",
                    s.ops_per_sec, s.p50_ms, s.p99_ms, s.cpu_us_per_op
                )
            })
        };
        let mut line = format!("{} c={}: Nacre {}", self.scenario, self.concurrency.unwrap_or(0), f(&self.nacre));
        for p in &self.peers {
            let ratio = p.ratio.map_or("n/a".into(), |r| format!("{r:.2}"));
            let _ = write!(line, " | {} {} {} (ratio {ratio})", p.peer, p.op, f(&p.result));
        }
        for retries in self.retries() {
            let _ = write!(line, " | {retries}");
        }
        line
    }

    fn peer(&self, name: &str) -> Option<&PeerResult> {
        self.peers.iter().find(|p| p.peer == name)
    }
}

/// A peer's figure in a [`Metric`].
#[derive(Debug, Clone, Serialize)]
pub struct PeerValue {
    pub peer: String,
    pub value: String,
    /// Nacre ÷ peer.
    pub ratio: Option<f64>,
}

/// A single figure beside each peer's, for what is not a load scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub nacre: String,
    pub peers: Vec<PeerValue>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `met`, `missed` or `not measured`.
    pub status: String,
}

impl Target {
    pub fn new(target: &str, measured: Option<(f64, String)>, met: impl Fn(f64) -> bool) -> Target {
        let (measured, status) = match measured {
            Some((v, text)) => (text, if met(v) { "met" } else { "missed" }),
            None => ("—".to_string(), "not measured"),
        };
        Target { target: target.into(), measured, status: status.into() }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Why the run stopped before its last scenario, if it did: what ran before is reported.
    pub failure: Option<String>,
    pub date: String,
    pub machine: String,
    pub command: String,
    /// The peers compared against, in column order.
    pub peers: Vec<String>,
    /// How each peer is driven.
    pub peer_protocols: Vec<String>,
    pub rounds: usize,
    pub rows: Vec<Row>,
    pub metrics: Vec<Metric>,
    pub wasm: Vec<WasmCost>,
    pub module: Option<ModuleSwitch>,
    pub heal: Option<Heal>,
    pub expiry: Option<Expiry>,
    pub beats: Option<Beats>,
    pub restart: Option<Restart>,
    pub targets: Vec<Target>,
}

fn num(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or("—".to_string(), |v| format!("{v:.2}×"))
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Nacre benchmark — {} — {}", self.date, self.machine);
        let peers = if self.peer_protocols.is_empty() { "none".to_string() } else { self.peer_protocols.join("; ") };
        let _ = writeln!(
            s,
            "`{}`; {} measured rounds after a warm-up round, medians. Peers: {peers}.\n",
            self.command, self.rounds
        );
        if let Some(failure) = &self.failure {
            let _ = writeln!(s, "**The run stopped early**, after the results below: {failure}\n");
        }
        if !self.rows.is_empty() {
            self.rows_table(&mut s);
        }
        if !self.metrics.is_empty() {
            self.metrics_table(&mut s);
        }
        if !self.wasm.is_empty() {
            wasm_table(&mut s, &self.wasm);
        }
        if let Some(m) = &self.module {
            module_table(&mut s, m);
        }
        if let Some(h) = &self.heal {
            heal_table(&mut s, h);
        }
        if let Some(e) = &self.expiry {
            expiry_table(&mut s, e);
        }
        if let Some(b) = &self.beats {
            beats_table(&mut s, b);
        }
        if !self.targets.is_empty() {
            s.push_str("| target | measured | status |\n|---|---|---|\n");
            for t in &self.targets {
                let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, t.status);
            }
        }
        s
    }

    fn rows_table(&self, s: &mut String) {
        s.push_str("| scenario | c | ops/round | Nacre ops/s | p50 ms | p99 ms | CPU µs/op |");
        let mut rule = String::from("|---|---:|---:|---:|---:|---:|---:|");
        for p in &self.peers {
            let _ = write!(s, " {p} ops/s | p50 ms | p99 ms | CPU µs/op | Nacre/{p} |");
            rule.push_str("---:|---:|---:|---:|---:|");
        }
        let _ = writeln!(s, " peer operations; note |\n{rule}---|");
        for r in &self.rows {
            let latency = r.ratio_of != "ops/s";
            let cpu =
                |x: &Summary| if x.cpu_us_per_op > 0.0 { format!("{:.0}", x.cpu_us_per_op) } else { "—".into() };
            let cells = |x: &Option<Summary>| match x {
                Some(x) if latency => format!("— | {} | {} | —", num(x.p50_ms), num(x.p99_ms)),
                Some(x) => format!("{} | {} | {} | {}", num(x.ops_per_sec), num(x.p50_ms), num(x.p99_ms), cpu(x)),
                None => "not run | — | — | —".to_string(),
            };
            let ops = r.nacre.or(r.peers.iter().find_map(|p| p.result)).map_or(0, |x| x.ops);
            let c = r.concurrency.map_or("—".into(), |c| c.to_string());
            let _ = write!(s, "| {} | {c} | {ops} | {} |", r.scenario, cells(&r.nacre));
            let mut ops_named = Vec::new();
            for name in &self.peers {
                let p = r.peer(name);
                let ratio = p
                    .and_then(|p| p.ratio)
                    .map_or("—".to_string(), |v| if latency { format!("{v:.2}× p99") } else { format!("{v:.2}×") });
                // No entry for a peer: the scenario has no counterpart there (Nacre alone).
                let peer_cells = p.map_or("— | — | — | —".to_string(), |p| cells(&p.result));
                let _ = write!(s, " {peer_cells} | {ratio} |");
                if let Some(p) = p {
                    ops_named.push(format!("{}: {}", p.peer, p.op));
                }
            }
            ops_named.push(r.note.clone());
            ops_named.extend(r.retries());
            let _ = writeln!(s, " {} |", ops_named.join("; "));
        }
        s.push('\n');
    }

    fn metrics_table(&self, s: &mut String) {
        s.push_str("| measurement | Nacre |");
        let mut rule = String::from("|---|---:|");
        for p in &self.peers {
            let _ = write!(s, " {p} | Nacre/{p} |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(s, " note |\n{rule}---|");
        for m in &self.metrics {
            let _ = write!(s, "| {} | {} |", m.name, m.nacre);
            for name in &self.peers {
                match m.peers.iter().find(|p| &p.peer == name) {
                    Some(p) => {
                        let _ = write!(s, " {} | {} |", p.value, ratio_cell(p.ratio));
                    }
                    None => s.push_str(" — | — |"),
                }
            }
            let _ = writeln!(s, " {} |", m.note);
        }
        s.push('\n');
    }

    /// The ops/s ratio against `peer` of a scenario at a concurrency.
    pub fn ratio(&self, scenario: &str, c: usize, peer: &str) -> Option<f64> {
        self.row(scenario, c)?.peer(peer).and_then(|p| p.ratio)
    }

    /// Nacre's ops/s in scenario `a` ÷ in scenario `b`, both at concurrency `c`.
    pub fn nacre_ratio(&self, a: &str, b: &str, c: usize) -> Option<f64> {
        let ops = |s: &str| self.row(s, c).and_then(|r| r.nacre).map(|n| n.ops_per_sec);
        Some(ops(a)? / ops(b)?).filter(|r| r.is_finite())
    }

    fn row(&self, scenario: &str, c: usize) -> Option<&Row> {
        self.rows.iter().find(|r| r.scenario == scenario && r.concurrency == Some(c))
    }
}

/// Wasm apply against the same guest compiled natively (not a peer comparison).
fn wasm_table(s: &mut String, wasm: &[WasmCost]) {
    s.push_str("| config.publish apply | Wasm µs/cmd | native µs/cmd | Wasm/native | commands |\n");
    s.push_str("|---|---:|---:|---:|---:|\n");
    for w in wasm {
        let ratio = ratio_cell(Some(w.wasm_us / w.native_us));
        let _ =
            writeln!(s, "| batch of {} | {:.1} | {:.1} | {ratio} | {} |", w.batch, w.wasm_us, w.native_us, w.commands);
    }
    s.push('\n');
}

fn module_table(s: &mut String, m: &ModuleSwitch) {
    let (c, w) = (&m.cold, &m.warm);
    let _ = writeln!(
        s,
        "Module switch ({:.0} KiB naming component; namespace-scoped; {} rounds, medians):\n",
        m.module_kib, m.rounds
    );
    s.push_str("| module switch | cold (fresh id) | warm (compiled) | ratio |\n|---|---:|---:|---:|\n");
    let ms_row = |s: &mut String, name: &str, cold: f64, warm: f64| {
        let ratio = cold / warm.max(f64::EPSILON);
        let _ = writeln!(s, "| {name} | {} ms | {} ms | cold/warm {ratio:.2}× |", num(cold), num(warm));
    };
    ms_row(s, "activate sent → answered", c.activate_ack_ms, w.activate_ack_ms);
    ms_row(s, "answer → every node serves a write with the new module", c.serving_ms, w.serving_ms);
    ms_row(s, "the same, worst round", c.serving_max_ms, w.serving_max_ms);
    let clients = crate::scenarios::module::CLIENTS;
    for (when, ca, wa) in
        [("after the answer", &c.after_answer, &w.after_answer), ("from the request", &c.from_send, &w.from_send)]
    {
        let _ = writeln!(
            s,
            "| persistent register c={clients}, first {} ops {when} | {} ops/s (p50 {} / p99 {} ms) | {} ops/s (p50 {} / p99 {} ms) | warm/cold {:.2}× ops/s |",
            m.ops_after_switch,
            num(ca.ops_per_sec),
            num(ca.p50_ms),
            num(ca.p99_ms),
            num(wa.ops_per_sec),
            num(wa.p50_ms),
            num(wa.p99_ms),
            wa.ops_per_sec / ca.ops_per_sec.max(f64::EPSILON)
        );
    }
    let _ = writeln!(
        s,
        "| upload (`POST /nacre/v1/modules`): fresh id (validated = compiled there) / same bytes again | {} ms | {} ms | — |",
        num(m.install_fresh_ms),
        num(m.install_again_ms)
    );
    let _ = writeln!(
        s,
        "| compile alone, in the bench process (same engine settings) | {} ms | — | — |\n",
        num(m.compile_ms)
    );
}

fn expiry_table(s: &mut String, e: &Expiry) {
    let _ = writeln!(
        s,
        "Expiry at scale (Nacre, self-preservation off; {} silent ephemeral instances in `public` over {} services, registered in {:.0} ms; timed from the last registration):\n",
        e.instances, e.services, e.register_ms
    );
    s.push_str("| expiry | measured | the instances' timeout |\n|---|---:|---:|\n");
    let _ = writeln!(
        s,
        "| no node lists a healthy instance (sampled services) | {:.0} ms | {} ms |",
        e.unhealthy_ms, e.unhealthy_after_ms
    );
    let _ = writeln!(s, "| every node counts no instance | {:.0} ms | {} ms |\n", e.deleted_ms, e.deleted_after_ms);
}

fn beats_table(s: &mut String, b: &Beats) {
    let _ = writeln!(
        s,
        "Beats at scale (Nacre; {} ephemeral instances over {} services, each beaten every {} ms after its previous beat; {} joined in {:.0} ms; {:.0} ms measured):\n",
        b.instances, b.services, b.interval_ms, b.joined, b.join_ms, b.window_ms
    );
    s.push_str("| beats | measured |\n|---|---:|\n");
    let _ =
        writeln!(s, "| beats/s sent (the schedule asks for) | {:.0} ({:.0}) |", b.beats_per_sec, b.scheduled_per_sec);
    let _ = writeln!(s, "| beat latency p50 / p99 | {:.2} / {:.2} ms |", b.p50_ms, b.p99_ms);
    let _ =
        writeln!(s, "| sent late against the schedule, p99 / worst | {:.0} / {:.0} ms |", b.late_p99_ms, b.late_max_ms);
    let _ = writeln!(s, "| cluster CPU per beat (three nodes) | {:.0} µs |", b.cpu_us_per_beat);
    let _ = writeln!(s, "| light beats answered 20404 (re-registered) | {} |", b.reregistered);
    let _ = writeln!(s, "| healthy instances listed, per node, of those that joined | {:?} |", b.healthy_per_node);
    let _ =
        writeln!(s, "| listed but never answered joined, or listed twice, per node | {:?} |\n", b.unexpected_per_node);
}

fn heal_table(s: &mut String, h: &Heal) {
    let _ = writeln!(
        s,
        "Convergence after a heal (Nacre, peer links through proxies; one node cut off, rotating; {} instances registered through the majority and {} through the cut-off node over {} services; {} rounds):\n",
        h.majority_writes, h.minority_writes, h.services, h.rounds
    );
    s.push_str("| heal | median | worst | every round |\n|---|---:|---:|---|\n");
    let row = |s: &mut String, name: &str, v: &[f64]| {
        let all: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        let worst = v.iter().copied().fold(0.0, f64::max);
        let _ =
            writeln!(s, "| {name} | {:.0} ms | {worst:.0} ms | {} |", crate::stats::median(v.to_vec()), all.join(", "));
    };
    row(s, "cut → both sides see it (`liveMembers`)", &h.cut_seen_ms);
    row(s, "heal → one `ap_digest` on all three (each then lists every instance)", &h.converge_ms);
    s.push('\n');
}
