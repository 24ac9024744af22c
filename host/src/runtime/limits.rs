//! Every limit the runtime puts on a guest, and the resource limiter that enforces the memory
//! and table ones.
//!
//! The limits that shape a command's outcome (fuel, memory, stack, key/value/write/event/result
//! sizes) are part of the replicated semantics: every replica must use the same values, and
//! changing one can change how an old log replays. Change them only together with a versioned
//! rule for when the new value takes effect.

use wasmtime::ResourceLimiter;

use super::host_state::HostFault;

// --- Fuel (one unit is roughly one simple Wasm instruction) ---------------------------------

/// Fuel of one `apply` command, reset at each `begin-command` so that batching cannot change it.
/// A typical command takes well under a million; re-encoding a service of ten thousand instances
/// or a multi-MiB config takes tens of millions. Fuel-metered code runs roughly one unit per
/// nanosecond here, so 200 M bounds how long a looping command stalls every replica to a few
/// hundred milliseconds (it runs twice: in its batch, then alone).
pub const PER_COMMAND_FUEL: u64 = 200_000_000;
/// Fuel a command later in a batch gets less than [`PER_COMMAND_FUEL`]. Such a command runs in
/// an instance warmed by the commands before it (lazy statics built, allocator grown), so it
/// costs less than alone. Without a margin a command just under the budget in a batch could run
/// out alone on another replica that batched differently. With it, a command that needs more
/// than `PER_COMMAND_FUEL - WARM_BATCH_MARGIN_FUEL` traps in the batch and is re-run alone,
/// which decides its outcome. Sound as long as a guest's warm-up costs less than the margin.
pub const WARM_BATCH_MARGIN_FUEL: u64 = 20_000_000;
/// Fuel of one `query`, the same as a command's: a read renders what a write produced.
pub const QUERY_FUEL: u64 = 200_000_000;
/// Fuel of the first, inline attempt at a query or an AP command (`Budget::Inline`): run on
/// the async worker that received the request, it must stay short, and handing the worker's
/// other tasks to another thread (`block_in_place`) costs more than a typical call (tens of
/// microseconds, well under a million). At roughly a nanosecond a unit this bounds the stall
/// to a few milliseconds. A call that needs more is run again from the start with its full
/// fuel off the worker: neither has effects before it returns, so nothing is done twice, and
/// an outcome reached within this budget is the same as with the full one.
///
/// Not part of the replicated semantics: queries and AP commands are computed once, on one node.
pub const INLINE_FUEL: u64 = 5_000_000;
const _: () =
    assert!(INLINE_FUEL < QUERY_FUEL && INLINE_FUEL < PER_COMMAND_FUEL, "the inline attempt is the short one");
const _: () = assert!(WARM_BATCH_MARGIN_FUEL < PER_COMMAND_FUEL / 2, "a batched command keeps most of its budget");
/// Fuel of a host duty's query (`Budget::Duty`): the lease sweep reads every instance of a
/// chunk of partitions, or of one partition as large as a service may grow (the naming guest's
/// 10,000 instances cost about 320 M, measured by `duties::leases`'s tests). It runs off the
/// async workers and at most once a second per chunk; measured at well over one unit per
/// nanosecond, this bounds one sweep query to under a second of one core.
pub const DUTY_QUERY_FUEL: u64 = 1_000_000_000;
const _: () = assert!(DUTY_QUERY_FUEL > QUERY_FUEL, "a duty reads more than a client's query");
/// Fuel of `migrate`, which may rewrite a whole namespace once per binding switch.
pub const MIGRATE_FUEL: u64 = 2_000_000_000;
/// Fuel of `describe`, which only returns constants.
pub const DESCRIBE_FUEL: u64 = 1_000_000;
/// Fuel charged for any host call (store, events), on top of the bytes it moves: a host call
/// costs the host about as much as a few hundred guest instructions.
pub const HOST_CALL_FUEL: u64 = 500;
/// Bytes a host call may move (keys, values, scan rows) per unit of fuel charged. Charging for
/// bytes stops a guest from making the host copy gigabytes within a small instruction budget.
pub const HOST_CALL_BYTES_PER_FUEL: u64 = 16;

// --- Memory, stack, tables ---------------------------------------------------------------------

/// Linear memory of one guest instance. Growth beyond it traps (it does not return -1), so the
/// failure is reported as "memory limit exceeded" rather than as whatever the guest's allocator
/// does on failure.
pub const MAX_GUEST_MEMORY_BYTES: usize = 64 << 20;
/// Native stack that Wasm frames may use. Guests run on the caller's thread (tokio workers and
/// blocking threads have 2 MiB stacks), so this must leave room for the host's own frames.
pub const MAX_WASM_STACK_BYTES: usize = 512 << 10;
/// Elements of one table (Rust guests use one funcref table of a few thousand entries).
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Linear memories of one component (a Rust guest has one; adapters may add one).
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables of one component (the main module's plus the shim modules of lowered imports).
pub const MAX_TABLES_PER_COMPONENT: u32 = 4;
/// Core instances of one component (the main module, shims, fixups and adapters).
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 8;

// --- Modules -----------------------------------------------------------------------------------

/// Size of a module's component bytes (the built-in guests are a few hundred KiB).
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Length of a module's self-reported name.
pub const MAX_MODULE_NAME_BYTES: usize = 128;
/// Length of a module's self-reported version.
pub const MAX_MODULE_VERSION_BYTES: usize = 64;

// --- Store calls -------------------------------------------------------------------------------

/// A key, and each bound of a scan. Nacos keys (tenant, group, data id, service, cluster, ip,
/// port) are a few hundred bytes at most.
pub const MAX_KEY_BYTES: usize = 4 << 10;
/// A value (a config's content is the largest; Nacos's default cap is far below this).
pub const MAX_VALUE_BYTES: usize = 4 << 20;
/// `put` and `delete` calls of one command.
pub const MAX_WRITES_PER_COMMAND: usize = 4_096;
/// Key and value bytes of all `put` and `delete` calls of one command.
pub const MAX_WRITE_BYTES_PER_COMMAND: usize = 16 << 20;
/// `put` and `delete` calls of one `migrate`, which may rewrite a namespace.
pub const MAX_MIGRATE_WRITES: usize = 1_000_000;
/// Key and value bytes written by one `migrate`.
pub const MAX_MIGRATE_WRITE_BYTES: usize = 256 << 20;
/// Rows one `scan` call may ask for.
pub const MAX_SCAN_ROWS: usize = 4_096;
/// Key and value bytes one `scan` call may return; a scan over it traps rather than truncates,
/// so a guest never mistakes a short page for the end of the range.
pub const MAX_SCAN_BYTES: usize = 16 << 20;

// --- Events and results ------------------------------------------------------------------------

/// `emit` calls of one command.
pub const MAX_EVENTS_PER_COMMAND: usize = 4_096;
/// Bytes of an event's topic, and of its key.
pub const MAX_EVENT_FIELD_BYTES: usize = 4 << 10;
/// Bytes of one command's or query's result (an `Ok` payload, or an error's message).
pub const MAX_RESULT_BYTES: usize = 8 << 20;
/// Bytes of a `migrate` error string kept in the outcome (the rest is cut at a char boundary).
pub const MAX_MIGRATE_ERROR_BYTES: usize = 4 << 10;

// --- Batching (performance only: outcomes never depend on these) ------------------------------

/// Commands handed to one guest call.
pub const MAX_BATCH_COMMANDS: usize = 256;
/// Payload bytes handed to one guest call (besides one oversized command alone).
pub const MAX_BATCH_PAYLOAD_BYTES: usize = 4 << 20;

// --- Concurrency -------------------------------------------------------------------------------

/// Queries running at once; one more gets `RuntimeError::Busy` instead of waiting, so that
/// queries can never take the instance slots that `apply` needs.
pub const MAX_CONCURRENT_QUERIES: usize = 240;
/// Instance slots kept for `apply`, `migrate` and `load` (the state machine applies one call at
/// a time; the rest is for dry runs and installs).
pub const RESERVED_INSTANCE_SLOTS: usize = 16;
/// Component instances alive at once: the size of the pooling allocator.
pub const MAX_LIVE_INSTANCES: usize = MAX_CONCURRENT_QUERIES + RESERVED_INSTANCE_SLOTS;

// --- How the limits relate ---------------------------------------------------------------------

const _: () = assert!(MAX_KEY_BYTES + MAX_VALUE_BYTES <= MAX_WRITE_BYTES_PER_COMMAND, "one largest put fits a command");
const _: () = assert!(MAX_VALUE_BYTES <= MAX_RESULT_BYTES, "a stored value can be read back whole");
const _: () =
    assert!(MAX_WRITE_BYTES_PER_COMMAND <= MAX_MIGRATE_WRITE_BYTES, "a migrate can rewrite what a command wrote");
const _: () = assert!(MAX_SCAN_BYTES < MAX_GUEST_MEMORY_BYTES, "a full scan page fits in a guest's memory");

/// Enforces [`MAX_GUEST_MEMORY_BYTES`] and [`MAX_TABLE_ELEMENTS`] on one store.
///
/// Growth past a limit is a trap carrying [`HostFault::MemoryLimit`] / [`HostFault::TableLimit`]
/// so that the outcome names the limit. A growth the limit allows but the machine cannot back
/// is a host problem ([`HostFault::HostResources`]), never a `-1` the guest could act on: that
/// would let one replica's memory pressure change the replicated result.
#[derive(Debug, Default)]
pub(crate) struct GuestLimiter {
    /// Whether the guest grew a memory past its initial size: a cost to the host (the pool
    /// slot's protection changes now and again when the slot is reused), which the guests'
    /// allocator avoids for calls that fit their initial memory.
    pub grew_memory: bool,
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_GUEST_MEMORY_BYTES {
            return Err(HostFault::MemoryLimit.into());
        }
        // `current == 0` is the memory being created at its initial size.
        self.grew_memory |= current > 0 && desired > current;
        // Past the module's own declared maximum: the spec's deterministic `-1`.
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(HostFault::HostResources(format!("memory growth failed: {error}")).into())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(HostFault::TableLimit.into());
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(HostFault::HostResources(format!("table growth failed: {error}")).into())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_COMPONENT as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_COMPONENT as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_COMPONENT as usize
    }
}
