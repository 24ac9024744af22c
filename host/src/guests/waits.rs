//! Waiting for particular changes. A held request (a v1 long-poll) registers the keys it waits
//! for and is woken only by a change to one of them, instead of every held request examining
//! every change: with 10,000 long-polls held, each change woke 10,000 tasks, and a listener
//! was notified at p99 17 ms (`nacre-bench notify`).
//!
//! One task ([`ChangeWaits::run`]) reads the node's change events and wakes the waiters of each
//! change's key. A waiter's wake-up is a `Notify` permit, kept if it is not waiting at that
//! moment, so a change between a waiter's check and its wait is not lost.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::WatchKey;
use crate::state::ChangeEvent;

#[derive(Default)]
pub struct ChangeWaits {
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    next_id: u64,
    /// Who waits for each key.
    by_key: HashMap<WatchKey, HashMap<u64, Arc<Notify>>>,
    /// Each waiter's keys, to take it out again.
    keys_of: HashMap<u64, HashSet<WatchKey>>,
}

impl Index {
    fn add(&mut self, id: u64, notify: &Arc<Notify>, keys: HashSet<WatchKey>) {
        for key in &keys {
            self.by_key.entry(key.clone()).or_default().insert(id, notify.clone());
        }
        self.keys_of.insert(id, keys);
    }

    fn remove(&mut self, id: u64) {
        for key in self.keys_of.remove(&id).unwrap_or_default() {
            if let Some(waiters) = self.by_key.get_mut(&key) {
                waiters.remove(&id);
                if waiters.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// One waiter's registration; taken out when dropped.
pub struct ChangeWait {
    waits: Arc<ChangeWaits>,
    id: u64,
    notify: Arc<Notify>,
}

impl ChangeWait {
    /// Resolves at a change to one of the keys (at once if one came since the last call).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Wait for `keys` from now on instead.
    pub fn rekey(&self, keys: impl IntoIterator<Item = WatchKey>) {
        let keys: HashSet<WatchKey> = keys.into_iter().collect();
        let mut index = self.waits.lock();
        if index.keys_of.get(&self.id) == Some(&keys) {
            return;
        }
        index.remove(self.id);
        index.add(self.id, &self.notify, keys);
    }
}

impl Drop for ChangeWait {
    fn drop(&mut self) {
        self.waits.lock().remove(self.id);
    }
}

impl ChangeWaits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Register a waiter for `keys`. Every key is kept (one dropped would be a change never
    /// told); what bounds them is the caller's request (a long-poll's
    /// `api::listener::MAX_LISTENED_KEYS` lines).
    pub fn wait_for(self: &Arc<Self>, keys: impl IntoIterator<Item = WatchKey>) -> ChangeWait {
        let notify = Arc::new(Notify::new());
        let keys: HashSet<WatchKey> = keys.into_iter().collect();
        let mut index = self.lock();
        let id = index.next_id;
        index.next_id += 1;
        index.add(id, &notify, keys);
        ChangeWait { waits: self.clone(), id, notify }
    }

    /// Wake the waiters of `key`.
    pub fn fire(&self, key: &WatchKey) {
        if let Some(waiters) = self.lock().by_key.get(key) {
            waiters.values().for_each(|notify| notify.notify_one());
        }
    }

    /// Wake every waiter (events were missed; each must look again).
    fn fire_all(&self) {
        let index = self.lock();
        index.by_key.values().flat_map(HashMap::values).for_each(|notify| notify.notify_one());
    }

    /// Waiters registered now.
    pub fn waiting(&self) -> usize {
        self.lock().keys_of.len()
    }

    /// Wake the waiters of every change `events` carries, until the channel closes.
    pub async fn run(self: Arc<Self>, mut events: broadcast::Receiver<Arc<ChangeEvent>>) {
        loop {
            match events.recv().await {
                Ok(change) => self.fire(&WatchKey::of(&change)),
                Err(RecvError::Lagged(_)) => self.fire_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::ModuleKind;

    fn key(k: &str) -> WatchKey {
        WatchKey { namespace: "public".into(), kind: ModuleKind::Config, topic: "config".into(), key: k.into() }
    }

    async fn woken(wait: &ChangeWait) -> bool {
        tokio::time::timeout(Duration::from_millis(50), wait.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn a_change_wakes_only_the_waiters_of_its_key_even_before_they_wait() {
        let waits = Arc::new(ChangeWaits::default());
        let a = waits.wait_for([key("a")]);
        let b = waits.wait_for([key("b"), key("c")]);
        waits.fire(&key("c"));
        assert!(woken(&b).await, "the permit is kept until the waiter waits");
        assert!(!woken(&a).await);
        waits.fire(&key("a"));
        assert!(woken(&a).await);
        assert!(!woken(&b).await, "one change, one wake-up");
    }

    #[tokio::test]
    async fn rekeyed_and_dropped_waiters_leave_the_index() {
        let waits = Arc::new(ChangeWaits::default());
        let a = waits.wait_for([key("a")]);
        a.rekey([key("b")]);
        waits.fire(&key("a"));
        assert!(!woken(&a).await, "no longer waits for a");
        waits.fire(&key("b"));
        assert!(woken(&a).await);
        drop(a);
        assert_eq!(waits.waiting(), 0);
        assert!(waits.lock().by_key.is_empty());
    }

    #[tokio::test]
    async fn missed_events_wake_everyone() {
        let waits = Arc::new(ChangeWaits::default());
        let (sender, receiver) = broadcast::channel(1);
        let a = waits.wait_for([key("a")]);
        // Two events into a channel of one: the reader lags and must wake everyone.
        let event = |k: &str| {
            Arc::new(ChangeEvent {
                namespace: "public".into(),
                kind: ModuleKind::Config,
                event: crate::runtime::Event { topic: "config".into(), key: k.into() },
            })
        };
        sender.send(event("x")).unwrap();
        sender.send(event("y")).unwrap();
        drop(sender);
        waits.clone().run(receiver).await;
        assert!(woken(&a).await);
    }
}
