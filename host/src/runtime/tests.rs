//! Tests of the runtime against the hostile fixture guest (`crate::builtin::fixtures::HOSTILE`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use nacre_protocol::{GuestReply, GuestRequest};

use super::host_state::{Overlay, merged_scan};
use super::limits::MAX_MODULE_BYTES;
use super::*;

/// The committed state, as the caller keeps it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MemKv(BTreeMap<Vec<u8>, Vec<u8>>);

impl KvRead for MemKv {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.0
            .range(start.to_vec()..)
            .take_while(|(key, _)| end.is_empty() || key.as_slice() < end)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl MemKv {
    fn commit(&mut self, outcome: &CommandOutcome) {
        for (key, value) in &outcome.writes {
            match value {
                Some(value) => self.0.insert(key.clone(), value.clone()),
                None => self.0.remove(key),
            };
        }
    }
}

/// One runtime with the fixture loaded, shared by the tests (each runtime reserves its pool).
fn shared() -> &'static (Runtime, ModuleId) {
    static SHARED: OnceLock<(Runtime, ModuleId)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = Runtime::new(None).expect("runtime");
        let (id, info) = runtime.load(crate::builtin::fixtures::HOSTILE).expect("fixture loads");
        assert_eq!(info.name, "hostile-fixture");
        assert_eq!(info.kind, ModuleKind::Config);
        (runtime, id)
    })
}

fn op(name: &str, params: &[(&str, &str)]) -> Vec<u8> {
    let mut req = GuestRequest::new(name);
    for (key, value) in params {
        req = req.param(*key, *value);
    }
    req.encode()
}

fn commands(payloads: Vec<Vec<u8>>) -> Vec<GuestCommand> {
    (0u64..)
        .zip(payloads)
        .map(|(i, payload)| GuestCommand { index: 100 + i, timestamp_ms: 1_700_000_000_000 + i, payload })
        .collect()
}

fn apply(payloads: Vec<Vec<u8>>, base: &MemKv) -> Vec<CommandOutcome> {
    let (runtime, id) = shared();
    let cmds = commands(payloads);
    let outcomes = runtime.apply(id, "public", 3, &cmds, base).expect("apply");
    assert_eq!(outcomes.len(), cmds.len());
    outcomes
}

fn body(outcome: &CommandOutcome) -> String {
    let bytes = outcome.result.as_ref().expect("command succeeded");
    GuestReply::decode(bytes).expect("a guest reply").body
}

fn trap_message(outcome: &CommandOutcome) -> &str {
    let error = outcome.result.as_ref().expect_err("command failed");
    assert_eq!(error.code, 500, "{error:?}");
    assert!(outcome.writes.is_empty() && outcome.events.is_empty());
    &error.message
}

#[test]
fn put_then_get_across_a_batch() {
    let outcomes = apply(
        vec![op("put", &[("key", "a"), ("value", "1")]), op("get", &[("key", "a")]), op("get", &[("key", "missing")])],
        &MemKv::default(),
    );
    assert_eq!(body(&outcomes[0]), "ok");
    assert_eq!(outcomes[0].writes, vec![(b"a".to_vec(), Some(b"1".to_vec()))]);
    assert_eq!(body(&outcomes[1]), "1");
    assert!(outcomes[1].writes.is_empty());
    assert_eq!(outcomes[2].result.as_ref().unwrap_err().code, 404);
}

#[test]
fn a_looping_command_fails_alone_and_its_neighbours_succeed() {
    let outcomes = apply(
        vec![
            op("put", &[("key", "first"), ("value", "1")]),
            op("loop", &[]),
            op("put", &[("key", "third"), ("value", "3")]),
            op("get", &[("key", "first")]),
        ],
        &MemKv::default(),
    );
    assert_eq!(body(&outcomes[0]), "ok");
    assert_eq!(trap_message(&outcomes[1]), "guest trapped: out of fuel");
    assert_eq!(body(&outcomes[2]), "ok");
    assert_eq!(outcomes[2].writes, vec![(b"third".to_vec(), Some(b"3".to_vec()))]);
    assert_eq!(body(&outcomes[3]), "1");
}

#[test]
fn hostile_commands_get_deterministic_errors() {
    let outcomes = apply(
        vec![
            op("hog", &[]),
            op("trap", &[]),
            op("deep", &[]),
            op("bad-key", &[]),
            op("put", &[("key", "after"), ("value", "ok")]),
        ],
        &MemKv::default(),
    );
    assert_eq!(trap_message(&outcomes[0]), "guest trapped: memory limit exceeded");
    assert_eq!(trap_message(&outcomes[1]), "guest trapped: wasm `unreachable` instruction executed");
    assert_eq!(trap_message(&outcomes[2]), "guest trapped: call stack exhausted");
    assert_eq!(trap_message(&outcomes[3]), "guest trapped: put: key of 10485760 bytes over the limit of 4096");
    assert_eq!(body(&outcomes[4]), "ok");
}

#[test]
fn batches_are_one_call_and_a_trap_costs_a_rerun() {
    // A runtime of its own, so that other tests' calls do not count.
    let runtime = Runtime::new(None).expect("runtime");
    let (id, _) = runtime.load(crate::builtin::fixtures::HOSTILE).expect("load");
    let put = |key: &str| op("put", &[("key", key), ("value", "v")]);
    let cmds = commands(vec![put("a"), op("get", &[("key", "a")]), put("b")]);
    let outcomes = runtime.apply(&id, "ns", 1, &cmds, &MemKv::default()).expect("apply");
    assert!(outcomes.iter().all(|outcome| outcome.result.is_ok()));
    assert_eq!(runtime.apply_calls(&id), (1, true), "one call for the whole batch");

    // [put, trap, put, put]: the batch traps in command 1; command 0 runs again for its
    // result, command 1 alone, then commands 2 and 3 as a batch.
    let cmds = commands(vec![put("a"), op("trap", &[]), put("b"), put("c")]);
    let outcomes = runtime.apply(&id, "ns", 1, &cmds, &MemKv::default()).expect("apply");
    assert!(outcomes[1].result.is_err());
    assert!([0, 2, 3].iter().all(|&i| outcomes[i].result.is_ok()));
    assert_eq!(runtime.apply_calls(&id), (1 + 4, true));
}

#[test]
fn malformed_payloads_and_unknown_ops_are_guest_refusals() {
    let outcomes = apply(vec![b"not json".to_vec(), op("nope", &[])], &MemKv::default());
    assert_eq!(outcomes[0].result.as_ref().unwrap_err().code, 400);
    assert!(outcomes[1].result.is_err());
}

#[test]
fn an_empty_apply_runs_nothing() {
    assert!(apply(Vec::new(), &MemKv::default()).is_empty());
}

/// splitmix64: a seeded, dependency-free generator for the randomized test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the reference model expects of one op: `Some(body)` for success, `None` for a trap.
enum Expect {
    Body(String),
    NotFound,
    Trap,
    Refused,
}

#[test]
fn batched_and_one_per_call_outcomes_are_identical() {
    let seed = std::env::var("NACRE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
    });
    println!("batched_and_one_per_call_outcomes_are_identical: NACRE_TEST_SEED={seed}");
    let mut rng = Rng(seed);
    let (runtime, id) = shared();
    for round in 0..12 {
        let mut base = MemKv::default();
        for key in 0..3 {
            base.0.insert(format!("k{key}").into_bytes(), b"base".to_vec());
        }
        // The reference model: the store as the ops should leave it.
        let mut model = base.0.clone();
        let len = 1 + rng.below(24) as usize;
        let mut payloads = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..len {
            let key = format!("k{}", rng.below(6));
            let (payload, expect) = match rng.below(100) {
                0..40 => {
                    let value = format!("v{}", rng.below(1000));
                    model.insert(key.clone().into_bytes(), value.clone().into_bytes());
                    let payload = op("put", &[("key", &key), ("value", &value)]);
                    (payload, Expect::Body("ok".into()))
                }
                40..75 => {
                    let expect = match model.get(key.as_bytes()) {
                        Some(value) => Expect::Body(String::from_utf8(value.clone()).unwrap()),
                        None => Expect::NotFound,
                    };
                    (op("get", &[("key", &key)]), expect)
                }
                75..82 => (op("trap", &[]), Expect::Trap),
                82..88 => (op("bad-key", &[]), Expect::Trap),
                88..92 => (op("deep", &[]), Expect::Trap),
                92..95 => (op("hog", &[]), Expect::Trap),
                95..97 => (op("loop", &[]), Expect::Trap),
                _ => (b"{broken".to_vec(), Expect::Refused),
            };
            payloads.push(payload);
            expected.push(expect);
        }
        let cmds = commands(payloads);

        let batched = runtime.apply(id, "ns", 1, &cmds, &base).expect("apply");
        let mut state = base.clone();
        let mut single = Vec::new();
        for cmd in &cmds {
            let outcome = runtime
                .apply(id, "ns", 1, std::slice::from_ref(cmd), &state)
                .expect("apply")
                .pop()
                .expect("one outcome");
            state.commit(&outcome);
            single.push(outcome);
        }
        assert_eq!(batched, single, "seed {seed}, round {round}");

        for (i, (outcome, expect)) in single.iter().zip(&expected).enumerate() {
            let context = format!("seed {seed}, round {round}, command {i}: {outcome:?}");
            match expect {
                Expect::Body(text) => assert_eq!(&body(outcome), text, "{context}"),
                Expect::NotFound => {
                    assert_eq!(outcome.result.as_ref().unwrap_err().code, 404, "{context}")
                }
                Expect::Trap => assert!(trap_message(outcome).starts_with("guest trapped: ")),
                Expect::Refused => {
                    assert_eq!(outcome.result.as_ref().unwrap_err().code, 400, "{context}")
                }
            }
        }
        assert_eq!(state.0, model, "seed {seed}, round {round}");
    }
}

#[test]
fn builtin_modules_load_and_config_emits_events() {
    let (runtime, _) = shared();
    let (_, naming) = runtime.load(crate::builtin::NAMING).expect("naming loads");
    assert_eq!(naming.kind, ModuleKind::Naming);
    let (config, info) = runtime.load(crate::builtin::CONFIG).expect("config loads");
    assert_eq!(info.kind, ModuleKind::Config);

    let publish = |data_id: &str, content: &str| {
        op("config.publish", &[("dataId", data_id), ("group", "G"), ("content", content)])
    };
    let delete = op("config.delete", &[("dataId", "a"), ("group", "G")]);
    let cmds = commands(vec![publish("a", "1"), publish("b", "2"), delete]);
    let batched = runtime.apply(&config, "public", 1, &cmds, &MemKv::default()).expect("apply");
    let mut state = MemKv::default();
    for (cmd, outcome) in cmds.iter().zip(&batched) {
        assert_eq!(body(outcome), "true");
        assert_eq!(outcome.events.len(), 1, "{outcome:?}");
        assert_eq!(outcome.events[0].topic, "config");
        let single = runtime.apply(&config, "public", 1, std::slice::from_ref(cmd), &state).expect("apply");
        assert_eq!(&single[0], outcome);
        state.commit(outcome);
    }
    let ctx = QueryContext { namespace: "public".into(), applied_index: 3, timestamp_ms: 0 };
    let get = |data_id: &str| {
        let request = op("config.get", &[("dataId", data_id), ("group", "G")]);
        runtime.query(&config, &ctx, &request, &state).expect("query")
    };
    assert_eq!(GuestReply::decode(&get("b").unwrap()).unwrap().body, "2");
    assert_eq!(get("a").unwrap_err().code, 404);
}

/// The built-in guests allocate from their 4 MiB initial memory (`nacre-guest-sdk`'s
/// allocator, `--initial-memory` in the host's build script): calls that fit never grow it,
/// which would cost the host two `mprotect`s and TLB flushes per call.
#[test]
fn typical_calls_of_the_builtin_guests_fit_their_initial_memory() {
    use super::call::CALLS_THAT_GREW_MEMORY;
    let grown = || CALLS_THAT_GREW_MEMORY.with(|calls| calls.get());
    let (runtime, hostile) = shared();
    let (naming, _) = runtime.load(crate::builtin::NAMING).expect("naming loads");
    let (config, _) = runtime.load(crate::builtin::CONFIG).expect("config loads");
    let before = grown();

    let metadata = format!("{{\"pad\":\"{}\"}}", "m".repeat(240));
    let registers: Vec<Vec<u8>> = (0..64)
        .map(|n| {
            let ip = format!("10.0.0.{n}");
            op("naming.register", &[("serviceName", "svc"), ("ip", &ip), ("port", "8080"), ("metadata", &metadata)])
        })
        .collect();
    let mut names = MemKv::default();
    for outcome in runtime.apply(&naming, "public", 1, &commands(registers), &names).expect("apply") {
        assert!(outcome.result.is_ok(), "{outcome:?}");
        names.commit(&outcome);
    }
    let ctx = QueryContext { namespace: "public".into(), applied_index: 64, timestamp_ms: 0 };
    let list = runtime.query(&naming, &ctx, &op("naming.list", &[("serviceName", "svc")]), &names).expect("query");
    assert!(list.is_ok(), "{list:?}");

    let content = "v".repeat(256);
    let publishes: Vec<Vec<u8>> = (0..64)
        .map(|n| op("config.publish", &[("dataId", &format!("d{n}")), ("group", "G"), ("content", &content)]))
        .collect();
    let mut configs = MemKv::default();
    for outcome in runtime.apply(&config, "public", 1, &commands(publishes), &configs).expect("apply") {
        assert!(outcome.result.is_ok(), "{outcome:?}");
        configs.commit(&outcome);
    }
    let get = runtime.query(&config, &ctx, &op("config.get", &[("dataId", "d7"), ("group", "G")]), &configs);
    assert!(get.expect("query").is_ok());
    assert_eq!(grown() - before, 0, "a typical call grew guest memory");

    // The count is live: a guest that outgrows its initial memory is seen.
    runtime.apply(hostile, "public", 1, &commands(vec![op("hog", &[])]), &MemKv::default()).expect("apply");
    assert!(grown() - before > 0, "the hostile fixture's hog grew memory unseen");
}

#[test]
fn queries_read_but_cannot_write() {
    let (runtime, id) = shared();
    let mut base = MemKv::default();
    base.0.insert(b"a".to_vec(), b"committed".to_vec());
    let ctx = QueryContext { namespace: "public".into(), applied_index: 7, timestamp_ms: 1 };
    let read = runtime.query(id, &ctx, &op("get", &[("key", "a")]), &base).expect("query");
    assert_eq!(GuestReply::decode(&read.unwrap()).unwrap().body, "committed");

    let write = op("put", &[("key", "a"), ("value", "x")]);
    let error = runtime.query(id, &ctx, &write, &base).expect("query").unwrap_err();
    assert_eq!(error.code, 500);
    assert_eq!(error.message, "guest trapped: query tried to write");

    let looping = runtime.query(id, &ctx, &op("loop", &[]), &base).expect("query");
    assert_eq!(looping.unwrap_err().message, "guest trapped: out of fuel");
}

/// A call that needs more than the inline budget is not failed by it, only handed back to be run
/// with the full one; within both, it answers the same either way.
#[test]
fn an_inline_budget_hands_back_long_calls_and_answers_short_ones() {
    let (runtime, id) = shared();
    let base = MemKv::default();
    let ctx = QueryContext { namespace: "public".into(), applied_index: 7, timestamp_ms: 1 };
    let short = op("count", &[("to", "1000")]);
    // Each turn of the loop costs a few units of fuel, so this is over the inline budget.
    let long_to = (limits::INLINE_FUEL * 2).to_string();
    let long = op("count", &[("to", &long_to)]);

    for budget in [Budget::Inline, Budget::Full] {
        let answer = runtime.query_within(id, &ctx, &short, &base, budget).expect("query").expect("answer");
        assert_eq!(GuestReply::decode(&answer).unwrap().body, "1000", "{budget:?}");
    }
    let over = runtime.query_within(id, &ctx, &long, &base, Budget::Inline);
    assert!(matches!(over, Err(RuntimeError::OverInlineBudget)), "{over:?}");
    let full = runtime.query_within(id, &ctx, &long, &base, Budget::Full).expect("query").expect("answer");
    assert_eq!(GuestReply::decode(&full).unwrap().body, long_to);

    let cmd = &commands(vec![long.clone()])[0];
    let over = runtime.apply_one(id, "public", cmd, &base, Budget::Inline);
    assert!(matches!(over, Err(RuntimeError::OverInlineBudget)), "{over:?}");
    let outcome = runtime.apply_one(id, "public", cmd, &base, Budget::Full).expect("apply");
    assert_eq!(body(&outcome), long_to);
    let cmd = &commands(vec![op("put", &[("key", "a"), ("value", "1")])])[0];
    let inline = runtime.apply_one(id, "public", cmd, &base, Budget::Inline).expect("apply");
    assert_eq!(inline, runtime.apply_one(id, "public", cmd, &base, Budget::Full).expect("apply"));
    assert_eq!(inline.writes, vec![(b"a".to_vec(), Some(b"1".to_vec()))]);

    // A call that never ends is the full budget's outcome, as before.
    let looping = runtime.query_within(id, &ctx, &op("loop", &[]), &base, Budget::Inline);
    assert!(matches!(looping, Err(RuntimeError::OverInlineBudget)));
}

#[test]
fn migrate_fails_when_the_fixture_refuses() {
    let (runtime, id) = shared();
    let info = runtime.describe(id).expect("describe");
    let ok = runtime.migrate(id, Some(&info), &MemKv::default()).expect("migrate");
    assert_eq!(ok, MigrateOutcome { result: Ok(()), writes: Vec::new() });

    let mut base = MemKv::default();
    base.0.insert(b"fail-migrate".to_vec(), b"1".to_vec());
    let failed = runtime.migrate(id, None, &base).expect("migrate");
    assert_eq!(failed.result.unwrap_err(), "guest trapped: wasm `unreachable` instruction executed");
    assert!(failed.writes.is_empty());
}

#[test]
fn the_disk_cache_serves_a_second_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = crate::builtin::fixtures::HOSTILE;
    let first = Runtime::new(Some(dir.path())).expect("runtime");
    let (id, info) = first.load(bytes).expect("load");
    assert_eq!(id, module_id(bytes));
    assert_eq!(first.compilations(), 1);
    let cached: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].starts_with(&format!("{id}-")) && cached[0].ends_with(".cwasm"));
    drop(first);

    let second = Runtime::new(Some(dir.path())).expect("runtime");
    assert!(!second.is_loaded(&id));
    assert_eq!(second.load(bytes).expect("load from cache"), (id.clone(), info));
    assert_eq!(second.compilations(), 0, "read from disk, not compiled");
    assert!(second.is_loaded(&id));
    let outcome = second
        .apply(&id, "ns", 1, &commands(vec![op("put", &[("key", "k"), ("value", "v")])]), &MemKv::default())
        .expect("apply");
    assert_eq!(body(&outcome[0]), "ok");

    // A corrupt cache file is replaced, not trusted.
    std::fs::write(dir.path().join(&cached[0]), b"garbage").unwrap();
    let third = Runtime::new(Some(dir.path())).expect("runtime");
    assert_eq!(third.load(bytes).expect("recompiled").0, id);
    assert_eq!(third.compilations(), 1);
}

/// Nodes sharing a machine's cache compile a module once between them; a shared directory
/// others may open is not used.
#[test]
fn nodes_on_one_machine_share_compiled_modules() {
    use std::os::unix::fs::PermissionsExt as _;
    let (node_a, node_b, node_c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let machine = tempfile::tempdir().unwrap();
    let shared = machine.path().join("nacre/modules");
    let bytes = crate::builtin::fixtures::HOSTILE;
    let ids: Vec<(ModuleId, u64)> = std::thread::scope(|scope| {
        let loads: Vec<_> = [node_a.path(), node_b.path()]
            .into_iter()
            .map(|dir| {
                let shared = shared.as_path();
                scope.spawn(move || {
                    let runtime = Runtime::with_caches(Some(dir), Some(shared)).expect("runtime");
                    let id = runtime.load(bytes).expect("load").0;
                    (id, runtime.compilations())
                })
            })
            .collect();
        loads.into_iter().map(|load| load.join().expect("no panic")).collect()
    });
    assert_eq!(ids.iter().map(|(_, compiled)| compiled).sum::<u64>(), 1, "one of the two compiled: {ids:?}");
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the shared directory is made private");
    for node in [node_a.path(), node_b.path()] {
        let own = std::fs::read_dir(node)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()));
        assert_eq!(own.count(), 1, "each node keeps its own copy: a restart needs nothing outside its data dir");
    }

    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let careless = Runtime::with_caches(Some(node_c.path()), Some(&shared)).expect("runtime");
    careless.load(bytes).expect("load");
    assert_eq!(careless.compilations(), 1, "a directory others may write to is not trusted");
}

/// Loads of the same bytes at the same time compile once: the later ones wait for the first.
#[test]
fn concurrent_loads_of_one_module_compile_it_once() {
    let runtime = Runtime::new(None).expect("runtime");
    let bytes = crate::builtin::fixtures::HOSTILE;
    let ids: Vec<ModuleId> = std::thread::scope(|scope| {
        let loads: Vec<_> = (0..3).map(|_| scope.spawn(|| runtime.load(bytes).expect("load").0)).collect();
        loads.into_iter().map(|load| load.join().expect("no panic")).collect()
    });
    assert!(ids.iter().all(|id| *id == module_id(bytes)), "{ids:?}");
    assert_eq!(runtime.compilations(), 1);
}

#[test]
fn bad_modules_are_rejected() {
    let (runtime, _) = shared();
    let garbage = runtime.load(b"definitely not wasm").unwrap_err();
    assert!(matches!(garbage, RuntimeError::Invalid(_)), "{garbage}");

    let core = runtime.load(b"\0asm\x01\x00\x00\x00").unwrap_err();
    assert!(matches!(&core, RuntimeError::Invalid(m) if m.contains("core Wasm module")), "{core}");

    // A valid, empty component: it exports nothing of the world.
    let empty = runtime.load(b"\0asm\x0d\x00\x01\x00").unwrap_err();
    assert!(matches!(&empty, RuntimeError::Invalid(m) if m.contains("state-machine")), "{empty}");

    let huge = vec![0u8; MAX_MODULE_BYTES + 1];
    let too_large = runtime.load(&huge).unwrap_err();
    assert!(matches!(too_large, RuntimeError::TooLarge { .. }), "{too_large}");

    let unknown = "0".repeat(64);
    assert!(matches!(runtime.apply(&unknown, "ns", 1, &[], &MemKv::default()), Err(RuntimeError::NotLoaded(_))));
    assert!(!runtime.is_loaded(&unknown));
}

#[test]
fn an_oversized_result_voids_its_writes_and_cuts_the_batch() {
    use super::apply::{Verdict, batch_verdict};
    use super::call::Finished;
    use super::host_state::Effects;
    use super::limits::MAX_RESULT_BYTES;

    let effects = |key: &[u8]| {
        let mut effects = Effects::default();
        effects.writes.insert(key.to_vec(), Some(b"v".to_vec()));
        effects
    };
    let finished = Finished {
        result: Ok(vec![Ok(b"small".to_vec()), Ok(vec![0; MAX_RESULT_BYTES + 1]), Ok(b"never judged".to_vec())]),
        prior: Overlay::new(),
        sealed: vec![effects(b"a"), effects(b"b")],
        current: effects(b"c"),
        begun: 3,
    };
    let (Verdict::Done(done), _) = batch_verdict(finished, 3) else {
        panic!("a completed batch");
    };
    // Command 2 saw command 1's writes, which are void: it must run again.
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].writes.len(), 1);
    let error = done[1].result.as_ref().unwrap_err();
    assert_eq!(error.code, 500);
    assert!(error.message.contains("over the limit"), "{error:?}");
    assert!(done[1].writes.is_empty());
}

#[test]
fn scans_merge_overlays_over_the_base() {
    let mut base = MemKv::default();
    for key in ["a", "b", "c", "d", "e", "f"] {
        base.0.insert(key.as_bytes().to_vec(), b"base".to_vec());
    }
    let layer = |entries: &[(&str, Option<&str>)]| -> Overlay {
        entries.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect()
    };
    // Earlier layers win: "b" is rewritten by the first and deleted by the second.
    let current = layer(&[("b", Some("current")), ("bb", Some("new"))]);
    let sealed = layer(&[("b", None), ("c", None), ("d", Some("sealed"))]);
    let prior = layer(&[("a", None), ("g", Some("prior"))]);
    let layers = [&current, &sealed, &prior];
    let rows = |start: &str, end: &str, limit| -> Vec<(String, String)> {
        merged_scan(&base, &layers, start.as_bytes(), end.as_bytes(), limit)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    };
    let all = rows("", "", 100);
    let expect = [("b", "current"), ("bb", "new"), ("d", "sealed"), ("e", "base"), ("f", "base"), ("g", "prior")];
    let expect: Vec<(String, String)> = expect.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(all, expect);
    // Limits and bounds, including pages of the base hidden by deletes.
    assert_eq!(rows("", "", 2), expect[..2]);
    assert_eq!(rows("c", "f", 100), expect[2..4]);
    assert_eq!(rows("a", "e", 1), expect[..1]);
    assert_eq!(rows("bb", "", 3), expect[1..4]);
    assert!(rows("f", "a", 10).is_empty());
}
