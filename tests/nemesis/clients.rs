//! The clients a nemesis run keeps busy: config clients (publish, compare-and-set, linearizable
//! and default reads, each to a node chosen at random) recording what they saw, and naming
//! clients that register, beat and deregister ephemeral instances.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use crate::history::History;
use crate::history::Result as Outcome;
use crate::linearizability::Input;
use crate::linearizability::Output;
use crate::rng::Rng;
use crate::support::http;
use crate::support::http::Failure;
use crate::support::http::Response;

/// Longest a client waits for one answer: past the nodes' own write timeout would only hide
/// their answers; shorter keeps clients moving through faults.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONFIGS: &str = "/nacos/v1/cs/configs";
pub const GROUP: &str = "NEMESIS";
const INSTANCE: &str = "/nacos/v1/ns/instance";
const BEAT: &str = "/nacos/v1/ns/instance/beat";
/// Pause between two operations of one client.
const THINK_TIME: Duration = Duration::from_millis(20);
/// How often a naming client beats each instance it keeps (Nacos clients: every 5 s).
pub const BEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Instances one naming client keeps registered and beating.
const INSTANCES_PER_CLIENT: usize = 4;

/// Marks the 503 texts of failed reads among those recorded.
pub const READ_PREFIX: &str = "read: ";

/// Texts a node's 503 may carry that say nothing was proposed: the request had no effect.
const NOTHING_WRITTEN: &[&str] = &["nothing was written"];

/// One request to `addr` with the client timeout.
pub fn call(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, Failure> {
    http::exchange(method, addr, path, headers, body, CLIENT_TIMEOUT)
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const LINEARIZABLE: (&str, &str) = ("X-Nacre-Consistency", "linearizable");

fn config_path(key: &str) -> String {
    format!("{CONFIGS}?{}", http::form(&[("dataId", key), ("group", GROUP)]))
}

/// Publish `content` to `key` (with `cas_md5`, a compare-and-set).
pub fn publish(addr: &str, key: &str, content: &str, cas_md5: Option<&str>) -> Result<Response, Failure> {
    let mut pairs = vec![("dataId", key), ("group", GROUP), ("content", content)];
    pairs.extend(cas_md5.map(|md5| ("casMd5", md5)));
    call(addr, "POST", CONFIGS, &[FORM], http::form(&pairs).as_bytes())
}

/// A linearizable read: `Some((content, md5))`, `None` for a missing key; `Err` when the read
/// failed (it then constrains nothing).
pub fn read_linearizable(addr: &str, key: &str) -> Result<Option<(String, String)>, String> {
    match call(addr, "GET", &config_path(key), &[LINEARIZABLE], b"") {
        Ok(resp) if resp.status == 200 => {
            let md5 = resp.header("Content-MD5").unwrap_or_default().to_string();
            Ok(Some((resp.text(), md5)))
        }
        Ok(resp) if resp.status == 404 => Ok(None),
        Ok(resp) => Err(format!("{} {}", resp.status, resp.text())),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// How a write's answer counts. Every 503 must be a plain sentence; 5xx other than 503 and any
/// 4xx but a CAS's 409 are answers no client should ever get.
fn classify_write(history: &History, kind: &'static str, answer: &Result<Response, Failure>) -> (Outcome, Output) {
    let (outcome, output) = match answer {
        Ok(resp) if resp.status == 200 && resp.text() == "true" => (Outcome::Definite, Output::Ok),
        Ok(resp) if resp.status == 409 && kind == "cas" => (Outcome::Definite, Output::CasFailed),
        Ok(resp) if resp.status == 503 => {
            let text = resp.text();
            history.unavailable_text(&text);
            if NOTHING_WRITTEN.iter().any(|said| text.contains(said)) {
                (Outcome::NoEffect, Output::Unknown)
            } else {
                (Outcome::Unknown, Output::Unknown)
            }
        }
        Ok(resp) => {
            history.unexpected(format!("{kind}: {} {}", resp.status, resp.text()));
            (Outcome::Unknown, Output::Unknown)
        }
        Err(Failure::NotSent(_)) => (Outcome::NoEffect, Output::Unknown),
        Err(Failure::NoAnswer(_)) => (Outcome::Unknown, Output::Unknown),
    };
    history.count(kind, outcome);
    (outcome, output)
}

/// The keys of a run: `at_a_time` of them in use during each `epoch` of the run, then the next
/// ones (the last set stays in use past the end).
pub struct Keys<'a> {
    pub all: &'a [String],
    pub at_a_time: usize,
    pub epoch: Duration,
}

impl Keys<'_> {
    /// The keys in use `elapsed_ns` into the run.
    fn current(&self, elapsed_ns: u64) -> &[String] {
        let sets = self.all.len() / self.at_a_time;
        let set = ((elapsed_ns / self.epoch.as_nanos() as u64) as usize).min(sets - 1);
        &self.all[set * self.at_a_time..(set + 1) * self.at_a_time]
    }
}

/// A config client: until `stop`, operations on random keys (of those in use) through random
/// nodes.
pub fn config_client(id: usize, addrs: &[String], keys: Keys<'_>, history: &History, stop: &AtomicBool, seed: u64) {
    let mut rng = Rng::new(seed);
    // The content and MD5 this client last read of each key: what its CASes expect.
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Acquire) {
        let call_ns = history.now_ns();
        let keys = keys.current(call_ns);
        let key = &keys[rng.index(keys.len())];
        let addr = &addrs[rng.index(addrs.len())];
        match rng.below(100) {
            0..30 => {
                sequence += 1;
                let content = format!("c{id}-{sequence}");
                let answer = publish(addr, key, &content, None);
                let (outcome, output) = classify_write(history, "publish", &answer);
                if outcome != Outcome::NoEffect {
                    history.record(id, key, Input::Write(content), output, call_ns);
                }
            }
            30..50 if seen.contains_key(key) => {
                let (expected, md5) = seen[key].clone();
                sequence += 1;
                let content = format!("c{id}-{sequence}");
                let answer = publish(addr, key, &content, Some(&md5));
                let (outcome, output) = classify_write(history, "cas", &answer);
                if outcome != Outcome::NoEffect {
                    history.record(id, key, Input::Cas { expected, new: content }, output, call_ns);
                }
            }
            30..80 => match read_linearizable(addr, key) {
                Ok(value) => {
                    history.count("linearizable read", Outcome::Definite);
                    let content = value.as_ref().map(|(content, _)| content.clone());
                    history.record(id, key, Input::Read, Output::Value(content), call_ns);
                    match value {
                        Some(found) => seen.insert(key.clone(), found),
                        None => seen.remove(key),
                    };
                }
                Err(reason) => {
                    if let Some(text) = reason.strip_prefix("503 ") {
                        history.unavailable_text(&format!("{READ_PREFIX}{text}"));
                    }
                    history.count("linearizable read", Outcome::NoEffect);
                }
            },
            _ => match call(addr, "GET", &config_path(key), &[], b"") {
                Ok(resp) if resp.status == 200 || resp.status == 404 => {
                    history.count("default read", Outcome::Definite);
                    history.record_default_read(key, (resp.status == 200).then(|| resp.text()));
                }
                Ok(resp) => {
                    history.unexpected(format!("default read: {} {}", resp.status, resp.text()));
                    history.count("default read", Outcome::NoEffect);
                }
                Err(_) => history.count("default read", Outcome::NoEffect),
            },
        }
        std::thread::sleep(THINK_TIME);
    }
}

/// One ephemeral instance a naming client registered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub service: String,
    pub ip: String,
    pub port: u16,
}

impl Instance {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    fn params(&self) -> Vec<(&str, String)> {
        vec![("serviceName", self.service.clone()), ("ip", self.ip.clone()), ("port", self.port.to_string())]
    }
}

/// What a naming client leaves behind: the instances it still beats, those whose
/// deregistration was acknowledged (and when), and those whose fate it cannot know.
#[derive(Debug, Default)]
pub struct NamingLedger {
    pub beating: Vec<Instance>,
    pub deregistered: Vec<(Instance, Instant)>,
    pub uncertain: Vec<Instance>,
}

/// When a naming client stops changing its instances, and when it stops beating them.
pub struct NamingStops {
    pub settle: AtomicBool,
    pub stop: AtomicBool,
}

/// A naming client: keeps [`INSTANCES_PER_CLIENT`] instances of its own service beating through
/// random nodes and now and then (until `settle`) replaces one: it stops beating it, then
/// deregisters it. Ports are never reused, so a deregistered instance can only come back by the
/// cluster's doing. `ledger` is shared so that the checks read what the client holds now.
pub fn naming_client(
    id: usize,
    addrs: &[String],
    history: &History,
    stops: &NamingStops,
    ledger: &std::sync::Mutex<NamingLedger>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut next_port = 1u16;
    let service = format!("nemesis-{id}");
    let ip = format!("10.77.{id}.1");
    while !stops.stop.load(Ordering::Acquire) {
        let mut ledger = ledger.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let settled = stops.settle.load(Ordering::Acquire);
        while ledger.beating.len() < INSTANCES_PER_CLIENT && !settled {
            let instance = Instance { service: service.clone(), ip: ip.clone(), port: next_port };
            next_port += 1;
            let query = http::form(
                &[
                    instance.params().iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
                    vec![("ephemeral", "true")],
                ]
                .concat(),
            );
            let answer = call(&addrs[rng.index(addrs.len())], "POST", &format!("{INSTANCE}?{query}"), &[], b"");
            history.count(
                "register",
                if answer.as_ref().is_ok_and(|r| r.status == 200) { Outcome::Definite } else { Outcome::Unknown },
            );
            // Registered or not, it is beaten from now on: a beat registers a missing instance.
            ledger.beating.push(instance);
        }
        if !settled && rng.chance(25) {
            let chosen = rng.index(ledger.beating.len());
            let instance = ledger.beating.remove(chosen);
            deregister(&mut rng, addrs, history, &mut ledger, instance);
        }
        for instance in &ledger.beating {
            let beat = serde_json::json!({"serviceName": instance.service, "ip": instance.ip, "port": instance.port,
                "cluster": "DEFAULT", "weight": 1.0, "metadata": {}, "scheduled": true})
            .to_string();
            let mut pairs = instance.params();
            pairs.push(("beat", beat));
            let query = http::form(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
            let answer = call(&addrs[rng.index(addrs.len())], "PUT", &format!("{BEAT}?{query}"), &[], b"");
            history.count(
                "beat",
                if answer.is_ok_and(|r| r.status == 200) { Outcome::Definite } else { Outcome::Unknown },
            );
        }
        drop(ledger);
        std::thread::sleep(BEAT_INTERVAL);
    }
}

/// Deregister an instance no longer beaten, through random nodes until one answers for sure.
fn deregister(rng: &mut Rng, addrs: &[String], history: &History, ledger: &mut NamingLedger, instance: Instance) {
    const ATTEMPTS: usize = 3;
    let mut pairs = instance.params();
    pairs.push(("ephemeral", "true".to_string()));
    let query = http::form(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    for _ in 0..ATTEMPTS {
        match call(&addrs[rng.index(addrs.len())], "DELETE", &format!("{INSTANCE}?{query}"), &[], b"") {
            Ok(resp) if resp.status == 200 => {
                history.count("deregister", Outcome::Definite);
                ledger.deregistered.push((instance, Instant::now()));
                return;
            }
            Err(Failure::NotSent(_)) => continue,
            Ok(resp) if resp.status == 503 => {
                history.unavailable_text(&resp.text());
                break;
            }
            Ok(resp) => {
                history.unexpected(format!("deregister: {} {}", resp.status, resp.text()));
                break;
            }
            Err(Failure::NoAnswer(_)) => break,
        }
    }
    history.count("deregister", Outcome::Unknown);
    ledger.uncertain.push(instance);
}
