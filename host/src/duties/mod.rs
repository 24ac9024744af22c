//! What the host does on the guests' behalf: the timers, pushes and probes a registry needs
//! but a deterministic guest cannot run itself.
//!
//! - [`leases`]: renewals (heartbeats) reported by a guest's `Nacre-Lease-Renew` directive,
//!   kept in the memory of the node responsible for the lease's AP partition and handed back
//!   to the guest's sweep query, whose answer is the commands to run (mark unhealthy,
//!   expire); and self-preservation, judged from the sweep's counts.
//! - [`push`]: UDP pushes to clients that subscribed through a read carrying `udpPort`,
//!   re-sent when an event the guest's `Nacre-Watch` directive named fires.
//! - [`probes`]: TCP/HTTP health probes of the targets a guest lists, committing the guest's
//!   own command when a target's health flips.
//!
//! Architecture Invariant: a duty never decides what a heartbeat, an instance or a health
//! check means. It keeps times, sends bytes, opens connections, and runs the commands the
//! guest named on the path the guest named (the log, or the AP path); no state changes
//! any other way.

pub mod leases;
pub mod probes;
pub mod push;

use std::sync::Arc;

pub use leases::LeaseHolder;
pub use leases::LeaseKey;
pub use leases::Leases;
pub use push::Push;

use crate::node::Node;

/// The per-node state of every duty.
pub struct Duties {
    pub leases: Leases,
    pub push: Push,
    pub probes: probes::Probes,
}

impl Duties {
    /// Binds the push socket on this node's IP (any free port).
    pub async fn open(bind_ip: &str) -> std::io::Result<Duties> {
        Ok(Duties { leases: Leases::default(), push: Push::open(bind_ip).await?, probes: probes::Probes::default() })
    }
}

/// Start the duties' background tasks for `node`.
pub fn spawn(node: &Arc<Node>) {
    tokio::spawn(leases::forward_renewals(node.clone()));
    tokio::spawn(leases::sweep_forever(node.clone()));
    tokio::spawn(push::push_on_events(node.clone()));
    tokio::spawn(push::read_acks(node.clone()));
    tokio::spawn(probes::probe_when_leader(node.clone()));
}
