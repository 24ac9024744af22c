//! Failed sign-ins counted in fixed windows, per source address and per (username, source
//! address): past a limit, further attempts from there are refused without a password check
//! until the window ends. Per address, because guessing is what an address does; per
//! username only together with the address, so that a stranger cannot lock a user out from
//! everywhere by failing on their name. Every counted attempt also costs an Argon2 check
//! (`password`), which bounds a distributed guesser's rate by CPU.
//!
//! No I/O and no clock: callers pass the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed attempts one address may make in a window.
pub const MAX_FAILURES_PER_ADDRESS: u32 = 50;
/// Failed attempts one address may make on one username in a window.
pub const MAX_FAILURES_PER_USER_AND_ADDRESS: u32 = 10;
const _: () = assert!(MAX_FAILURES_PER_USER_AND_ADDRESS <= MAX_FAILURES_PER_ADDRESS);
/// The window: counts start over after it.
pub const WINDOW_MS: u64 = 60_000;
/// Windows kept at most; past it, ended ones are dropped first, then new keys are not
/// tracked (and so not refused: a flood of addresses must not grow memory).
pub const MAX_TRACKED_WINDOWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    UserAt(String, IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ms: u64,
    failures: u32,
}

#[derive(Debug, Default)]
pub struct Throttle {
    windows: Mutex<HashMap<Key, Window>>,
}

impl Throttle {
    /// Whether `username` may try a password from `address` now.
    pub fn allows(&self, username: &str, address: IpAddr, now_ms: u64) -> bool {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let failures = |key: &Key| {
            windows.get(key).filter(|w| now_ms.saturating_sub(w.started_ms) < WINDOW_MS).map_or(0, |w| w.failures)
        };
        failures(&Key::Address(address)) < MAX_FAILURES_PER_ADDRESS
            && failures(&Key::UserAt(username.to_string(), address)) < MAX_FAILURES_PER_USER_AND_ADDRESS
    }

    /// Count a failed attempt.
    pub fn failed(&self, username: &str, address: IpAddr, now_ms: u64) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for key in [Key::Address(address), Key::UserAt(username.to_string(), address)] {
            if !windows.contains_key(&key) && windows.len() >= MAX_TRACKED_WINDOWS {
                windows.retain(|_, w| now_ms.saturating_sub(w.started_ms) < WINDOW_MS);
                if windows.len() >= MAX_TRACKED_WINDOWS {
                    continue;
                }
            }
            let window = windows.entry(key).or_insert(Window { started_ms: now_ms, failures: 0 });
            if now_ms.saturating_sub(window.started_ms) >= WINDOW_MS {
                *window = Window { started_ms: now_ms, failures: 0 };
            }
            window.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_user_is_refused_from_an_address_that_failed_too_often_and_only_there() {
        let throttle = Throttle::default();
        for _ in 0..MAX_FAILURES_PER_USER_AND_ADDRESS {
            assert!(throttle.allows("nacos", HERE, 1_000));
            throttle.failed("nacos", HERE, 1_000);
        }
        assert!(!throttle.allows("nacos", HERE, 1_000));
        assert!(throttle.allows("nacos", THERE, 1_000), "no lockout from everywhere");
        assert!(throttle.allows("other", HERE, 1_000));
        assert!(throttle.allows("nacos", HERE, 1_000 + WINDOW_MS), "the window ends");
    }

    #[test]
    fn an_address_guessing_many_names_is_refused() {
        let throttle = Throttle::default();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            throttle.failed(&format!("user{i}"), HERE, 5);
        }
        assert!(!throttle.allows("fresh-name", HERE, 5));
        assert!(throttle.allows("fresh-name", THERE, 5));
    }

    #[test]
    fn tracking_is_bounded() {
        let throttle = Throttle::default();
        for i in 0..(MAX_TRACKED_WINDOWS as u32 / 2 + 10) {
            throttle.failed("u", IpAddr::V4(std::net::Ipv4Addr::from(i)), 0);
        }
        assert!(throttle.windows.lock().unwrap().len() <= MAX_TRACKED_WINDOWS);
        // Once the windows ended, new addresses are tracked again.
        throttle.failed("u", THERE, WINDOW_MS);
        assert_eq!(throttle.windows.lock().unwrap().get(&Key::Address(THERE)).unwrap().failures, 1);
    }
}
