//! What a listener may hold: its connections (a cap derived from the file-descriptor limit,
//! the longest-idle keep-alive connection closed to make room for a new one) and the bytes of
//! request bodies it has read and not yet answered (a budget; past it, 503).
//!
//! Why evict rather than stop accepting: a server that stops accepting at its cap leaves new
//! clients waiting in the kernel's backlog behind idle keep-alive connections that may never
//! send another request (seen: 1,100 idle connections under `ulimit -n 1024` made most reads
//! fail). A connection in a request, a held long-poll included, is never evicted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// File descriptors kept for everything but client and peer connections: the log and snapshot
/// files, compiled modules, outgoing peer connections, the push socket, probes.
pub const RESERVED_FDS: u64 = 512;
/// Connections a listener may hold beyond its cap while evicted ones finish closing.
pub const EVICTION_HEADROOM: usize = 64;
/// The budget's unit: bodies are counted in whole KiB (a semaphore counts permits).
const BUDGET_UNIT_BYTES: usize = 1024;

/// Raise this process's open-file limit to its hard limit and return it (the soft limit is
/// often 1024 while the hard one is far higher; a registry holds a connection per client).
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// How many connections each listener may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// The client port (HTTP).
    pub http: usize,
    /// The Nacos 2.x gRPC port: one long-lived connection per client process and module.
    pub grpc: usize,
    pub peer: usize,
}

/// How many connections each listener may hold with `fd_limit` open files: what is left after
/// [`RESERVED_FDS`] and the eviction headroom, half to HTTP clients, a quarter to gRPC clients
/// and a quarter to peers (a member has a few pooled connections to each other), each at most
/// `max` and at least a working minimum.
pub fn connection_caps(fd_limit: u64, max: usize) -> ConnectionCaps {
    let usable = fd_limit.saturating_sub(RESERVED_FDS + 2 * EVICTION_HEADROOM as u64) as usize;
    let share = |quarters: usize| (usable * quarters / 4).clamp(16, max);
    ConnectionCaps { http: share(2), grpc: share(1), peer: share(1) }
}

/// A listener's connections.
pub struct Connections {
    cap: usize,
    table: Mutex<Table>,
    emptied: Notify,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    in_requests: usize,
    idle_since: Instant,
    close: CancellationToken,
    closing: bool,
}

/// One connection's place in the table, given back when dropped.
pub struct Slot {
    id: u64,
    connections: Arc<Connections>,
    /// Cancelled to ask this connection to close (eviction, or the server stopping).
    pub close: CancellationToken,
}

/// Held while a connection serves a request: such a connection is not idle.
pub struct InRequest {
    id: u64,
    connections: Arc<Connections>,
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections { cap, table: Mutex::default(), emptied: Notify::new() })
    }

    /// Room for a new connection (closing the longest-idle one when at the cap), or `None`
    /// when every connection is busy and the headroom is used: the new one is turned away.
    pub fn admit(self: &Arc<Self>, server: &CancellationToken) -> Option<Slot> {
        let mut table = self.table.lock().expect("connection table lock");
        let open = table.open.len();
        let live = table.open.values().filter(|entry| !entry.closing).count();
        if live >= self.cap {
            let idlest = table
                .open
                .iter_mut()
                .filter(|(_, entry)| !entry.closing && entry.in_requests == 0)
                .min_by_key(|(_, entry)| entry.idle_since);
            match idlest {
                Some((_, entry)) if open < self.cap + EVICTION_HEADROOM => {
                    entry.closing = true;
                    entry.close.cancel();
                }
                _ => return None,
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let close = server.child_token();
        let entry = Entry { in_requests: 0, idle_since: Instant::now(), close: close.clone(), closing: false };
        table.open.insert(id, entry);
        Some(Slot { id, connections: self.clone(), close })
    }

    /// Connections open now (closing ones included).
    pub fn open(&self) -> usize {
        self.table.lock().expect("connection table lock").open.len()
    }

    /// Wait until every connection has closed.
    pub async fn emptied(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Slot {
    /// Mark a request begun on this connection.
    pub fn begin_request(&self) -> InRequest {
        let mut table = self.connections.table.lock().expect("connection table lock");
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.in_requests += 1;
        }
        InRequest { id: self.id, connections: self.connections.clone() }
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        let mut table = self.connections.table.lock().expect("connection table lock");
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.in_requests -= 1;
            entry.idle_since = Instant::now();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.connections.table.lock().expect("connection table lock");
        table.open.remove(&self.id);
        if table.open.is_empty() {
            self.connections.emptied.notify_waiters();
        }
    }
}

/// Bytes of request bodies a listener holds at once.
pub struct BodyBudget {
    units: Arc<Semaphore>,
}

/// A share of the budget, given back when dropped.
pub struct BodyShare {
    held: Option<OwnedSemaphorePermit>,
    held_bytes: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget { units: Arc::new(Semaphore::new(bytes.div_ceil(BUDGET_UNIT_BYTES))) }
    }

    pub fn share(&self) -> BodyShare {
        BodyShare { held: None, held_bytes: 0 }
    }

    /// Grow `share` to cover `bytes` in all; false (and unchanged) when the budget has no room.
    pub fn cover(&self, share: &mut BodyShare, bytes: usize) -> bool {
        let held_units = share.held_bytes.div_ceil(BUDGET_UNIT_BYTES);
        let needed_units = bytes.div_ceil(BUDGET_UNIT_BYTES);
        if needed_units <= held_units {
            share.held_bytes = share.held_bytes.max(bytes);
            return true;
        }
        let more = u32::try_from(needed_units - held_units).unwrap_or(u32::MAX);
        let Ok(permit) = self.units.clone().try_acquire_many_owned(more) else { return false };
        match &mut share.held {
            Some(held) => held.merge(permit),
            None => share.held = Some(permit),
        }
        share.held_bytes = bytes;
        true
    }

    /// Bytes not held by any request now.
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits() * BUDGET_UNIT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let server = CancellationToken::new();
        let connections = Connections::new(2);
        let first = connections.admit(&server).unwrap();
        let second = connections.admit(&server).unwrap();
        let busy = first.begin_request();
        // At the cap: the idle one (second) is asked to close, the busy one (first) is not.
        let third = connections.admit(&server).unwrap();
        assert!(second.close.is_cancelled());
        assert!(!first.close.is_cancelled());
        drop(second);
        // Now first is busy and third idle: third goes next.
        let _fourth = connections.admit(&server).unwrap();
        assert!(third.close.is_cancelled());
        drop(third);
        drop(busy);
        assert_eq!(connections.open(), 2);
        server.cancel();
        assert!(first.close.is_cancelled(), "stopping the server closes every connection");
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_turned_away() {
        let server = CancellationToken::new();
        let connections = Connections::new(1);
        let only = connections.admit(&server).unwrap();
        let _busy = only.begin_request();
        assert!(connections.admit(&server).is_none());
        assert_eq!(connections.open(), 1);
    }

    #[test]
    fn evictions_stop_at_the_headroom() {
        let server = CancellationToken::new();
        let connections = Connections::new(1);
        let mut kept = vec![connections.admit(&server).unwrap()];
        // Each new one evicts the previous, which has not closed yet (still in the table).
        for _ in 0..EVICTION_HEADROOM {
            kept.push(connections.admit(&server).unwrap());
        }
        assert_eq!(connections.open(), 1 + EVICTION_HEADROOM);
        assert!(connections.admit(&server).is_none(), "beyond the headroom, turned away");
        kept.clear();
        assert_eq!(connections.open(), 0);
    }

    #[test]
    fn caps_follow_the_fd_limit() {
        let caps = |http, grpc, peer| ConnectionCaps { http, grpc, peer };
        assert_eq!(connection_caps(1024, 16_384), caps(192, 96, 96));
        assert_eq!(connection_caps(1 << 20, 16_384), caps(16_384, 16_384, 16_384));
        assert_eq!(connection_caps(100, 16_384), caps(16, 16, 16), "never below a working minimum");
    }

    #[test]
    fn the_body_budget_is_shared_and_given_back() {
        let budget = BodyBudget::new(10 * 1024);
        let mut a = budget.share();
        assert!(budget.cover(&mut a, 6 * 1024));
        assert!(budget.cover(&mut a, 6 * 1024 + 1), "rounded up to a seventh KiB");
        let mut b = budget.share();
        assert!(!budget.cover(&mut b, 4 * 1024), "only three KiB left");
        assert!(budget.cover(&mut b, 3 * 1024));
        assert_eq!(budget.available_bytes(), 0);
        drop(a);
        assert_eq!(budget.available_bytes(), 7 * 1024);
    }
}
