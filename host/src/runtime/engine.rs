//! [`Runtime`]: one deterministic Wasmtime engine, the loaded modules, and the entry points.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmFeatures};

use super::bindings::{self, StateMachinePre};
use super::cache::DiskCache;
use super::call::{self, Fault, engine_error};
use super::host_state::{HostState, Mode, Overlay};
use super::limits::{
    DESCRIBE_FUEL, DUTY_QUERY_FUEL, INLINE_FUEL, MAX_CONCURRENT_QUERIES, MAX_CORE_INSTANCES_PER_COMPONENT,
    MAX_GUEST_MEMORY_BYTES, MAX_LIVE_INSTANCES, MAX_MEMORIES_PER_COMPONENT, MAX_MIGRATE_ERROR_BYTES, MAX_MODULE_BYTES,
    MAX_MODULE_NAME_BYTES, MAX_MODULE_VERSION_BYTES, MAX_RESULT_BYTES, MAX_TABLE_ELEMENTS, MAX_TABLES_PER_COMPONENT,
    MAX_WASM_STACK_BYTES, MIGRATE_FUEL, QUERY_FUEL,
};
use super::{
    Budget, CommandOutcome, GuestCommand, GuestError, KvRead, MigrateOutcome, ModuleId, ModuleInfo, ModuleKind,
    QueryContext, RuntimeError, apply,
};

/// The guest runtime. Cheap to clone (one `Arc`); share it between the state machine and the
/// query handlers. Every call runs on the caller's thread, synchronously.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    modules: RwLock<HashMap<ModuleId, Arc<LoadedModule>>>,
    /// A turn per module being compiled now: a second load of the same bytes (the background
    /// compile of an install and the apply of its activation, say) waits for the first
    /// instead of compiling again, which on a busy node doubles a second of CPU.
    compiling: Mutex<HashMap<ModuleId, Arc<Mutex<()>>>>,
    disk: Option<DiskCache>,
    queries_running: AtomicUsize,
    /// Components compiled from source (not read from the disk cache) by this runtime.
    compilations: AtomicU64,
}

/// A module ready to instantiate.
pub(crate) struct LoadedModule {
    pub pre: StateMachinePre<HostState>,
    pub info: ModuleInfo,
    /// Cleared the first time the guest breaks the `begin-command` protocol; from then on its
    /// commands are applied one per call. Outcomes are the same either way; this only saves
    /// the discarded batch attempts.
    batching: AtomicBool,
    /// Guest calls made by `apply` (for tests of the batching).
    #[cfg(test)]
    pub apply_calls: AtomicU64,
}

impl LoadedModule {
    pub fn batching(&self) -> bool {
        self.batching.load(Ordering::Relaxed)
    }

    pub fn stop_batching(&self) {
        self.batching.store(false, Ordering::Relaxed);
    }
}

/// The lowercase hex sha256 of a module's bytes: its identity everywhere in Nacre.
pub fn module_id(bytes: &[u8]) -> ModuleId {
    hex::encode(Sha256::digest(bytes))
}

/// A `KvRead` with nothing in it, for calls that must not depend on state (`describe`).
struct EmptyKv;

impl KvRead for EmptyKv {
    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn scan(&self, _start: &[u8], _end: &[u8], _limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
}

impl Runtime {
    /// Creates the engine. With `cache_dir`, compiled modules are kept there across restarts.
    pub fn new(cache_dir: Option<&Path>) -> Result<Runtime, RuntimeError> {
        Self::with_caches(cache_dir, None)
    }

    /// [`Runtime::new`], also sharing compiled modules through `shared_dir` with this user's
    /// other nodes on this machine (see `runtime::cache`).
    pub fn with_caches(cache_dir: Option<&Path>, shared_dir: Option<&Path>) -> Result<Runtime, RuntimeError> {
        let engine = Engine::new(&engine_config()).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        super::imports::define(&mut linker).map_err(engine_error)?;
        let disk = cache_dir.map(|dir| DiskCache::open(dir, shared_dir, &engine)).transpose()?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                modules: RwLock::new(HashMap::new()),
                compiling: Mutex::new(HashMap::new()),
                disk,
                queries_running: AtomicUsize::new(0),
                compilations: AtomicU64::new(0),
            }),
        })
    }

    /// Validates, compiles (or reads from the disk cache) and describes a module, and keeps it
    /// loaded. Loading a module again is cheap and returns the same answer.
    ///
    /// `TooLarge` and `Invalid` are deterministic verdicts on the bytes; `Engine` is not.
    pub fn load(&self, bytes: &[u8]) -> Result<(ModuleId, ModuleInfo), RuntimeError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(RuntimeError::TooLarge { size_bytes: bytes.len(), limit_bytes: MAX_MODULE_BYTES });
        }
        let id = module_id(bytes);
        if let Some(module) = self.loaded(&id) {
            return Ok((id, module.info.clone()));
        }
        let turn = {
            let mut compiling = self.inner.compiling.lock().unwrap_or_else(PoisonError::into_inner);
            compiling.entry(id.clone()).or_default().clone()
        };
        let held = turn.lock().unwrap_or_else(PoisonError::into_inner);
        // Whoever held the turn before may have loaded it meanwhile.
        let loaded = match self.loaded(&id) {
            Some(module) => Ok(module.info.clone()),
            None => self.compile_and_describe(&id, bytes),
        };
        self.inner.compiling.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        drop(held);
        loaded.map(|info| (id, info))
    }

    fn compile_and_describe(&self, id: &ModuleId, bytes: &[u8]) -> Result<ModuleInfo, RuntimeError> {
        let component = self.compile(id, bytes)?;
        let pre = call::prepare(&self.inner.linker, &component)?;
        let info = self.describe_new(&pre)?;
        let module = Arc::new(LoadedModule {
            pre,
            info: info.clone(),
            batching: AtomicBool::new(true),
            #[cfg(test)]
            apply_calls: AtomicU64::new(0),
        });
        let mut modules = self.inner.modules.write().expect("module map lock poisoned");
        modules.entry(id.clone()).or_insert(module);
        Ok(info)
    }

    /// Forget a module: its compiled form in memory and in the disk cache. Calls already
    /// running keep their instance; a later call compiles it again if it is installed again.
    pub fn unload(&self, id: &ModuleId) {
        self.inner.modules.write().expect("module map lock poisoned").remove(id);
        if let Some(disk) = &self.inner.disk {
            let _ = std::fs::remove_file(disk.path(id));
        }
    }

    pub fn is_loaded(&self, id: &ModuleId) -> bool {
        self.loaded(id).is_some()
    }

    /// What the module said about itself when it was loaded.
    pub fn describe(&self, id: &ModuleId) -> Result<ModuleInfo, RuntimeError> {
        Ok(self.module(id)?.info.clone())
    }

    /// Applies committed commands in order: exactly one outcome per command, the same however
    /// the caller batches them (see `apply.rs`). `base` is the committed state of the module's
    /// keyspace before the first command; the caller commits each outcome's writes in order.
    pub fn apply(
        &self,
        id: &ModuleId,
        namespace: &str,
        term: u64,
        cmds: &[GuestCommand],
        base: &dyn KvRead,
    ) -> Result<Vec<CommandOutcome>, RuntimeError> {
        let module = self.module(id)?;
        let ctx = bindings::BatchContext { namespace: namespace.to_string(), term };
        let outcomes = apply::apply(&self.inner.engine, &module, &ctx, cmds, base)?;
        assert_eq!(outcomes.len(), cmds.len(), "one outcome per command");
        Ok(outcomes)
    }

    /// Runs one command outside the log (an AP command) against `base`, alone, within
    /// `budget`. The caller stores the outcome's writes.
    pub fn apply_one(
        &self,
        id: &ModuleId,
        namespace: &str,
        cmd: &GuestCommand,
        base: &dyn KvRead,
        budget: Budget,
    ) -> Result<CommandOutcome, RuntimeError> {
        let module = self.module(id)?;
        let ctx = bindings::BatchContext { namespace: namespace.to_string(), term: 0 };
        apply::apply_one(&self.inner.engine, &module, &ctx, cmd, base, budget)
    }

    /// Answers a read with its full fuel: [`Runtime::query_within`] with [`Budget::Full`].
    pub fn query(
        &self,
        id: &ModuleId,
        ctx: &QueryContext,
        request: &[u8],
        base: &dyn KvRead,
    ) -> Result<Result<Vec<u8>, GuestError>, RuntimeError> {
        self.query_within(id, ctx, request, base, Budget::Full)
    }

    /// Answers a read. The outer error is the host's; the inner one the guest's (a refusal, or
    /// a trap, a limit or a write attempt as code 500).
    pub fn query_within(
        &self,
        id: &ModuleId,
        ctx: &QueryContext,
        request: &[u8],
        base: &dyn KvRead,
        budget: Budget,
    ) -> Result<Result<Vec<u8>, GuestError>, RuntimeError> {
        let _slot = QuerySlot::enter(&self.inner.queries_running)?;
        let module = self.module(id)?;
        let ctx = bindings::QueryContext {
            namespace: ctx.namespace.clone(),
            applied_index: ctx.applied_index,
            timestamp_ms: ctx.timestamp_ms,
        };
        let fuel = match budget {
            Budget::Inline => INLINE_FUEL,
            Budget::Full => QUERY_FUEL,
            Budget::Duty => DUTY_QUERY_FUEL,
        };
        let finished =
            call::run(&self.inner.engine, &module.pre, base, Mode::Query, fuel, Overlay::new(), |guest, store| {
                guest.call_query(store, &ctx, request)
            })?;
        if budget == Budget::Inline && matches!(finished.result, Err(Fault::OutOfFuel)) {
            return Err(RuntimeError::OverInlineBudget);
        }
        Ok(match finished.result {
            Err(fault) => Err(fault.to_guest_error()),
            Ok(result) => {
                let result = result.map_err(from_guest_error);
                match oversized(&result) {
                    Some(size) => Err(result_limit_error(size)),
                    None => result,
                }
            }
        })
    }

    /// Runs the module's `migrate` against `base`. On a trap or an `Err`, no writes.
    pub fn migrate(
        &self,
        id: &ModuleId,
        previous: Option<&ModuleInfo>,
        base: &dyn KvRead,
    ) -> Result<MigrateOutcome, RuntimeError> {
        let module = self.module(id)?;
        let previous = previous.map(to_guest_info);
        let finished = call::run(
            &self.inner.engine,
            &module.pre,
            base,
            Mode::Migrate,
            MIGRATE_FUEL,
            Overlay::new(),
            |guest, store| guest.call_migrate(store, previous.as_ref()),
        )?;
        debug_assert!(finished.sealed.is_empty(), "begin-command is ignored in migrate");
        Ok(match finished.result {
            Ok(Ok(())) => MigrateOutcome { result: Ok(()), writes: finished.current.into_parts().0 },
            Ok(Err(message)) => {
                MigrateOutcome { result: Err(truncate(message, MAX_MIGRATE_ERROR_BYTES)), writes: Vec::new() }
            }
            Err(fault) => MigrateOutcome { result: Err(fault.message()), writes: Vec::new() },
        })
    }

    /// Components this runtime compiled rather than read from its disk cache (for tests).
    #[cfg(test)]
    pub(crate) fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Guest calls `apply` made for module `id`, and whether it still batches (for tests).
    #[cfg(test)]
    pub(crate) fn apply_calls(&self, id: &ModuleId) -> (u64, bool) {
        let module = self.module(id).expect("loaded");
        (module.apply_calls.load(Ordering::Relaxed), module.batching())
    }

    fn loaded(&self, id: &ModuleId) -> Option<Arc<LoadedModule>> {
        let modules = self.inner.modules.read().expect("module map lock poisoned");
        modules.get(id).cloned()
    }

    fn module(&self, id: &ModuleId) -> Result<Arc<LoadedModule>, RuntimeError> {
        self.loaded(id).ok_or_else(|| RuntimeError::NotLoaded(id.clone()))
    }

    fn compile(&self, id: &ModuleId, bytes: &[u8]) -> Result<Component, RuntimeError> {
        let disk = self.inner.disk.as_ref();
        if let Some(component) = disk.and_then(|disk| disk.read(&self.inner.engine, id)) {
            return Ok(component);
        }
        // Another node on this machine compiling the same module: wait for it, then read its.
        let _turn = disk.and_then(|disk| disk.compile_turn(id));
        if let Some(component) = disk.and_then(|disk| disk.read(&self.inner.engine, id)) {
            return Ok(component);
        }
        if is_core_module(bytes) {
            return Err(RuntimeError::Invalid(
                "a core Wasm module, not a component of the nacre:machine/state-machine world".into(),
            ));
        }
        let started = std::time::Instant::now();
        let component = Component::new(&self.inner.engine, bytes)
            .map_err(|e| RuntimeError::Invalid(format!("not a valid component: {e:#}")))?;
        super::call::record_compile(started.elapsed());
        self.inner.compilations.fetch_add(1, Ordering::Relaxed);
        if let Some(disk) = disk {
            disk.write(id, &component);
        }
        Ok(component)
    }

    /// Runs `describe` on a module being loaded; any failure rejects the module.
    fn describe_new(&self, pre: &StateMachinePre<HostState>) -> Result<ModuleInfo, RuntimeError> {
        let finished = call::run(
            &self.inner.engine,
            pre,
            &EmptyKv,
            Mode::Describe,
            DESCRIBE_FUEL,
            Overlay::new(),
            |guest, store| guest.call_describe(store),
        )?;
        let info =
            finished.result.map_err(|fault| RuntimeError::Invalid(format!("describe failed: {}", fault.message())))?;
        if info.name.is_empty() || info.name.len() > MAX_MODULE_NAME_BYTES {
            return Err(RuntimeError::Invalid(format!("describe: name must be 1 to {MAX_MODULE_NAME_BYTES} bytes")));
        }
        if info.version.is_empty() || info.version.len() > MAX_MODULE_VERSION_BYTES {
            return Err(RuntimeError::Invalid(format!(
                "describe: version must be 1 to {MAX_MODULE_VERSION_BYTES} bytes"
            )));
        }
        Ok(ModuleInfo {
            name: info.name,
            version: info.version,
            kind: match info.kind {
                bindings::nacre::machine::types::ModuleKind::Naming => ModuleKind::Naming,
                bindings::nacre::machine::types::ModuleKind::Config => ModuleKind::Config,
            },
            schema_version: info.schema_version,
        })
    }
}

/// The engine's configuration: everything that could make two replicas compute different
/// results is pinned or off.
fn engine_config() -> Config {
    let mut config = Config::new();
    // Determinism. Threads are not compiled into this build; the flags make the intent explicit
    // and make validation reject modules that use them.
    config.wasm_features(WasmFeatures::THREADS | WasmFeatures::SHARED_EVERYTHING_THREADS, false);
    config.wasm_relaxed_simd(false);
    config.relaxed_simd_deterministic(true);
    config.cranelift_nan_canonicalization(true);
    // Fuel, not epochs: an interruption must fall at the same instruction on every replica.
    config.consume_fuel(true);
    config.epoch_interruption(false);
    config.max_wasm_stack(MAX_WASM_STACK_BYTES);
    config.debug_info(false);
    // Trap messages are classified, never shown, so there is no use for backtraces.
    config.wasm_backtrace_max_frames(None);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
    // `NACRE_PERF_MAP=1`: name guest functions in `/tmp/perf-<pid>.map` so that `perf report`
    // can attribute the time spent in guest code. A diagnostic; it changes no result.
    if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// The environment variable that turns on the perf map of guest code (see `engine_config`).
pub const PERF_MAP_ENV: &str = "NACRE_PERF_MAP";

/// The pooling allocator: instantiation is the hot path (one fresh instance per `apply` call and
/// per query; ~30 µs for a query of the config module) and a pool turns it into reusing a slot
/// with its memory image already mapped, instead of fresh mmaps per instance. The cost is
/// address space reserved up front (4 GiB per memory slot, ~2 TiB per runtime: free on 64-bit
/// Linux) and a hard cap on live instances, which [`MAX_CONCURRENT_QUERIES`] keeps away from
/// `apply`.
///
/// A freed slot is reset for its next instance. By default that is an `madvise` of the whole
/// memory, so the next instance page-faults every page it touches again and every reset
/// flushes TLBs on all cores: a profile of the register path put that at a sixth of the
/// node's CPU. Instead, the first [`KEEP_RESIDENT_MEMORY_BYTES`] are reset in place (only the
/// pages written, found with the `PAGEMAP_SCAN` ioctl where the kernel has it, Linux 6.7+) and
/// stay mapped. A fresh instance still starts from the module's pristine memory image, so
/// nothing leaks from one call to the next. Slots are reused most-recently-freed first
/// (`max_unused_warm_slots(0)`), so the memory kept resident is that of the most calls that
/// ever ran at once, not of every slot in the pool.
fn pooling_config() -> PoolingAllocationConfig {
    let instances = MAX_LIVE_INSTANCES as u32;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * MAX_MEMORIES_PER_COMPONENT)
        .total_tables(instances * MAX_TABLES_PER_COMPONENT)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(MAX_GUEST_MEMORY_BYTES)
        .table_elements(MAX_TABLE_ELEMENTS)
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .max_unused_warm_slots(0);
    pool
}

/// Linear memory of a pool slot reset in place and kept resident between instances: more than
/// a typical call of the built-in guests touches (stack, data, a few hundred KiB of heap), so
/// they never fault their pages back in; a call that grows past it pays an `madvise` for the rest.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 4 << 20;
/// The same for tables (a Rust guest's one funcref table is a few KiB).
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// A Wasm binary's header: magic, then version 1 and layer 0 for a core module (a component
/// has layer 1).
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x01\x00\x00\x00")
}

/// Holds one of the [`MAX_CONCURRENT_QUERIES`] query slots.
struct QuerySlot<'a>(&'a AtomicUsize);

impl<'a> QuerySlot<'a> {
    fn enter(running: &'a AtomicUsize) -> Result<QuerySlot<'a>, RuntimeError> {
        if running.fetch_add(1, Ordering::AcqRel) >= MAX_CONCURRENT_QUERIES {
            running.fetch_sub(1, Ordering::AcqRel);
            return Err(RuntimeError::Busy { limit: MAX_CONCURRENT_QUERIES });
        }
        Ok(QuerySlot(running))
    }
}

impl Drop for QuerySlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn from_guest_error(error: bindings::GuestError) -> GuestError {
    GuestError { code: error.code, message: error.message }
}

/// The size of a result over [`MAX_RESULT_BYTES`] (its payload, or its error's message).
pub(crate) fn oversized(result: &Result<Vec<u8>, GuestError>) -> Option<usize> {
    let size = match result {
        Ok(bytes) => bytes.len(),
        Err(error) => error.message.len(),
    };
    (size > MAX_RESULT_BYTES).then_some(size)
}

pub(crate) fn result_limit_error(size: usize) -> GuestError {
    GuestError { code: 500, message: format!("guest result of {size} bytes over the limit of {MAX_RESULT_BYTES}") }
}

fn to_guest_info(info: &ModuleInfo) -> bindings::ModuleInfo {
    bindings::ModuleInfo {
        name: info.name.clone(),
        version: info.version.clone(),
        kind: match info.kind {
            ModuleKind::Naming => bindings::nacre::machine::types::ModuleKind::Naming,
            ModuleKind::Config => bindings::nacre::machine::types::ModuleKind::Config,
        },
        schema_version: info.schema_version,
    }
}

/// Cuts `text` to at most `max` bytes at a char boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

// The state machine task and the HTTP handlers share one runtime across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
};
