//! The report: one markdown table on stdout, the same data as JSON under `target/bench/`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenarios::module::ModuleSwitch;
use crate::scenarios::restart::Restart;
use crate::scenarios::wasm::WasmCost;
use crate::stats::Summary;

/// One comparison at one concurrency. `ratio` is Nacre ÷ peer of ops/s for throughput rows,
/// and of p99 latency for latency rows (there, lower is better).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub peer: String,
    pub concurrency: Option<usize>,
    pub nacre: Option<Summary>,
    pub peer_result: Option<Summary>,
    pub ratio: Option<f64>,
    pub ratio_of: &'static str,
    pub note: String,
}

impl Row {
    pub fn throughput(
        scenario: &str,
        peer: &str,
        c: usize,
        nacre: Option<Summary>,
        peer_result: Option<Summary>,
        note: &str,
    ) -> Row {
        let ratio = match (nacre, peer_result) {
            (Some(n), Some(p)) if p.ops_per_sec > 0.0 => Some(n.ops_per_sec / p.ops_per_sec),
            _ => None,
        };
        Row {
            scenario: scenario.into(),
            peer: peer.into(),
            concurrency: Some(c),
            nacre,
            peer_result,
            ratio,
            ratio_of: "ops/s",
            note: note.into(),
        }
    }

    pub fn latency(scenario: &str, peer: &str, nacre: Summary, peer_result: Summary, note: &str) -> Row {
        let ratio = (peer_result.p99_ms > 0.0).then(|| nacre.p99_ms / peer_result.p99_ms);
        Row {
            scenario: scenario.into(),
            peer: peer.into(),
            concurrency: Some(1),
            nacre: Some(nacre),
            peer_result: Some(peer_result),
            ratio,
            ratio_of: "p99 latency",
            note: note.into(),
        }
    }

    pub fn progress_line(&self) -> String {
        let f = |s: &Option<Summary>| {
            s.map_or("n/a".to_string(), |s| {
                format!("{:.0} ops/s p50 {:.2} p99 {:.2}", s.ops_per_sec, s.p50_ms, s.p99_ms)
            })
        };
        format!(
            "{} c={}: nacre {} | {} {} | ratio {}",
            self.scenario,
            self.concurrency.unwrap_or(0),
            f(&self.nacre),
            self.peer,
            f(&self.peer_result),
            self.ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
        )
    }
}

/// A single figure with its peer's, for what is not a load scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub nacre: String,
    pub peer: String,
    pub ratio: Option<f64>,
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
    pub date: String,
    pub machine: String,
    pub command: String,
    pub peer_protocol: String,
    pub rounds: usize,
    pub rows: Vec<Row>,
    pub metrics: Vec<Metric>,
    pub wasm: Vec<WasmCost>,
    pub module: Option<ModuleSwitch>,
    pub restart: Option<Restart>,
    pub targets: Vec<Target>,
}

fn num(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Nacre benchmark — {} — {}", self.date, self.machine);
        let _ = writeln!(
            s,
            "`{}`; peer: {}; {} measured rounds after a warm-up round, medians.\n",
            self.command, self.peer_protocol, self.rounds
        );
        if !self.rows.is_empty() {
            s.push_str("| scenario | c | ops/round | Nacre ops/s | p50 ms | p99 ms | peer | peer ops/s | p50 ms | p99 ms | Nacre/peer | note |\n");
            s.push_str("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|\n");
            for r in &self.rows {
                let cells = |x: &Option<Summary>, latency: bool| match x {
                    Some(x) if latency => format!("— | {} | {}", num(x.p50_ms), num(x.p99_ms)),
                    Some(x) => format!("{} | {} | {}", num(x.ops_per_sec), num(x.p50_ms), num(x.p99_ms)),
                    None => "not available | — | —".to_string(),
                };
                let latency = r.ratio_of != "ops/s";
                let ops = r.nacre.or(r.peer_result).map_or(0, |x| x.ops);
                let ratio = r.ratio.map_or("—".to_string(), |v| format!("{v:.2}× {}", r.ratio_of));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.scenario,
                    r.concurrency.map_or("—".into(), |c| c.to_string()),
                    ops,
                    cells(&r.nacre, latency),
                    r.peer,
                    cells(&r.peer_result, latency),
                    ratio,
                    r.note
                );
            }
            s.push('\n');
        }
        if !self.metrics.is_empty() {
            s.push_str("| measurement | Nacre | peer | Nacre/peer | note |\n|---|---:|---:|---:|---|\n");
            for m in &self.metrics {
                let ratio = m.ratio.map_or("—".to_string(), |v| format!("{v:.2}×"));
                let _ = writeln!(s, "| {} | {} | {} | {} | {} |", m.name, m.nacre, m.peer, ratio, m.note);
            }
            s.push('\n');
        }
        if let Some(m) = &self.module {
            module_table(&mut s, m);
        }
        if !self.targets.is_empty() {
            s.push_str("| target | measured | status |\n|---|---|---|\n");
            for t in &self.targets {
                let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, t.status);
            }
        }
        s
    }

    /// The ops/s ratio of a scenario at a concurrency.
    pub fn ratio(&self, scenario: &str, c: usize) -> Option<f64> {
        self.rows.iter().find(|r| r.scenario == scenario && r.concurrency == Some(c)).and_then(|r| r.ratio)
    }
}

/// The module-switch section: cold (a fresh id, compiled by two of the three nodes when they
/// apply the activation) beside warm (an id every node has compiled).
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
    let (ca, wa) = (&c.after_switch, &w.after_switch);
    let _ = writeln!(
        s,
        "| persistent register c={}, first {} ops after the answer | {} ops/s (p50 {} / p99 {} ms) | {} ops/s (p50 {} / p99 {} ms) | warm/cold {:.2}× ops/s |",
        crate::scenarios::module::CLIENTS,
        m.ops_after_switch,
        num(ca.ops_per_sec),
        num(ca.p50_ms),
        num(ca.p99_ms),
        num(wa.ops_per_sec),
        num(wa.p50_ms),
        num(wa.p99_ms),
        wa.ops_per_sec / ca.ops_per_sec.max(f64::EPSILON)
    );
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
