//! Snapshot bytes: `state::MachineImage::decode` on mutated images of real machines, and
//! `raft::state_machine::StateMachine::open` on a data dir whose `snapshot.bin` is a mutated
//! snapshot file.

use std::collections::BTreeSet;

use serde_bytes::ByteBuf;

use super::Inputs;
use super::Plan;
use super::mutate::Rng;
use super::wire;
use super::wire::WImage;
use super::wire::WLogId;
use super::wire::WMembership;
use super::wire::WSnapshotFile;
use super::wire::WSnapshotMeta;
use super::wire::WStoredMembership;
use crate::raft::SnapshotMeta;
use crate::raft::state_machine::StateMachine;
use crate::runtime::ModuleKind;
use crate::runtime::Runtime;
use crate::state::EntryRef;
use crate::state::Machine;
use crate::state::MachineImage;
use crate::state::NamespaceChange;
use crate::state::Operation;
use crate::state::Proposal;

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// Machines as a node holds them, built through committed entries (namespaces, an installed
/// module, a refused guest command, the entry clock), and one of binary keys and large
/// values; their images are the seed corpus.
pub(crate) fn sample_machines(runtime: &Runtime) -> Vec<Machine> {
    let ops = vec![
        Operation::Namespace(NamespaceChange::Create { id: "dev".into(), name: "Dev".into(), desc: "配置\n".into() }),
        Operation::Namespace(NamespaceChange::Create { id: "test_1".into(), name: "T".into(), desc: String::new() }),
        Operation::Namespace(NamespaceChange::Delete { id: "test_1".into() }),
        Operation::InstallModule { bytes: b"\0asm\x0d\0\x01\0 not really a component".to_vec() },
        Operation::Guest { namespace: "public".into(), kind: ModuleKind::Config, payload: b"{}".to_vec() },
        Operation::Activate {
            namespace: "dev".into(),
            kind: ModuleKind::Naming,
            module_id: "0".repeat(64),
            by: "fuzz".into(),
        },
    ];
    let proposals: Vec<Proposal> =
        ops.into_iter().enumerate().map(|(i, op)| Proposal { timestamp_ms: wire::NOW_MS + i as u64, op }).collect();
    let entries: Vec<EntryRef<'_>> = proposals
        .iter()
        .enumerate()
        .map(|(i, proposal)| EntryRef { index: i as u64 + 1, term: 1, proposal: Some(proposal) })
        .collect();
    let mut applied = Machine::default();
    applied.apply(runtime, &entries).expect("sample entries apply");
    // The clock, the namespace `dev`, the module, and the record of the refused activation.
    assert_eq!(applied.key_count(), 4, "the sample machine holds what its entries wrote");

    let binary = WImage {
        pairs: vec![
            (ByteBuf::from(Vec::new()), ByteBuf::from(b"empty key".to_vec())),
            (ByteBuf::from(b"\0".to_vec()), ByteBuf::from(Vec::new())),
            (ByteBuf::from(b"g/config/public\0dataId\0\xff".to_vec()), ByteBuf::from(vec![0x80; 300])),
            (ByteBuf::from(b"s/clock".to_vec()), ByteBuf::from(wire::NOW_MS.to_be_bytes().to_vec())),
            (ByteBuf::from(vec![0xff; 130]), ByteBuf::from(vec![7; 20_000])),
        ],
    };
    let binary = decode_machine(&postcard::to_stdvec(&binary).expect("image")).expect("a sorted image decodes");
    vec![Machine::default(), applied, binary]
}

/// A machine's image as a snapshot carries it.
pub(crate) fn image_bytes(machine: &Machine) -> Vec<u8> {
    postcard::to_stdvec(&machine.image()).expect("an image serializes")
}

fn decode_machine(bytes: &[u8]) -> Result<Machine, String> {
    MachineImage::decode(bytes).map(Machine::from_image)
}

/// Bytes `MachineImage::decode` accepted: the keys are strictly ascending (what the decoder
/// promises), and the machine rebuilt from them writes an image that reads back to the same
/// state.
pub(crate) fn check_accepted_image(bytes: &[u8]) {
    let mirror: WImage = postcard::from_bytes(bytes).expect("an accepted image reads as pairs");
    let keys: Vec<&[u8]> = mirror.pairs.iter().map(|(key, _)| key.as_slice()).collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "an accepted image has keys out of order or repeated");
    let machine = decode_machine(bytes).expect("accepted once, accepted again");
    assert_eq!(machine.key_count(), keys.len(), "the machine holds every pair of the image");
    let rewritten = image_bytes(&machine);
    let again = decode_machine(&rewritten).expect("a machine's own image decodes");
    assert_eq!(again.digest_hex(), machine.digest_hex(), "a machine's image reads back to another state");
}

/// `MachineImage::decode` on mutated images and generated pair lists.
#[test]
fn machine_image() {
    let plan = Plan::from_env("snapshot::machine_image");
    let runtime = Runtime::new(None).expect("runtime");
    let mut rng = Rng::new(plan.seed);
    let mut corpus: Vec<Vec<u8>> = sample_machines(&runtime).iter().map(image_bytes).collect();
    corpus.extend((0..16).map(|_| postcard::to_stdvec(&wire::image(&mut rng)).expect("image")));
    let generate = |rng: &mut Rng| postcard::to_stdvec(&wire::image(rng)).expect("image");
    let inputs = Inputs { corpus: &corpus, generate: &generate, max_ops: 4 };
    super::run(&plan, &inputs, |_, input| match MachineImage::decode(input) {
        Ok(_) => {
            check_accepted_image(input);
            "accepted"
        }
        Err(_) => {
            // What the decoder refuses is either not pairs at all, or pairs no machine wrote.
            if let Ok((mirror, rest)) = postcard::take_from_bytes::<WImage>(input) {
                let keys: Vec<&ByteBuf> = mirror.pairs.iter().map(|(key, _)| key).collect();
                let ordered = keys.windows(2).all(|pair| pair[0] < pair[1]);
                assert!(!ordered || !rest.is_empty(), "an image of ordered pairs and no trailing bytes was refused");
            }
            "refused"
        }
    });
}

/// The metadata of a snapshot of a three-voter cluster at `index`.
fn meta(index: u64) -> WSnapshotMeta {
    let membership = WMembership {
        configs: vec![BTreeSet::from(wire::VOTERS)],
        nodes: wire::VOTERS
            .iter()
            .map(|id| {
                (
                    *id,
                    crate::raft::Member { api_addr: format!("127.0.0.1:{id}"), raft_addr: format!("127.0.0.1:9{id}") },
                )
            })
            .collect(),
    };
    WSnapshotMeta {
        last_log_id: Some(WLogId { term: 3, node: 2, index }),
        last_membership: WStoredMembership { log_id: Some(WLogId { term: 1, node: 1, index: 1 }), membership },
        snapshot_id: String::new(),
    }
}

fn snapshot_file(meta: WSnapshotMeta, image: Vec<u8>) -> Vec<u8> {
    postcard::to_stdvec(&WSnapshotFile { meta, image: ByteBuf::from(image) }).expect("a snapshot file serializes")
}

/// What opening a data dir holding `file` must give: the file's image's state, or an error
/// exactly when the file or its image does not decode (the way the node reads them).
fn expected_open(file: &[u8]) -> Option<(String, u64)> {
    // The whole file, nothing after it: trailing bytes mean a damaged or foreign file.
    let ((meta, image), rest): ((SnapshotMeta, ByteBuf), &[u8]) = postcard::take_from_bytes(file).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let machine = decode_machine(&image).ok()?;
    Some((machine.digest_hex(), meta.last_log_id.map_or(0, |id| id.index)))
}

/// `StateMachine::open` (and the dry run's `read_snapshot`) on a mutated `snapshot.bin`.
#[test]
fn state_machine_open() {
    let plan = Plan::from_env("snapshot::state_machine_open");
    let runtime = Runtime::new(None).expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus: Vec<Vec<u8>> = sample_machines(&runtime)
        .iter()
        .enumerate()
        .map(|(i, machine)| snapshot_file(meta(10 + i as u64), image_bytes(machine)))
        .collect();
    let generate = |rng: &mut Rng| {
        let vote = wire::vote(rng);
        let image = if rng.one_in(2) {
            image_bytes(&Machine::default())
        } else {
            postcard::to_stdvec(&wire::image(rng)).expect("image")
        };
        snapshot_file(wire::snapshot_meta(rng, &vote), image)
    };
    let inputs = Inputs { corpus: &corpus, generate: &generate, max_ops: 4 };
    super::run(&plan, &inputs, |_, input| {
        std::fs::write(dir.path().join(SNAPSHOT_FILE), input).expect("write the snapshot file");
        let expected = expected_open(input);
        let opened = StateMachine::open(dir.path(), runtime.clone());
        let dry_run = crate::raft::state_machine::read_snapshot(dir.path());
        match (opened, expected) {
            (Ok((_, shared)), Some((digest, index))) => {
                let replica = shared.read();
                assert_eq!(replica.machine.digest_hex(), digest, "the replica opened is not the image's state");
                assert_eq!(replica.applied_index(), index, "the replica opened is not at the snapshot's index");
                let (dry_index, dry_machine) =
                    dry_run.expect("read_snapshot reads what open reads").expect("a snapshot");
                assert_eq!((dry_index, dry_machine.digest_hex()), (index, digest), "a dry run reads another state");
                "opened"
            }
            (Err(error), None) => {
                assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "a bad snapshot is invalid data: {error}");
                assert!(dry_run.is_err(), "read_snapshot took a file open refused");
                "refused"
            }
            (Ok(_), None) => panic!("opened a snapshot file that does not decode"),
            (Err(error), Some(_)) => panic!("refused a snapshot file that decodes: {error}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_snapshot_opens_to_its_state() {
        let runtime = Runtime::new(None).expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        for (i, machine) in sample_machines(&runtime).iter().enumerate() {
            let file = snapshot_file(meta(7 + i as u64), image_bytes(machine));
            std::fs::write(dir.path().join(SNAPSHOT_FILE), &file).expect("write");
            let (_, shared) = StateMachine::open(dir.path(), runtime.clone()).expect("a valid snapshot opens");
            assert_eq!(shared.read().machine.digest_hex(), machine.digest_hex());
            assert_eq!(shared.read().applied_index(), 7 + i as u64);
            assert_eq!(shared.read().membership.membership().voter_ids().count(), 3);
        }
    }

    #[test]
    fn sample_images_are_accepted() {
        let runtime = Runtime::new(None).expect("runtime");
        for machine in sample_machines(&runtime) {
            check_accepted_image(&image_bytes(&machine));
        }
    }
}
