//! Concurrent calls to one peer path, carried together. While [`MAX_BATCHES_IN_FLIGHT`]
//! requests to a peer and path are out, later calls queue, and the next request takes every
//! call queued by then ([`BATCH_PATH`]; the peer answers each call as it would alone).
//!
//! Why: a follower forwards every write it receives to the leader, and every node forwards
//! an ephemeral registration to the node responsible for its service. One HTTP exchange per
//! call cost each of them a request, a response and two wake-ups on both ends, and under load
//! the exchanges of one peer overlap anyway. A lone call still leaves at once: a batch only
//! forms while the link is busy, as a log writer's group commit does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::PeerClient;
use super::PeerError;

/// The peer path that carries a batch: a [`BatchRequest`], answered with a [`BatchAnswer`].
pub const BATCH_PATH: &str = "/nacre/batch";
/// Requests one peer path may have out at once before calls start to queue. More than one,
/// so that a batch of writes waiting for its commit does not hold back the next batch's
/// proposals (the leader batches those into its log on its own).
pub const MAX_BATCHES_IN_FLIGHT: usize = 2;
/// Most calls one request carries.
pub const MAX_BATCH_CALLS: usize = 256;
/// Most body bytes one request carries; a single larger call (a module upload forwarded to
/// the leader) travels alone.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Calls to one peer path, each the body its own request would have had.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchRequest {
    pub path: String,
    pub calls: Vec<ByteBuf>,
}

/// Per call, in order: the answer body, or why the peer refused that call.
pub type BatchAnswer = Vec<Result<ByteBuf, String>>;

/// A call waiting for its batch.
struct Pending {
    body: Vec<u8>,
    timeout: Duration,
    reply: oneshot::Sender<Result<Vec<u8>, PeerError>>,
}

/// The queues of a [`PeerClient`], one per peer address and path, each drained by its own task.
#[derive(Default)]
pub(super) struct Coalescer {
    queues: Mutex<HashMap<(String, String), mpsc::UnboundedSender<Pending>>>,
}

impl Coalescer {
    /// Queue `body` for `path` at `addr` and wait for its answer; the batches go out through
    /// `client`'s connections.
    pub(super) async fn submit(
        &self,
        client: &PeerClient,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let (reply, answer) = oneshot::channel();
        let queue = {
            let mut queues = self.queues.lock();
            queues
                .entry((addr.to_string(), path.to_string()))
                .or_insert_with(|| {
                    let (queue, calls) = mpsc::unbounded_channel();
                    tokio::spawn(drain(client.detached(), addr.to_string(), path.to_string(), calls));
                    queue
                })
                .clone()
        };
        let stopped = || PeerError::Protocol { addr: addr.to_string(), reason: "the batching task stopped".into() };
        queue.send(Pending { body, timeout, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Send what `calls` brings, as batches, until every sender is gone.
async fn drain(client: PeerClient, addr: String, path: String, mut calls: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let Some(first) = (match carried.take() {
            Some(call) => Some(call),
            None => calls.recv().await,
        }) else {
            return;
        };
        // Calls that arrive while every batch slot is taken join this batch.
        let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut batch_bytes = first.body.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_CALLS {
            let Ok(call) = calls.try_recv() else { break };
            if batch_bytes + call.body.len() > MAX_BATCH_BYTES {
                carried = Some(call);
                break;
            }
            batch_bytes += call.body.len();
            batch.push(call);
        }
        let (client, addr, path) = (client.clone(), addr.clone(), path.clone());
        tokio::spawn(async move {
            send(&client, &addr, path, batch).await;
            drop(permit);
        });
    }
}

/// One request for `batch`; every call gets its own answer, or the request's error.
async fn send(client: &PeerClient, addr: &str, path: String, batch: Vec<Pending>) {
    let timeout = batch.iter().map(|call| call.timeout).max().expect("a batch has at least one call");
    let (bodies, replies): (Vec<ByteBuf>, Vec<_>) =
        batch.into_iter().map(|call| (ByteBuf::from(call.body), call.reply)).unzip();
    let request = BatchRequest { path, calls: bodies };
    let answer: Result<BatchAnswer, PeerError> = client.call(addr, BATCH_PATH, &request, timeout).await;
    let answer = answer.and_then(|answers| {
        if answers.len() == replies.len() {
            return Ok(answers);
        }
        let reason = format!("{} answers to a batch of {} calls", answers.len(), replies.len());
        Err(PeerError::Protocol { addr: addr.to_string(), reason })
    });
    // A caller that gave up waiting has nobody left to tell: sends may fail.
    match answer {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let answer = answer
                    .map(ByteBuf::into_vec)
                    .map_err(|reason| PeerError::Protocol { addr: addr.to_string(), reason });
                let _ = reply.send(answer);
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::net;

    /// A peer that doubles numbers, refuses odd ones, takes `delay` per request and counts
    /// the requests it was sent; and a client of its cluster.
    async fn doubling_peer(delay: Duration) -> (String, Arc<AtomicUsize>, PeerClient) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let secret = net::peer_auth::ClusterSecret::generate();
        let key = Arc::new(net::peer_auth::PeerKey::new(&secret, addr.clone(), 0));
        let client = PeerClient::new(Arc::new(net::peer_auth::PeerKey::new(&secret, "client", 0)), Default::default());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let limits = net::ServerLimits { max_connections: 64, body_budget_bytes: MAX_BATCH_BYTES * 4 };
        tokio::spawn(net::serve_peers(
            listener,
            key,
            limits,
            MAX_BATCH_BYTES * 2,
            std::future::pending(),
            move |req: net::HttpRequest| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    assert_eq!(req.path, BATCH_PATH);
                    let batch: BatchRequest = postcard::from_bytes(&req.body).unwrap();
                    assert_eq!(batch.path, "/double");
                    let answers: BatchAnswer = batch
                        .calls
                        .iter()
                        .map(|body| {
                            let n: u64 = postcard::from_bytes(body).unwrap();
                            if n % 2 == 1 {
                                Err(format!("{n} is odd"))
                            } else {
                                Ok(ByteBuf::from(postcard::to_stdvec(&(n * 2)).unwrap()))
                            }
                        })
                        .collect();
                    Ok(postcard::to_stdvec(&answers).unwrap())
                }
            },
        ));
        (addr, requests, client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_requests_and_each_gets_its_own_answer() {
        let (addr, requests, client) = doubling_peer(Duration::from_millis(20)).await;
        const CALLS: u64 = 200;
        let calls = (0..CALLS).map(|n| {
            let (client, addr) = (client.clone(), addr.clone());
            tokio::spawn(async move {
                let answer: Result<u64, PeerError> =
                    client.call_coalesced(&addr, "/double", &n, Duration::from_secs(5)).await;
                (n, answer)
            })
        });
        for call in futures_util::future::join_all(calls).await {
            let (n, answer) = call.unwrap();
            match answer {
                Ok(doubled) => assert_eq!((n % 2, doubled), (0, n * 2)),
                Err(PeerError::Protocol { reason, .. }) => assert_eq!((n % 2, reason), (1, format!("{n} is odd"))),
                Err(e) => panic!("call {n}: {e}"),
            }
        }
        let sent = requests.load(Ordering::SeqCst);
        // Two batches in flight for 20 ms each: 200 calls cannot need more than a few rounds.
        assert!(sent < CALLS as usize / 4, "{CALLS} concurrent calls took {sent} requests");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_call_leaves_at_once() {
        let (addr, requests, client) = doubling_peer(Duration::ZERO).await;
        for n in [2u64, 4, 6] {
            let answer: u64 = client.call_coalesced(&addr, "/double", &n, Duration::from_secs(5)).await.unwrap();
            assert_eq!(answer, n * 2);
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_of_another_cluster_is_refused_before_the_handler() {
        let (addr, requests, _) = doubling_peer(Duration::ZERO).await;
        let stranger = PeerClient::default();
        let answer = stranger.call::<u64, u64>(&addr, "/double", &2, Duration::from_secs(5)).await;
        match answer {
            Err(PeerError::Protocol { reason, .. }) => assert!(reason.contains("refused as a peer"), "{reason}"),
            other => panic!("a stranger's call was not refused: {other:?}"),
        }
        assert_eq!(requests.load(Ordering::SeqCst), 0, "the handler never saw it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_of_a_batch_to_an_unreachable_peer_hears_so() {
        // A port nothing listens on: bound, then closed.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().to_string();
        let client = PeerClient::default();
        let calls = (0..20u64).map(|n| {
            let (client, addr) = (client.clone(), addr.clone());
            tokio::spawn(async move {
                client.call_coalesced::<u64, u64>(&addr, "/double", &n, Duration::from_secs(5)).await
            })
        });
        for call in futures_util::future::join_all(calls).await {
            assert!(matches!(call.unwrap(), Err(PeerError::Unreachable { .. })));
        }
    }
}
