//! The identity of an AP partition (a namespace, a module kind and the guest's partition
//! name), and the stable hash that places partitions on members and checksums their records.
//! Below both the AP path and the members view, which each use it.

use serde::Deserialize;
use serde::Serialize;

use crate::runtime::ModuleKind;

/// Where a partition lives: namespace, module kind and the guest's partition name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId {
    pub namespace: String,
    pub kind: ModuleKind,
    pub partition: String,
}

impl PartitionId {
    /// A valid namespace and a partition name no longer than a key: what every node accepts
    /// records of. Checked before a command runs (a peer's forwarded one, or a module's plan
    /// naming its partition), so that nothing is stored that the peers would refuse.
    pub fn validate(&self) -> Result<(), String> {
        use crate::runtime::limits::MAX_KEY_BYTES;
        crate::state::namespace_id(&self.namespace, "namespace").map_err(|e| e.to_string())?;
        if self.partition.len() > MAX_KEY_BYTES {
            return Err(format!("a partition name over {MAX_KEY_BYTES} bytes"));
        }
        Ok(())
    }
}

/// The first 8 bytes of sha256 over `parts`, each length-prefixed so that no two different
/// part lists hash the same input: a stable hash, equal on every node and every build.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    u64::from_be_bytes(hasher.finalize()[..8].try_into().expect("sha256 is 32 bytes"))
}
