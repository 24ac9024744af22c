pub mod expiry;
pub mod heal;
pub mod memory;
pub mod module;
pub mod notify;
pub mod restart;
pub mod throughput;
pub mod wasm;
