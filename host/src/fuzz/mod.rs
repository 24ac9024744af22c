//! Fuzzing of the decoders that take bytes from outside (issue 15), on stable Rust, inside the
//! unit-test suite: each target feeds generated and mutated inputs to the code a node runs on
//! bytes it did not write, and asserts that nothing panics and that input the node refuses
//! changes nothing.
//!
//! Inputs come from a seed corpus (valid values, encoded) mutated by [`mutate`] (bit flips,
//! boundary bytes, inserted, deleted and duplicated ranges, truncation, random tails, splices
//! of two corpus entries, a varint overwritten with a huge one), and from structure-aware
//! generators that build well-formed values with extreme fields (terms, indexes and versions
//! near `u64::MAX`, empty and huge strings, NUL bytes, `../`, non-UTF-8 bytes), sometimes
//! mutated as well. Every input is checked under `catch_unwind`, so a failure names it.
//!
//! The targets and what each asserts (beyond "no panic"):
//! - [`params`] `query_and_form`: `api::params::Params::from_request` on generated query
//!   strings, form bodies and content types: the first value of a name wins, query before
//!   body, the body only for a form content type; `params::namespace` accepts only `public` or
//!   1 to 128 of `[A-Za-z0-9_-]` and names the field when it refuses; `api::guest::guest_request`
//!   carries the parameters unchanged and round-trips through its JSON form.
//! - [`peer`]: every peer RPC body as the server decodes it, then the check the server makes
//!   before anything acts on it. `raft_append`, `raft_vote`, `raft_transfer_leader`,
//!   `raft_snapshot`: what `raft::peer_guard::LocalView` lets through has terms and indexes far
//!   from any wrap (`MAX_TERM`, `MAX_TERM_AHEAD`, `MAX_LOG_INDEX`), comes from a voter, is
//!   consistent in itself, and (snapshots) carries an image `MachineImage::decode` accepts and a
//!   machine can be rebuilt from; a structurally valid message always decodes, and re-encodes
//!   to the same bytes. The proposals inside appended entries go through the forwarded-write
//!   checks. `forward_write`: an `Operation` that `validate()` accepts has well-formed fields;
//!   one it refuses, applied to a `state::Machine`, changes nothing (same digest) and answers
//!   its refusal, as every replica would. `ap_apply`, `ap_sync`, `ap_verify`, `ap_snapshot_page`,
//!   `ap_ping`: the AP RPCs of `ap::Ap`'s `serve_*` against a node-side AP store (see `ap`);
//!   `lease_renew`: renewals recorded count each lease once and never past the limit, a kept
//!   lease names the leader or a partition every node accepts, and a sweep of its partition
//!   reads it back;
//!   `batch`: a `net::coalesce::BatchRequest` is refused when nested or over
//!   `MAX_BATCH_CALLS` (the rule of `node::peer_port`'s batches, restated here: that needs
//!   a running node), else each of its calls goes through the target of its path.
//!   `ap_apply_result_syncs`: what `/nacre/ap/apply` accepts names a partition every peer
//!   accepts records of (it found a partition name over the key limit being stored by the
//!   responsible node and refused by every peer; `PartitionId::validate` now refuses it).
//! - [`ap`] `merge`: `ap::store::ApStore::merge` with generated and mutated
//!   `PartitionRecords`. Never panics; a merge that reports no change changes nothing; a
//!   second merge of the same batch changes nothing; a batch `PartitionRecords::validate`
//!   refuses, dropped as `Ap::merge` drops it, leaves `digest()` and `generation()` as they
//!   were, and what `validate` accepts keeps the store sane (keys under `e/`, sizes within the
//!   runtime's limits, valid namespaces, births not after versions); no version beyond the
//!   receiver's clock plus `store::MAX_CLOCK_SKEW_MS` is ever held or visible in `view()`;
//!   `next_version` stays strictly increasing (the clock never wraps or sticks).
//! - [`snapshot`] `machine_image`: `state::MachineImage::decode` on mutated images of real
//!   machines: an accepted image has its keys in strictly ascending order and rebuilds a
//!   machine whose own image decodes to the same state. `state_machine_open`:
//!   `raft::state_machine::StateMachine::open` on a data dir whose `snapshot.bin` is a mutated
//!   valid snapshot file: `Err` exactly when the file or its image does not decode, never a
//!   panic, and the replica it opens is the image's state; a valid file always opens.
//! - [`modules`] `load`: `runtime::Runtime::load` on mutated built-in components and random
//!   bytes: returns (within a deadline) `Ok` or a deterministic `Err` (`Invalid`, `TooLarge`,
//!   never `Engine`: an activation meeting that would stop the node), the id of a loaded module
//!   is the sha256 of its bytes, and `Operation::InstallModule { bytes }.validate()` agrees
//!   (accepts what loads, refuses for size exactly what is too large, accepts only `\0asm...`).
//!
//! Not covered: what the Raft library does with a message the guard lets through, and the guest
//! run of a forwarded AP command (both need a running node). The build has no overflow checks
//! (release), so a wrapping addition is no panic here: the properties (terms far from the
//! wrap, a strictly increasing clock) are what catch one.
//!
//! Iterations per target: `NACRE_FUZZ_ITERATIONS` (default [`DEFAULT_ITERATIONS`]); module
//! loading (a Cranelift compile whenever the bytes parse, up to about half a second) runs that
//! number divided by [`MODULE_LOAD_DIVISOR`] (at least one) unless
//! `NACRE_FUZZ_MODULE_ITERATIONS` says otherwise.
//! The seed is `NACRE_FUZZ_SEED` (decimal or `0x` hex; default [`DEFAULT_SEED`]). A failure
//! prints the target, seed, iteration and input (hex, truncated) with the command that replays
//! it. A long run:
//!
//! ```text
//! NACRE_FUZZ_ITERATIONS=200000 cargo test --release -p nacre --lib fuzz -- --nocapture
//! ```

mod ap;
mod modules;
pub(crate) mod mutate;
mod params;
mod peer;
mod snapshot;
mod wire;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use std::time::Instant;

use self::mutate::Rng;

/// Iterations per target when `NACRE_FUZZ_ITERATIONS` is not set: all targets together take
/// about 5 s in release on two cores.
pub(crate) const DEFAULT_ITERATIONS: u64 = 10_000;
/// Module loads are this many times fewer than other targets' iterations.
pub(crate) const MODULE_LOAD_DIVISOR: u64 = 500;
/// The seed when `NACRE_FUZZ_SEED` is not set.
pub(crate) const DEFAULT_SEED: u64 = 0x6e61_6372_6566_7a7a;
/// Bytes of a failing input printed (as hex).
const SHOWN_INPUT_BYTES: usize = 512;

/// How a target runs: its name (its test path under `fuzz::`), seed and iteration count.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub target: &'static str,
    pub seed: u64,
    pub iterations: u64,
}

impl Plan {
    /// The plan from the environment, for an ordinary target.
    pub fn from_env(target: &'static str) -> Plan {
        Plan {
            target,
            seed: seed_from_env(),
            iterations: env_u64("NACRE_FUZZ_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS),
        }
    }

    /// The plan from the environment, for a target as slow as a module compile.
    pub fn slow_from_env(target: &'static str) -> Plan {
        let iterations = env_u64("NACRE_FUZZ_MODULE_ITERATIONS").unwrap_or_else(|| {
            (env_u64("NACRE_FUZZ_ITERATIONS").unwrap_or(DEFAULT_ITERATIONS) / MODULE_LOAD_DIVISOR).max(1)
        });
        Plan { target, seed: seed_from_env(), iterations }
    }

    /// The random stream of one iteration: independent of every other iteration's, so a
    /// failure depends only on the seed and the iterations before it.
    fn rng(&self, iteration: u64) -> Rng {
        let name =
            self.target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        Rng::new(mutate::splitmix64(self.seed ^ name) ^ iteration)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")))
}

fn seed_from_env() -> u64 {
    env_u64("NACRE_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

/// Where a target's inputs come from.
pub(crate) struct Inputs<'a> {
    /// Valid encodings to mutate (and splice together).
    pub corpus: &'a [Vec<u8>],
    /// Builds a fresh, structurally valid input with extreme fields.
    pub generate: &'a dyn Fn(&mut Rng) -> Vec<u8>,
    /// Most operators stacked on one input.
    pub max_ops: usize,
}

/// One input of iteration `rng`: a corpus entry or a generated value, mutated three times in
/// four.
fn next_input(rng: &mut Rng, inputs: &Inputs<'_>) -> Vec<u8> {
    let mut input = if inputs.corpus.is_empty() || rng.one_in(2) {
        (inputs.generate)(rng)
    } else {
        rng.pick(inputs.corpus).clone()
    };
    if !rng.one_in(4) {
        mutate::mutate(rng, &mut input, inputs.corpus, inputs.max_ops);
    }
    input
}

/// Runs `check` on `plan.iterations` inputs; `check` panics (assertions) when a property
/// fails, and otherwise names how far the input got ("malformed", "accepted", ...). Fails the
/// test with a report naming the input, and how to replay it, at the first failure.
pub(crate) fn run(plan: &Plan, inputs: &Inputs<'_>, mut check: impl FnMut(&mut Rng, &[u8]) -> &'static str) {
    let started = Instant::now();
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for iteration in 0..plan.iterations {
        let mut rng = plan.rng(iteration);
        let input = next_input(&mut rng, inputs);
        match std::panic::catch_unwind(AssertUnwindSafe(|| check(&mut rng, &input))) {
            Ok(outcome) => *outcomes.entry(outcome).or_default() += 1,
            Err(panic) => panic!("{}", report(plan, iteration, &input, &panic_message(&*panic))),
        }
    }
    let outcomes: Vec<String> = outcomes.iter().map(|(outcome, count)| format!("{count} {outcome}")).collect();
    eprintln!(
        "fuzz::{}: {} inputs in {:.2?} (seed {:#x}), no failure: {}",
        plan.target,
        plan.iterations,
        started.elapsed(),
        plan.seed,
        outcomes.join(", ")
    );
}

/// Runs `work` on its own thread and waits at most `deadline` for it: a hang is a failure
/// (the thread is left behind; the test fails anyway). A panic in `work` is re-raised here.
pub(crate) fn within<T: Send + 'static>(deadline: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-input".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
            let _ = done.send(outcome);
        })
        .expect("a thread for one input");
    match answer.recv_timeout(deadline) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("no answer within {deadline:?}: the input hangs"),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

fn report(plan: &Plan, iteration: u64, input: &[u8], message: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fuzz target `{}` failed on input {} (seed {:#x}):", plan.target, iteration, plan.seed);
    let _ = writeln!(out, "  {message}");
    let _ = writeln!(out, "  input ({} bytes): {}", input.len(), hex_prefix(input, SHOWN_INPUT_BYTES));
    let _ = write!(
        out,
        "  replay: NACRE_FUZZ_SEED={:#x} NACRE_FUZZ_ITERATIONS={} cargo test --release -p nacre --lib fuzz::{}",
        plan.seed,
        iteration + 1,
        plan.target
    );
    if plan.target.starts_with("modules::") {
        let _ = write!(out, " (module loads: set NACRE_FUZZ_MODULE_ITERATIONS={} instead)", iteration + 1);
    }
    out
}

/// The first `limit` bytes of `bytes` in hex, with a note when there are more.
pub(crate) fn hex_prefix(bytes: &[u8], limit: usize) -> String {
    let shown = hex::encode(&bytes[..bytes.len().min(limit)]);
    if bytes.len() > limit { format!("{shown}... ({} more)", bytes.len() - limit) } else { shown }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_reported_with_its_input_and_replay() {
        let plan = Plan { target: "self_test", seed: 5, iterations: 100 };
        let corpus = vec![b"abc".to_vec()];
        let inputs = Inputs { corpus: &corpus, generate: &|rng: &mut Rng| rng.bytes(4), max_ops: 2 };
        let failed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            run(&plan, &inputs, |_, input| {
                assert!(input.len() < 6, "too long");
                "short"
            });
        }));
        let message = panic_message(&*failed.expect_err("an input longer than 5 bytes comes up"));
        assert!(message.contains("fuzz target `self_test` failed on input"), "{message}");
        assert!(message.contains("too long") && message.contains("NACRE_FUZZ_SEED=0x5"), "{message}");
    }

    #[test]
    fn a_hang_is_a_failure() {
        let hung = std::panic::catch_unwind(|| {
            within(Duration::from_millis(50), || std::thread::sleep(Duration::from_secs(5)))
        });
        assert!(panic_message(&*hung.unwrap_err()).contains("hangs"));
        assert_eq!(within(Duration::from_secs(5), || 7), 7);
    }

    #[test]
    fn inputs_replay_from_the_seed_and_iteration() {
        let plan = Plan { target: "self_test", seed: 9, iterations: 1 };
        let corpus = vec![b"some corpus entry".to_vec()];
        let inputs = Inputs { corpus: &corpus, generate: &|rng: &mut Rng| rng.bytes(8), max_ops: 3 };
        let first: Vec<_> = (0..50).map(|i| next_input(&mut plan.rng(i), &inputs)).collect();
        let again: Vec<_> = (0..50).map(|i| next_input(&mut plan.rng(i), &inputs)).collect();
        assert_eq!(first, again);
    }
}
