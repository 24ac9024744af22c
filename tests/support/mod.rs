//! Shared test support: real node processes and a small HTTP client.

#![allow(dead_code)] // Each test binary uses a different part of it.

pub mod browser;
pub mod cluster;
pub mod http;
pub mod naming;
pub mod proxy;
