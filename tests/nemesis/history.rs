//! What the clients saw: every config operation with its call and return time (the
//! linearizability checker's input), the default reads, counts by kind and result, and every
//! distinct text a node answered a 503 with.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use crate::linearizability::Input;
use crate::linearizability::Operation;
use crate::linearizability::Output;

/// How one request ended, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Result {
    /// A definite answer: done (or, for a CAS, definitely refused; for a read, a value).
    Definite,
    /// Definitely no effect: never sent, or refused before anything was proposed.
    NoEffect,
    /// Sent, no definite answer: it may or may not have taken effect.
    Unknown,
}

#[derive(Default)]
struct Recorded {
    ops: Vec<Operation>,
    default_reads: Vec<(String, Option<String>)>,
    counts: BTreeMap<(&'static str, Result), u64>,
    unavailable_texts: BTreeSet<String>,
    unexpected: Vec<String>,
}

pub struct History {
    start: Instant,
    recorded: Mutex<Recorded>,
}

impl History {
    pub fn new() -> History {
        History { start: Instant::now(), recorded: Mutex::default() }
    }

    /// Nanoseconds since the run started: the checker's clock.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).expect("a run is shorter than 584 years")
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// An operation on a key that the checker takes (a definite or unknown outcome).
    pub fn record(&self, client: usize, key: &str, input: Input, output: Output, call_ns: u64) {
        let return_ns = self.now_ns();
        let op = Operation { client, key: key.to_string(), input, output, call_ns, return_ns };
        self.with(|r| r.ops.push(op));
    }

    pub fn record_default_read(&self, key: &str, value: Option<String>) {
        self.with(|r| r.default_reads.push((key.to_string(), value)));
    }

    pub fn count(&self, kind: &'static str, result: Result) {
        self.with(|r| *r.counts.entry((kind, result)).or_default() += 1);
    }

    pub fn unavailable_text(&self, text: &str) {
        self.with(|r| r.unavailable_texts.insert(text.to_string()));
    }

    /// An answer no client should ever get (a 500, a 4xx to a well-formed request).
    pub fn unexpected(&self, what: String) {
        self.with(|r| r.unexpected.push(what));
    }

    pub fn ops(&self) -> Vec<Operation> {
        self.with(|r| r.ops.clone())
    }

    pub fn default_reads(&self) -> Vec<(String, Option<String>)> {
        self.with(|r| r.default_reads.clone())
    }

    pub fn counts(&self) -> BTreeMap<(&'static str, Result), u64> {
        self.with(|r| r.counts.clone())
    }

    pub fn unavailable_texts(&self) -> BTreeSet<String> {
        self.with(|r| r.unavailable_texts.clone())
    }

    pub fn unexpected_answers(&self) -> Vec<String> {
        self.with(|r| r.unexpected.clone())
    }
}
