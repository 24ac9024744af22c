//! Rust types and typed exports generated from the WIT world. Only this module and its users
//! in `runtime` see them; the rest of Nacre uses the plain types in `runtime/mod.rs`.
//!
//! The generated import traits and `add_to_linker` are unused on purpose: the imports are wired
//! by hand in `imports.rs` (they need the store, for fuel).

// The path is relative to this crate's manifest directory (host/), not to this file.
wasmtime::component::bindgen!({
    world: "state-machine",
    path: "../wit",
});
