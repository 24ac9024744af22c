//! Wasm apply cost: the built-in config guest's `config.publish`, compiled natively (the
//! `nacre-config` rlib driven through the SDK's test adapter, the same adapter code the
//! component exports) against the embedded component through `nacre::runtime::Runtime::apply`
//! (the writes folded into an in-memory map, as the host commits them). Same payloads, same
//! batch shapes, rounds alternating, medians.

use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use nacre::runtime::GuestCommand;
use nacre::runtime::Runtime;
use nacre::state::Kv;
use nacre_guest_sdk::GuestRequest;
use nacre_guest_sdk::testing;
use serde::Serialize;

use super::throughput::value;
use crate::Settings;

/// Data ids the publishes cycle over.
const DATA_IDS: u64 = 1_000;
const NAMESPACE: &str = "public";
const TERM: u64 = 1;
/// Batch sizes measured: one command per call (light load) and a full group commit.
pub const BATCH_SIZES: [usize; 2] = [1, 64];

#[derive(Debug, Clone, Serialize)]
pub struct WasmCost {
    pub batch: usize,
    pub commands: u64,
    pub native_us: f64,
    pub wasm_us: f64,
}

fn payloads(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            GuestRequest::new("config.publish")
                .param("dataId", format!("bench.wasm.{}", i % DATA_IDS).as_str())
                .param("group", "BENCH")
                .param("content", value(i).as_str())
                .encode()
        })
        .collect()
}

fn native_round(payloads: &[Vec<u8>], batch: usize) -> Result<Duration> {
    testing::reset();
    let start = Instant::now();
    for (b, chunk) in payloads.chunks(batch).enumerate() {
        let base = (b * batch) as u64 + 1;
        let cmds = chunk.iter().enumerate().map(|(j, p)| (base + j as u64, base + j as u64, p.clone())).collect();
        for r in testing::apply_batch::<nacre_config::Config>(NAMESPACE, TERM, cmds) {
            r.map_err(|e| anyhow::anyhow!("native publish failed: {e:?}"))?;
        }
        testing::take_events();
    }
    Ok(start.elapsed())
}

fn wasm_round(runtime: &Runtime, id: &String, payloads: &[Vec<u8>], batch: usize) -> Result<Duration> {
    // The node's own map, seen whole (no namespace prefix), as the guest's keyspace.
    let mut kv = Kv::default();
    let start = Instant::now();
    for (b, chunk) in payloads.chunks(batch).enumerate() {
        let base = (b * batch) as u64 + 1;
        let cmds: Vec<GuestCommand> = chunk
            .iter()
            .enumerate()
            .map(|(j, p)| GuestCommand { index: base + j as u64, timestamp_ms: base + j as u64, payload: p.clone() })
            .collect();
        for outcome in runtime.apply(id, NAMESPACE, TERM, &cmds, &kv.scoped(Vec::new())).context("runtime apply")? {
            if let Err(e) = outcome.result {
                bail!("wasm publish failed: {e:?}");
            }
            for (k, v) in outcome.writes {
                match v {
                    Some(v) => kv.put(k, v),
                    None => kv.delete(&k),
                }
            }
        }
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

pub fn run(settings: &Settings) -> Result<Vec<WasmCost>> {
    let runtime = Runtime::new(None).context("wasm runtime")?;
    let (id, _) = runtime.load(nacre::builtin::CONFIG).context("load the config module")?;
    let n = settings.wasm_commands();
    let payloads = payloads(n);
    let mut out = Vec::new();
    for batch in BATCH_SIZES {
        let (mut native, mut wasm) = (Vec::new(), Vec::new());
        // Round 0 is warm-up.
        for round in 0..=settings.rounds {
            let a = native_round(&payloads, batch)?;
            let b = wasm_round(&runtime, &id, &payloads, batch)?;
            if round > 0 {
                native.push(a);
                wasm.push(b);
            }
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        out.push(WasmCost { batch, commands: n, native_us: per(median(native)), wasm_us: per(median(wasm)) });
    }
    Ok(out)
}
