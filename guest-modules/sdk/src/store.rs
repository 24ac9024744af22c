//! The module's key-value store, scoped by the host to the command's namespace and the
//! module's kind: keys are the module's own, with no namespace in them.
//!
//! Writes made while a command runs belong to that command only: the host seals them at the
//! next command boundary and discards them if the command traps.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::GuestError;
use crate::backend;

pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    backend::get(key)
}

/// Traps inside `query`, which is read-only.
pub fn put(key: &[u8], value: &[u8]) {
    backend::put(key, value)
}

/// Traps inside `query`, which is read-only. Deleting a missing key is not an error.
pub fn delete(key: &[u8]) {
    backend::delete(key)
}

/// Entries with keys in `[start, end)` in ascending byte order, at most `limit` of them.
/// An empty `end` means "no upper bound".
pub fn scan(start: &[u8], end: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    backend::scan(start, end, limit)
}

/// Entries whose key starts with `prefix`, from `start` (which should itself start with
/// `prefix`; pass `prefix` for the first page), at most `limit` of them.
pub fn scan_prefix(prefix: &[u8], start: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan(start, &prefix_end(prefix), limit)
}

/// The smallest key greater than every key that starts with `prefix`, or empty (unbounded)
/// when there is none (`prefix` is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    end
}

/// A JSON value; a 500 when the stored bytes do not decode as `T` (the module's own data is
/// then not what this version of it expects).
pub fn get_json<T: DeserializeOwned>(key: &[u8]) -> Result<Option<T>, GuestError> {
    get(key)
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                GuestError::internal(format!("stored value at {:?} does not decode: {e}", String::from_utf8_lossy(key)))
            })
        })
        .transpose()
}

/// Stores `value` as JSON.
pub fn put_json<T: Serialize>(key: &[u8], value: &T) {
    let bytes = serde_json::to_vec(value).expect("module records serialize to JSON");
    put(key, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"c/"), b"c0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"");
        assert_eq!(prefix_end(b""), b"");
    }

    #[test]
    fn scan_prefix_stays_inside_the_prefix() {
        crate::testing::reset();
        for key in ["a", "b/1", "b/2", "b0", "c"] {
            put(key.as_bytes(), b"v");
        }
        let keys: Vec<_> = scan_prefix(b"b/", b"b/", 10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"b/1".to_vec(), b"b/2".to_vec()]);
        assert_eq!(scan(b"a", b"", 2).len(), 2);
        assert!(scan(b"c", b"a", 10).is_empty());
    }

    #[test]
    fn json_helpers_round_trip_and_report_corruption() {
        crate::testing::reset();
        put_json(b"k", &vec![1, 2]);
        assert_eq!(get_json::<Vec<i32>>(b"k"), Ok(Some(vec![1, 2])));
        assert_eq!(get_json::<Vec<i32>>(b"missing"), Ok(None));
        put(b"bad", b"{");
        assert_eq!(get_json::<Vec<i32>>(b"bad").unwrap_err().code, 500);
    }
}
