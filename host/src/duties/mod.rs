//! What the host does on the guests' behalf: the timers, pushes and probes a registry needs
//! but a deterministic guest cannot run itself. Tasks only: the state they keep is the lease
//! table (`crate::leases`), the push subscriptions ([`push::Push`]) and the probe streaks.
//!
//! - [`leases`]: forwarding renewals to the nodes that hold them, and the sweep, whose
//!   answer is the commands to run (mark unhealthy, expire); self-preservation, judged from
//!   the sweep's counts.
//! - [`push`]: UDP pushes to clients that subscribed through a read carrying `udpPort`,
//!   re-sent when an event the guest's `Nacre-Watch` directive named fires.
//! - [`probes`]: TCP/HTTP health probes of the targets a guest lists, committing the guest's
//!   own command when a target's health flips.
//!
//! Architecture Invariant: a duty never decides what a heartbeat, an instance or a health
//! check means. It keeps times, sends bytes, opens connections, and runs the commands the
//! guest named on the path the guest named (through `dispatch`); no state changes any other
//! way.

pub mod leases;
pub mod probes;
pub mod push;

use std::sync::Arc;

pub use push::Push;

use crate::ap::Ap;
use crate::config::SelfPreservation;
use crate::dispatch::Dispatch;
use crate::guests::Guests;
use crate::leases::Leases;
use crate::members::Members;
use crate::net::PeerClient;
use crate::raft::log::Log;
use crate::tasks::Tasks;

/// What the duties stand on, handed over by the node.
pub struct Services {
    pub guests: Arc<Guests>,
    pub log: Arc<Log>,
    pub ap: Arc<Ap>,
    pub members: Arc<Members>,
    pub dispatch: Arc<Dispatch>,
    pub leases: Arc<Leases>,
    pub push: Arc<Push>,
    pub peers: PeerClient,
    pub self_preservation: SelfPreservation,
}

/// Start the duties' background tasks.
pub fn spawn(services: Arc<Services>, tasks: &Tasks) {
    tasks.spawn(leases::forward_renewals(services.clone()));
    tasks.spawn(leases::sweep_forever(services.clone()));
    tasks.spawn(push::push_on_events(services.guests.clone(), services.push.clone()));
    tasks.spawn(push::read_acks(services.push.clone()));
    tasks.spawn(probes::probe_when_leader(services));
}
