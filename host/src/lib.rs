//! Nacre: a Nacos-compatible service registry and configuration center whose semantics are
//! WebAssembly guest modules applied to a Raft log. See ARCHITECTURE.md for the code map.

pub mod builtin;
pub mod runtime;
