//! Running guest calls against what a guest may see: the replicated state (the replica) and
//! this node's AP keyspace, with the answers cache in front of queries.
//!
//! Most calls take tens of microseconds, less than handing the async worker's other tasks to
//! another thread would cost, so a call first runs right on the worker that received it,
//! with `runtime::limits::INLINE_FUEL` and only if neither lock is held; one that needs more
//! (or meets its module not compiled yet) runs again from the start off the worker with its
//! full fuel (see ARCHITECTURE.md, "where guests run").

mod waits;

pub use waits::ChangeWait;
pub use waits::ChangeWaits;

use std::sync::Arc;

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;
use tokio::sync::broadcast;

use crate::answers;
use crate::answers::Answers;
use crate::answers::Stamp;
use crate::ap::store::ApStore;
use crate::ap::store::Keyspace;
use crate::raft::state_machine::Replica;
use crate::raft::state_machine::Shared;
use crate::runtime::Budget;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::runtime::OverInlineBudget;
use crate::runtime::Runtime;
use crate::scope::Scope;
use crate::state::ChangeEvent;

/// What a watcher (a UDP or gRPC subscriber, a config listener) waits for: a guest event in
/// one namespace and module kind. Guests name the events that would make an answer stale in
/// its `Nacre-Watch` directive; every change applied on this node fires its events.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchKey {
    pub namespace: String,
    pub kind: ModuleKind,
    pub topic: String,
    pub key: String,
}

impl WatchKey {
    pub fn of(change: &ChangeEvent) -> WatchKey {
        WatchKey {
            namespace: change.namespace.clone(),
            kind: change.kind,
            topic: change.event.topic.clone(),
            key: change.event.key.clone(),
        }
    }

    /// The keys a `Nacre-Watch` directive names (`[[topic, key], ...]`), in order; none for a
    /// reply without one (or a malformed one).
    pub fn from_directive(namespace: &str, kind: ModuleKind, directive: Option<&String>) -> Vec<WatchKey> {
        let pairs: Vec<(String, String)> = directive.and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
        pairs.into_iter().map(|(topic, key)| WatchKey { namespace: namespace.to_string(), kind, topic, key }).collect()
    }
}

pub struct Guests {
    replica: Arc<Shared>,
    keyspace: Arc<Keyspace>,
    /// Query answers valid at the current applied index and AP generation.
    answers: Answers,
    /// Who waits for which change (held long-polls), woken by [`Guests::wake_waiters`].
    waits: Arc<ChangeWaits>,
}

impl Guests {
    pub fn new(replica: Arc<Shared>, keyspace: Arc<Keyspace>) -> Guests {
        Guests { replica, keyspace, answers: Answers::default(), waits: Arc::default() }
    }

    /// The replicated state, for reads that are not guest calls (bindings, digests, modules).
    pub fn replica(&self) -> &Shared {
        &self.replica
    }

    pub fn runtime(&self) -> &Runtime {
        &self.replica.runtime
    }

    /// This node's AP keyspace.
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Every change applied on this node from now on, log and AP path alike.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.replica.events.subscribe()
    }

    /// Wait for a change to one of `keys` applied on this node (a change after this call
    /// wakes the wait even if it is not awaited yet); see [`ChangeWaits`].
    pub fn wait_for(&self, keys: impl IntoIterator<Item = WatchKey>) -> ChangeWait {
        self.waits.wait_for(keys)
    }

    /// The task that wakes [`Guests::wait_for`]'s waiters as changes are applied: the node runs
    /// one, for as long as it runs.
    pub fn wake_waiters(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.waits.clone().run(self.subscribe())
    }

    /// Tell this node's watchers (long-polls, UDP pushes) about a change the AP path made.
    pub fn publish(&self, change: ChangeEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.replica.events.send(Arc::new(change));
    }

    /// Ask the guest bound to `(namespace, kind)` a question about this replica's state. It
    /// sees the replicated state and this node's AP keyspace. An answer already computed at
    /// the same state is served from [`Answers`].
    pub fn query(&self, scope: Scope<'_>, request: &GuestRequest) -> Result<GuestReply, GuestError> {
        let request = request.encode();
        let key = answers::key(scope, &request);
        let run = |replica: &Replica, ap: &ApStore, budget| {
            let applied_index = replica.applied_index();
            let stamp = Stamp { applied_index, ap_generation: ap.generation() };
            if let Some(answer) = self.answers.get(stamp, &key) {
                return Ok(Ok(answer));
            }
            let view = ap.view(scope);
            let answer = replica.machine.query(self.runtime(), applied_index, scope, &request, &view, budget)?;
            if let Ok(bytes) = &answer {
                self.answers.put(stamp, key.clone(), bytes);
            }
            Ok(answer)
        };
        decode_reply(self.run(run))
    }

    /// Ask a question for one of the host's duties (the lease sweep, the health checks' targets):
    /// always off the async worker with [`Budget::Duty`], and neither served from nor kept in
    /// [`Answers`] (a sweep's answer depends on the time it passes, so it is never asked twice,
    /// and its size would crowd out the clients' answers).
    pub fn duty_query(&self, scope: Scope<'_>, request: &GuestRequest) -> Result<GuestReply, GuestError> {
        let request = request.encode();
        let answer = crate::blocking::cpu_bound(|| {
            let (replica, ap) = (self.replica.read(), self.keyspace.read());
            let view = ap.view(scope);
            let applied_index = replica.applied_index();
            replica.machine.query(self.runtime(), applied_index, scope, &request, &view, Budget::Duty)
        })
        .expect("a duty's budget has no inline limit");
        decode_reply(answer)
    }

    /// Runs a guest `call` (a query or an AP command) against the replica and the AP store:
    /// first on this async worker with [`Budget::Inline`] if neither lock is held now, else, or
    /// when the call hands itself back, off the worker with [`Budget::Full`].
    pub fn run<T>(&self, call: impl Fn(&Replica, &ApStore, Budget) -> Result<T, OverInlineBudget>) -> T {
        if let (Some(replica), Some(ap)) = (self.replica.try_read(), self.keyspace.try_read())
            && let Ok(done) = call(&replica, &ap, Budget::Inline)
        {
            return done;
        }
        crate::blocking::cpu_bound(|| call(&self.replica.read(), &self.keyspace.read(), Budget::Full))
            .expect("a full budget has no inline limit")
    }
}

/// A guest's encoded reply, or a 500 when a module answered with something that is not one.
pub fn decode_reply(result: Result<Vec<u8>, GuestError>) -> Result<GuestReply, GuestError> {
    let bytes = result?;
    GuestReply::decode(&bytes)
        .map_err(|e| GuestError { code: 500, message: format!("module answered with a malformed reply: {e}") })
}
