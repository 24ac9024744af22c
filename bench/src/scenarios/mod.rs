pub mod memory;
pub mod notify;
pub mod restart;
pub mod throughput;
pub mod wasm;
