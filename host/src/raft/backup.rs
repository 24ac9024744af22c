//! Backup and restore of the replicated state, etcd's way: a backup is the machine's image at
//! one applied index (every key: configs, services, users, modules, bindings), and a new
//! cluster is made by restoring the same file on each of its members, with the new members as
//! the membership, before they first start.
//!
//! A restored node holds the image as its snapshot, at the backup's index and at term 0 (the
//! same log id on every member, so their logs agree from the start), with the new cluster's
//! voters as the membership that snapshot carries. openraft then starts as it would after a
//! snapshot install: log empty behind the snapshot, the cluster initialized, an election among
//! the voters. The AP keyspace (ephemeral instances) is not in a backup: clients register
//! again, as they do after any restart.
//!
//! File format: [`MAGIC`], then postcard([`BackupFile`]). The digest in it is checked against
//! the image at restore, so a damaged file is refused instead of served.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

use super::state_machine::Replica;
use super::types::LogId;
use super::types::Member;
use super::types::NodeId;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;
use crate::state::Machine;
use crate::state::MachineImage;

/// Largest backup a client takes: a state larger than this could not be sent to a member as a
/// snapshot either (the peer port's body limit, `node::peer_port`).
pub const MAX_BACKUP_BYTES: usize = 256 * 1024 * 1024;

/// The first bytes of a backup file: what it is, and its format's version.
pub const MAGIC: &[u8] = b"nacre-backup-v1\n";

#[derive(Debug, Serialize, Deserialize)]
struct BackupFile {
    /// The applied index the image is of.
    index: u64,
    /// The machine's digest at that index (`Machine::digest_hex`).
    digest: String,
    #[serde(with = "serde_bytes")]
    image: Vec<u8>,
}

/// What a backup holds, as a restore reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub index: u64,
    pub digest: String,
    pub image_bytes: usize,
}

/// A backup of `replica` as it is now: encode it while holding the read lock (the caller has
/// made the replica linearizable first, so the image is of a committed index at least as new as
/// the request).
pub fn backup_of(replica: &Replica) -> io::Result<Vec<u8>> {
    let image = replica.machine.image();
    let image = postcard::to_stdvec(&image).map_err(io::Error::other)?;
    let file = BackupFile { index: replica.applied_index(), digest: replica.machine.digest_hex(), image };
    postcard::to_extend(&file, MAGIC.to_vec()).map_err(io::Error::other)
}

/// What a backup holds, once it is checked (as [`restore`] checks it).
pub fn info(bytes: &[u8]) -> io::Result<BackupInfo> {
    let file = read(bytes)?;
    Ok(BackupInfo { index: file.index, digest: file.digest, image_bytes: file.image.len() })
}

/// Read a backup and check it: the magic, the encoding, and the image against its digest.
fn read(bytes: &[u8]) -> io::Result<BackupFile> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let body =
        bytes.strip_prefix(MAGIC).ok_or_else(|| invalid("not a Nacre backup (no nacre-backup-v1 header)".into()))?;
    let (file, rest): (BackupFile, _) =
        postcard::take_from_bytes(body).map_err(|e| invalid(format!("a damaged backup: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(format!("a damaged backup: {} bytes after its end", rest.len())));
    }
    let image = MachineImage::decode(&file.image).map_err(|e| invalid(format!("a damaged backup image: {e}")))?;
    let digest = Machine::from_image(image).digest_hex();
    if digest != file.digest {
        return Err(invalid(format!("a damaged backup: its image digests to {digest}, not {}", file.digest)));
    }
    Ok(file)
}

/// Restore `bytes` as the snapshot of a node that has never started, in `snapshot_dir`, with
/// `voters` as the new cluster's membership.
pub fn restore(snapshot_dir: &Path, bytes: &[u8], voters: BTreeMap<NodeId, Member>) -> io::Result<BackupInfo> {
    let file = read(bytes)?;
    let log_id = LogId::new(openraft::alias::CommittedLeaderIdOf::<TypeConfig> { term: 0, node_id: 0 }, file.index);
    let ids: BTreeSet<NodeId> = voters.keys().copied().collect();
    let membership = openraft::Membership::new(vec![ids], voters).map_err(io::Error::other)?;
    let meta =
        SnapshotMeta { last_log_id: Some(log_id), last_membership: StoredMembership::new(Some(log_id), membership) };
    let info = BackupInfo { index: file.index, digest: file.digest.clone(), image_bytes: file.image.len() };
    super::state_machine::write_restored_snapshot(snapshot_dir, meta, file.image)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let replica = Replica::default();
        let good = backup_of(&replica).unwrap();
        assert!(read(&good).is_ok());
        assert!(read(b"snapshot").unwrap_err().to_string().contains("not a Nacre backup"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(read(&trailing).unwrap_err().to_string().contains("after its end"));
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 1);
        assert!(read(&truncated).is_err());
    }

    #[test]
    fn a_restore_writes_a_snapshot_the_node_opens_at_the_backup_index() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Replica::default();
        let bytes = backup_of(&replica).unwrap();
        let member = Member { api_addr: "10.0.0.1:8848".into(), raft_addr: "10.0.0.1:7848".into() };
        let info = restore(dir.path(), &bytes, BTreeMap::from([(7, member)])).unwrap();
        assert_eq!(info.digest, replica.machine.digest_hex());
        let runtime = crate::runtime::Runtime::new(None).unwrap();
        let (_sm, shared) = super::super::state_machine::StateMachine::open(dir.path(), runtime).unwrap();
        let restored = shared.read();
        assert_eq!(restored.machine.digest_hex(), info.digest);
        assert_eq!(restored.membership.membership().voter_ids().collect::<Vec<_>>(), [7]);
    }
}
