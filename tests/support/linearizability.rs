//! A linearizability checker for per-key register histories with compare-and-set.
//!
//! What it checks: that a concurrent history of writes, CASes, deletes and reads on config
//! entries could have come from executing each operation atomically at one instant between its
//! call and its return (Herlihy & Wing 1990), against a sequential model of one entry: absent, or
//! holding some content.
//!
//! How: linearizability is compositional, so a history is linearizable iff each key's
//! sub-history is (P-compositionality); keys are checked one by one. Each key is searched with
//! the Wing & Gong algorithm (1993) with Lowe's improvements ("Testing for linearizability",
//! 2017): the call and return events sit in a doubly linked list, an operation is linearized
//! just in time (only while its call precedes every pending return), and each configuration
//! (set of linearized operations as a bitset, model state) is memoized so it is explored once.
//! This is the approach of Porcupine and Knossos. An explicit stack replaces recursion.
//!
//! Sound prunings keep highly concurrent histories tractable (see `Search::observe`,
//! `Search::unknown_worth_trying` and `Demand`): a read or failed CAS that applies now is
//! linearized without branching, since an operation that leaves the state alone can always move
//! to the front; an unknown write or CAS is placed only just before an operation that reads or
//! expects what it leaves, or before a failed CAS that it explains, and unknown operations with
//! the same effect are placed in call order; and a configuration is abandoned as soon as a
//! pending read or applied CAS needs a content that is not the current one and that no pending
//! operation can write any more. When the search still meets its bound, a simple sound check
//! (`doomed`) may prove a violation anyway: a read of a content overwritten before it was called.
//!
//! Unknown outcomes (timeout, 503, connection reset): the operation may have taken effect at any
//! instant after its call, or never. It is given a return at +infinity, so it never forces
//! anything to be linearized before it; placed, a write or delete applies, and a CAS applies if
//! its expected content matches. Never taking effect is the same as taking effect after every
//! other operation, so the search succeeds once every known outcome is placed: an unknown one is
//! never forced into a place, and a CAS is free not to apply. Unknown reads constrain nothing and
//! are dropped. Known outcomes are held strictly to the model.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::hash::Hasher;

pub type Key = String;

/// A bound on the configurations memoized per key, for callers without a better one. A typical
/// history needs a small multiple of its length; at the bound, a 3,000-operation key holds about
/// 200 MB of memo.
pub const DEFAULT_MAX_STATES_PER_KEY: u64 = 500_000;

/// How many operations of the longest linearizable prefix a violation's explanation lists.
const PREFIX_TAIL_SHOWN: usize = 5;

/// Contents longer than this are shortened in explanations.
const CONTENT_SHOWN: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    Write(String),
    Cas { expected: String, new: String },
    Delete,
    Read,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    Ok,
    CasFailed,
    Value(Option<String>),
    /// The client got no definite answer: the operation may or may not have taken effect.
    Unknown,
}

/// One operation as a client saw it. Times are monotonic nanoseconds from a common start;
/// `return_ns` is ignored (treated as +infinity) when `output` is `Unknown`.
#[derive(Debug, Clone)]
pub struct Operation {
    pub client: usize,
    pub key: Key,
    pub input: Input,
    pub output: Output,
    pub call_ns: u64,
    pub return_ns: u64,
}

#[derive(Debug)]
pub enum KeyVerdict {
    Linearizable,
    NotLinearizable {
        explanation: String,
    },
    /// The search met its bound on memoized configurations before reaching a verdict, and no
    /// violation is certain without it.
    GaveUp {
        explored: u64,
    },
}

/// A verdict for each key that appears in the history.
#[derive(Debug)]
pub struct Report {
    pub per_key: BTreeMap<Key, KeyVerdict>,
}

impl Report {
    /// The keys whose sub-history is not linearizable, with the explanation of each.
    pub fn violations(&self) -> Vec<(&Key, &str)> {
        let mut violations = Vec::new();
        for (key, verdict) in &self.per_key {
            if let KeyVerdict::NotLinearizable { explanation } = verdict {
                violations.push((key, explanation.as_str()));
            }
        }
        violations
    }

    /// The keys whose search hit its bound.
    pub fn gave_up(&self) -> Vec<&Key> {
        self.per_key
            .iter()
            .filter(|(_, verdict)| matches!(verdict, KeyVerdict::GaveUp { .. }))
            .map(|(k, _)| k)
            .collect()
    }

    /// True when every key was checked and found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.per_key.values().all(|verdict| matches!(verdict, KeyVerdict::Linearizable))
    }
}

/// Check a history key by key.
///
/// `initial` gives each key's state before the history (absent unless given). Past
/// `max_states_per_key` memoized configurations, a key's verdict is `GaveUp`, unless a simpler
/// check proves a violation (a read of a content overwritten before it was called, say).
///
/// Panics on caller bugs: a known outcome returning before its call, or an output that the input
/// cannot produce (say, a `Read` answered `Ok`).
pub fn check(history: &[Operation], initial: &BTreeMap<Key, Option<String>>, max_states_per_key: u64) -> Report {
    let mut by_key: BTreeMap<&Key, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        validate(op);
        let ops = by_key.entry(&op.key).or_default();
        // A read without an answer observed nothing: it cannot constrain the history.
        if !(op.input == Input::Read && op.output == Output::Unknown) {
            ops.push(op);
        }
    }
    let mut per_key = BTreeMap::new();
    for (key, ops) in by_key {
        let start = initial.get(key).and_then(|content| content.as_deref());
        per_key.insert(key.clone(), check_key(key, &ops, start, max_states_per_key));
    }
    Report { per_key }
}

fn validate(op: &Operation) {
    if op.output != Output::Unknown && op.call_ns > op.return_ns {
        panic!(
            "linearizability: operation returns before its call (call_ns {} > return_ns {}): {op:?}",
            op.call_ns, op.return_ns
        );
    }
    let consistent = matches!(
        (&op.input, &op.output),
        (_, Output::Unknown)
            | (Input::Write(_) | Input::Delete, Output::Ok)
            | (Input::Cas { .. }, Output::Ok | Output::CasFailed)
            | (Input::Read, Output::Value(_))
    );
    assert!(consistent, "linearizability: output {:?} cannot answer input {:?}: {op:?}", op.output, op.input);
}

fn check_key(key: &str, ops: &[&Operation], initial: Option<&str>, max_states: u64) -> KeyVerdict {
    let mut contents = Contents::default();
    let initial = contents.state(initial);
    let model: Vec<ModelOp> = ops.iter().map(|op| ModelOp::compile(op, &mut contents)).collect();
    let mut events = Events::new(ops);
    let demand = Demand::new(&model, contents.count());
    match Search::new(&model, &mut events, demand, initial, max_states).run() {
        Outcome::Linearizable => KeyVerdict::Linearizable,
        Outcome::GaveUp { explored, deepest } => {
            // Too many orders to try them all; but some violations show without trying any.
            let doomed = doomed(ops, &model, initial);
            if doomed.is_empty() {
                return KeyVerdict::GaveUp { explored };
            }
            let explanation = explain_doomed(key, ops, &contents, explored, &deepest, &doomed);
            KeyVerdict::NotLinearizable { explanation }
        }
        Outcome::Stuck(deepest) => {
            let explanation = explain(key, ops, &model, &events, &contents, &deepest);
            KeyVerdict::NotLinearizable { explanation }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model

/// The state id of an absent entry; contents get ids from 1.
const ABSENT: u32 = 0;

/// Contents interned to small ids, so that a model state is a `u32`: cheap to copy, compare and
/// memoize, whatever the size of the contents.
#[derive(Default)]
struct Contents {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Contents {
    fn id(&mut self, content: &str) -> u32 {
        if let Some(&id) = self.ids.get(content) {
            return id;
        }
        self.texts.push(content.to_string());
        let id = u32::try_from(self.texts.len()).expect("fewer than 2^32 distinct contents per key");
        self.ids.insert(content.to_string(), id);
        id
    }

    /// How many states there are: absent, and each content.
    fn count(&self) -> usize {
        self.texts.len() + 1
    }

    fn state(&mut self, content: Option<&str>) -> u32 {
        content.map_or(ABSENT, |content| self.id(content))
    }

    fn describe(&self, state: u32) -> String {
        let text = usize::try_from(state).ok().and_then(|id| id.checked_sub(1)).and_then(|i| self.texts.get(i));
        match text {
            Some(text) => format!("Some({})", quote(text)),
            None => "None".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CasOutcome {
    Applied,
    Failed,
    Unknown,
}

/// An operation with its outcome, as the model steps it. A write and a delete are the same
/// step: set the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ModelOp {
    Set { content: u32, unknown: bool },
    Cas { expected: u32, new: u32, outcome: CasOutcome },
    Read(u32),
}

impl ModelOp {
    /// Whether every outcome the model accepts for it leaves the state unchanged.
    fn is_observer(self) -> bool {
        matches!(self, ModelOp::Read(_) | ModelOp::Cas { outcome: CasOutcome::Failed, .. })
    }

    fn is_unknown(self) -> bool {
        matches!(self, ModelOp::Set { unknown: true, .. } | ModelOp::Cas { outcome: CasOutcome::Unknown, .. })
    }

    /// The state it needs to find, if any.
    fn consumes(self) -> Option<u32> {
        match self {
            ModelOp::Read(observed) => Some(observed),
            ModelOp::Cas { expected, outcome: CasOutcome::Applied, .. } => Some(expected),
            _ => None,
        }
    }

    /// The state it reads or compares with, if any.
    fn mentions(self) -> Option<u32> {
        match self {
            ModelOp::Read(observed) => Some(observed),
            ModelOp::Cas { expected, .. } => Some(expected),
            ModelOp::Set { .. } => None,
        }
    }

    /// The state it might find and make use of: what it needs, or what lets an unknown CAS apply.
    fn may_use(self) -> Option<u32> {
        match self {
            ModelOp::Cas { expected, outcome: CasOutcome::Unknown, .. } => Some(expected),
            _ => self.consumes(),
        }
    }

    /// The state it may leave, if it may change the state.
    fn produces(self) -> Option<u32> {
        match self {
            ModelOp::Set { content, .. } => Some(content),
            ModelOp::Cas { new, outcome: CasOutcome::Applied | CasOutcome::Unknown, .. } => Some(new),
            _ => None,
        }
    }

    fn compile(op: &Operation, contents: &mut Contents) -> ModelOp {
        match (&op.input, &op.output) {
            (Input::Write(content), output) => {
                ModelOp::Set { content: contents.id(content), unknown: *output == Output::Unknown }
            }
            (Input::Delete, output) => ModelOp::Set { content: ABSENT, unknown: *output == Output::Unknown },
            (Input::Cas { expected, new }, output) => {
                let outcome = match output {
                    Output::Ok => CasOutcome::Applied,
                    Output::CasFailed => CasOutcome::Failed,
                    _ => CasOutcome::Unknown,
                };
                ModelOp::Cas { expected: contents.id(expected), new: contents.id(new), outcome }
            }
            (Input::Read, Output::Value(content)) => ModelOp::Read(contents.state(content.as_deref())),
            (Input::Read, output) => {
                unreachable!("reads answered {output:?} are dropped or rejected before the search")
            }
        }
    }
}

/// The state an operation leads to from `state`, or `None` if the model rejects it there. An
/// unknown CAS is taken here only as applied: "not applied" is the same as taking effect after
/// everything else, which the search allows by stopping once every known outcome is placed.
fn successor(state: u32, op: ModelOp) -> Option<u32> {
    match op {
        ModelOp::Set { content, .. } => Some(content),
        ModelOp::Read(observed) => (observed == state).then_some(state),
        ModelOp::Cas { expected, new, outcome } => match (outcome, state == expected) {
            (CasOutcome::Applied | CasOutcome::Unknown, true) => Some(new),
            (CasOutcome::Failed, false) => Some(state),
            (CasOutcome::Applied | CasOutcome::Unknown, false) | (CasOutcome::Failed, true) => None,
        },
    }
}

/// Why the model rejects `op` in `state`, or `None` when it accepts it.
fn rejection(state: u32, op: ModelOp, contents: &Contents) -> Option<String> {
    let holds = contents.describe(state);
    match op {
        ModelOp::Set { .. } => None,
        ModelOp::Read(observed) if observed != state => Some(format!("rejected: the entry holds {holds}")),
        ModelOp::Cas { expected, outcome: CasOutcome::Applied, .. } if expected != state => {
            Some(format!("rejected: the entry holds {holds}, not the expected content"))
        }
        ModelOp::Cas { expected, outcome: CasOutcome::Failed, .. } if expected == state => {
            Some(format!("rejected: the entry holds the expected content {holds}, so the CAS would have applied"))
        }
        ModelOp::Read(_) | ModelOp::Cas { .. } => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The search

/// The head sentinel of the event list.
const HEAD: usize = 0;

/// One key's call and return events in time order, as a doubly linked list between a head
/// sentinel (node 0) and a tail sentinel (the last node). Linearizing an operation unlinks its
/// two events in O(1); backtracking relinks them in O(1), in the reverse order (dancing links).
/// Nodes 1..tail are in time order and their `op`/`is_call` never change.
struct Events {
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call node, its return node.
    partner: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl Events {
    fn new(ops: &[&Operation]) -> Events {
        // (time, is_return, unknown, op): at equal times calls come first, so an operation that
        // starts exactly when another returns counts as concurrent with it (the permissive
        // reading of a tie); unknown returns come last; the op id makes the order total, hence
        // deterministic.
        let mut order = Vec::with_capacity(2 * ops.len());
        for (id, op) in ops.iter().enumerate() {
            let unknown = op.output == Output::Unknown;
            order.push((op.call_ns, false, false, id));
            order.push((if unknown { u64::MAX } else { op.return_ns }, true, unknown, id));
        }
        order.sort_unstable();
        let nodes = order.len() + 2;
        let mut events = Events {
            op: vec![0; nodes],
            is_call: vec![false; nodes],
            partner: vec![0; nodes],
            prev: (0..nodes).map(|node| node.saturating_sub(1)).collect(),
            next: (0..nodes).map(|node| (node + 1).min(nodes - 1)).collect(),
        };
        let mut call_node = vec![0; ops.len()];
        for (i, &(_, is_return, _, id)) in order.iter().enumerate() {
            let node = i + 1;
            events.op[node] = id;
            events.is_call[node] = !is_return;
            if is_return {
                events.partner[call_node[id]] = node;
            } else {
                call_node[id] = node;
            }
        }
        events
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    /// The event nodes in time order, linked or not.
    fn all_nodes(&self) -> std::ops::Range<usize> {
        1..self.tail()
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Valid only in the reverse order of `unlink`s: the node's own links still name its old
    /// neighbours.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

enum Outcome {
    Linearizable,
    Stuck(Deepest),
    GaveUp { explored: u64, deepest: Deepest },
}

/// The deepest point the search reached: the operations linearized there, in order, and the
/// state they leave.
struct Deepest {
    order: Vec<usize>,
    state: u32,
}

/// One linearization step, to undo on backtracking.
struct Frame {
    call: usize,
    prev_state: u32,
    /// An observer taken without a choice (see [`Search::observe`]): undoing it leaves a
    /// configuration known to fail, so backtracking goes on to the choice before it.
    forced: bool,
}

enum Attempt {
    Linearized,
    /// Not taken here: the model rejects it, or it is not worth trying (from `observe`: no
    /// observer applies).
    Rejected,
    /// The configuration it leads to was explored already, and failed.
    Explored,
    GaveUp,
}

/// Where the search goes next.
#[derive(Clone, Copy)]
enum Next {
    /// A configuration just entered: take an observer if one applies, else scan from the start.
    Fresh,
    /// Try linearizing the operation of this call node, then those of the calls after it.
    Scan { node: usize },
}

type Memo = HashSet<Box<[u64]>, BuildHasherDefault<WordHasher>>;

/// For each state, how many operations not linearized yet need it (a read of it, a CAS known to
/// have applied on it) and how many may produce it. A state needed but no longer producible, and
/// not the current one, is a dead end however the rest is ordered: the search backtracks at
/// once instead of at the return of the operation that needs it, which may be far off when many
/// operations are in flight.
struct Demand {
    consumers: Vec<u32>,
    producers: Vec<u32>,
    /// How many states are needed and no longer producible.
    orphaned: usize,
}

impl Demand {
    fn new(model: &[ModelOp], states: usize) -> Demand {
        let mut demand = Demand { consumers: vec![0; states], producers: vec![0; states], orphaned: 0 };
        for &op in model {
            demand.restore(op);
        }
        demand
    }

    /// `op` was linearized: it no longer needs or produces anything.
    fn retire(&mut self, op: ModelOp) {
        self.count(op, false);
    }

    /// `op` is pending again (or for the first time).
    fn restore(&mut self, op: ModelOp) {
        self.count(op, true);
    }

    fn count(&mut self, op: ModelOp, pending: bool) {
        for (state, consumer) in [(op.consumes(), true), (op.produces(), false)] {
            let Some(state) = state else { continue };
            let index = state as usize;
            let was_orphaned = self.is_orphaned(index);
            let counter = if consumer { &mut self.consumers[index] } else { &mut self.producers[index] };
            *counter = if pending { *counter + 1 } else { *counter - 1 };
            self.orphaned = self.orphaned + usize::from(self.is_orphaned(index)) - usize::from(was_orphaned);
        }
    }

    fn is_orphaned(&self, index: usize) -> bool {
        self.consumers[index] > 0 && self.producers[index] == 0
    }

    /// Whether some pending operation needs a state other than `current` that nothing pending
    /// can produce any more.
    fn hopeless(&self, current: u32) -> bool {
        self.orphaned > usize::from(self.is_orphaned(current as usize))
    }
}

struct Search<'a> {
    model: &'a [ModelOp],
    /// Per unknown operation, the last one called before it with the same `Effect`.
    twin_before: Vec<Option<usize>>,
    events: &'a mut Events,
    demand: Demand,
    max_states: u64,
    /// The bitset of linearized operations followed by one word holding the model state: the
    /// memo's key, kept up to date in place so that a lookup allocates nothing.
    memo_key: Vec<u64>,
    memo: Memo,
    stack: Vec<Frame>,
    state: u32,
    /// Operations with a known outcome not linearized yet: the search succeeds at zero.
    known_left: usize,
    /// What the callable operations of the current configuration could use, once computed.
    wanted: Option<Wanted>,
    deepest: Deepest,
}

impl<'a> Search<'a> {
    fn new(model: &'a [ModelOp], events: &'a mut Events, demand: Demand, initial: u32, max_states: u64) -> Search<'a> {
        Search {
            model,
            twin_before: twins(model, events),
            events,
            demand,
            max_states,
            memo_key: vec![0; model.len().div_ceil(64) + 1],
            memo: Memo::default(),
            stack: Vec::with_capacity(model.len()),
            state: initial,
            known_left: model.iter().filter(|op| !op.is_unknown()).count(),
            wanted: None,
            deepest: Deepest { order: Vec::new(), state: initial },
        }
    }

    fn run(mut self) -> Outcome {
        let mut next = Next::Fresh;
        // Operations with unknown outcomes still pending at the end took effect after everything
        // else, or never: both are allowed, so they need no place.
        while self.known_left > 0 {
            let attempt = match next {
                // Already failed, in effect; recorded in the memo as such.
                Next::Fresh if self.demand.hopeless(self.state) => Attempt::Explored,
                Next::Fresh => self.observe(),
                Next::Scan { node } if !self.events.is_call[node] => {
                    // The earliest pending return: its operation must come before everything
                    // after it, and no choice made so far lets it. This configuration fails.
                    Attempt::Explored
                }
                Next::Scan { node } => self.linearize(node),
            };
            next = match (attempt, next) {
                (Attempt::Linearized, _) => Next::Fresh,
                (Attempt::Rejected, Next::Fresh) => Next::Scan { node: self.events.first() },
                (Attempt::Rejected, Next::Scan { node }) => Next::Scan { node: self.events.next[node] },
                (Attempt::Explored, _) => match self.backtrack() {
                    Some(next) => next,
                    None => return Outcome::Stuck(self.deepest),
                },
                (Attempt::GaveUp, _) => {
                    return Outcome::GaveUp { explored: self.memo.len() as u64, deepest: self.deepest };
                }
            };
        }
        Outcome::Linearizable
    }

    /// Take an observer (a read, or a CAS known to have failed) that applies in the current
    /// state and may be linearized next, without branching on the alternatives. This is sound:
    /// an observer leaves the state as it is, so in any linearization of the remaining
    /// operations it can move to the front; and nothing must precede it, since its call comes
    /// before every pending return. So this configuration succeeds iff the one after the
    /// observer does. Without this, the search tries every interleaving of the pending writes
    /// with the reads that saw the state before them, and high concurrency makes that
    /// exponential.
    fn observe(&mut self) -> Attempt {
        let mut node = self.events.first();
        while self.events.is_call[node] {
            let op = self.model[self.events.op[node]];
            if op.is_observer() && successor(self.state, op).is_some() {
                // `Explored` here means this configuration fails too.
                return self.enter(node, self.state, true);
            }
            node = self.events.next[node];
        }
        Attempt::Rejected
    }

    /// Linearize the operation of `call` next, unless the model rejects it, or the configuration
    /// it leads to was explored already, or it is an unknown outcome that nothing needs here.
    fn linearize(&mut self, call: usize) -> Attempt {
        let op = self.events.op[call];
        let Some(next_state) = successor(self.state, self.model[op]) else {
            return Attempt::Rejected;
        };
        if self.model[op].is_unknown() && !self.unknown_worth_trying(op, next_state) {
            return Attempt::Rejected;
        }
        match self.enter(call, next_state, false) {
            // Another operation may still lead somewhere new.
            Attempt::Explored => Attempt::Rejected,
            attempt => attempt,
        }
    }

    /// Whether unknown operation `op`, leaving `next_state`, is worth linearizing next.
    ///
    /// Not if an operation with the same effect, called before it, is still pending: both stay
    /// callable to the end, so they are interchangeable, and trying them in call order only
    /// spares the search every subset of them (retried writes, deletes, writes of contents
    /// nobody reads or expects).
    ///
    /// Nor unless it changes the state, and a callable operation could use the new state (a read
    /// of it, a CAS expecting it), or a CAS known to have failed expects the current state.
    /// Anywhere else it is useless. In a linearization, an unknown operation is followed, until
    /// the next change of state, by operations that do not change it; moved to just before the
    /// first of them that uses its state or needs the previous one to be gone, or else to the
    /// end, it leaves every one of them valid. Its call is the only bound on its place, so it
    /// may move later; and at the end it stands for "took effect last, or never". Without this,
    /// an unknown operation would be tried at every point until the end of the history, and
    /// proving a violation would explore every subset of them.
    fn unknown_worth_trying(&mut self, op: usize, next_state: u32) -> bool {
        if self.twin_before[op].is_some_and(|twin| !get_bit(&self.memo_key, twin)) || next_state == self.state {
            return false;
        }
        let wanted = match &self.wanted {
            Some(wanted) => wanted,
            None => self.wanted.insert(Wanted::find(self.model, self.events, self.state)),
        };
        wanted.failure_to_explain || wanted.uses.iter().any(|&(user, state)| state == next_state && user != op)
    }

    /// Enter the configuration where the operation of `call` is linearized next, leading to
    /// `next_state`, unless it was explored already.
    fn enter(&mut self, call: usize, next_state: u32, forced: bool) -> Attempt {
        let op = self.events.op[call];
        let state_word = self.memo_key.len() - 1;
        set_bit(&mut self.memo_key, op);
        self.memo_key[state_word] = u64::from(next_state);
        // A configuration in the memo is not on the current path (its set is larger than any
        // there), so it was explored to the end, and failed.
        if self.memo.contains(self.memo_key.as_slice()) {
            clear_bit(&mut self.memo_key, op);
            return Attempt::Explored;
        }
        if self.memo.len() as u64 >= self.max_states {
            return Attempt::GaveUp;
        }
        self.memo.insert(self.memo_key.clone().into_boxed_slice());
        self.stack.push(Frame { call, prev_state: self.state, forced });
        self.state = next_state;
        self.events.lift(call);
        self.count(op, false);
        self.note_depth();
        Attempt::Linearized
    }

    /// Undo steps back to the last choice, and say where to go on from it: the operations after
    /// it. `None` when no choice is left.
    fn backtrack(&mut self) -> Option<Next> {
        while let Some(frame) = self.stack.pop() {
            let op = self.events.op[frame.call];
            clear_bit(&mut self.memo_key, op);
            self.state = frame.prev_state;
            self.events.unlift(frame.call);
            self.count(op, true);
            if !frame.forced {
                return Some(Next::Scan { node: self.events.next[frame.call] });
            }
        }
        None
    }

    /// Account for `op` leaving (or rejoining) the pending operations.
    fn count(&mut self, op: usize, pending: bool) {
        let model = self.model[op];
        if pending {
            self.demand.restore(model);
        } else {
            self.demand.retire(model);
        }
        if !model.is_unknown() {
            self.known_left = if pending { self.known_left + 1 } else { self.known_left - 1 };
        }
        self.wanted = None;
    }

    /// Remember the first deepest point, for the explanation of a violation. The depth only
    /// grows, so this copies the stack at most once per operation.
    fn note_depth(&mut self) {
        if self.stack.len() > self.deepest.order.len() {
            self.deepest.order = self.stack.iter().map(|frame| self.events.op[frame.call]).collect();
            self.deepest.state = self.state;
        }
    }
}

/// What the callable operations of a configuration (those called before every pending return)
/// could use.
struct Wanted {
    /// (operation, state it reads or expects).
    uses: Vec<(usize, u32)>,
    /// Whether a CAS known to have failed expects the current state.
    failure_to_explain: bool,
}

impl Wanted {
    fn find(model: &[ModelOp], events: &Events, state: u32) -> Wanted {
        let mut wanted = Wanted { uses: Vec::new(), failure_to_explain: false };
        let mut node = events.first();
        while events.is_call[node] {
            let op = events.op[node];
            if let Some(used) = model[op].may_use() {
                wanted.uses.push((op, used));
            }
            if let ModelOp::Cas { expected, outcome: CasOutcome::Failed, .. } = model[op] {
                wanted.failure_to_explain |= expected == state;
            }
            node = events.next[node];
        }
        wanted
    }
}

/// What an unknown operation does, as far as the rest of the history can tell.
#[derive(PartialEq, Eq, Hash)]
enum Effect {
    Exact(ModelOp),
    /// Leaves a content that no operation reads or expects: which one makes no difference.
    Unmentioned {
        cas_expected: Option<u32>,
    },
}

/// For each unknown operation, the last one called before it with the same effect.
fn twins(model: &[ModelOp], events: &Events) -> Vec<Option<usize>> {
    let mentioned: HashSet<u32> = model.iter().filter_map(|op| op.mentions()).collect();
    let mut twin_before = vec![None; model.len()];
    let mut last_with_effect: HashMap<Effect, usize> = HashMap::new();
    for node in events.all_nodes().filter(|&node| events.is_call[node]) {
        let op = events.op[node];
        let effect = match model[op] {
            _ if !model[op].is_unknown() => continue,
            ModelOp::Set { content, .. } if !mentioned.contains(&content) => Effect::Unmentioned { cas_expected: None },
            ModelOp::Cas { expected, new, .. } if !mentioned.contains(&new) => {
                Effect::Unmentioned { cas_expected: Some(expected) }
            }
            exact => Effect::Exact(exact),
        };
        twin_before[op] = last_with_effect.insert(effect, op);
    }
    twin_before
}

fn get_bit(words: &[u64], bit: usize) -> bool {
    words[bit / 64] & (1 << (bit % 64)) != 0
}

fn set_bit(words: &mut [u64], bit: usize) {
    words[bit / 64] |= 1 << (bit % 64);
}

fn clear_bit(words: &mut [u64], bit: usize) {
    words[bit / 64] &= !(1 << (bit % 64));
}

/// A fast hasher for the memo's word slices: std's SipHash would dominate the search. FxHash's
/// multiply-rotate per word, finished with MurmurHash3's avalanche so that a difference in any
/// bit reaches the low bits the table indexes with.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_ne_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_ne_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

// ---------------------------------------------------------------------------------------------
// Certain violations, for when the search gives up

/// An operation that no order of the others can satisfy: it needs state `needs`, and every
/// operation that could leave that state is followed, in real time, by a known operation that
/// certainly leaves or sees another state and returns before this one is called.
struct Doomed {
    op: usize,
    needs: u32,
    /// (operation that could leave the state, or `None` for the initial state; the operation
    /// that changes or contradicts it in between).
    overtaken: Vec<(Option<usize>, usize)>,
}

/// The operations with a known outcome that need a state no order can give them. Sound: say
/// `op` is linearized with the state it needs; let p be the last operation before it to leave
/// that state (or the initial state). The witness for p comes after p and before `op` in real
/// time, so in the linearization too, and the state there is another: something after it, hence
/// after p, must leave the needed state again, a contradiction.
fn doomed(ops: &[&Operation], model: &[ModelOp], initial: u32) -> Vec<Doomed> {
    let return_ns = |op: usize| if model[op].is_unknown() { u64::MAX } else { ops[op].return_ns };
    // Known operations and the state they certainly leave or see, by call time.
    let mut witnesses: Vec<(u64, usize, u32)> =
        (0..model.len()).filter_map(|op| settled_state(model[op]).map(|state| (ops[op].call_ns, op, state))).collect();
    witnesses.sort_unstable();
    let witness = |after: Option<usize>, before: usize, needs: u32| {
        let start = after.map_or(0, |p| witnesses.partition_point(|&(call, _, _)| call <= return_ns(p)));
        witnesses[start..]
            .iter()
            .take_while(|&&(call, _, _)| call < ops[before].call_ns)
            .find(|&&(_, q, state)| state != needs && q != before && return_ns(q) < ops[before].call_ns)
            .map(|&(_, q, _)| q)
    };
    let mut producers: HashMap<u32, Vec<usize>> = HashMap::new();
    for (op, model_op) in model.iter().enumerate() {
        if let Some(state) = model_op.produces() {
            producers.entry(state).or_default().push(op);
        }
    }
    let mut doomed = Vec::new();
    for (op, model_op) in model.iter().enumerate() {
        let Some(needs) = model_op.consumes() else { continue };
        let initially = (needs == initial).then_some(None);
        let others = producers.get(&needs).into_iter().flatten().filter(|&&p| p != op).map(|&p| Some(p));
        // `None` as soon as one of them is not overtaken.
        let overtaken: Option<Vec<_>> = initially
            .into_iter()
            .chain(others)
            .map(|producer| Some((producer, witness(producer, op, needs)?)))
            .collect();
        if let Some(overtaken) = overtaken {
            doomed.push(Doomed { op, needs, overtaken });
        }
    }
    doomed
}

/// The state a known operation certainly leaves (a write, an applied CAS) or sees (a read).
fn settled_state(op: ModelOp) -> Option<u32> {
    match op {
        ModelOp::Set { content, unknown: false } => Some(content),
        ModelOp::Cas { new, outcome: CasOutcome::Applied, .. } => Some(new),
        ModelOp::Read(observed) => Some(observed),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations

fn explain(
    key: &str,
    ops: &[&Operation],
    model: &[ModelOp],
    events: &Events,
    contents: &Contents,
    deepest: &Deepest,
) -> String {
    let depth = deepest.order.len();
    let mut lines = vec![format!(
        "key {key:?}: its {} operations are not linearizable. The longest linearizable prefix found has {depth} \
         operations and leaves the entry at {}.",
        ops.len(),
        contents.describe(deepest.state)
    )];
    let shown = &deepest.order[depth.saturating_sub(PREFIX_TAIL_SHOWN)..];
    if !shown.is_empty() {
        lines.push(format!("The last {} operations of that prefix, in linearization order:", shown.len()));
        lines.extend(shown.iter().map(|&op| format!("  {}", describe_op(ops[op]))));
    }
    let (unknown, candidates): (Vec<usize>, Vec<usize>) =
        next_candidates(events, &deepest.order, ops.len()).into_iter().partition(|&op| model[op].is_unknown());
    lines.push("Operations that could not be linearized next (called before every pending return):".to_string());
    for &op in &candidates {
        let why = rejection(deepest.state, model[op], contents)
            .unwrap_or_else(|| "accepted here, but no linearization of the remaining operations follows".to_string());
        lines.push(format!("  {} [{why}]", describe_op(ops[op])));
    }
    if !unknown.is_empty() {
        lines.push(format!(
            "  (and {} operations with unknown outcomes, which may take effect there, later or never)",
            unknown.len()
        ));
    }
    let stranded: Vec<usize> =
        stranded(model, &deepest.order, deepest.state).into_iter().filter(|op| !candidates.contains(op)).collect();
    if !stranded.is_empty() {
        lines.push("Operations that can never be linearized after that prefix:".to_string());
        for op in stranded {
            let needs = model[op].consumes().map_or_else(String::new, |state| contents.describe(state));
            lines.push(format!(
                "  {} [needs the entry at {needs}, which no operation left can set]",
                describe_op(ops[op])
            ));
        }
    }
    lines.join("\n")
}

fn explain_doomed(
    key: &str,
    ops: &[&Operation],
    contents: &Contents,
    explored: u64,
    deepest: &Deepest,
    doomed: &[Doomed],
) -> String {
    let mut lines = vec![format!(
        "key {key:?}: its {} operations are not linearizable. The search gave up after {explored} configurations, \
         with a longest linearizable prefix of {} operations, but these operations can never be linearized, \
         whatever the order of the others:",
        ops.len(),
        deepest.order.len()
    )];
    for doomed in doomed.iter().take(PREFIX_TAIL_SHOWN) {
        lines.push(format!("  {}", describe_op(ops[doomed.op])));
        let needs = contents.describe(doomed.needs);
        if doomed.overtaken.is_empty() {
            lines.push(format!("    needs the entry at {needs}, which no operation leaves"));
        } else {
            lines.push(format!("    needs the entry at {needs}, but:"));
        }
        for &(producer, witness) in &doomed.overtaken {
            let left = producer.map_or_else(|| "the initial state".to_string(), |p| describe_op(ops[p]));
            lines.push(format!("      {left}"));
            lines.push(format!("        then, entirely in between: {}", describe_op(ops[witness])));
        }
    }
    if doomed.len() > PREFIX_TAIL_SHOWN {
        lines.push(format!("  (and {} more)", doomed.len() - PREFIX_TAIL_SHOWN));
    }
    lines.join("\n")
}

/// The operations not in `linearized` that need a state other than `state` which no operation
/// outside `linearized` produces: what made the search give up on a prefix early.
fn stranded(model: &[ModelOp], linearized: &[usize], state: u32) -> Vec<usize> {
    let mut done = vec![false; model.len()];
    for &op in linearized {
        done[op] = true;
    }
    let pending = || model.iter().enumerate().filter(|&(op, _)| !done[op]);
    let producible: HashSet<u32> = pending().filter_map(|(_, op)| op.produces()).collect();
    let hopeless = |needed: u32| needed != state && !producible.contains(&needed);
    pending().filter(|(_, op)| op.consumes().is_some_and(hopeless)).map(|(op, _)| op).collect()
}

/// The operations not in `linearized` whose call precedes the first return among them: the
/// ones the search may linearize next.
fn next_candidates(events: &Events, linearized: &[usize], count: usize) -> Vec<usize> {
    let mut done = vec![false; count];
    for &op in linearized {
        done[op] = true;
    }
    let mut candidates = Vec::new();
    for node in events.all_nodes() {
        let op = events.op[node];
        if done[op] {
            continue;
        }
        if !events.is_call[node] {
            break;
        }
        candidates.push(op);
    }
    candidates
}

fn describe_op(op: &Operation) -> String {
    let returned = match op.output {
        Output::Unknown => "no answer".to_string(),
        _ => format!("returned at {:.3} ms", millis(op.return_ns)),
    };
    format!(
        "client {}: {} -> {}, called at {:.3} ms, {returned}",
        op.client,
        describe_input(&op.input),
        describe_output(&op.output),
        millis(op.call_ns)
    )
}

fn describe_input(input: &Input) -> String {
    match input {
        Input::Write(content) => format!("Write({})", quote(content)),
        Input::Cas { expected, new } => format!("Cas {{ expected: {}, new: {} }}", quote(expected), quote(new)),
        Input::Delete => "Delete".to_string(),
        Input::Read => "Read".to_string(),
    }
}

fn describe_output(output: &Output) -> String {
    match output {
        Output::Ok => "Ok".to_string(),
        Output::CasFailed => "CasFailed".to_string(),
        Output::Value(Some(content)) => format!("Value(Some({}))", quote(content)),
        Output::Value(None) => "Value(None)".to_string(),
        Output::Unknown => "Unknown".to_string(),
    }
}

/// A content, quoted, and shortened when long: config contents can be kilobytes.
fn quote(content: &str) -> String {
    if content.chars().count() <= CONTENT_SHOWN {
        return format!("{content:?}");
    }
    let head: String = content.chars().take(CONTENT_SHOWN).collect();
    format!("{head:?}... ({} bytes)", content.len())
}

fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn op(client: usize, key: &str, input: Input, output: Output, call_ms: u64, return_ms: u64) -> Operation {
        Operation {
            client,
            key: key.to_string(),
            input,
            output,
            call_ns: call_ms * 1_000_000,
            return_ns: return_ms * 1_000_000,
        }
    }

    fn write(content: &str) -> Input {
        Input::Write(content.to_string())
    }

    fn cas(expected: &str, new: &str) -> Input {
        Input::Cas { expected: expected.to_string(), new: new.to_string() }
    }

    fn value(content: Option<&str>) -> Output {
        Output::Value(content.map(str::to_string))
    }

    fn check_fresh(history: &[Operation]) -> Report {
        check(history, &BTreeMap::new(), DEFAULT_MAX_STATES_PER_KEY)
    }

    fn assert_linearizable(history: &[Operation]) {
        let report = check_fresh(history);
        assert!(report.is_linearizable(), "expected linearizable: {report:?}");
    }

    /// The explanation of the only violation, which must be on `key`.
    fn only_violation(history: &[Operation], key: &str) -> String {
        let report = check_fresh(history);
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "expected one violation: {report:?}");
        assert_eq!(violations[0].0, key);
        assert!(report.gave_up().is_empty());
        assert!(!report.is_linearizable());
        violations[0].1.to_string()
    }

    #[test]
    fn empty_history_is_linearizable() {
        let report = check_fresh(&[]);
        assert!(report.per_key.is_empty());
        assert!(report.is_linearizable());
        assert!(report.violations().is_empty());
    }

    #[test]
    fn sequential_valid_history() {
        assert_linearizable(&[
            op(0, "a", Input::Read, value(None), 0, 1),
            op(0, "a", write("x"), Output::Ok, 2, 3),
            op(1, "a", Input::Read, value(Some("x")), 4, 5),
            op(1, "a", cas("x", "y"), Output::Ok, 6, 7),
            op(0, "a", cas("x", "z"), Output::CasFailed, 8, 9),
            op(0, "a", Input::Read, value(Some("y")), 10, 11),
            op(1, "a", Input::Delete, Output::Ok, 12, 13),
            op(0, "a", Input::Read, value(None), 14, 15),
        ]);
    }

    #[test]
    fn initial_state_is_honoured() {
        let history = [op(0, "a", Input::Read, value(Some("seed")), 0, 1)];
        let initial = BTreeMap::from([("a".to_string(), Some("seed".to_string()))]);
        assert!(check(&history, &initial, DEFAULT_MAX_STATES_PER_KEY).is_linearizable());
        only_violation(&history, "a");
    }

    #[test]
    fn concurrent_writes_a_read_may_see_either() {
        for seen in ["x", "y"] {
            assert_linearizable(&[
                op(0, "a", write("x"), Output::Ok, 0, 10),
                op(1, "a", write("y"), Output::Ok, 0, 10),
                op(2, "a", Input::Read, value(Some(seen)), 11, 12),
            ]);
        }
        // Reads during the writes may see x then y, but not x again: each write takes effect once.
        let explanation = only_violation(
            &[
                op(0, "a", write("x"), Output::Ok, 0, 10),
                op(1, "a", write("y"), Output::Ok, 0, 10),
                op(2, "a", Input::Read, value(Some("x")), 1, 2),
                op(2, "a", Input::Read, value(Some("y")), 3, 4),
                op(2, "a", Input::Read, value(Some("x")), 5, 6),
            ],
            "a",
        );
        assert!(explanation.contains("Value(Some(\"x\"))"), "{explanation}");
    }

    #[test]
    fn stale_read_after_completed_write_is_a_violation() {
        let explanation = only_violation(
            &[op(0, "a", write("x"), Output::Ok, 0, 10), op(1, "a", Input::Read, value(None), 20, 30)],
            "a",
        );
        assert!(explanation.contains("key \"a\""), "{explanation}");
        assert!(explanation.contains("prefix found has 1 operations"), "{explanation}");
        assert!(explanation.contains("client 1: Read -> Value(None), called at 20.000 ms, returned at 30.000 ms"));
        assert!(explanation.contains("rejected: the entry holds Some(\"x\")"), "{explanation}");
    }

    #[test]
    fn lost_acknowledged_write_is_a_violation() {
        let explanation = only_violation(
            &[
                op(0, "a", write("old"), Output::Ok, 0, 10),
                op(0, "a", write("new"), Output::Ok, 20, 30),
                op(1, "a", Input::Read, value(Some("old")), 40, 50),
            ],
            "a",
        );
        assert!(explanation.contains("prefix found has 2 operations"), "{explanation}");
    }

    #[test]
    fn cas_applied_against_the_wrong_value_is_a_violation() {
        // Against a content overwritten before the CAS was called.
        let explanation = only_violation(
            &[
                op(0, "a", write("old"), Output::Ok, 0, 10),
                op(0, "a", write("x"), Output::Ok, 20, 30),
                op(1, "a", cas("old", "y"), Output::Ok, 40, 50),
            ],
            "a",
        );
        assert!(explanation.contains("prefix found has 2 operations"), "{explanation}");
        assert!(
            explanation.contains("rejected: the entry holds Some(\"x\"), not the expected content"),
            "{explanation}"
        );
        // Against a content never written: no prefix helps, and the explanation says why.
        let explanation = only_violation(
            &[op(0, "a", write("x"), Output::Ok, 0, 10), op(1, "a", cas("other", "y"), Output::Ok, 20, 30)],
            "a",
        );
        assert!(explanation.contains("prefix found has 0 operations"), "{explanation}");
        let stranded = "client 1: Cas { expected: \"other\", new: \"y\" } -> Ok, called at 20.000 ms, \
                        returned at 30.000 ms [needs the entry at Some(\"other\"), which no operation left can set]";
        assert!(explanation.contains(stranded), "{explanation}");
    }

    #[test]
    fn cas_failed_although_the_value_matched_is_a_violation() {
        let explanation = only_violation(
            &[op(0, "a", write("x"), Output::Ok, 0, 10), op(1, "a", cas("x", "y"), Output::CasFailed, 20, 30)],
            "a",
        );
        assert!(explanation.contains("the CAS would have applied"), "{explanation}");
    }

    #[test]
    fn cas_failed_is_fine_when_a_concurrent_write_may_precede_it() {
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", cas("x", "y"), Output::CasFailed, 20, 30),
            op(2, "a", write("z"), Output::Ok, 25, 35),
        ]);
    }

    #[test]
    fn unknown_write_that_becomes_visible_is_linearizable() {
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", write("y"), Output::Unknown, 20, 21),
            op(2, "a", Input::Read, value(Some("x")), 30, 40),
            op(2, "a", Input::Read, value(Some("y")), 500, 510),
        ]);
    }

    #[test]
    fn unknown_write_never_visible_is_linearizable() {
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", write("y"), Output::Unknown, 20, 21),
            op(2, "a", Input::Read, value(Some("x")), 30, 40),
            op(2, "a", Input::Read, value(Some("x")), 500, 510),
        ]);
    }

    #[test]
    fn unknown_outcomes_ignore_their_return_time() {
        // Whatever the caller put there: the operation may take effect any time after its call.
        assert_linearizable(&[
            op(1, "a", write("y"), Output::Unknown, 20, 0),
            op(2, "a", Input::Read, value(None), 30, 40),
            op(2, "a", Input::Read, value(Some("y")), 50, 60),
        ]);
    }

    #[test]
    fn unknown_write_cannot_take_effect_before_its_call() {
        only_violation(
            &[op(2, "a", Input::Read, value(Some("y")), 0, 10), op(1, "a", write("y"), Output::Unknown, 20, 21)],
            "a",
        );
    }

    #[test]
    fn unknown_cas_seen_applied_or_not_is_linearizable() {
        for later in ["x", "y"] {
            assert_linearizable(&[
                op(0, "a", write("x"), Output::Ok, 0, 10),
                op(1, "a", cas("x", "y"), Output::Unknown, 20, 21),
                op(2, "a", Input::Read, value(Some(later)), 30, 40),
                op(2, "a", Input::Read, value(Some(later)), 50, 60),
            ]);
        }
        // Not applied, then a read sees x, then it applies, then the CAS can never apply again.
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", cas("x", "y"), Output::Unknown, 20, 21),
            op(2, "a", Input::Read, value(Some("x")), 30, 40),
            op(2, "a", Input::Read, value(Some("y")), 50, 60),
        ]);
    }

    #[test]
    fn unobserved_unknown_write_can_explain_a_failed_cas() {
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", write("z"), Output::Unknown, 20, 21),
            op(2, "a", cas("x", "y"), Output::CasFailed, 30, 40),
        ]);
        // Not when it was called after the CAS returned.
        let explanation = only_violation(
            &[
                op(0, "a", write("x"), Output::Ok, 0, 10),
                op(2, "a", cas("x", "y"), Output::CasFailed, 30, 40),
                op(1, "a", write("z"), Output::Unknown, 50, 51),
            ],
            "a",
        );
        assert!(explanation.contains("the CAS would have applied"), "{explanation}");
    }

    #[test]
    fn unknown_reads_are_dropped() {
        assert_linearizable(&[
            op(0, "a", write("x"), Output::Ok, 0, 10),
            op(1, "a", Input::Read, Output::Unknown, 20, 30),
        ]);
    }

    #[test]
    fn keys_are_checked_independently() {
        let report = check_fresh(&[
            op(0, "good", write("x"), Output::Ok, 0, 10),
            op(0, "bad", write("x"), Output::Ok, 0, 10),
            op(1, "good", Input::Read, value(Some("x")), 20, 30),
            op(1, "bad", Input::Read, value(Some("never")), 20, 30),
            op(2, "other", Input::Read, value(None), 5, 6),
        ]);
        assert!(matches!(report.per_key["good"], KeyVerdict::Linearizable));
        assert!(matches!(report.per_key["other"], KeyVerdict::Linearizable));
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "{report:?}");
        assert_eq!(violations[0].0, "bad");
        assert!(violations[0].1.contains("key \"bad\""));
    }

    #[test]
    fn search_past_its_bound_gives_up() {
        let history: Vec<Operation> = (0..10).map(|i| op(i, "a", write(&format!("v{i}")), Output::Ok, 0, 10)).collect();
        let report = check(&history, &BTreeMap::new(), 3);
        assert!(matches!(report.per_key["a"], KeyVerdict::GaveUp { explored: 3 }), "{report:?}");
        assert_eq!(report.gave_up(), vec!["a"]);
        assert!(report.violations().is_empty());
        assert!(!report.is_linearizable());
    }

    #[test]
    #[should_panic(expected = "returns before its call")]
    fn return_before_call_is_a_caller_bug() {
        check_fresh(&[op(0, "a", write("x"), Output::Ok, 10, 5)]);
    }

    #[test]
    #[should_panic(expected = "cannot answer input")]
    fn impossible_output_is_a_caller_bug() {
        check_fresh(&[op(0, "a", Input::Read, Output::Ok, 0, 5)]);
    }

    #[test]
    fn long_contents_are_shortened_in_explanations() {
        let long = "c".repeat(1000);
        let explanation = only_violation(
            &[op(0, "a", write(&long), Output::Ok, 0, 10), op(1, "a", Input::Read, value(None), 20, 30)],
            "a",
        );
        assert!(explanation.contains("(1000 bytes)"), "{explanation}");
        assert!(explanation.len() < 1000, "{explanation}");
    }

    // -----------------------------------------------------------------------------------------
    // Generated histories

    /// xorshift64: a tiny deterministic PRNG, so generated histories are the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// Uniform enough in 0..n, for n > 0.
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn percent(&mut self, chance: u64) -> bool {
            self.below(100) < chance
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
            let len = items.len() as u64;
            if len == 0 { None } else { items.get(self.below(len) as usize) }
        }
    }

    struct Workload {
        clients: usize,
        keys: u64,
        ops: usize,
        /// An operation's call and return are each at most this many µs from its effect.
        max_latency_us: u64,
        /// Successive effects are at most this many µs apart.
        max_gap_us: u64,
        unknown_percent: u64,
    }

    /// A history from a real sequential execution: the model runs one operation at a time, each
    /// taking effect at an instant strictly inside its client's call/return interval, and each
    /// client has one operation in flight at most. Unknown outcomes take effect or not.
    fn generate(seed: u64, workload: &Workload) -> Vec<Operation> {
        let mut rng = XorShift(seed);
        let mut entries: BTreeMap<Key, Option<String>> = BTreeMap::new();
        let mut written: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        let mut free_at = vec![0; workload.clients];
        let mut now = 0;
        let mut history = Vec::with_capacity(workload.ops);
        for i in 0..workload.ops {
            now += 1 + rng.below(workload.max_gap_us);
            let client = idle_client(&mut rng, &free_at, &mut now);
            let earliest_call = (free_at[client] + 1).max(now.saturating_sub(workload.max_latency_us));
            let call = earliest_call + rng.below(now - earliest_call);
            let ret = now + 1 + rng.below(workload.max_latency_us);
            free_at[client] = ret;
            let key = format!("k{}", rng.below(workload.keys));
            let history_of_key = written.entry(key.clone()).or_default();
            let entry = entries.entry(key.clone()).or_default();
            let unknown = rng.percent(workload.unknown_percent);
            let (input, output) = step(&mut rng, entry, history_of_key, format!("v{i}"), unknown);
            history.push(Operation { client, key, input, output, call_ns: call * 1000, return_ns: ret * 1000 });
        }
        history
    }

    /// A client with no operation in flight at `now` (time moves on if every client is busy).
    fn idle_client(rng: &mut XorShift, free_at: &[u64], now: &mut u64) -> usize {
        let idle: Vec<usize> = (0..free_at.len()).filter(|&c| free_at[c] + 1 < *now).collect();
        if let Some(&client) = rng.pick(&idle) {
            return client;
        }
        let (client, &soonest) = free_at.iter().enumerate().min_by_key(|&(_, t)| *t).expect("at least one client");
        *now = soonest + 2;
        client
    }

    /// Run one random operation on `entry`, returning what its client saw.
    fn step(
        rng: &mut XorShift,
        entry: &mut Option<String>,
        written: &mut Vec<String>,
        fresh: String,
        unknown: bool,
    ) -> (Input, Output) {
        // An unknown outcome took effect or not; a known one took effect.
        let takes_effect = !unknown || rng.percent(50);
        let answered = |output| if unknown { Output::Unknown } else { output };
        match rng.below(100) {
            0..30 => {
                written.push(fresh.clone());
                if takes_effect {
                    *entry = Some(fresh.clone());
                }
                (Input::Write(fresh), answered(Output::Ok))
            }
            30..55 => {
                let expected = match (&*entry, rng.percent(70)) {
                    (Some(current), true) => current.clone(),
                    _ => rng.pick(written).cloned().unwrap_or_else(|| "expected-but-never-written".to_string()),
                };
                written.push(fresh.clone());
                let matches = entry.as_deref() == Some(expected.as_str());
                if matches && takes_effect {
                    *entry = Some(fresh.clone());
                }
                let output = if matches { Output::Ok } else { Output::CasFailed };
                (Input::Cas { expected, new: fresh }, answered(output))
            }
            55..62 => {
                if takes_effect {
                    *entry = None;
                }
                (Input::Delete, answered(Output::Ok))
            }
            _ => (Input::Read, answered(Output::Value(entry.clone()))),
        }
    }

    #[test]
    fn generated_histories_are_linearizable_and_a_corrupted_read_is_not() {
        let workload =
            Workload { clients: 5, keys: 3, ops: 400, max_latency_us: 40, max_gap_us: 10, unknown_percent: 3 };
        for seed in 1..=40u64 {
            let mut history = generate(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), &workload);
            let report = check_fresh(&history);
            assert!(report.is_linearizable(), "seed {seed}: {:?}", report.violations());

            let mut rng = XorShift(seed);
            let reads: Vec<usize> =
                (0..history.len()).filter(|&i| matches!(history[i].output, Output::Value(_))).collect();
            let Some(&corrupted) = rng.pick(&reads) else { continue };
            history[corrupted].output = value(Some("never-written"));
            let explanation = only_violation(&history, &history[corrupted].key);
            assert!(explanation.contains("\"never-written\""), "seed {seed}: {explanation}");
        }
    }

    /// Every order of the operations that respects real time, tried one by one: the definition
    /// of linearizability, for histories small enough to enumerate.
    fn linearizable_by_brute_force(history: &[Operation], initial: Option<String>) -> bool {
        let ops: Vec<&Operation> =
            history.iter().filter(|op| !(op.input == Input::Read && op.output == Output::Unknown)).collect();
        let mut done = vec![false; ops.len()];
        some_order_works(&ops, &mut done, initial)
    }

    fn some_order_works(ops: &[&Operation], done: &mut [bool], state: Option<String>) -> bool {
        if done.iter().all(|&d| d) {
            return true;
        }
        for i in 0..ops.len() {
            let must_wait =
                |j: usize| !done[j] && ops[j].output != Output::Unknown && ops[j].return_ns < ops[i].call_ns;
            if done[i] || (0..ops.len()).any(must_wait) {
                continue;
            }
            for next in reference_step(&state, ops[i]) {
                done[i] = true;
                let works = some_order_works(ops, done, next);
                done[i] = false;
                if works {
                    return true;
                }
            }
        }
        false
    }

    /// The model, written independently of the checker's, over the contents themselves.
    fn reference_step(state: &Option<String>, op: &Operation) -> Vec<Option<String>> {
        let unknown = op.output == Output::Unknown;
        match &op.input {
            Input::Write(content) => vec![Some(content.clone())],
            Input::Delete => vec![None],
            Input::Read => {
                if op.output == Output::Value(state.clone()) {
                    vec![state.clone()]
                } else {
                    vec![]
                }
            }
            Input::Cas { expected, new } => {
                let matches = state.as_ref() == Some(expected);
                match (matches, &op.output) {
                    (true, Output::Ok) => vec![Some(new.clone())],
                    (true, _) if unknown => vec![Some(new.clone()), state.clone()],
                    (false, Output::CasFailed) => vec![state.clone()],
                    (false, _) if unknown => vec![state.clone()],
                    _ => vec![],
                }
            }
        }
    }

    /// A small history with random intervals, inputs and answers, most of them impossible.
    fn random_small_history(rng: &mut XorShift) -> Vec<Operation> {
        let contents = ["a", "b", "c"];
        let content = |rng: &mut XorShift| rng.pick(&contents).map_or("a", |c| *c).to_string();
        let len = 1 + rng.below(7);
        let mut history = Vec::new();
        for client in 0..len as usize {
            let call = rng.below(20);
            let ret = call + rng.below(8);
            let unknown = rng.percent(15);
            let (input, output) = match rng.below(4) {
                0 => (Input::Write(content(rng)), Output::Ok),
                1 => (Input::Delete, Output::Ok),
                2 => {
                    let input = Input::Cas { expected: content(rng), new: content(rng) };
                    (input, if rng.percent(50) { Output::Ok } else { Output::CasFailed })
                }
                _ => {
                    (Input::Read, if rng.percent(25) { Output::Value(None) } else { Output::Value(Some(content(rng))) })
                }
            };
            let output = if unknown { Output::Unknown } else { output };
            history.push(op(client, "k", input, output, call, ret));
        }
        history
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut verdicts = [0; 2];
        let mut certain = 0;
        for round in 0..5000 {
            let history = random_small_history(&mut rng);
            let initial = if rng.percent(30) { Some("a".to_string()) } else { None };
            let expected = linearizable_by_brute_force(&history, initial.clone());
            let initial_by_key = BTreeMap::from([("k".to_string(), initial.clone())]);
            let report = check(&history, &initial_by_key, DEFAULT_MAX_STATES_PER_KEY);
            assert!(report.gave_up().is_empty());
            assert_eq!(report.is_linearizable(), expected, "round {round}: {history:#?}\n{report:?}");
            verdicts[usize::from(expected)] += 1;
            // The fallback for a search that gives up must never accuse a linearizable history.
            if certainly_violated(&history, initial.as_deref()) {
                assert!(!expected, "round {round}: {history:#?}");
                certain += 1;
            }
        }
        // Both verdicts must be common, or the comparison proves little.
        assert!(verdicts.iter().all(|&count| count > 1000), "{verdicts:?} (not linearizable, linearizable)");
        assert!(certain > 200, "{certain} certain violations");
    }

    /// Whether the check for certain violations, alone, finds one.
    fn certainly_violated(history: &[Operation], initial: Option<&str>) -> bool {
        let ops: Vec<&Operation> =
            history.iter().filter(|op| !(op.input == Input::Read && op.output == Output::Unknown)).collect();
        let mut contents = Contents::default();
        let initial = contents.state(initial);
        let model: Vec<ModelOp> = ops.iter().map(|op| ModelOp::compile(op, &mut contents)).collect();
        !doomed(&ops, &model, initial).is_empty()
    }

    #[test]
    fn a_certain_violation_survives_the_search_giving_up() {
        let history = [
            op(0, "a", write("old"), Output::Ok, 0, 10),
            op(0, "a", write("new"), Output::Ok, 20, 30),
            op(1, "a", Input::Read, value(Some("old")), 40, 50),
        ];
        let report = check(&history, &BTreeMap::new(), 0);
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "{report:?}");
        let explanation = violations[0].1;
        assert!(explanation.contains("gave up after 0 configurations"), "{explanation}");
        assert!(explanation.contains("client 1: Read -> Value(Some(\"old\")), called at 40.000 ms"), "{explanation}");
        assert!(explanation.contains("needs the entry at Some(\"old\"), but:"), "{explanation}");
        assert!(explanation.contains("client 0: Write(\"old\") -> Ok, called at 0.000 ms"), "{explanation}");
        assert!(explanation.contains("then, entirely in between: client 0: Write(\"new\") -> Ok"), "{explanation}");
    }

    #[test]
    fn a_stale_read_under_heavy_concurrency_is_found() {
        // Proving this by search alone means refuting every order of 16 clients' operations up to
        // the read; the bound makes the search give up, and the simpler check still finds it.
        let workload =
            Workload { clients: 16, keys: 1, ops: 1500, max_latency_us: 400, max_gap_us: 6, unknown_percent: 3 };
        let mut history = generate(0x5851_f42d_4c95_7f2d, &workload);
        let late_read = (history.len() * 3 / 4..history.len())
            .find(|&i| matches!(history[i].output, Output::Value(_)))
            .expect("reads in the last quarter");
        let overwritten = (0..late_read - 100)
            .rev()
            .find_map(|i| match (&history[i].input, &history[i].output) {
                (Input::Write(content), Output::Ok) => Some(content.clone()),
                _ => None,
            })
            .expect("a known write well before the read");
        history[late_read].output = value(Some(&overwritten));
        let report = check(&history, &BTreeMap::new(), 20_000);
        let violations = report.violations();
        assert_eq!(violations.len(), 1, "{report:?}");
        let explanation = violations[0].1;
        assert!(explanation.contains("The search gave up after 20000 configurations"), "{explanation}");
        assert!(explanation.contains(&format!("needs the entry at Some({overwritten:?}), but:")), "{explanation}");
    }

    #[test]
    fn checking_is_deterministic() {
        let workload =
            Workload { clients: 4, keys: 2, ops: 200, max_latency_us: 30, max_gap_us: 5, unknown_percent: 5 };
        let mut history = generate(7, &workload);
        for op in history.iter_mut().filter(|op| op.input == Input::Read).take(3) {
            op.output = value(Some("bogus"));
        }
        let first = format!("{:?}", check_fresh(&history).per_key);
        let second = format!("{:?}", check_fresh(&history).per_key);
        assert_eq!(first, second);
        assert!(first.contains("NotLinearizable"), "{first}");
    }

    /// How many other operations each operation overlaps, on average.
    fn mean_overlap(history: &[Operation]) -> f64 {
        let overlaps = |a: &Operation, b: &Operation| b.call_ns <= a.return_ns && a.call_ns <= b.return_ns;
        let total: usize = history.iter().map(|a| history.iter().filter(|b| overlaps(a, b)).count() - 1).sum();
        total as f64 / history.len() as f64
    }

    #[test]
    fn heavy_overlap_on_one_key_checks_quickly() {
        let workload =
            Workload { clients: 8, keys: 1, ops: 2000, max_latency_us: 200, max_gap_us: 6, unknown_percent: 0 };
        let history = generate(0x2545_f491_4f6c_dd1d, &workload);
        let overlap = mean_overlap(&history);
        assert!(overlap >= 5.0, "each operation should overlap several others, not {overlap:.1}");
        let started = Instant::now();
        let report = check_fresh(&history);
        let elapsed = started.elapsed();
        eprintln!("2000 ops, 8 clients, 1 key, {overlap:.1} overlapping operations each: checked in {elapsed:?}");
        assert!(report.is_linearizable(), "{report:?}");
        assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
    }
}
