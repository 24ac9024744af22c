//! The host's one wall-clock read. Guests never see it: a log entry carries the leader's
//! stamp (clamped by `state::Machine` so that it never goes back), an AP command the
//! responsible node's; everything else (leases, AP versions, pushes) reads it here, so a test
//! or a future simulated clock has one place to replace.

use std::time::SystemTime;
use std::time::UNIX_EPOCH;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
