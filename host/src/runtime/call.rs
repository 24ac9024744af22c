//! One guest call: a fresh store and instance, the fuel and limits of the call, and the
//! classification of its failure into a deterministic guest fault or a host error.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use wasmtime::component::InstancePre;
use wasmtime::{Engine, OutOfMemory, PoolConcurrencyLimitError, Store, Trap};

use super::bindings::{StateMachine, StateMachinePre};
use super::host_state::{BaseRef, Effects, HostFault, HostState, Mode, Overlay};
use super::{GuestError, KvRead, RuntimeError};

/// Why a guest call failed, as every replica sees it. Its message never holds addresses,
/// timings or host paths, so it can be part of a replicated outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    OutOfFuel,
    MemoryLimit,
    TableLimit,
    Trap(Trap),
    /// A host call refused its arguments (a limit) or its mode (a write in a query).
    Rejected(String),
    /// `begin-command` out of order.
    Protocol(String),
    /// Any other error Wasmtime raised while lifting or lowering values across the component
    /// boundary (a bad pointer, invalid UTF-8, a bad discriminant): the guest broke the
    /// canonical ABI. Wasmtime's own message is logged, not replicated.
    Abi,
}

impl Fault {
    pub fn message(&self) -> String {
        let reason = match self {
            Fault::OutOfFuel => "out of fuel".to_string(),
            Fault::MemoryLimit => "memory limit exceeded".to_string(),
            Fault::TableLimit => "table limit exceeded".to_string(),
            Fault::Trap(trap) => trap_reason(*trap),
            Fault::Rejected(why) | Fault::Protocol(why) => why.clone(),
            Fault::Abi => "invalid value at the component boundary".to_string(),
        };
        format!("guest trapped: {reason}")
    }

    pub fn to_guest_error(&self) -> GuestError {
        GuestError { code: 500, message: self.message() }
    }
}

/// The trap's own description ("wasm trap: call stack exhausted" without the prefix): fixed
/// strings of the pinned Wasmtime version.
fn trap_reason(trap: Trap) -> String {
    let text = trap.to_string();
    match text.strip_prefix("wasm trap: ") {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

/// A call's result and what its imports recorded (the base reference is gone).
pub(crate) struct Finished<T> {
    pub result: Result<T, Fault>,
    /// The overlay of earlier calls, handed back unchanged.
    pub prior: Overlay,
    /// Effects of the commands sealed by `begin-command` during the call.
    pub sealed: Vec<Effects>,
    /// Effects since the last seal (the whole call's, outside `apply`).
    pub current: Effects,
    /// `begin-command` calls accepted.
    pub begun: u32,
}

#[cfg(test)]
thread_local! {
    /// Calls on this thread whose guest grew its memory past the initial size (tests run
    /// their guest calls on their own thread, so parallel tests do not mix their counts).
    pub(crate) static CALLS_THAT_GREW_MEMORY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Fuel the last call on this thread consumed (instantiation included): what tests
    /// measure an operation's cost with (`super::fuel_of_last_call`).
    pub(crate) static FUEL_OF_LAST_CALL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Guest work counted for `/metrics`. Process-wide statics rather than a field of the runtime:
/// every call runs here with only the engine at hand, and a node holds one runtime.
static CALLS: AtomicU64 = AtomicU64::new(0);
static FUEL_CONSUMED: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static COMPILATIONS: AtomicU64 = AtomicU64::new(0);
static COMPILE_MICROS: AtomicU64 = AtomicU64::new(0);

/// Guest work since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestStats {
    pub calls: u64,
    pub fuel_consumed: u64,
    /// Calls that ended in a fault: a trap, fuel or memory exhausted, a broken protocol.
    pub faults: u64,
    /// Modules compiled from source (not from the disk cache), and the time it took.
    pub compilations: u64,
    pub compile_micros: u64,
}

pub fn guest_stats() -> GuestStats {
    GuestStats {
        calls: CALLS.load(Ordering::Relaxed),
        fuel_consumed: FUEL_CONSUMED.load(Ordering::Relaxed),
        faults: FAULTS.load(Ordering::Relaxed),
        compilations: COMPILATIONS.load(Ordering::Relaxed),
        compile_micros: COMPILE_MICROS.load(Ordering::Relaxed),
    }
}

pub(crate) fn record_compile(took: std::time::Duration) {
    COMPILATIONS.fetch_add(1, Ordering::Relaxed);
    COMPILE_MICROS.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Runs `body` against a fresh instance of `pre` that reads `base` (under `prior`).
///
/// This is the only place a [`BaseRef`] is made, and the store holding it never leaves this
/// function: that is what makes the lifetime erasure in `BaseRef` sound.
pub(crate) fn run<T>(
    engine: &Engine,
    pre: &StateMachinePre<HostState>,
    base: &dyn KvRead,
    mode: Mode,
    fuel: u64,
    prior: Overlay,
    body: impl FnOnce(&StateMachine, &mut Store<HostState>) -> wasmtime::Result<T>,
) -> Result<Finished<T>, RuntimeError> {
    // SAFETY: `base` outlives this function, and the store below is consumed before it ends.
    let base = unsafe { BaseRef::new(base) };
    let mut store = Store::new(engine, HostState::new(mode, base, prior));
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(fuel).map_err(engine_error)?;
    // Instantiation runs guest code too (start functions, the realloc of the arguments), so it
    // is under the same fuel and limits and fails the same way.
    let outcome = pre.instantiate(&mut store).and_then(|instance| body(&instance, &mut store));
    let result = match outcome {
        Ok(value) => Ok(value),
        Err(error) => Err(classify(error)?),
    };
    CALLS.fetch_add(1, Ordering::Relaxed);
    FUEL_CONSUMED.fetch_add(fuel.saturating_sub(store.get_fuel().unwrap_or(0)), Ordering::Relaxed);
    if result.is_err() {
        FAULTS.fetch_add(1, Ordering::Relaxed);
    }
    #[cfg(test)]
    FUEL_OF_LAST_CALL.with(|used| used.set(fuel - store.get_fuel().unwrap_or(0)));
    let state = store.into_data();
    #[cfg(test)]
    if state.limiter.grew_memory {
        CALLS_THAT_GREW_MEMORY.with(|calls| calls.set(calls.get() + 1));
    }
    let (prior, sealed, current, begun) = state.into_parts();
    Ok(Finished { result, prior, sealed, current, begun })
}

/// A guest fault, or `Err` for a failure of the host (which must not become an outcome).
fn classify(error: wasmtime::Error) -> Result<Fault, RuntimeError> {
    if let Some(fault) = error.downcast_ref::<HostFault>() {
        return Ok(match fault {
            HostFault::OutOfFuel => Fault::OutOfFuel,
            HostFault::MemoryLimit => Fault::MemoryLimit,
            HostFault::TableLimit => Fault::TableLimit,
            HostFault::Rejected(why) => Fault::Rejected(why.clone()),
            HostFault::Protocol(why) => Fault::Protocol(why.clone()),
            HostFault::HostResources(why) => return Err(RuntimeError::Engine(why.clone())),
        });
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return Ok(match trap {
            Trap::OutOfFuel => Fault::OutOfFuel,
            trap => Fault::Trap(*trap),
        });
    }
    if error.is::<PoolConcurrencyLimitError>() || error.is::<OutOfMemory>() || error.is::<std::io::Error>() {
        return Err(engine_error(error));
    }
    tracing::debug!(error = format!("{error:#}"), "guest broke the canonical ABI");
    Ok(Fault::Abi)
}

pub(crate) fn engine_error(error: wasmtime::Error) -> RuntimeError {
    RuntimeError::Engine(format!("{error:#}"))
}

/// Links a compiled component against the world's imports and checks its exports.
pub(crate) fn prepare(
    linker: &wasmtime::component::Linker<HostState>,
    component: &wasmtime::component::Component,
) -> Result<StateMachinePre<HostState>, RuntimeError> {
    let pre: InstancePre<HostState> = linker.instantiate_pre(component).map_err(|e| {
        RuntimeError::Invalid(format!("imports do not match the nacre:machine/state-machine world: {e:#}"))
    })?;
    StateMachinePre::new(pre).map_err(|e| {
        RuntimeError::Invalid(format!("exports do not match the nacre:machine/state-machine world: {e:#}"))
    })
}
