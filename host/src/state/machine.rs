use serde::Deserialize;
use serde::Serialize;

use super::keys;
use super::kv::Kv;
use crate::raft::ApplyResponse;
use crate::raft::Operation;
use crate::raft::Proposal;
use crate::runtime::CommandOutcome;
use crate::runtime::Event;
use crate::runtime::GuestCommand;
use crate::runtime::GuestError;
use crate::runtime::ModuleId;
use crate::runtime::ModuleInfo;
use crate::runtime::ModuleKind;
use crate::runtime::QueryContext;
use crate::runtime::Runtime;
use crate::runtime::module_id;

/// One committed entry, as the Raft layer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub index: u64,
    pub term: u64,
    /// `None` for entries with no application payload (blank, membership).
    pub proposal: Option<&'a Proposal>,
}

/// A change a guest reported, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub namespace: String,
    pub kind: ModuleKind,
    pub event: Event,
}

/// The binding in force for one `(namespace, kind)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub module_id: ModuleId,
    pub module: ModuleInfo,
    pub since_index: u64,
    pub by: String,
    pub timestamp_ms: u64,
}

/// One attempt to change a binding, kept in the binding log whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingChange {
    pub namespace: String,
    pub kind: ModuleKind,
    pub module_id: ModuleId,
    pub index: u64,
    pub by: String,
    pub timestamp_ms: u64,
    /// `None` when the binding switched; the reason when it did not.
    pub failure: Option<String>,
}

/// Everything a snapshot must carry to rebuild a [`Machine`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineImage {
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The replicated state and the rules for changing it.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    kv: Kv,
}

impl Machine {
    pub fn from_image(image: MachineImage) -> Self {
        Self { kv: Kv::from_pairs(image.pairs) }
    }

    pub fn image(&self) -> MachineImage {
        MachineImage { pairs: self.kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect() }
    }

    pub fn digest_hex(&self) -> String {
        self.kv.digest_hex()
    }

    pub fn key_count(&self) -> usize {
        self.kv.len()
    }

    /// Latest entry time applied: the clock guests and queries see.
    pub fn clock_ms(&self) -> u64 {
        self.kv.get(keys::CLOCK).map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])))
    }

    /// Whether the cluster-wide default bindings exist (the node can serve naming and config).
    pub fn has_default_bindings(&self) -> bool {
        [ModuleKind::Naming, ModuleKind::Config]
            .iter()
            .all(|kind| self.kv.get(&keys::binding(keys::DEFAULT_NAMESPACE, *kind)).is_some())
    }

    /// The binding that governs `(namespace, kind)`: the namespace's own, else the default.
    pub fn binding_for(&self, namespace: &str, kind: ModuleKind) -> Option<Binding> {
        self.own_binding(namespace, kind).or_else(|| self.own_binding(keys::DEFAULT_NAMESPACE, kind))
    }

    fn own_binding(&self, namespace: &str, kind: ModuleKind) -> Option<Binding> {
        let raw = self.kv.get(&keys::binding(namespace, kind))?;
        serde_json::from_slice(raw).ok()
    }

    /// Every binding in force, in key order.
    pub fn bindings(&self) -> Vec<(String, Binding)> {
        self.kv
            .prefixed(keys::BINDING_PREFIX)
            .filter_map(|(k, v)| {
                let rest = &k[keys::BINDING_PREFIX.len()..];
                let namespace = rest.split(|b| *b == 0).next()?;
                Some((String::from_utf8_lossy(namespace).into_owned(), serde_json::from_slice(v).ok()?))
            })
            .collect()
    }

    /// Every binding change ever attempted, in key (namespace, kind, index) order.
    pub fn binding_log(&self) -> Vec<BindingChange> {
        self.kv.prefixed(keys::BINDING_LOG_PREFIX).filter_map(|(_, v)| serde_json::from_slice(v).ok()).collect()
    }

    /// Ids of every installed module.
    pub fn module_ids(&self) -> Vec<ModuleId> {
        self.kv
            .prefixed(keys::MODULE_PREFIX)
            .map(|(k, _)| String::from_utf8_lossy(&k[keys::MODULE_PREFIX.len()..]).into_owned())
            .collect()
    }

    pub fn module_bytes(&self, id: &str) -> Option<&[u8]> {
        self.kv.get(&keys::module(id)).map(Vec::as_slice)
    }

    /// Answer a read through the module bound to `(namespace, kind)`.
    pub fn query(
        &self,
        runtime: &Runtime,
        applied_index: u64,
        namespace: &str,
        kind: ModuleKind,
        request: &[u8],
    ) -> Result<Vec<u8>, GuestError> {
        let binding = self.binding_for(namespace, kind).ok_or_else(|| unbound(namespace, kind))?;
        self.ensure_loaded(runtime, &binding.module_id)?;
        let ctx = QueryContext { namespace: namespace.to_string(), applied_index, timestamp_ms: self.clock_ms() };
        let base = self.kv.scoped(keys::guest_prefix(kind, namespace));
        runtime
            .query(&binding.module_id, &ctx, request, &base)
            .unwrap_or_else(|e| Err(GuestError { code: 500, message: e.to_string() }))
    }

    /// Apply committed entries in log order: one response per entry, and what changed.
    /// Consecutive guest commands for the same module go to the guest in one call.
    pub fn apply(&mut self, runtime: &Runtime, entries: &[EntryRef<'_>]) -> (Vec<ApplyResponse>, Vec<ChangeEvent>) {
        let mut responses = Vec::with_capacity(entries.len());
        let mut events = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let entry = entries[i];
            let Some(proposal) = entry.proposal else {
                responses.push(ApplyResponse::host(Ok(Vec::new())));
                i += 1;
                continue;
            };
            if let Operation::Guest { namespace, kind, .. } = &proposal.op {
                let run = guest_run_len(&entries[i..], namespace, *kind, entry.term);
                let batch = &entries[i..i + run];
                responses.extend(self.apply_guest_batch(runtime, namespace, *kind, batch, &mut events));
                i += run;
                continue;
            }
            let timestamp_ms = self.advance_clock(proposal.timestamp_ms);
            match &proposal.op {
                Operation::Guest { .. } => unreachable!("handled above"),
                Operation::InstallModule { bytes } => {
                    responses.push(ApplyResponse::host(Ok(self.install(bytes).into_bytes())));
                    i += 1;
                }
                Operation::Activate { namespace, kind, module_id, by } => {
                    let change =
                        BindingRequest { namespace, kind: *kind, module_id, by, index: entry.index, timestamp_ms };
                    responses.push(ApplyResponse::host(self.activate(runtime, change)));
                    i += 1;
                }
                Operation::Bootstrap { naming, config } => {
                    responses.push(ApplyResponse::host(self.bootstrap(
                        runtime,
                        entry.index,
                        timestamp_ms,
                        naming,
                        config,
                    )));
                    i += 1;
                }
            }
        }
        debug_assert_eq!(responses.len(), entries.len(), "one response per entry");
        (responses, events)
    }

    fn advance_clock(&mut self, stamped_ms: u64) -> u64 {
        let now_ms = stamped_ms.max(self.clock_ms());
        self.kv.put(keys::CLOCK.to_vec(), now_ms.to_be_bytes().to_vec());
        now_ms
    }

    fn apply_guest_batch(
        &mut self,
        runtime: &Runtime,
        namespace: &str,
        kind: ModuleKind,
        batch: &[EntryRef<'_>],
        events: &mut Vec<ChangeEvent>,
    ) -> Vec<ApplyResponse> {
        let fail_all = |module_id: Option<ModuleId>, error: GuestError| {
            batch.iter().map(|_| ApplyResponse { module_id: module_id.clone(), result: Err(error.clone()) }).collect()
        };
        // Each command carries its own stamp, clamped against the clock exactly as a lone
        // entry would be, so batching does not change the time a guest sees.
        let commands: Vec<GuestCommand> = batch
            .iter()
            .map(|entry| {
                let proposal = entry.proposal.expect("guest runs hold proposals");
                let Operation::Guest { payload, .. } = &proposal.op else { unreachable!("guest runs hold guest ops") };
                let timestamp_ms = self.advance_clock(proposal.timestamp_ms);
                GuestCommand { index: entry.index, timestamp_ms, payload: payload.clone() }
            })
            .collect();
        let Some(binding) = self.binding_for(namespace, kind) else {
            return fail_all(None, unbound(namespace, kind));
        };
        if let Err(error) = self.ensure_loaded(runtime, &binding.module_id) {
            return fail_all(Some(binding.module_id), error);
        }
        let prefix = keys::guest_prefix(kind, namespace);
        let term = batch[0].term;
        let outcomes = {
            let base = self.kv.scoped(prefix.clone());
            runtime.apply(&binding.module_id, namespace, term, &commands, &base)
        };
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(module = %binding.module_id, error = %e, "runtime failed a whole batch");
                return fail_all(Some(binding.module_id), GuestError { code: 500, message: e.to_string() });
            }
        };
        assert_eq!(outcomes.len(), batch.len(), "the runtime returns one outcome per command");
        outcomes
            .into_iter()
            .map(|CommandOutcome { result, writes, events: emitted }| {
                for (key, value) in writes {
                    let mut full = prefix.clone();
                    full.extend_from_slice(&key);
                    match value {
                        Some(value) => self.kv.put(full, value),
                        None => self.kv.delete(&full),
                    }
                }
                events.extend(emitted.into_iter().map(|event| ChangeEvent {
                    namespace: namespace.to_string(),
                    kind,
                    event,
                }));
                ApplyResponse { module_id: Some(binding.module_id.clone()), result }
            })
            .collect()
    }

    fn ensure_loaded(&self, runtime: &Runtime, id: &ModuleId) -> Result<(), GuestError> {
        if runtime.is_loaded(id) {
            return Ok(());
        }
        let bytes = self
            .module_bytes(id)
            .ok_or_else(|| GuestError { code: 500, message: format!("module {id} is bound but not installed") })?;
        runtime
            .load(bytes)
            .map(|_| ())
            .map_err(|e| GuestError { code: 500, message: format!("module {id} failed to load: {e}") })
    }

    fn install(&mut self, bytes: &[u8]) -> ModuleId {
        let id = module_id(bytes);
        let key = keys::module(&id);
        if self.kv.get(&key).is_none() {
            self.kv.put(key, bytes.to_vec());
        }
        id
    }

    fn activate(&mut self, runtime: &Runtime, change: BindingRequest<'_>) -> Result<Vec<u8>, GuestError> {
        let outcome = self.try_activate(runtime, &change);
        let record = BindingChange {
            namespace: change.namespace.to_string(),
            kind: change.kind,
            module_id: change.module_id.clone(),
            index: change.index,
            by: change.by.to_string(),
            timestamp_ms: change.timestamp_ms,
            failure: outcome.as_ref().err().map(|e| e.message.clone()),
        };
        self.kv.put(
            keys::binding_log(change.namespace, change.kind, change.index),
            serde_json::to_vec(&record).expect("plain struct serializes"),
        );
        outcome.map(|binding| serde_json::to_vec(&binding).expect("plain struct serializes"))
    }

    fn try_activate(&mut self, runtime: &Runtime, change: &BindingRequest<'_>) -> Result<Binding, GuestError> {
        if self.module_bytes(change.module_id).is_none() {
            return Err(GuestError { code: 404, message: format!("module {} is not installed", change.module_id) });
        }
        self.ensure_loaded(runtime, change.module_id)?;
        let info = runtime.describe(change.module_id).map_err(|e| GuestError { code: 500, message: e.to_string() })?;
        if info.kind != change.kind {
            return Err(GuestError {
                code: 400,
                message: format!("module {} is a {:?} module, not {:?}", change.module_id, info.kind, change.kind),
            });
        }
        let previous = self.binding_for(change.namespace, change.kind).map(|b| b.module);
        let needs_migrate = change.namespace != keys::DEFAULT_NAMESPACE
            && previous.as_ref().is_none_or(|p| p.schema_version != info.schema_version);
        if needs_migrate {
            let prefix = keys::guest_prefix(change.kind, change.namespace);
            let outcome = {
                let base = self.kv.scoped(prefix.clone());
                runtime
                    .migrate(change.module_id, previous.as_ref(), &base)
                    .map_err(|e| GuestError { code: 500, message: e.to_string() })?
            };
            if let Err(reason) = outcome.result {
                return Err(GuestError { code: 409, message: format!("migrate failed, binding unchanged: {reason}") });
            }
            for (key, value) in outcome.writes {
                let mut full = prefix.clone();
                full.extend_from_slice(&key);
                match value {
                    Some(value) => self.kv.put(full, value),
                    None => self.kv.delete(&full),
                }
            }
        }
        let binding = Binding {
            module_id: change.module_id.clone(),
            module: info,
            since_index: change.index,
            by: change.by.to_string(),
            timestamp_ms: change.timestamp_ms,
        };
        self.kv.put(
            keys::binding(change.namespace, change.kind),
            serde_json::to_vec(&binding).expect("plain struct serializes"),
        );
        Ok(binding)
    }

    fn bootstrap(
        &mut self,
        runtime: &Runtime,
        index: u64,
        timestamp_ms: u64,
        naming: &[u8],
        config: &[u8],
    ) -> Result<Vec<u8>, GuestError> {
        let mut bound = Vec::new();
        for (kind, bytes) in [(ModuleKind::Naming, naming), (ModuleKind::Config, config)] {
            if self.own_binding(keys::DEFAULT_NAMESPACE, kind).is_some() {
                continue;
            }
            let module_id = self.install(bytes);
            let change = BindingRequest {
                namespace: keys::DEFAULT_NAMESPACE,
                kind,
                module_id: &module_id,
                by: "bootstrap",
                index,
                timestamp_ms,
            };
            self.activate(runtime, change)?;
            bound.push(module_id);
        }
        Ok(serde_json::to_vec(&bound).expect("strings serialize"))
    }
}

struct BindingRequest<'a> {
    namespace: &'a str,
    kind: ModuleKind,
    module_id: &'a ModuleId,
    by: &'a str,
    index: u64,
    timestamp_ms: u64,
}

/// How many entries from the start of `entries` are guest commands for the same keyspace in
/// the same term (the batch context carries one term, and replicas batch differently).
fn guest_run_len(entries: &[EntryRef<'_>], namespace: &str, kind: ModuleKind, term: u64) -> usize {
    entries
        .iter()
        .take_while(|e| {
            e.term == term
                && matches!(e.proposal.map(|p| &p.op),
                    Some(Operation::Guest { namespace: n, kind: k, .. }) if n == namespace && *k == kind)
        })
        .count()
}

fn unbound(namespace: &str, kind: ModuleKind) -> GuestError {
    GuestError { code: 503, message: format!("no {kind:?} module is bound for namespace {namespace} yet; retry") }
}
