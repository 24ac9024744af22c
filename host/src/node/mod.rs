//! A node, composed: the composition root builds each service from the ones below it, hands
//! every part only what it uses, starts every background task in one [`Tasks`] set, and
//! stops them all in order at shutdown. Nothing else in the host knows this file.
//!
//! ```text
//! api (client port) ─┐                       node::peer_port (peer port)
//!                    ▼                                 │
//!            dispatch (the plan's interpreter)         │
//!          ┌─────────┼──────────┬────────────┐        │
//!          ▼         ▼          ▼            ▼        ▼
//!       guests    raft::Log     ap ──────▶ members, net, clock
//!          │         │          │
//!          ▼         ▼          ▼
//!        state ◀── raft      ap::store
//!          │
//!          ▼
//!       runtime
//! ```

mod peer_port;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;

use crate::ap::Ap;
use crate::ap::store::Keyspace;
use crate::builtin;
use crate::clock::now_ms;
use crate::config::NodeConfig;
use crate::dispatch::Dispatch;
use crate::duties;
use crate::duties::Push;
use crate::guests::Guests;
use crate::leases::Leases;
use crate::members::Members;
use crate::members::NodeId;
use crate::net::PeerClient;
use crate::net::peer_auth::PeerKey;
use crate::raft::Member;
use crate::raft::Operation;
use crate::raft::Raft;
use crate::raft::log::Log;
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::snapshot_policy;
use crate::raft::state_machine::SNAPSHOTS_DIR;
use crate::raft::state_machine::StateMachine;
use crate::runtime::Runtime;
use crate::tasks::Tasks;

pub const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A follower starts an election once it has heard no leader for the leader lease (openraft
/// sets it to `ELECTION_TIMEOUT_MAX_MS`) plus a random timeout in `[MIN, MAX)`: a dead leader is
/// replaced after 1.5-2 s of silence. Pre-vote keeps a follower whose own process was stalled
/// from deposing a leader the others still hear.
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1_000;
const _: () = assert!(HEARTBEAT_INTERVAL_MS * 4 <= ELECTION_TIMEOUT_MIN_MS, "several heartbeats fit in a timeout");
const _: () = assert!(ELECTION_TIMEOUT_MIN_MS < ELECTION_TIMEOUT_MAX_MS, "elections need a random spread");
/// Longest a snapshot install may take on a follower.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;
/// How often a node checks whether the built-in modules still need to be bound.
const BOOTSTRAP_CHECK_INTERVAL_MS: u64 = 50;
/// A new cluster's members initialize Raft one after another, this far apart in cluster.conf's
/// order: initializing starts a campaign at once, and members campaigning together split the
/// first vote (measured: a fresh cluster then waited a whole election timeout, most of its
/// start). The first member's campaign has long won when the second's turn comes, and the
/// second finds itself initialized by the leader's entries; a member that is not up yet only
/// delays the next one's turn.
const INITIALIZE_STAGGER_MS: u64 = 300;
const _: () = assert!(INITIALIZE_STAGGER_MS < ELECTION_TIMEOUT_MIN_MS, "turns come faster than an election timeout");
/// Longest a new cluster's member waits for a majority to listen before its turn anyway.
const INITIALIZE_PEERS_WAIT_MS: u64 = 10_000;
const INITIALIZE_PROBE_INTERVAL_MS: u64 = 20;
/// How often a node compares the log's membership with the one its services use.
const MEMBERSHIP_CHECK_INTERVAL_MS: u64 = 250;
/// Every this many checks (2 s), a node asks the leader whether it was removed.
const REMOVED_CHECK_EVERY_ROUNDS: u64 = 8;
/// How often, and how many times, a joining node asks to be added before it gives up.
const JOIN_RETRY_INTERVAL_MS: u64 = 1_000;
const MAX_JOIN_ATTEMPTS: u32 = 600;
/// How long shutdown waits for the background tasks to end after they were told to stop.
const TASKS_STOP_TIMEOUT_MS: u64 = 3_000;
/// The AP journal's file in the data directory (`ap::journal`).
pub const AP_JOURNAL_FILE: &str = "ap-journal.redb";

/// A running node: what `main` holds until it is told to stop.
pub struct Node {
    pub id: NodeId,
    pub config: NodeConfig,
    log: Arc<Log>,
    log_store: LogStore,
    tasks: Tasks,
}

impl Node {
    /// Open storage, start Raft, the peer port and the client ports (HTTP on `api_listener`,
    /// Nacos 2.x gRPC on `grpc_listener`), and join (or form) the cluster.
    pub async fn start(
        config: NodeConfig,
        api_listener: TcpListener,
        grpc_listener: TcpListener,
    ) -> anyhow::Result<Node> {
        // The client port's certificate is read first: a bad file stops the start, it does
        // not fall back to plain HTTP.
        let tls =
            config.tls.as_ref().map(|files| crate::net::tls::server_config(&files.cert, &files.key)).transpose()?;
        let grpc_tls = tls.as_deref().map(|tls| crate::net::tls::with_alpn(tls, &[b"h2"]));
        let transport = match tls {
            Some(tls) => crate::net::Transport::Tls(tls),
            None => crate::net::Transport::Plain,
        };
        if let Some(backup) = &config.restore {
            restore(&config, backup)?;
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let runtime =
            Runtime::with_caches(Some(&config.data_dir.join("module-cache")), config.shared_module_cache.as_deref())
                .context("starting the wasm runtime")?;
        let log_store = LogStore::open(&config.data_dir).context("opening the raft log")?;
        let (state_machine, replica) = StateMachine::open(&config.data_dir.join(SNAPSHOTS_DIR), runtime.clone())
            .context("opening the state machine")?;
        if !replica.read().machine.has_default_bindings() {
            precompile_builtins(&runtime);
        }

        let id = config.me.node_id();
        let peer_key = Arc::new(PeerKey::new(&config.cluster_secret, config.me.raft_addr(), now_ms()));
        let peers = PeerClient::new(peer_key.clone(), config.peer_routes.clone());
        let raft_starting = std::time::Instant::now();
        let raft = Raft::new(
            id,
            Arc::new(raft_config(&config)?),
            PeerNetwork::new(peers.clone()),
            log_store.clone(),
            state_machine,
        )
        .await
        .context("starting raft")?;
        // Raft re-applies the committed log past the snapshot before it returns.
        tracing::info!(
            applied = replica.read().applied_index(),
            took_ms = raft_starting.elapsed().as_millis() as u64,
            "started raft"
        );
        let raft_bind = format!("{}:{}", config.bind_ip, config.me.raft_port);
        let raft_listener =
            TcpListener::bind(&raft_bind).await.with_context(|| format!("binding the raft port {raft_bind}"))?;

        // The services, each from the ones below it. The members start as cluster.conf lists
        // them (none but this node when it joins); `follow_membership` then keeps them as the
        // log's membership says.
        let (member_peers, voters) = if config.join.is_some() {
            (BTreeMap::new(), BTreeSet::new())
        } else {
            let peers = config.members.iter().filter(|m| m.node_id() != id).map(|m| (m.node_id(), m.raft_addr()));
            (peers.collect(), config.members.iter().map(|m| m.node_id()).collect())
        };
        let members = Arc::new(Members::new(id, member_peers, voters, now_ms()));
        let keyspace = Arc::new(Keyspace::default());
        let guests = Arc::new(Guests::new(replica.clone(), keyspace.clone()));
        let log = Arc::new(Log::new(id, raft.clone(), replica.clone(), peers.clone(), members.clone()));
        log.count_elections().await.context("installing the raft counters")?;
        let journal_path = config.data_dir.join(AP_JOURNAL_FILE);
        let ap = Arc::new(
            Ap::new(members.clone(), guests.clone(), keyspace, peers.clone(), journal_path)
                .context("opening the AP journal")?,
        );
        let leases = Arc::new(Leases::default());
        let push = Arc::new(Push::open(&config.bind_ip).await.context("opening the push socket")?);
        let dispatch =
            Arc::new(Dispatch::new(guests.clone(), log.clone(), ap.clone(), leases.clone(), members.clone()));

        let tasks = Tasks::new();
        let fd_limit = crate::net::connections::raise_fd_limit();
        let caps = crate::net::connections::connection_caps(fd_limit, crate::net::MAX_CONNECTIONS);
        tracing::info!(fd_limit, http = caps.http, grpc = caps.grpc, peer = caps.peer, "connection caps");
        let telemetry = Arc::new(crate::telemetry::Telemetry::new());
        let (grpc_connections, ended) = crate::grpc::connections::Connections::new(caps.grpc, telemetry.clone());
        let watchers = Arc::new(crate::watching::Watchers::new(vec![push.clone(), grpc_connections.clone()]));
        let peer_port = Arc::new(peer_port::PeerPort {
            log: log.clone(),
            ap: ap.clone(),
            leases: leases.clone(),
            guests: guests.clone(),
            me: config.me.clone(),
            watchers: watchers.clone(),
        });
        tasks.spawn_server(peer_port::serve(peer_port, peer_key, raft_listener, caps.peer, tasks.stopping()));
        match &config.join {
            None => {
                let members_list: BTreeMap<NodeId, Member> =
                    config.members.iter().map(|m| (m.node_id(), m.member())).collect();
                let rank = config.members.iter().position(|m| m.node_id() == id).unwrap_or(0);
                tasks.spawn(initialize_in_turn(log.clone(), members_list, rank));
            }
            Some(plan) => {
                tasks.spawn(join(log.clone(), peers.clone(), config.me.member(), plan.clone()));
            }
        }
        tasks.spawn(follow_membership(log.clone(), ap.clone(), tasks.clone()));
        let checkpoints = snapshot_policy::Checkpoints {
            dir: config.data_dir.join(SNAPSHOTS_DIR),
            every_entries: config.checkpoint_every_entries,
        };
        tasks.spawn(snapshot_policy::run(
            raft,
            log_store.clone(),
            replica.clone(),
            config.snapshot_every_entries,
            checkpoints,
        ));
        tasks.spawn(bind_builtins_when_leader(log.clone(), guests.clone()));
        tasks.spawn(guests.wake_waiters());
        crate::ap::replicate::spawn(&ap, &tasks, config.join.is_some());
        let duty_services = duties::Services {
            guests: guests.clone(),
            log: log.clone(),
            ap: ap.clone(),
            members,
            dispatch: dispatch.clone(),
            leases: leases.clone(),
            push: push.clone(),
            peers: peers.clone(),
            self_preservation: config.self_preservation,
        };
        duties::spawn(Arc::new(duty_services), &tasks);
        let bootstrapped = guests.replica().read().machine.auth_bootstrapped();
        let gate = Arc::new(crate::gate::Gate::new(config.auth, &config.data_dir, bootstrapped)?);
        tasks.spawn(gate.clone().remove_token_once_bootstrapped(guests.clone()));
        let grpc = Arc::new(crate::grpc::Context {
            dispatch: dispatch.clone(),
            guests: guests.clone(),
            gate: gate.clone(),
            connections: grpc_connections,
            tasks: tasks.clone(),
            telemetry: telemetry.clone(),
        });
        tasks.spawn_server(crate::grpc::serve(grpc, grpc_listener, grpc_tls, ended, tasks.stopping()));
        let api = Arc::new(crate::api::Context {
            dispatch,
            guests,
            log: log.clone(),
            ap,
            push,
            watchers,
            leases,
            peers,
            me: config.me.clone(),
            replica,
            log_reader: log_store.clone(),
            data_dir: config.data_dir.clone(),
            stopping: tasks.clone(),
            gate,
            console: config.console,
            telemetry,
        });
        tasks.spawn_server(crate::api::serve(api, api_listener, transport, caps.http, tasks.stopping()));
        Ok(Node { id, config, log, log_store, tasks })
    }

    /// Stop in order: both ports stop accepting and finish (or, past their drain timeout,
    /// cut off) the requests in flight, every background task stops, Raft shuts down, and
    /// the log makes everything queued durable. A restart on the same data directory serves
    /// every acknowledged write.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let stopped =
            self.tasks.shutdown(Duration::from_millis(crate::net::DRAIN_TIMEOUT_MS + TASKS_STOP_TIMEOUT_MS)).await;
        if !stopped {
            tracing::warn!("some tasks did not stop in time");
        }
        self.log.shutdown().await;
        self.log_store.flush().await.context("flushing the raft log")?;
        Ok(())
    }
}

fn raft_config(config: &NodeConfig) -> anyhow::Result<openraft::Config> {
    openraft::Config {
        cluster_name: "nacre".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        // Snapshots are asked for by `raft::snapshot_policy`, which also weighs the state's size.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: config.log_kept_behind_snapshot,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
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
    .context("raft configuration")
}

/// Compile the built-in modules now, both at once, off the async workers: a new cluster's
/// bootstrap entry binds them, and its apply then finds them compiled instead of compiling one
/// after the other while the cluster waits to serve. Loading is not state: a load that is
/// never used costs memory only.
fn precompile_builtins(runtime: &Runtime) {
    for bytes in [builtin::NAMING, builtin::CONFIG] {
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = runtime.load(bytes) {
                tracing::warn!(error = %e, "compiling a built-in module ahead of its binding failed");
            }
            // A compile frees tens of MiB of its own, in this thread's arena: give it back
            // rather than keep it resident for the node's life.
            crate::heap::release_freed();
        });
    }
}

/// Initialize Raft with a new cluster's members on the `rank`-th member's turn, unless the
/// leader's entries initialized it first. Any member may initialize (the same membership
/// everywhere); which one does only decides who campaigns first. Turns start once a majority
/// of the members listen (at most [`INITIALIZE_PEERS_WAIT_MS`]): a campaign nobody hears fails,
/// and its vote then stands in the way of the next member's.
///
/// A restarted member (initialized before) campaigns on its turn the same way, through a
/// pre-vote and only while it hears no leader: a whole cluster started again elects as soon
/// as a majority listens, instead of when the first election timeout runs out
/// (0.5-1 s after each node's start). Where a leader is alive, its voters refuse the
/// pre-vote and nothing changes.
async fn initialize_in_turn(log: Arc<Log>, members: BTreeMap<NodeId, Member>, rank: usize) {
    let restarted = log.is_initialized().await.unwrap_or(false);
    wait_for_majority_listening(&members).await;
    tokio::time::sleep(Duration::from_millis(INITIALIZE_STAGGER_MS * rank as u64)).await;
    if restarted {
        match log.campaign_unless_led().await {
            Ok(true) => tracing::info!("no leader heard since the restart: campaigning (pre-vote first)"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not campaign after the restart"),
        }
        return;
    }
    if let Err(e) = log.initialize(members).await {
        tracing::error!(error = %e, "initializing raft failed");
    }
}

/// Wait until a majority of `members` accept connections on their peer ports, at most
/// [`INITIALIZE_PEERS_WAIT_MS`].
async fn wait_for_majority_listening(members: &BTreeMap<NodeId, Member>) {
    let majority = members.len() / 2 + 1;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(INITIALIZE_PEERS_WAIT_MS);
    while tokio::time::Instant::now() < deadline {
        let probes = members.values().map(|m| listening(&m.raft_addr));
        let up = futures_util::future::join_all(probes).await.into_iter().filter(|up| *up).count();
        if up >= majority {
            break;
        }
        tokio::time::sleep(Duration::from_millis(INITIALIZE_PROBE_INTERVAL_MS)).await;
    }
}

/// Whether something accepts connections at `addr` (a member's peer port, up or not yet).
async fn listening(addr: &str) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(tokio::time::timeout(Duration::from_millis(INITIALIZE_PROBE_INTERVAL_MS), connect).await, Ok(Ok(_)))
}

/// A new cluster installs and binds the built-in modules through the log, so every replica
/// does it at the same index. Every leader proposes it until a replica has applied it; the
/// state machine applies only the first.
async fn bind_builtins_when_leader(log: Arc<Log>, guests: Arc<Guests>) {
    loop {
        if guests.replica().read().machine.has_default_bindings() {
            return;
        }
        if log.leading_term().is_some() {
            let op = Operation::Bootstrap { naming: builtin::NAMING.to_vec(), config: builtin::CONFIG.to_vec() };
            match log.write_as_leader(op).await {
                Ok(outcome) => tracing::info!(index = outcome.index, "bound the built-in modules"),
                Err(e) => tracing::warn!(error = %e, "binding the built-in modules failed; will retry"),
            }
        }
        tokio::time::sleep(Duration::from_millis(BOOTSTRAP_CHECK_INTERVAL_MS)).await;
    }
}

/// Make this node's first snapshot of a backup, with cluster.conf's members as the membership:
/// only into an empty data directory (a node that has run keeps its own log).
fn restore(config: &NodeConfig, backup: &std::path::Path) -> anyhow::Result<()> {
    let used = std::fs::read_dir(&config.data_dir).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    anyhow::ensure!(
        !used,
        "--restore needs an empty --data-dir: {} holds a node's data already",
        config.data_dir.display()
    );
    let bytes = std::fs::read(backup).with_context(|| format!("reading the backup {}", backup.display()))?;
    let voters = config.members.iter().map(|m| (m.node_id(), m.member())).collect();
    let info = crate::raft::backup::restore(&config.data_dir.join(SNAPSHOTS_DIR), &bytes, voters)
        .with_context(|| format!("restoring {}", backup.display()))?;
    tracing::info!(index = info.index, digest = %info.digest, members = config.members.len(), "restored a backup");
    Ok(())
}

/// Keep the services' view of the members (liveness, AP responsibility, the AP outbox and the
/// majority a write needs) as the log's membership says: it changes when a member is added,
/// promoted or removed, on every node at the entry's index.
async fn follow_membership(log: Arc<Log>, ap: Arc<Ap>, tasks: crate::tasks::Tasks) {
    let mut warned_removed = false;
    for round in 0u64.. {
        if round % REMOVED_CHECK_EVERY_ROUNDS == 0 {
            log.check_removed().await;
        }
        let membership = log.membership();
        // Empty until Raft has loaded its state (or, joining, until this node is added).
        if !membership.nodes.is_empty() {
            let peers = membership
                .nodes
                .iter()
                .filter(|(id, _)| **id != log.id())
                .map(|(id, member)| (*id, member.raft_addr.clone()))
                .collect();
            crate::ap::replicate::follow_membership(&ap, peers, membership.voters.clone(), &tasks);
            let removed = !membership.contains(log.id());
            if removed && !warned_removed {
                tracing::warn!("this node is not a member of the cluster (removed?): it serves nothing ready; stop it");
            }
            warned_removed = removed;
        }
        tokio::time::sleep(Duration::from_millis(MEMBERSHIP_CHECK_INTERVAL_MS)).await;
    }
}

/// A node started with `--join` asks its seed (any member, which forwards to the leader) to
/// add it, until it is a member in the role it asked for. Refusals end the attempts; anything
/// else (no leader yet, the seed down, a learner still catching up) is retried, boundedly.
async fn join(log: Arc<Log>, peers: PeerClient, me: Member, plan: crate::config::JoinPlan) {
    use crate::raft::membership::Change;
    use crate::raft::reconfigure::ChangeMembership;
    use crate::raft::reconfigure::MembershipError;
    let id = log.id();
    let joined = |log: &Log| {
        let membership = log.membership();
        if plan.learner { membership.contains(id) } else { membership.voters.contains(&id) }
    };
    let Some(seed) = plan.seed else {
        tracing::info!(
            address = %me.api_addr,
            "waiting to be added to a cluster: run `nacre cluster add {}` against any member", me.api_addr
        );
        return;
    };
    let change = Change::Add { id, member: me, learner: plan.learner };
    for attempt in 1..=MAX_JOIN_ATTEMPTS {
        if joined(&log) {
            return tracing::info!(learner = plan.learner, "this node is a member of the cluster");
        }
        let timeout = Duration::from_millis(crate::raft::reconfigure::CHANGE_TIMEOUT_MS);
        match peers.send::<ChangeMembership>(&seed.raft_addr(), &change, timeout).await {
            Ok(Ok(_)) => {}
            Ok(Err(MembershipError::Refused(refused))) => {
                return tracing::error!(seed = %seed.api_addr(), %refused, "the cluster refused to add this node");
            }
            Ok(Err(e)) => tracing::info!(attempt, error = %e, "not added yet; asking again"),
            Err(e) => {
                tracing::info!(attempt, seed = %seed.api_addr(), error = %e, "the seed did not answer; asking again")
            }
        }
        tokio::time::sleep(Duration::from_millis(JOIN_RETRY_INTERVAL_MS)).await;
    }
    tracing::error!(attempts = MAX_JOIN_ATTEMPTS, "gave up asking to join the cluster; restart to try again");
}
