//! What a run must show once every fault is undone and the nodes agree: no acknowledged write
//! lost, each key's history linearizable, no value from nowhere, answers in plain words, no
//! acknowledged deregistration back, every beating instance listed.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::clients::GROUP;
use crate::clients::Instance;
use crate::clients::call;
use crate::faults::Fault;
use crate::faults::Kind;
use crate::linearizability;
use crate::linearizability::Input;
use crate::linearizability::Operation;
use crate::linearizability::Output;
use crate::support::http;

/// History entries asked for per page (Nacos's largest page).
const HISTORY_PAGE_SIZE: usize = 500;
/// History entries a config keeps (the config module's `MAX_HISTORY_PER_CONFIG`, restated): a
/// key written more often than this has lost its oldest writes from the history, and check (a)
/// could not tell them from lost writes.
pub const HISTORY_PER_CONFIG: usize = 1_000;
/// Pages of one key's history read at most.
const MAX_HISTORY_PAGES: usize = 200;
/// Words that betray internals in a client-facing answer: openraft's `Debug` output, member
/// addresses, structs.
const INTERNALS: &[&str] = &["LogId", "Membership", "Vote", "leader_id", "node_id", "{", "127.0.0.1", "raft"];

/// Every content key `key` ever held, from its config history on `addr` (Nacos's history keeps
/// a new config's content, and for each change the content it replaced) plus `current`.
pub fn applied_contents(addr: &str, key: &str, current: Option<&str>) -> BTreeSet<String> {
    let mut contents: BTreeSet<String> = current.map(str::to_string).into_iter().collect();
    for page in 1..=MAX_HISTORY_PAGES {
        let query = http::form(&[
            ("search", "accurate"),
            ("dataId", key),
            ("group", GROUP),
            ("pageNo", &page.to_string()),
            ("pageSize", &HISTORY_PAGE_SIZE.to_string()),
        ]);
        let resp = call(addr, "GET", &format!("/nacos/v1/cs/history?{query}"), &[], b"")
            .unwrap_or_else(|e| panic!("history of {key}: {e:?}"));
        assert_eq!(resp.status, 200, "history of {key}: {}", resp.text());
        let items = resp.json()["pageItems"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return contents;
        }
        contents.extend(items.iter().filter_map(|item| item["content"].as_str().map(str::to_string)));
    }
    panic!("history of {key} is longer than {MAX_HISTORY_PAGES} pages");
}

/// (a) Every acknowledged write's content is in what the key held, and nothing the key held
/// was never written. Returns the number of acknowledged writes checked.
pub fn no_acknowledged_write_lost(
    ops: &[Operation],
    initial: &BTreeMap<String, Option<String>>,
    applied: &BTreeMap<String, BTreeSet<String>>,
) -> usize {
    let mut attempted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (key, value) in initial {
        attempted.entry(key).or_default().extend(value.as_deref());
    }
    let mut acknowledged = 0;
    let mut lost = Vec::new();
    for op in ops {
        let written = match &op.input {
            Input::Write(content) | Input::Cas { new: content, .. } => content,
            Input::Read | Input::Delete => continue,
        };
        let key_writes = attempted.entry(&op.key).or_default();
        key_writes.insert(written);
        assert!(
            key_writes.len() < HISTORY_PER_CONFIG,
            "{} was written more than its config history keeps ({HISTORY_PER_CONFIG}): shorten the key epoch",
            op.key
        );
        if op.output == Output::Ok {
            acknowledged += 1;
            if !applied.get(&op.key).is_some_and(|held| held.contains(written)) {
                lost.push(format!(
                    "{}: {written:?} (client {}, returned at {} ms)",
                    op.key,
                    op.client,
                    op.return_ns / 1_000_000
                ));
            }
        }
    }
    assert!(lost.is_empty(), "{} acknowledged writes are not in their key's history:\n{}", lost.len(), lost.join("\n"));
    for (key, held) in applied {
        let phantoms: Vec<&String> =
            held.iter().filter(|c| !attempted.get(key.as_str()).is_some_and(|a| a.contains(c.as_str()))).collect();
        assert!(phantoms.is_empty(), "{key} held contents nobody wrote: {phantoms:?}");
    }
    acknowledged
}

/// (b) Each key's history of publishes, CASes and linearizable reads is linearizable.
pub fn linearizable(ops: &[Operation], initial: &BTreeMap<String, Option<String>>) {
    let report = linearizability::check(ops, initial, linearizability::DEFAULT_MAX_STATES_PER_KEY);
    let violations: Vec<String> =
        report.violations().into_iter().map(|(key, why)| format!("--- {key}\n{why}")).collect();
    assert!(violations.is_empty(), "{} keys are not linearizable:\n{}", violations.len(), violations.join("\n"));
    assert!(report.gave_up().is_empty(), "the checker gave up on keys {:?}", report.gave_up());
}

/// A default (serializable) read may be stale, but never shows a content nobody wrote.
pub fn default_reads_show_written_values(
    reads: &[(String, Option<String>)],
    ops: &[Operation],
    initial: &BTreeMap<String, Option<String>>,
) {
    let written: BTreeSet<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match &op.input {
            Input::Write(content) | Input::Cas { new: content, .. } => Some((op.key.as_str(), content.as_str())),
            _ => None,
        })
        .chain(initial.iter().filter_map(|(key, value)| Some((key.as_str(), value.as_deref()?))))
        .collect();
    for (key, value) in reads {
        if let Some(content) = value {
            assert!(written.contains(&(key.as_str(), content.as_str())), "a default read of {key} showed {content:?}");
        }
    }
}

/// Every 503 a client saw is a plain sentence: no internals, and a failed read never talks of a
/// write.
pub fn answers_in_plain_words(texts: &BTreeSet<String>) {
    for text in texts {
        let leaked: Vec<&&str> = INTERNALS.iter().filter(|word| text.contains(**word)).collect();
        assert!(leaked.is_empty(), "a 503 shows internals {leaked:?}: {text}");
        let read_failure = text.strip_prefix(crate::clients::READ_PREFIX);
        assert!(!read_failure.is_some_and(|t| t.contains("the write")), "a failed read talks of a write: {text}");
        assert!(!text.is_empty() && read_failure != Some(""), "a 503 without a reason");
    }
}

/// The config value of `key` on `addr`, read linearizably (retried through a moving leader).
pub fn final_value(addr: &str, key: &str) -> Option<String> {
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        if let Ok(value) = crate::clients::read_linearizable(addr, key) {
            return value.map(|(content, _)| content);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("no linearizable read of {key} from {addr} after {ATTEMPTS} attempts");
}

fn listed(addr: &str, service: &str) -> Option<BTreeSet<String>> {
    let query = http::form(&[("serviceName", service)]);
    let resp = call(addr, "GET", &format!("/nacos/v1/ns/instance/list?{query}"), &[], b"").ok()?;
    (resp.status == 200).then(|| {
        resp.json()["hosts"]
            .as_array()
            .map(|hosts| hosts.iter().map(|h| format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"])).collect())
            .unwrap_or_default()
    })
}

/// What one node lists of the given instances' services.
pub fn listed_instances(addr: &str, instances: &[&Instance]) -> BTreeSet<Instance> {
    let services: BTreeSet<&str> = instances.iter().map(|i| i.service.as_str()).collect();
    let mut found = BTreeSet::new();
    for service in services {
        let hosts = listed(addr, service).unwrap_or_default();
        found.extend(
            instances.iter().filter(|i| i.service == service && hosts.contains(&i.addr())).map(|i| (*i).clone()),
        );
    }
    found
}

/// How long after each kill of the leader a write was first acknowledged again: from the kill
/// to the return of the first acknowledged write called after it.
pub fn unavailability_after_leader_kills_ms(faults: &[Fault], ops: &[Operation]) -> Vec<u64> {
    let acknowledged_writes: Vec<&Operation> = ops
        .iter()
        .filter(|op| op.output == Output::Ok && matches!(op.input, Input::Write(_) | Input::Cas { .. }))
        .collect();
    faults
        .iter()
        .filter(|f| f.was_leader && matches!(f.kind, Kind::KillQuickRestart | Kind::KillSlowRestart))
        .filter_map(|fault| {
            let first =
                acknowledged_writes.iter().filter(|op| op.call_ns >= fault.start_ns).map(|op| op.return_ns).min()?;
            Some((first - fault.start_ns) / 1_000_000)
        })
        .collect()
}
