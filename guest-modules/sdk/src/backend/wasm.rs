//! On wasm32 every call goes straight to the host's imports.

use crate::bindings::nacre::machine::{events, progress, store};

pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    store::get(key)
}

pub fn put(key: &[u8], value: &[u8]) {
    store::put(key, value)
}

pub fn delete(key: &[u8]) {
    store::delete(key)
}

pub fn scan(start: &[u8], end: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    store::scan(start, end, limit)
}

pub fn emit(topic: &str, key: &str) {
    events::emit(topic, key)
}

pub fn begin_command(position: u32) {
    progress::begin_command(position)
}
