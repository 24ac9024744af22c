//! A running node: storage, runtime and Raft wired together, the peer port served, writes
//! routed to the leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use anyhow::Context as _;
use openraft::ReadPolicy;
use openraft::SnapshotPolicy;
use openraft::async_runtime::watch::WatchReceiver as _;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use serde::Deserialize;
use serde::Serialize;
use serde_bytes::ByteBuf;
use tokio::net::TcpListener;

use nacre_protocol::GuestReply;
use nacre_protocol::GuestRequest;

use crate::answers;
use crate::answers::Answers;
use crate::answers::Stamp;
use crate::ap::Ap;
use crate::ap::store::ApStore;
use crate::builtin;
use crate::config::NodeConfig;
use crate::duties::Duties;
use crate::net;
use crate::net::PeerClient;
use crate::net::coalesce;
use crate::raft::ApplyResponse;
use crate::raft::Member;
use crate::raft::NodeId;
use crate::raft::Operation;
use crate::raft::Proposal;
use crate::raft::Raft;
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::peer_server;
use crate::raft::snapshot_policy;
use crate::raft::state_machine::Replica;
use crate::raft::state_machine::Shared;
use crate::raft::state_machine::StateMachine;
use crate::runtime::Budget;
use crate::runtime::GuestError;
use crate::runtime::ModuleKind;
use crate::runtime::OverInlineBudget;
use crate::runtime::Runtime;
use crate::state::InvalidOperation;

pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A follower starts an election once it has heard no leader for the leader lease (openraft
/// sets it to `ELECTION_TIMEOUT_MAX_MS`) plus a random timeout in `[MIN, MAX)`: a dead leader is
/// replaced after 1.5-2 s of silence. Pre-vote keeps a follower whose own process was stalled
/// from deposing a leader the others still hear.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1_000;
const _: () = assert!(HEARTBEAT_INTERVAL_MS * 4 <= ELECTION_TIMEOUT_MIN_MS, "several heartbeats fit in a timeout");
const _: () = assert!(ELECTION_TIMEOUT_MIN_MS < ELECTION_TIMEOUT_MAX_MS, "elections need a random spread");
/// How long a write waits for a leader to be elected before answering 503.
pub const LEADER_WAIT_MS: u64 = 3_000;
/// How long a write may take to commit before the client is told to retry.
pub const WRITE_TIMEOUT_MS: u64 = 10_000;
/// How long a node that forwarded a write waits to apply it locally, so that the client can
/// read its own write from the node it wrote through.
pub const LOCAL_APPLY_WAIT_MS: u64 = 3_000;
/// Largest body the peer port accepts: a snapshot or a batch of entries carrying modules.
pub const MAX_PEER_BODY_BYTES: usize = 256 * 1024 * 1024;
/// How often a node checks whether the built-in modules still need to be bound.
const BOOTSTRAP_CHECK_INTERVAL_MS: u64 = 200;

pub struct Node {
    pub id: NodeId,
    pub config: NodeConfig,
    pub raft: Raft,
    pub shared: Arc<Shared>,
    pub peers: PeerClient,
    /// A reader of the local log (the log itself belongs to Raft).
    pub log: LogStore,
    pub started_at: Instant,
    /// What the host does on the guests' behalf: leases, pushes, health probes.
    pub duties: Duties,
    /// The AP path: commands applied outside the log, replicated between nodes by version.
    pub ap: Ap,
    /// Query answers valid at the current applied index and AP generation.
    pub answers: Answers,
}

/// A committed write: the entry's index and what applying it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteOutcome {
    pub index: u64,
    pub response: ApplyResponse,
}

/// Why a write or a linearizable read could not be served: what a client is told, in plain
/// words. The internals (openraft's errors, peer addresses) go to this node's log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// Nothing was proposed: no leader is known.
    #[error("no leader is elected right now; nothing was written. Retry shortly")]
    NoLeader,
    /// Proposed (or maybe proposed) and not confirmed: the client cannot know whether it
    /// took effect.
    #[error("the write was not confirmed in time: it may or may not have been committed. Retry it, or read it back")]
    Unconfirmed,
    /// A linearizable read the leader did not confirm in time; nothing was read.
    #[error("the leader did not confirm this read in time; retry shortly")]
    ReadUnconfirmed,
    /// The operation is malformed (a 400, never retried); nothing was proposed.
    #[error("{0}")]
    Invalid(InvalidOperation),
    #[error(
        "this node reaches {reachable} of {members} members; a persistent write or a linearizable read needs a \
         majority ({majority}), so nothing was written. Ephemeral instances still register here (AP); retry on a \
         node in the majority"
    )]
    NoQuorum { reachable: usize, members: usize, majority: usize },
}

impl Node {
    /// Open storage, start Raft and the peer port, and join (or form) the cluster.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Arc<Node>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let runtime = Runtime::new(Some(&config.data_dir.join("module-cache"))).context("starting the wasm runtime")?;
        let log_store = LogStore::open(&config.data_dir).context("opening the raft log")?;
        let (state_machine, shared) =
            StateMachine::open(&config.data_dir.join("snapshots"), runtime).context("opening the state machine")?;

        let raft_config = openraft::Config {
            cluster_name: "nacre".into(),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            // Snapshots are asked for by `raft::snapshot_policy`, which also weighs the state's size.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: config.log_kept_behind_snapshot,
            install_snapshot_timeout: 30_000,
            // A restarted leader must win a new election. Restoring leadership in its old term
            // is unsafe here: followers may have fsynced (and so committed) entries of that
            // term that the leader's own log lost in the crash, and it would then write
            // different entries at those indexes (issue 15). See `raft::log_store` for what a
            // restarted node's committed index is trusted for.
            enable_leader_restore: Some(false),
            // A node that was cut off or paused asks before it raises its term: returning, it
            // costs a healthy leader nothing.
            enable_pre_vote: Some(true),
            ..Default::default()
        }
        .validate()
        .context("raft configuration")?;

        let id = config.me.node_id();
        let peers = PeerClient::with_routes(config.peer_routes.clone());
        let log = log_store.clone();
        let raft = Raft::new(id, Arc::new(raft_config), PeerNetwork::new(peers.clone()), log_store, state_machine)
            .await
            .context("starting raft")?;

        let raft_listener = TcpListener::bind(config.me.raft_addr())
            .await
            .with_context(|| format!("binding the raft port {}", config.me.raft_addr()))?;
        let duties = Duties::open(&config.me.ip).await.context("opening the push socket")?;
        let ap_peers =
            config.members.iter().filter(|m| m.node_id() != id).map(|m| (m.node_id(), m.raft_addr())).collect();
        let ap = Ap::new(id, ap_peers);
        let node = Arc::new(Node {
            id,
            config,
            raft,
            shared,
            peers,
            log,
            started_at: Instant::now(),
            duties,
            ap,
            answers: Answers::default(),
        });
        tokio::spawn(net::serve(raft_listener, |_, _| MAX_PEER_BODY_BYTES, {
            let node = node.clone();
            move |req| {
                let node = node.clone();
                async move { node.serve_peer(req).await }
            }
        }));

        if !node.raft.is_initialized().await.context("reading raft state")? {
            // Every member initializes itself with the same membership; openraft accepts
            // that, and the first election among a majority forms the cluster.
            let members: BTreeMap<NodeId, Member> =
                node.config.members.iter().map(|m| (m.node_id(), m.member())).collect();
            if let Err(e) = node.raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already initialized");
            }
        }
        tokio::spawn(snapshot_policy::run(
            node.raft.clone(),
            node.log.clone(),
            node.shared.clone(),
            node.config.snapshot_every_entries,
        ));
        tokio::spawn(bind_builtins_when_leader(node.clone()));
        crate::duties::spawn(&node);
        crate::ap::replicate::spawn(&node);
        Ok(node)
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// The current term, when this node leads it.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        (metrics.current_leader == Some(self.id)).then_some(metrics.current_term)
    }

    /// The peer address of the leader as this node knows it, unless that is this node.
    pub fn remote_leader_addr(&self) -> Option<String> {
        self.leader().filter(|leader| *leader != self.id).and_then(|leader| self.member(leader)).map(|m| m.raft_addr)
    }

    /// Ask the guest bound to `(namespace, kind)` a question about this replica's state.
    /// It sees the replicated state and this node's AP keyspace.
    ///
    /// Most queries take tens of microseconds, less than handing this async worker's other
    /// tasks to another thread would cost, so a query first runs right here with a short fuel
    /// budget, if no apply holds the replica. One that needs more runs again off the worker.
    /// An answer already computed at the same state is served from [`Answers`].
    pub fn query(&self, namespace: &str, kind: ModuleKind, request: &GuestRequest) -> Result<GuestReply, GuestError> {
        let request = request.encode();
        let key = answers::key(namespace, kind, &request);
        let run = |replica: &Replica, ap: &ApStore, budget| {
            let applied_index = replica.applied_index();
            let stamp = Stamp { applied_index, ap_generation: ap.generation() };
            if let Some(answer) = self.answers.get(stamp, &key) {
                return Ok(Ok(answer));
            }
            let view = ap.view(namespace, kind);
            let answer =
                replica.machine.query(&self.shared.runtime, applied_index, namespace, kind, &request, &view, budget)?;
            if let Ok(bytes) = &answer {
                self.answers.put(stamp, key.clone(), bytes);
            }
            Ok(answer)
        };
        decode_reply(self.run_guest(run))
    }

    /// Runs a guest `call` (a query or an AP command) against the replica and the AP store:
    /// first on this async worker with [`Budget::Inline`] if neither lock is held now, else, or
    /// when the call hands itself back, off the worker with [`Budget::Full`].
    pub(crate) fn run_guest<T>(&self, call: impl Fn(&Replica, &ApStore, Budget) -> Result<T, OverInlineBudget>) -> T {
        if let (Some(replica), Some(ap)) = (self.shared.try_read(), self.ap.try_store())
            && let Ok(done) = call(&replica, &ap, Budget::Inline)
        {
            return done;
        }
        crate::blocking::cpu_bound(|| call(&self.shared.read(), &self.ap.store(), Budget::Full))
            .expect("a full budget has no inline limit")
    }

    /// Commit a command a duty decided while leading `term` (a sweep, a probe result), only
    /// if this node still leads that term: a deposed leader's decisions, made on timers it
    /// no longer owns, are dropped rather than forwarded to the new leader.
    pub async fn write_guest_as_leader(
        &self,
        term: u64,
        namespace: String,
        kind: ModuleKind,
        request: &GuestRequest,
    ) -> Result<GuestReply, GuestError> {
        if self.leading_term() != Some(term) {
            return Err(GuestError { code: 503, message: format!("no longer the leader of term {term}") });
        }
        let op = Operation::Guest { namespace, kind, payload: request.encode() };
        match self.write_as_leader(op).await {
            Ok(outcome) => decode_reply(outcome.response.result),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// Commit a guest command and return its result; a write that could not be committed is
    /// a 503 the client may retry.
    pub async fn write_guest(
        &self,
        namespace: String,
        kind: ModuleKind,
        request: &GuestRequest,
    ) -> Result<GuestReply, GuestError> {
        let op = Operation::Guest { namespace, kind, payload: request.encode() };
        match self.write(op).await {
            Ok(outcome) => decode_reply(outcome.response.result),
            Err(e) => Err(unavailable(&e)),
        }
    }

    pub fn member(&self, id: NodeId) -> Option<Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.membership().get_node(&id).cloned()
    }

    /// Wait (bounded) until some leader is known.
    async fn wait_for_leader(&self, wait: Duration) -> Option<NodeId> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Some(leader);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Commit `op` through the leader, wherever it is, and wait until this node has applied
    /// it too, so that the caller can read its own write here.
    pub async fn write(&self, op: Operation) -> Result<WriteOutcome, WriteError> {
        op.validate().map_err(WriteError::Invalid)?;
        self.check_quorum()?;
        let leader = self.wait_for_leader(Duration::from_millis(LEADER_WAIT_MS)).await.ok_or(WriteError::NoLeader)?;
        let outcome = if leader == self.id {
            self.write_as_leader(op).await?
        } else {
            let member = self.member(leader).ok_or(WriteError::NoLeader)?;
            let answer: Result<WriteOutcome, WriteError> = self
                .peers
                .call_coalesced(&member.raft_addr, "/nacre/forward-write", &op, Duration::from_millis(WRITE_TIMEOUT_MS))
                .await
                .map_err(|e| {
                    tracing::info!(leader, error = %e, "a forwarded write got no answer from the leader");
                    WriteError::Unconfirmed
                })?;
            answer?
        };
        self.wait_applied(outcome.index, Duration::from_millis(LOCAL_APPLY_WAIT_MS)).await;
        Ok(outcome)
    }

    /// Fail fast on the minority side of a partition: a write there could only time out.
    /// The view is this node's pings (`ap::members`), refreshed every half second.
    fn check_quorum(&self) -> Result<(), WriteError> {
        let (reachable, members) = (self.ap.members.live().len(), self.config.members.len());
        let majority = members / 2 + 1;
        if reachable < majority { Err(WriteError::NoQuorum { reachable, members, majority }) } else { Ok(()) }
    }

    /// Propose as the leader, stamping the entry with this node's clock. The operation is
    /// validated here too: a follower's forwarded write is a peer message, not trusted to have
    /// passed the client API.
    async fn write_as_leader(&self, op: Operation) -> Result<WriteOutcome, WriteError> {
        op.validate().map_err(WriteError::Invalid)?;
        let proposal = Proposal { timestamp_ms: now_ms(), op };
        let write = self.raft.client_write(proposal);
        match tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write).await {
            Ok(Ok(resp)) => Ok(WriteOutcome { index: resp.log_id.index, response: resp.data }),
            Err(_) => {
                tracing::info!(timeout_ms = WRITE_TIMEOUT_MS, "a write was not committed in time");
                Err(WriteError::Unconfirmed)
            }
            // openraft also answers a proposal pending when leadership was lost this way,
            // so the entry may still be committed by the next leader: not "nothing written".
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                tracing::info!(leader = ?forward.leader_id, "leadership moved away from a write");
                Err(WriteError::Unconfirmed)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "raft refused a write");
                Err(WriteError::Unconfirmed)
            }
        }
    }

    /// Wait (bounded) until this replica has applied `index`.
    pub async fn wait_applied(&self, index: u64, wait: Duration) -> bool {
        let mut applied = self.shared.applied.subscribe();
        tokio::time::timeout(wait, applied.wait_for(|applied| *applied >= index)).await.is_ok_and(|r| r.is_ok())
    }

    /// Make the next local read linearizable: confirm with the leader (ReadIndex) and wait
    /// until this replica has applied up to the index it returns.
    pub async fn linearize(&self) -> Result<(), WriteError> {
        self.check_quorum()?;
        let leader = self.wait_for_leader(Duration::from_millis(LEADER_WAIT_MS)).await.ok_or(WriteError::NoLeader)?;
        let read_index = if leader == self.id {
            self.read_index_as_leader().await?
        } else {
            let member = self.member(leader).ok_or(WriteError::NoLeader)?;
            let answer: Result<u64, WriteError> = self
                .peers
                .call(&member.raft_addr, "/nacre/read-index", &(), Duration::from_millis(WRITE_TIMEOUT_MS))
                .await
                .map_err(|e| {
                    tracing::info!(leader, error = %e, "a read index request got no answer from the leader");
                    WriteError::ReadUnconfirmed
                })?;
            answer?
        };
        if self.wait_applied(read_index, Duration::from_millis(WRITE_TIMEOUT_MS)).await {
            Ok(())
        } else {
            tracing::info!(read_index, "this replica did not apply up to a read index in time");
            Err(WriteError::ReadUnconfirmed)
        }
    }

    async fn read_index_as_leader(&self) -> Result<u64, WriteError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(e) => {
                tracing::info!(error = %e, "raft could not confirm a read index");
                Err(WriteError::ReadUnconfirmed)
            }
        }
    }

    /// The peer port: openraft RPCs, writes and read-index requests forwarded by followers,
    /// the AP path's RPCs, and batches of any of these (`net::coalesce`).
    async fn serve_peer(&self, req: net::HttpRequest) -> net::HttpResponse {
        if req.method != net::HttpMethod::POST {
            return net::text(net::Status::METHOD_NOT_ALLOWED, "peer RPCs are POSTs");
        }
        let answer = if req.path == coalesce::BATCH_PATH {
            self.serve_peer_batch(&req.body).await
        } else {
            self.serve_peer_rpc(&req.path, &req.body).await
        };
        match answer {
            Ok(body) => net::binary(net::Status::OK, body),
            Err(message) => net::text(net::Status::BAD_REQUEST, message),
        }
    }

    /// Every call of a batch answered as it would be alone, all at once: the calls of one
    /// batch are independent (forwarded writes commit together, AP commands take their turns).
    async fn serve_peer_batch(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let batch: coalesce::BatchRequest = postcard::from_bytes(body).map_err(|e| format!("malformed batch: {e}"))?;
        if batch.path == coalesce::BATCH_PATH {
            return Err("a batch cannot carry batches".into());
        }
        if batch.calls.len() > coalesce::MAX_BATCH_CALLS {
            return Err(format!(
                "a batch of {} calls, over the limit of {}",
                batch.calls.len(),
                coalesce::MAX_BATCH_CALLS
            ));
        }
        let calls = batch.calls.iter().map(|call| self.serve_peer_rpc(&batch.path, call));
        let answers: coalesce::BatchAnswer =
            futures_util::future::join_all(calls).await.into_iter().map(|answer| answer.map(ByteBuf::from)).collect();
        Ok(encode(&answers))
    }

    /// One peer RPC: the encoded answer, or why the request is malformed.
    async fn serve_peer_rpc(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        match path {
            "/nacre/forward-write" => match postcard::from_bytes::<Operation>(body) {
                Ok(op) => Ok(encode(&self.write_as_leader(op).await)),
                Err(e) => Err(format!("malformed forwarded write: {e}")),
            },
            "/nacre/read-index" => Ok(encode(&self.read_index_as_leader().await)),
            path if path.starts_with("/nacre/ap/") => match self.ap.serve_peer(self, path, body).await {
                Some(answer) => answer,
                None => Err(format!("no such AP RPC: {path}")),
            },
            "/nacre/lease-renew" => match postcard::from_bytes::<Vec<crate::duties::LeaseKey>>(body) {
                Ok(renewals) => match renewals.iter().try_for_each(crate::duties::LeaseKey::validate) {
                    Ok(()) => {
                        self.duties.leases.record(renewals, now_ms());
                        Ok(encode(&()))
                    }
                    Err(e) => Err(format!("refused lease renewals: {e}")),
                },
                Err(e) => Err(format!("malformed lease renewals: {e}")),
            },
            path => peer_server::handle_rpc(&self.raft, path, body).await.map_err(|e| e.to_string()),
        }
    }
}

/// A write or read that could not be served, as the guest-facing 503 the client sees.
fn unavailable(e: &WriteError) -> GuestError {
    GuestError { code: e.status(), message: e.to_string() }
}

impl WriteError {
    /// The HTTP status a client is answered with: 400 for a malformed operation, else 503
    /// (worth a retry).
    pub fn status(&self) -> u16 {
        match self {
            WriteError::Invalid(_) => 400,
            _ => 503,
        }
    }
}

/// A guest's encoded reply, or a 500 when a module answered with something that is not one.
pub fn decode_reply(result: Result<Vec<u8>, GuestError>) -> Result<GuestReply, GuestError> {
    let bytes = result?;
    GuestReply::decode(&bytes)
        .map_err(|e| GuestError { code: 500, message: format!("module answered with a malformed reply: {e}") })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("peer answers always serialize")
}

/// The leader's wall clock in milliseconds: stamped into entries, never read by guests.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A new cluster installs and binds the built-in modules through the log, so every replica
/// does it at the same index. Every leader proposes it until a replica has applied it; the
/// state machine applies only the first.
async fn bind_builtins_when_leader(node: Arc<Node>) {
    loop {
        if node.shared.read().machine.has_default_bindings() {
            return;
        }
        if node.leader() == Some(node.id) {
            let op = Operation::Bootstrap { naming: builtin::NAMING.to_vec(), config: builtin::CONFIG.to_vec() };
            match node.write_as_leader(op).await {
                Ok(outcome) => tracing::info!(index = outcome.index, "bound the built-in modules"),
                Err(e) => tracing::warn!(error = %e, "binding the built-in modules failed; will retry"),
            }
        }
        tokio::time::sleep(Duration::from_millis(BOOTSTRAP_CHECK_INTERVAL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client reads in a 503 is a plain sentence: no openraft `Debug` output, no member
    /// addresses, and a failed read does not talk of a write.
    #[test]
    fn unavailable_answers_are_plain_words() {
        let all = [
            WriteError::NoLeader,
            WriteError::Unconfirmed,
            WriteError::ReadUnconfirmed,
            WriteError::NoQuorum { reachable: 1, members: 3, majority: 2 },
        ];
        for error in &all {
            let text = error.to_string();
            for internal in ["{", "Some(", "LogId", "Vote", "Membership", "127.0.0.1"] {
                assert!(!text.contains(internal), "{text}");
            }
            assert_eq!(error.status(), 503);
        }
        assert!(!WriteError::ReadUnconfirmed.to_string().contains("write"));
        assert!(WriteError::NoLeader.to_string().contains("nothing was written"));
        assert!(all[3].to_string().contains("nothing was written"));
    }
}
