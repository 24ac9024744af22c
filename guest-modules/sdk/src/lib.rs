//! Write a Nacre state-machine guest as a short Rust file.
//!
//! Implement [`StateMachine`] on a unit struct and export it:
//!
//! ```
//! use nacre_guest_sdk::{
//!     Command, GuestError, GuestReply, GuestRequest, ModuleInfo, ModuleKind, QueryContext,
//!     RequestExt, StateMachine, store,
//! };
//!
//! pub struct Notes;
//!
//! impl StateMachine for Notes {
//!     fn describe() -> ModuleInfo {
//!         let (name, version) = ("notes".into(), "0.1.0".into());
//!         ModuleInfo { name, version, kind: ModuleKind::Config, schema_version: 1 }
//!     }
//!
//!     fn apply(_cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError> {
//!         let key = req.required("key")?; // a 400 naming `key` when absent
//!         store::put(key.as_bytes(), req.required("text")?.as_bytes());
//!         nacre_guest_sdk::emit("notes", key);
//!         Ok(GuestReply::text("ok"))
//!     }
//!
//!     fn query(_ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError> {
//!         let text = store::get(req.required("key")?.as_bytes())
//!             .ok_or_else(|| GuestError::not_found("no such note"))?;
//!         Ok(GuestReply::text(String::from_utf8_lossy(&text)))
//!     }
//!
//!     fn migrate(previous: Option<ModuleInfo>) -> Result<(), String> {
//!         nacre_guest_sdk::accept_same_schema(previous.as_ref(), 1)
//!     }
//! }
//!
//! nacre_guest_sdk::export_state_machine!(Notes);
//! ```
//!
//! The guest crate depends on `nacre-guest-sdk` alone and has
//! `crate-type = ["cdylib", "rlib"]` (the rlib for native tests). It is then built as a `cdylib` for `wasm32-unknown-unknown` and turned into a
//! component (the host's build script does both for the built-in modules).
//!
//! On wasm32 the [`store`] and [`emit`] call the host. Natively they use a thread-local
//! in-memory stand-in so guest logic is unit-testable with `cargo test`; see [`testing`].

// The generated bindings name this crate by its absolute path (so that the export macro works
// from guest crates); this makes that path resolve inside the crate too.
extern crate self as nacre_guest_sdk;

mod adapter;
pub mod bindings;
pub mod md5;
mod params;
pub mod store;
mod types;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg_attr(target_arch = "wasm32", path = "backend/wasm.rs")]
#[cfg_attr(not(target_arch = "wasm32"), path = "backend/native.rs")]
mod backend;

pub use adapter::Exported;
pub use nacre_protocol::{Commit, GuestReply, GuestRequest, LeaseRenewal, Plan, PlanError, directive, keyspace, sweep};
pub use params::{RequestExt, parse_bool};
pub use types::{Command, GuestError, ModuleInfo, ModuleKind, QueryContext};

/// The guests' allocator: dlmalloc, as std's own on wasm32, but a version that first hands out
/// the free memory the module starts with (its `--initial-memory`; the host's build script
/// gives the built-in guests 4 MiB) and only then grows memory. Why: every call runs in a
/// fresh instance, and a call that grows memory costs the host two `mprotect`s (the growth,
/// then the shrink back when its pool slot is reused), each flushing TLBs on every core: a
/// tenth of a node's CPU on the registration path. A guest crate cannot define its own.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The generated bindings' runtime support, reached by the code the export macro expands to.
#[doc(hidden)]
pub use wit_bindgen::rt as __wit_bindgen_rt;

/// The semantics of one module kind. Implementors are stateless unit structs: everything that
/// must outlive a call lives in the [`store`].
pub trait StateMachine {
    /// Name, version, kind and schema version of this module.
    fn describe() -> ModuleInfo;

    /// Applies one committed command. Must be deterministic: its only inputs are `cmd`, `req`
    /// and the store. Validate before writing: an `Err` keeps the writes already made.
    fn apply(cmd: &Command, req: GuestRequest) -> Result<GuestReply, GuestError>;

    /// Answers a read from the local state. The store is read-only here (writes trap).
    fn query(ctx: &QueryContext, req: GuestRequest) -> Result<GuestReply, GuestError>;

    /// Runs when a namespace's binding switches to this module from `previous` (`None`: a
    /// fresh namespace). An `Err` (or a trap) keeps the old binding and discards the writes.
    fn migrate(previous: Option<ModuleInfo>) -> Result<(), String>;
}

/// Tells watchers (config long-polls, naming subscribers) that `key` changed under `topic`.
/// Events of a command that traps are discarded with its writes.
pub fn emit(topic: &str, key: &str) {
    backend::emit(topic, key)
}

/// `migrate` for a module that converts nothing: it takes over a fresh namespace (`None`) or
/// one whose previous module used the same key layout, and refuses any other layout, which
/// it could not read.
pub fn accept_same_schema(previous: Option<&ModuleInfo>, schema_version: u32) -> Result<(), String> {
    match previous {
        Some(prev) if prev.schema_version != schema_version => Err(format!(
            "no migration from {} {} (schema {}) to schema {schema_version}",
            prev.name, prev.version, prev.schema_version
        )),
        _ => Ok(()),
    }
}

/// Exports a [`StateMachine`] as the component's `describe`, `apply`, `query` and `migrate`.
/// Use once per guest crate, at the crate root. Expands to nothing natively, where the
/// exports could not be called anyway (tests use [`testing`]).
#[macro_export]
macro_rules! export_state_machine {
    ($machine:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type NacreExportedMachine = $crate::Exported<$machine>;
            $crate::bindings::__export_state_machine_world!(
                NacreExportedMachine with_types_in $crate::bindings
            );
        };
    };
}

#[cfg(test)]
mod tests;
