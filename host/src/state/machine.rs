use serde::Deserialize;
use serde::Serialize;

use super::command::ApplyResponse;
use super::command::Operation;
use super::command::Proposal;
use super::image::ImagePair;
use super::image::ImageRef;
use super::image::MachineImage;
use super::keys;
use super::kv::Kv;
use super::split_view::SplitView;
use crate::runtime::Budget;
use crate::runtime::CommandOutcome;
use crate::runtime::Event;
use crate::runtime::GuestCommand;
use crate::runtime::GuestError;
use crate::runtime::KvRead;
use crate::runtime::ModuleId;
use crate::runtime::ModuleInfo;
use crate::runtime::ModuleKind;
use crate::runtime::OverInlineBudget;
use crate::runtime::QueryContext;
use crate::runtime::Runtime;
use crate::runtime::RuntimeError;
use crate::runtime::module_id;
use crate::scope::Scope;

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

/// The replicated state and the rules for changing it.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    kv: Kv,
}

impl Machine {
    pub fn from_image(image: MachineImage) -> Self {
        Self { kv: Kv::from_pairs(image.pairs.into_iter().map(|ImagePair(key, value)| (key, value))) }
    }

    /// The state to write into a snapshot, read from the map as it is written.
    pub fn image(&self) -> ImageRef<'_> {
        ImageRef::new(&self.kv)
    }

    pub fn digest_hex(&self) -> String {
        self.kv.digest_hex()
    }

    pub fn digest(&self) -> [u8; 32] {
        self.kv.digest()
    }

    /// Record the keys written from now on, for checkpoints (`Kv::track_touched`).
    pub fn track_touched(&mut self) {
        self.kv.track_touched();
    }

    /// The keys written since tracking started or this was last called (`Kv::take_touched`).
    pub fn take_touched(&mut self) -> Option<std::collections::HashSet<Vec<u8>>> {
        self.kv.take_touched()
    }

    /// Each key with its value here, `None` where there is none: what a checkpoint writes.
    pub fn values_of(&self, keys: impl IntoIterator<Item = Vec<u8>>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        keys.into_iter()
            .map(|key| {
                let value = self.kv.get(&key).cloned();
                (key, value)
            })
            .collect()
    }

    /// Set each key to its value (`None`: delete it): a checkpoint read back.
    pub fn set_values(&mut self, changes: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        for (key, value) in changes {
            match value {
                Some(value) => self.kv.put(key, value),
                None => self.kv.delete(&key),
            }
        }
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
            .all(|kind| self.kv.get(&keys::binding(Scope::new(keys::DEFAULT_NAMESPACE, *kind))).is_some())
    }

    /// The binding that governs `(namespace, kind)`: the namespace's own, else the default.
    pub fn binding_for(&self, scope: Scope<'_>) -> Option<Binding> {
        let Scope { kind, .. } = scope;
        self.own_binding(scope).or_else(|| self.own_binding(Scope::new(keys::DEFAULT_NAMESPACE, kind)))
    }

    fn own_binding(&self, scope: Scope<'_>) -> Option<Binding> {
        let raw = self.kv.get(&keys::binding(scope))?;
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

    /// Every namespace record, in id order (`public` has none: it always exists).
    pub fn namespaces(&self) -> Vec<super::NamespaceRecord> {
        super::namespaces::list(&self.kv)
    }

    pub fn namespace(&self, id: &str) -> Option<super::NamespaceRecord> {
        super::namespaces::get(&self.kv, id)
    }

    /// A user with their password hash and credential epoch, for a login or a token check.
    pub fn user(&self, username: &str) -> Option<super::UserRecord> {
        super::auth::user(&self.kv, username)
    }

    /// Every user, in name order, without hashes.
    pub fn users(&self) -> Vec<super::UserSummary> {
        super::auth::users(&self.kv)
    }

    pub fn users_page(&self, page_no: usize, page_size: usize) -> super::Page<super::UserSummary> {
        super::auth::users_page(&self.kv, page_no, page_size)
    }

    pub fn search_usernames(&self, fragment: &str) -> Vec<String> {
        super::auth::search_usernames(&self.kv, fragment)
    }

    /// The roles `username` holds, in name order.
    pub fn roles_of(&self, username: &str) -> Vec<String> {
        super::auth::roles_of(&self.kv, username)
    }

    /// The roles `username` holds with their grants (`auth::permission::allowed`'s input).
    pub fn role_grants(&self, username: &str) -> Vec<crate::auth::permission::RoleGrants> {
        super::auth::role_grants(&self.kv, username)
    }

    pub fn role_bindings_page(
        &self,
        username: Option<&str>,
        role: Option<&str>,
        page_no: usize,
        page_size: usize,
    ) -> super::Page<super::RoleBinding> {
        super::auth::role_bindings_page(&self.kv, username, role, page_no, page_size)
    }

    pub fn search_roles(&self, fragment: &str) -> Vec<String> {
        super::auth::search_roles(&self.kv, fragment)
    }

    pub fn permissions_of_role(&self, role: &str) -> Vec<super::PermissionRecord> {
        super::auth::permissions_of_role(&self.kv, role)
    }

    pub fn permissions_page(
        &self,
        role: Option<&str>,
        page_no: usize,
        page_size: usize,
    ) -> super::Page<super::PermissionRecord> {
        super::auth::permissions_page(&self.kv, role, page_no, page_size)
    }

    /// Whether a ROLE_ADMIN holder exists (Nacos's `auth_admin_request` is its negation).
    pub fn has_admin(&self) -> bool {
        super::auth::has_admin(&self.kv)
    }

    /// The key tokens are signed with; `None` before the admin bootstrap.
    pub fn signing_key(&self) -> Option<[u8; crate::auth::token::SIGNING_KEY_BYTES]> {
        super::auth::signing_key(&self.kv)
    }

    /// Whether the admin bootstrap happened: from then on every bootstrap token is void.
    pub fn auth_bootstrapped(&self) -> bool {
        super::auth::bootstrapped(&self.kv)
    }

    pub fn auth_bootstrap_record(&self) -> Option<super::BootstrapRecord> {
        super::auth::bootstrap_record(&self.kv)
    }

    pub fn module_bytes(&self, id: &str) -> Option<&[u8]> {
        self.kv.get(&keys::module(id)).map(Vec::as_slice)
    }

    /// Answer a read through the module bound to `(namespace, kind)`.
    /// Install `bytes` and bind them to `(namespace, kind)` as an `Activate` entry at `index`
    /// would, migrate included, but outside the log: for a sandbox copy of the state (a dry
    /// run), never for the replica. The binding (JSON) or why it was refused.
    pub fn bind_in_sandbox(
        &mut self,
        runtime: &Runtime,
        scope: Scope<'_>,
        bytes: &[u8],
        index: u64,
    ) -> Result<Result<Vec<u8>, GuestError>, HostFailure> {
        let Scope { namespace, kind } = scope;
        let module_id = self.install(bytes);
        let timestamp_ms = self.clock_ms();
        self.activate(
            runtime,
            BindingRequest { namespace, kind, module_id: &module_id, by: "dry-run", index, timestamp_ms },
        )
    }

    /// The namespaces in which a guest of `kind` has stored anything, in name order. Skips
    /// from one namespace to the next instead of visiting every key.
    pub fn namespaces_with_data(&self, kind: ModuleKind) -> Vec<String> {
        let kind_prefix = keys::guest_prefix(kind, "");
        let kind_prefix = &kind_prefix[..kind_prefix.len() - 1]; // `g/<kind>/`
        let mut namespaces = Vec::new();
        let mut from = kind_prefix.to_vec();
        while let Some(key) = self.kv.first_key_from(&from).filter(|k| k.starts_with(kind_prefix)) {
            let rest = &key[kind_prefix.len()..];
            let Some(end) = rest.iter().position(|b| *b == 0) else { break };
            namespaces.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            // `\x01` sorts right after the `\0` separator: the first key of the next namespace.
            from = [&key[..kind_prefix.len() + end], b"\x01"].concat();
        }
        namespaces
    }

    #[allow(clippy::too_many_arguments)] // one per part of what a query sees, plus its budget
    pub fn query(
        &self,
        runtime: &Runtime,
        applied_index: u64,
        scope: Scope<'_>,
        request: &[u8],
        ap: &dyn KvRead,
        budget: Budget,
    ) -> Result<Result<Vec<u8>, GuestError>, OverInlineBudget> {
        let Scope { namespace, kind } = scope;
        let binding = match self.loaded_binding(runtime, scope, budget)? {
            Ok(binding) => binding,
            Err(error) => return Ok(Err(error)),
        };
        let ctx = QueryContext { namespace: namespace.to_string(), applied_index, timestamp_ms: self.clock_ms() };
        let cp = self.kv.scoped(keys::guest_prefix(kind, namespace));
        match runtime.query_within(&binding.module_id, &ctx, request, &SplitView::for_query(&cp, ap), budget) {
            Ok(result) => Ok(result),
            Err(error) => host_refusal(error),
        }
    }

    /// Run one AP command (`nacre_protocol::keyspace`) through the module bound to
    /// `(namespace, kind)`: it reads this replica's CP state and `ap`, and may write the AP
    /// keyspace only. Nothing is applied here: the caller stores the outcome's writes in its
    /// AP store. Returns the module that ran it with the outcome.
    pub fn run_ap_command(
        &self,
        runtime: &Runtime,
        scope: Scope<'_>,
        command: &GuestCommand,
        ap: &dyn KvRead,
        budget: Budget,
    ) -> Result<Result<(ModuleId, CommandOutcome), GuestError>, OverInlineBudget> {
        let Scope { namespace, kind } = scope;
        let binding = match self.loaded_binding(runtime, scope, budget)? {
            Ok(binding) => binding,
            Err(error) => return Ok(Err(error)),
        };
        let cp = self.kv.scoped(keys::guest_prefix(kind, namespace));
        let view = SplitView::for_ap_command(&cp, ap);
        match runtime.apply_one(&binding.module_id, namespace, command, &view, budget) {
            Ok(outcome) => Ok(Ok((binding.module_id, outcome))),
            Err(error) => host_refusal(error),
        }
    }

    /// The binding of `(namespace, kind)` with its module loaded, for a read or an AP command.
    /// An inline attempt never compiles (most of a second, on an async worker: long enough to
    /// starve the node's Raft heartbeats); it hands the call back to run off the worker.
    fn loaded_binding(
        &self,
        runtime: &Runtime,
        scope: Scope<'_>,
        budget: Budget,
    ) -> Result<Result<Binding, GuestError>, OverInlineBudget> {
        let Some(binding) = self.binding_for(scope) else {
            return Ok(Err(unbound(scope)));
        };
        if budget == Budget::Inline && !runtime.is_loaded(&binding.module_id) {
            return Err(OverInlineBudget);
        }
        Ok(match self.ensure_loaded(runtime, &binding.module_id) {
            Ok(()) => Ok(binding),
            Err(Refusal::Guest(error)) => Err(error),
            Err(Refusal::Host(failure)) => Err(GuestError { code: 503, message: failure.to_string() }),
        })
    }

    /// Apply committed entries in log order: one response per entry, and what changed.
    /// Consecutive guest commands for the same module go to the guest in one call.
    pub fn apply(
        &mut self,
        runtime: &Runtime,
        entries: &[EntryRef<'_>],
    ) -> Result<(Vec<ApplyResponse>, Vec<ChangeEvent>), HostFailure> {
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
            // Proposers validate too; this keeps an entry that slipped past them (a peer's
            // forged proposal) from changing anything, with the same refusal on every replica.
            if let Err(invalid) = proposal.op.validate() {
                responses.push(ApplyResponse::host(Err(invalid.refusal())));
                i += 1;
                continue;
            }
            if let Operation::Guest { namespace, kind, .. } = &proposal.op {
                let run = guest_run_len(&entries[i..], Scope::new(namespace, *kind), entry.term);
                let batch = &entries[i..i + run];
                responses.extend(self.apply_guest_batch(runtime, Scope::new(namespace, *kind), batch, &mut events)?);
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
                    responses.push(ApplyResponse::host(self.activate(runtime, change)?));
                    i += 1;
                }
                Operation::Namespace(change) => {
                    responses.push(ApplyResponse::host(super::namespaces::apply(&mut self.kv, change, timestamp_ms)));
                    i += 1;
                }
                Operation::Auth(change) => {
                    let applied = super::auth::apply(&mut self.kv, change, entry.index, timestamp_ms);
                    responses.push(ApplyResponse::host(applied));
                    i += 1;
                }
                Operation::RemoveModule { module_id } => {
                    responses.push(ApplyResponse::host(self.remove_module(runtime, module_id)));
                    i += 1;
                }
                Operation::Bootstrap { naming, config } => {
                    let bound = self.bootstrap(runtime, entry.index, timestamp_ms, naming, config)?;
                    responses.push(ApplyResponse::host(bound));
                    i += 1;
                }
            }
        }
        debug_assert_eq!(responses.len(), entries.len(), "one response per entry");
        Ok((responses, events))
    }

    fn advance_clock(&mut self, stamped_ms: u64) -> u64 {
        let now_ms = stamped_ms.max(self.clock_ms());
        self.kv.put(keys::CLOCK.to_vec(), now_ms.to_be_bytes().to_vec());
        now_ms
    }

    fn apply_guest_batch(
        &mut self,
        runtime: &Runtime,
        scope: Scope<'_>,
        batch: &[EntryRef<'_>],
        events: &mut Vec<ChangeEvent>,
    ) -> Result<Vec<ApplyResponse>, HostFailure> {
        let Scope { namespace, kind } = scope;
        let fail_all = |module_id: Option<ModuleId>, error: GuestError| {
            Ok(batch
                .iter()
                .map(|_| ApplyResponse { module_id: module_id.clone(), result: Err(error.clone()) })
                .collect())
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
        let Some(binding) = self.binding_for(scope) else {
            return fail_all(None, unbound(scope));
        };
        match self.ensure_loaded(runtime, &binding.module_id) {
            Ok(()) => {}
            Err(Refusal::Guest(error)) => return fail_all(Some(binding.module_id), error),
            Err(Refusal::Host(failure)) => return Err(failure),
        }
        let prefix = keys::guest_prefix(kind, namespace);
        let term = batch[0].term;
        let outcomes = {
            let cp = self.kv.scoped(prefix.clone());
            let view = SplitView::for_log_command(&cp);
            with_host_retries(|| runtime.apply(&binding.module_id, namespace, term, &commands, &view))
        };
        let outcomes = match outcomes.map_err(Refusal::from) {
            Ok(outcomes) => outcomes,
            Err(Refusal::Guest(error)) => return fail_all(Some(binding.module_id), error),
            Err(Refusal::Host(failure)) => return Err(failure),
        };
        assert_eq!(outcomes.len(), batch.len(), "the runtime returns one outcome per command");
        Ok(outcomes
            .into_iter()
            .map(|CommandOutcome { result, writes, events: emitted }| {
                self.apply_writes(&prefix, writes);
                events.extend(emitted.into_iter().map(|event| ChangeEvent {
                    namespace: namespace.to_string(),
                    kind,
                    event,
                }));
                ApplyResponse { module_id: Some(binding.module_id.clone()), result }
            })
            .collect())
    }

    fn ensure_loaded(&self, runtime: &Runtime, id: &ModuleId) -> Result<(), Refusal> {
        if runtime.is_loaded(id) {
            return Ok(());
        }
        let bytes = self
            .module_bytes(id)
            .ok_or_else(|| GuestError { code: 500, message: format!("module {id} is bound but not installed") })?;
        with_host_retries(|| runtime.load(bytes)).map(|_| ()).map_err(Refusal::from)
    }

    /// Remove an installed module no binding in force uses: 404 when it is not installed, 409
    /// naming the bindings that use it. The node's compiled copy goes with it (`Runtime::unload`:
    /// a cache, not replicated state). Rolling back to it later fails as for any module not
    /// installed; installing it again brings it back.
    fn remove_module(&mut self, runtime: &Runtime, module_id: &ModuleId) -> Result<Vec<u8>, GuestError> {
        let key = keys::module(module_id);
        if self.kv.get(&key).is_none() {
            return Err(GuestError { code: 404, message: format!("module {module_id} is not installed") });
        }
        let users: Vec<String> = self
            .bindings()
            .into_iter()
            .filter(|(_, binding)| &binding.module_id == module_id)
            .map(|(namespace, binding)| format!("{:?} in {namespace}", binding.module.kind))
            .collect();
        if !users.is_empty() {
            return Err(GuestError {
                code: 409,
                message: format!("module {module_id} is bound ({}); bind another module first", users.join(", ")),
            });
        }
        self.kv.delete(&key);
        runtime.unload(module_id);
        Ok(b"true".to_vec())
    }

    fn install(&mut self, bytes: &[u8]) -> ModuleId {
        let id = module_id(bytes);
        let key = keys::module(&id);
        if self.kv.get(&key).is_none() {
            self.kv.put(key, bytes.to_vec());
        }
        id
    }

    fn activate(
        &mut self,
        runtime: &Runtime,
        change: BindingRequest<'_>,
    ) -> Result<Result<Vec<u8>, GuestError>, HostFailure> {
        let outcome = match self.try_activate(runtime, &change) {
            Ok(binding) => Ok(binding),
            Err(Refusal::Guest(error)) => Err(error),
            Err(Refusal::Host(failure)) => return Err(failure),
        };
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
            keys::binding_log(Scope::new(change.namespace, change.kind), change.index),
            serde_json::to_vec(&record).expect("plain struct serializes"),
        );
        Ok(outcome.map(|binding| serde_json::to_vec(&binding).expect("plain struct serializes")))
    }

    fn try_activate(&mut self, runtime: &Runtime, change: &BindingRequest<'_>) -> Result<Binding, Refusal> {
        if self.module_bytes(change.module_id).is_none() {
            let message = format!("module {} is not installed", change.module_id);
            return Err(GuestError { code: 404, message }.into());
        }
        self.ensure_loaded(runtime, change.module_id)?;
        let info = runtime.describe(change.module_id)?;
        if info.kind != change.kind {
            let message = format!("module {} is a {:?} module, not {:?}", change.module_id, info.kind, change.kind);
            return Err(GuestError { code: 400, message }.into());
        }
        let previous = self.binding_for(Scope::new(change.namespace, change.kind)).map(|b| b.module);
        let needs_migrate = change.namespace != keys::DEFAULT_NAMESPACE
            && previous.as_ref().is_none_or(|p| p.schema_version != info.schema_version);
        if needs_migrate {
            let prefix = keys::guest_prefix(change.kind, change.namespace);
            let outcome = {
                let base = self.kv.scoped(prefix.clone());
                with_host_retries(|| runtime.migrate(change.module_id, previous.as_ref(), &base))?
            };
            if let Err(reason) = outcome.result {
                let message = format!("migrate failed, binding unchanged: {reason}");
                return Err(GuestError { code: 409, message }.into());
            }
            self.apply_writes(&prefix, outcome.writes);
        }
        let binding = Binding {
            module_id: change.module_id.clone(),
            module: info,
            since_index: change.index,
            by: change.by.to_string(),
            timestamp_ms: change.timestamp_ms,
        };
        self.kv.put(
            keys::binding(Scope::new(change.namespace, change.kind)),
            serde_json::to_vec(&binding).expect("plain struct serializes"),
        );
        Ok(binding)
    }

    /// Commit a guest's writes (its own keys) under its keyspace prefix.
    fn apply_writes(&mut self, prefix: &[u8], writes: Vec<crate::runtime::Write>) {
        for (key, value) in writes {
            let mut full = Vec::with_capacity(prefix.len() + key.len());
            full.extend_from_slice(prefix);
            full.extend_from_slice(&key);
            match value {
                Some(value) => self.kv.put(full, value),
                None => self.kv.delete(&full),
            }
        }
    }

    fn bootstrap(
        &mut self,
        runtime: &Runtime,
        index: u64,
        timestamp_ms: u64,
        naming: &[u8],
        config: &[u8],
    ) -> Result<Result<Vec<u8>, GuestError>, HostFailure> {
        let mut bound = Vec::new();
        for (kind, bytes) in [(ModuleKind::Naming, naming), (ModuleKind::Config, config)] {
            if self.own_binding(Scope::new(keys::DEFAULT_NAMESPACE, kind)).is_some() {
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
            if let Err(error) = self.activate(runtime, change)? {
                return Ok(Err(error));
            }
            bound.push(module_id);
        }
        Ok(Ok(serde_json::to_vec(&bound).expect("strings serialize")))
    }
}

/// A host failure while applying: the machine, not the entry, is at fault, so the entry must
/// not get a result (replicas would diverge). Raised to the Raft layer, which stops the node;
/// a restart re-applies from the snapshot and the log.
#[derive(Debug, thiserror::Error)]
#[error("host failure while applying entries: {0}")]
pub struct HostFailure(pub String);

/// Why one entry did not succeed: a deterministic refusal (its result), or a host failure.
enum Refusal {
    Guest(GuestError),
    Host(HostFailure),
}

impl From<GuestError> for Refusal {
    fn from(error: GuestError) -> Self {
        Refusal::Guest(error)
    }
}

impl From<RuntimeError> for Refusal {
    fn from(error: RuntimeError) -> Self {
        if error.is_deterministic() {
            Refusal::Guest(GuestError { code: 500, message: error.to_string() })
        } else {
            Refusal::Host(HostFailure(error.to_string()))
        }
    }
}

/// Retry a runtime call whose failure is the machine's (a transient shortage) a few times
/// before giving up: a deterministic answer is always returned at once.
fn with_host_retries<T>(mut call: impl FnMut() -> Result<T, RuntimeError>) -> Result<T, RuntimeError> {
    let mut attempt = 1;
    loop {
        match call() {
            Err(e) if !e.is_deterministic() && attempt < HOST_FAILURE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "runtime failed for a host reason; retrying");
                std::thread::sleep(std::time::Duration::from_millis(HOST_FAILURE_BACKOFF_MS * attempt as u64));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Attempts at a runtime call failing for a host reason before the apply stops.
const HOST_FAILURE_ATTEMPTS: usize = 3;
const HOST_FAILURE_BACKOFF_MS: u64 = 50;

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
fn guest_run_len(entries: &[EntryRef<'_>], scope: Scope<'_>, term: u64) -> usize {
    let Scope { namespace, kind } = scope;
    entries
        .iter()
        .take_while(|e| {
            e.term == term
                && matches!(e.proposal.map(|p| &p.op),
                    Some(op @ Operation::Guest { namespace: n, kind: k, .. })
                        if n == namespace && *k == kind && op.validate().is_ok())
        })
        .count()
}

fn unbound(scope: Scope<'_>) -> GuestError {
    let Scope { namespace, kind } = scope;
    GuestError { code: 503, message: format!("no {kind:?} module is bound for namespace {namespace} yet; retry") }
}

/// A runtime failure of a query or an AP command, as the client's answer: 500 when every node
/// would meet it (a module that does not load), else 503 (retry). An inline attempt over its
/// budget is no answer at all: the caller runs it again with the full budget.
fn host_refusal<T>(error: RuntimeError) -> Result<Result<T, GuestError>, OverInlineBudget> {
    if let RuntimeError::OverInlineBudget = error {
        return Err(OverInlineBudget);
    }
    let code = if error.is_deterministic() { 500 } else { 503 };
    Ok(Err(GuestError { code, message: error.to_string() }))
}

#[cfg(test)]
mod tests {
    use nacre_protocol::GuestRequest;

    use super::*;
    use crate::builtin;

    fn entries(count: usize, seed: u64) -> Vec<(u64, u64, Proposal)> {
        let mut rng = seed;
        let mut next = move || {
            // xorshift: a fixed, seedable sequence with no dependency.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let bootstrap = Operation::Bootstrap { naming: builtin::NAMING.to_vec(), config: builtin::CONFIG.to_vec() };
        let mut out = vec![(1, 1, Proposal { timestamp_ms: 1_000, op: bootstrap })];
        for i in 0..count as u64 {
            let key = format!("k{}", next() % 7);
            let namespace = ["public", "dev"][(next() % 2) as usize].to_string();
            let request = match next() % 4 {
                0 => GuestRequest::new("config.delete").param("dataId", key).param("group", "G"),
                1 => GuestRequest::new("config.publish").param("dataId", key).param("group", "bad group!"),
                _ => GuestRequest::new("config.publish")
                    .param("dataId", key)
                    .param("group", "G")
                    .param("content", format!("v{i}")),
            };
            let term = 1 + i / 10;
            // Clocks may step back across leaders: the machine must clamp, identically.
            let timestamp_ms = 2_000 + (next() % 500);
            let op = Operation::Guest { namespace, kind: ModuleKind::Config, payload: request.encode() };
            out.push((i + 2, term, Proposal { timestamp_ms, op }));
        }
        out
    }

    /// Apply `log` split into batches at the given cut points.
    fn apply_split(runtime: &Runtime, log: &[(u64, u64, Proposal)], cuts: &[usize]) -> (Machine, Vec<ApplyResponse>) {
        let mut machine = Machine::default();
        let mut responses = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&log.len())) {
            let refs: Vec<_> = log[start..end]
                .iter()
                .map(|(index, term, p)| EntryRef { index: *index, term: *term, proposal: Some(p) })
                .collect();
            responses.extend(machine.apply(runtime, &refs).expect("no host failure").0);
            start = end;
        }
        (machine, responses)
    }

    #[test]
    fn batching_never_changes_results_or_digest() {
        let runtime = Runtime::new(None).unwrap();
        let seed = std::env::var("NACRE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234_u64);
        println!("seed {seed} (set NACRE_TEST_SEED to replay)");
        let log = entries(60, seed);
        let (one_batch, expected) = apply_split(&runtime, &log, &[]);
        let every_entry: Vec<usize> = (1..log.len()).collect();
        let (singles, single_responses) = apply_split(&runtime, &log, &every_entry);
        assert_eq!(one_batch.digest_hex(), singles.digest_hex(), "seed {seed}");
        assert_eq!(expected, single_responses, "seed {seed}");
        let (odd, odd_responses) = apply_split(&runtime, &log, &[1, 5, 6, 17, 40]);
        assert_eq!(one_batch.digest_hex(), odd.digest_hex(), "seed {seed}");
        assert_eq!(expected, odd_responses, "seed {seed}");
        assert!(expected.iter().any(|r| r.result.is_err()), "the log exercises refusals too");
        assert!(one_batch.clock_ms() >= 2_000);
        // A snapshot image rebuilds the same state.
        let image = postcard::from_bytes(&postcard::to_stdvec(&one_batch.image()).unwrap()).unwrap();
        assert_eq!(Machine::from_image(image).digest_hex(), one_batch.digest_hex());
    }

    #[test]
    fn namespace_records_change_only_as_entries_say() {
        use crate::state::NamespaceChange;
        let runtime = Runtime::new(None).unwrap();
        let mut machine = Machine::default();
        let changes = [
            NamespaceChange::Create { id: "dev".into(), name: "Dev".into(), desc: String::new() },
            NamespaceChange::Create { id: "dev".into(), name: "Again".into(), desc: String::new() },
            NamespaceChange::Update { id: "dev".into(), name: "Developers".into(), desc: "d".into() },
            NamespaceChange::Update { id: "nope".into(), name: "x".into(), desc: String::new() },
            NamespaceChange::Delete { id: "nope".into() },
        ];
        let proposals: Vec<_> =
            changes.into_iter().map(|c| Proposal { timestamp_ms: 7, op: Operation::Namespace(c) }).collect();
        let refs: Vec<_> = proposals
            .iter()
            .enumerate()
            .map(|(i, p)| EntryRef { index: i as u64 + 1, term: 1, proposal: Some(p) })
            .collect();
        let (responses, _) = machine.apply(&runtime, &refs).unwrap();
        let codes: Vec<_> = responses.iter().map(|r| r.result.as_ref().map_or_else(|e| e.code, |_| 200)).collect();
        assert_eq!(codes, vec![200, 409, 200, 404, 404]);
        let record = machine.namespace("dev").unwrap();
        assert_eq!((record.name.as_str(), record.desc.as_str(), record.created_ms), ("Developers", "d", 7));
        assert_eq!(machine.namespaces().len(), 1);
        let delete =
            Proposal { timestamp_ms: 8, op: Operation::Namespace(NamespaceChange::Delete { id: "dev".into() }) };
        machine.apply(&runtime, &[EntryRef { index: 6, term: 1, proposal: Some(&delete) }]).unwrap();
        assert!(machine.namespaces().is_empty());
    }

    #[test]
    fn bootstrap_binds_once_and_unbound_namespaces_use_the_default() {
        let runtime = Runtime::new(None).unwrap();
        let log = entries(0, 1);
        let (mut machine, _) = apply_split(&runtime, &log, &[]);
        assert!(machine.has_default_bindings());
        let binding = machine.binding_for(Scope::new("any-namespace", ModuleKind::Config)).unwrap();
        assert_eq!(binding.since_index, 1);
        let again = [EntryRef { index: 2, term: 1, proposal: Some(&log[0].2) }];
        let digest = machine.digest_hex();
        machine.apply(&runtime, &again).unwrap();
        assert_eq!(
            machine.binding_for(Scope::new("x", ModuleKind::Config)).unwrap().since_index,
            1,
            "second bootstrap is a no-op"
        );
        assert_eq!(machine.digest_hex(), digest, "a repeated bootstrap at the same time changes nothing");
        assert_eq!(machine.bindings().len(), 2);
    }

    mod auth {
        use super::*;
        use crate::auth::permission::ROLE_ADMIN;
        use crate::state::AuthChange;

        const KEY: [u8; 32] = [9; 32];

        /// Apply `changes` as consecutive entries from index `first`: each one's status and
        /// message.
        fn apply(machine: &mut Machine, first: u64, changes: Vec<AuthChange>) -> Vec<(u16, String)> {
            let runtime = Runtime::new(None).unwrap();
            let proposals: Vec<_> =
                changes.into_iter().map(|c| Proposal { timestamp_ms: 7, op: Operation::Auth(c) }).collect();
            let refs: Vec<_> = proposals
                .iter()
                .enumerate()
                .map(|(i, p)| EntryRef { index: first + i as u64, term: 1, proposal: Some(p) })
                .collect();
            let (responses, events) = machine.apply(&runtime, &refs).unwrap();
            assert!(events.is_empty());
            responses
                .into_iter()
                .map(|r| {
                    assert_eq!(r.module_id, None);
                    match r.result {
                        Ok(body) => (200, String::from_utf8(body).unwrap()),
                        Err(e) => (e.code, e.message),
                    }
                })
                .collect()
        }

        fn phc(password: &str) -> String {
            crate::auth::password::hash(password).unwrap()
        }

        fn bootstrap(username: &str) -> AuthChange {
            AuthChange::Bootstrap { username: username.into(), password_hash: phc("admin-pw"), signing_key: KEY }
        }

        fn create(username: &str) -> AuthChange {
            AuthChange::CreateUser { username: username.into(), password_hash: phc("pw") }
        }

        fn grant(role: &str, username: &str) -> AuthChange {
            AuthChange::GrantRole { role: role.into(), username: username.into() }
        }

        fn permission(role: &str, resource: &str, action: &str) -> AuthChange {
            AuthChange::AddPermission { role: role.into(), resource: resource.into(), action: action.into() }
        }

        #[test]
        fn every_refusal_is_nacos_s_and_changes_nothing() {
            let mut machine = Machine::default();
            apply(&mut machine, 1, vec![bootstrap("nacos"), create("alice"), grant("dev", "alice")]);
            let digest = machine.digest_hex();
            let answers = apply(
                &mut machine,
                4,
                vec![
                    create("alice"),
                    AuthChange::SetPassword { username: "bob".into(), password_hash: phc("x") },
                    AuthChange::DeleteUser { username: "bob".into() },
                    AuthChange::DeleteUser { username: "nacos".into() },
                    grant("dev", "bob"),
                    grant(ROLE_ADMIN, "alice"),
                    grant("dev", "alice"),
                    AuthChange::RevokeRole { role: ROLE_ADMIN.into(), username: Some("nacos".into()) },
                    AuthChange::RevokeRole { role: ROLE_ADMIN.into(), username: None },
                    permission("ops", "public:*:*", "r"),
                    bootstrap("root"),
                    AuthChange::CreateUser { username: "a/b".into(), password_hash: phc("x") },
                    AuthChange::CreateUser { username: "carol".into(), password_hash: "plaintext".into() },
                    permission("dev", "public:*:*", "x"),
                    permission("dev", "public:\0:*", "r"),
                ],
            );
            let expected = [
                (409, "user 'alice' already exist!"),
                (404, "user 'bob' not found!"),
                (404, "user 'bob' not found!"),
                (400, "cannot delete admin: nacos"),
                (400, "user 'bob' not found!"),
                (400, "role 'ROLE_ADMIN' is not permitted to create!"),
                (400, "user 'alice' already bound to the role 'dev'!"),
                (400, "role 'ROLE_ADMIN' is not permitted to delete!"),
                (400, "role 'ROLE_ADMIN' is not permitted to delete!"),
                (400, "role ops not found!"),
                (409, "have admin user cannot use it"),
                (400, "invalid username: may only contain letters, digits, '_', '-', '.' and '@'"),
                (400, "invalid password hash: not an Argon2id PHC string with bounded parameters"),
                (400, "invalid action: must be r, w or rw"),
                (400, "invalid resource: must not contain control characters"),
            ];
            let expected: Vec<_> = expected.iter().map(|(code, message)| (*code, message.to_string())).collect();
            assert_eq!(answers, expected);
            assert_eq!(machine.digest_hex(), digest, "no refusal changed anything but the entry clock");
        }

        #[test]
        fn users_roles_and_grants_change_as_entries_say() {
            let mut machine = Machine::default();
            let answers = apply(
                &mut machine,
                1,
                vec![
                    create("alice"),
                    create("bob"),
                    grant("dev", "alice"),
                    grant("dev", "bob"),
                    grant("ops", "alice"),
                    permission("dev", "dev:*:*", "rw"),
                    permission("dev", ":*:*", "r"),
                    permission("dev", "dev:*:*", "rw"),
                ],
            );
            let codes: Vec<_> = answers.iter().map(|(code, _)| *code).collect();
            assert_eq!(codes, [200, 200, 200, 200, 200, 200, 200, 409]);
            assert_eq!(machine.roles_of("alice"), ["dev", "ops"]);
            let grants = machine.role_grants("alice");
            assert_eq!(grants.len(), 2);
            assert_eq!((grants[0].role.as_str(), grants[0].grants.len()), ("dev", 2));
            assert!(grants[1].grants.is_empty());
            let bindings = machine.role_bindings_page(None, Some("dev"), 1, 10);
            assert_eq!((bindings.total_count, bindings.page_items.len()), (2, 2));
            assert_eq!(machine.role_bindings_page(Some("alice"), None, 1, 10).total_count, 2);
            assert_eq!(machine.role_bindings_page(Some("alice"), Some("dev"), 1, 10).total_count, 1);
            assert_eq!(machine.role_bindings_page(Some("ali"), Some("dev"), 1, 10).total_count, 0);
            assert_eq!(machine.search_roles("e"), ["dev"]);
            assert_eq!(machine.permissions_page(Some("dev"), 1, 1).pages_available, 2);

            // Revoking one binding, then the role everywhere; its grants stay (as Nacos's).
            let answers = apply(
                &mut machine,
                20,
                vec![
                    AuthChange::RevokeRole { role: "dev".into(), username: Some("bob".into()) },
                    AuthChange::RevokeRole { role: "ops".into(), username: None },
                    AuthChange::RemovePermission { role: "dev".into(), resource: ":*:*".into(), action: "r".into() },
                ],
            );
            assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
            assert!(machine.roles_of("bob").is_empty());
            assert_eq!(machine.roles_of("alice"), ["dev"]);
            assert_eq!(machine.permissions_of_role("dev").len(), 1);

            // Deleting a user removes their bindings, from both sides.
            apply(&mut machine, 30, vec![AuthChange::DeleteUser { username: "alice".into() }]);
            assert!(machine.user("alice").is_none());
            assert!(machine.roles_of("alice").is_empty());
            assert_eq!(machine.role_bindings_page(None, None, 1, 10).total_count, 0);
            assert_eq!(machine.users(), [crate::state::UserSummary { username: "bob".into() }]);
        }

        #[test]
        fn a_new_password_or_a_new_incarnation_moves_the_epoch() {
            let mut machine = Machine::default();
            apply(&mut machine, 3, vec![create("alice")]);
            let first = machine.user("alice").unwrap();
            assert_eq!(first.epoch, 3);
            assert!(crate::auth::password::verify("pw", &first.password_hash));
            let new_hash = phc("new");
            let set = AuthChange::SetPassword { username: "alice".into(), password_hash: new_hash.clone() };
            apply(&mut machine, 8, vec![set]);
            let second = machine.user("alice").unwrap();
            assert_eq!((second.epoch, second.password_hash.as_str(), second.created_ms), (8, new_hash.as_str(), 7));
            apply(&mut machine, 12, vec![AuthChange::DeleteUser { username: "alice".into() }, create("alice")]);
            assert_eq!(machine.user("alice").unwrap().epoch, 13, "a re-created user's old tokens stay void");
        }

        #[test]
        fn the_admin_bootstrap_happens_once() {
            let mut machine = Machine::default();
            assert!(!machine.auth_bootstrapped() && !machine.has_admin() && machine.signing_key().is_none());
            let answers = apply(&mut machine, 1, vec![bootstrap("nacos"), bootstrap("root")]);
            assert_eq!(answers[0], (200, "create admin user ok!".to_string()));
            assert_eq!(answers[1], (409, "have admin user cannot use it".to_string()));
            assert!(machine.auth_bootstrapped() && machine.has_admin());
            assert_eq!(machine.signing_key(), Some(KEY));
            assert_eq!(machine.roles_of("nacos"), [ROLE_ADMIN]);
            assert!(machine.user("root").is_none());
            let record = machine.auth_bootstrap_record().unwrap();
            assert_eq!((record.username.as_str(), record.index), ("nacos", 1));
            // A zero key is refused before anything is looked at.
            let zero = AuthChange::Bootstrap { username: "x".into(), password_hash: phc("p"), signing_key: [0; 32] };
            assert_eq!(apply(&mut Machine::default(), 1, vec![zero])[0].0, 400);
        }

        #[test]
        fn listings_and_printing_never_show_hashes_or_keys() {
            let mut machine = Machine::default();
            apply(&mut machine, 1, vec![bootstrap("nacos"), create("alice")]);
            let page = machine.users_page(1, 10);
            assert_eq!(page.total_count, 2);
            let listed = serde_json::to_string(&page).unwrap();
            assert!(listed.contains("\"totalCount\":2") && listed.contains("\"pageItems\""), "{listed}");
            assert!(!listed.contains("argon2") && !listed.contains("password"), "{listed}");
            let record = format!("{:?}", machine.user("alice").unwrap());
            assert!(!record.contains("argon2"), "{record}");
            let entry = Operation::Auth(bootstrap("nacos"));
            for printed in [format!("{entry}"), format!("{entry:?}")] {
                assert!(!printed.contains("argon2") && !printed.contains("9, 9"), "{printed}");
            }
            assert_eq!(machine.search_usernames("li"), ["alice"]);
            assert_eq!(machine.users_page(2, 1).page_items, [crate::state::UserSummary { username: "nacos".into() }]);
            assert_eq!(machine.users_page(0, 0).page_items.len(), 1, "page 0 is the first, size 0 is 1");
        }

        #[test]
        fn auth_entries_give_every_replica_the_same_state() {
            let changes = vec![
                bootstrap("nacos"),
                create("alice"),
                create("alice"),
                grant("dev", "alice"),
                permission("dev", "dev:*:*", "rw"),
                AuthChange::SetPassword { username: "alice".into(), password_hash: phc("2") },
                AuthChange::DeleteUser { username: "nacos".into() },
                AuthChange::RevokeRole { role: "dev".into(), username: None },
            ];
            let (mut a, mut b) = (Machine::default(), Machine::default());
            let answers = apply(&mut a, 1, changes.clone());
            // The other replica receives the same entries in two batches.
            let mut split = apply(&mut b, 1, changes[..3].to_vec());
            split.extend(apply(&mut b, 4, changes[3..].to_vec()));
            assert_eq!(answers, split);
            assert_eq!(a.digest_hex(), b.digest_hex());
            let image = postcard::from_bytes(&postcard::to_stdvec(&a.image()).unwrap()).unwrap();
            let restored = Machine::from_image(image);
            assert_eq!(restored.digest_hex(), a.digest_hex());
            assert_eq!(restored.signing_key(), Some(KEY), "the key survives a snapshot");
        }
    }

    #[test]
    fn namespaces_with_data_lists_each_namespace_once() {
        let mut machine = Machine::default();
        for (ns, key) in [("dev", "a"), ("dev", "b"), ("dev-x", "a"), ("public", "z")] {
            let mut full = keys::guest_prefix(ModuleKind::Naming, ns);
            full.extend_from_slice(key.as_bytes());
            machine.kv.put(full, b"v".to_vec());
        }
        machine.kv.put([keys::guest_prefix(ModuleKind::Config, "cfg"), b"k".to_vec()].concat(), b"v".to_vec());
        assert_eq!(machine.namespaces_with_data(ModuleKind::Naming), ["dev", "dev-x", "public"]);
        assert_eq!(machine.namespaces_with_data(ModuleKind::Config), ["cfg"]);
    }
}
