//! Nacre: a Nacos-compatible service registry and configuration center whose semantics are
//! WebAssembly guest modules applied to a Raft log. See ARCHITECTURE.md for the code map.

pub mod answers;
pub mod ap;
pub mod api;
pub mod auth;
pub mod blocking;
pub mod builtin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod duties;
#[cfg(test)]
mod fuzz;
pub mod gate;
pub mod grpc;
pub mod guests;
pub mod heap;
pub mod leases;
pub mod members;
pub mod net;
pub mod node;
pub mod partition;
pub mod raft;
pub mod runtime;
pub mod scope;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod watching;
