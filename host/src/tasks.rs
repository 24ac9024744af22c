//! The node's background tasks, all in one place: each is tracked, so that shutdown waits for
//! it, and each stops at its next await once shutdown begins (mini-redis's shape, with
//! tokio-util's tracker and token). A task needs no shutdown code of its own: its future is
//! simply not polled again.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Run `task` until it ends or shutdown begins.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            stop.run_until_cancelled(task).await;
        });
    }

    /// Run a server: tracked, but never stopped mid-request. It is handed
    /// [`Tasks::stopping`] and drains its requests in flight itself once that resolves.
    pub fn spawn_server(&self, server: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(server);
    }

    /// Resolves once shutdown has begun: for a loop that must finish what it is doing (a
    /// server draining its connections) rather than stop at any await.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stop every task and wait (at most `wait`) for them to end; whether they all did.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(wait, self.tracker.wait()).await.is_ok()
    }
}
