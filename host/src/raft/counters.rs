//! Raft events counted for `/metrics`, from openraft's own recorder hook: how often this node
//! campaigned (became a candidate), won (became leader), and answered a vote request. Terms
//! say how many elections the cluster held; these say which node held them, which is what an
//! operator chasing a flapping leader needs.

use std::sync::atomic::AtomicU8;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use openraft::metrics::MetricsRecorder;

/// openraft's numbering of server states in [`MetricsRecorder::set_server_state`].
const CANDIDATE: u8 = 2;
const LEADER: u8 = 3;
/// No state reported yet.
const UNKNOWN: u8 = u8::MAX;

#[derive(Debug)]
pub struct RaftCounters {
    state: AtomicU8,
    campaigns: AtomicU64,
    leaderships: AtomicU64,
    votes_handled: AtomicU64,
}

impl Default for RaftCounters {
    fn default() -> Self {
        RaftCounters {
            state: AtomicU8::new(UNKNOWN),
            campaigns: AtomicU64::new(0),
            leaderships: AtomicU64::new(0),
            votes_handled: AtomicU64::new(0),
        }
    }
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElectionCounts {
    pub campaigns: u64,
    pub leaderships: u64,
    pub votes_handled: u64,
}

impl RaftCounters {
    pub fn counts(&self) -> ElectionCounts {
        ElectionCounts {
            campaigns: self.campaigns.load(Ordering::Relaxed),
            leaderships: self.leaderships.load(Ordering::Relaxed),
            votes_handled: self.votes_handled.load(Ordering::Relaxed),
        }
    }
}

impl MetricsRecorder for RaftCounters {
    fn record_apply_batch(&self, _entry_count: u64) {}
    fn record_append_batch(&self, _entry_count: u64) {}
    fn record_write_batch(&self, _entry_count: u64) {}
    fn set_current_term(&self, _term: u64) {}
    fn set_last_log_index(&self, _index: u64) {}
    fn set_committed_index(&self, _index: u64) {}
    fn set_applied_index(&self, _index: u64) {}
    fn set_snapshot_index(&self, _index: u64) {}
    fn set_purged_index(&self, _index: u64) {}

    /// Called with every metrics report: a change into candidate or leader is counted once.
    fn set_server_state(&self, state: u8) {
        let was = self.state.swap(state, Ordering::Relaxed);
        if was == state {
            return;
        }
        match state {
            CANDIDATE => self.campaigns.fetch_add(1, Ordering::Relaxed),
            LEADER => self.leaderships.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    fn increment_vote(&self) {
        self.votes_handled.fetch_add(1, Ordering::Relaxed);
    }

    fn increment_heartbeat(&self) {}
    fn increment_append(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_counted_once_whatever_the_reports_repeat() {
        let counters = RaftCounters::default();
        for state in [1, 1, CANDIDATE, CANDIDATE, LEADER, LEADER, 1, CANDIDATE, 1] {
            counters.set_server_state(state);
        }
        counters.increment_vote();
        assert_eq!(counters.counts(), ElectionCounts { campaigns: 2, leaderships: 1, votes_handled: 1 });
    }
}
