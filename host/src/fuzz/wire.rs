//! Structure-aware generators: well-formed values with extreme fields, and mirrors of the
//! Raft messages' wire layout.
//!
//! The mirrors (`W*`) serialize exactly as the Raft library's messages do under postcard
//! (a struct is its fields in order, an enum a varint variant index, an option a tag byte), so
//! the harness can build any message, however implausible, and read any decoded one, without
//! naming the Raft library outside `raft/` (Architecture Invariant). `peer::tests` checks the
//! layouts match: a mirror's bytes decode as the real message and re-encode to the same bytes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::mutate::INTERESTING_U64;
use super::mutate::Rng;
use crate::ap::store::MAX_CLOCK_SKEW_MS;
use crate::ap::store::PartitionId;
use crate::ap::store::PartitionRecords;
use crate::ap::store::Record;
use crate::ap::store::Version;
use crate::raft::Member;
use crate::raft::peer_guard::LocalView;
use crate::raft::peer_guard::MAX_LOG_INDEX;
use crate::raft::peer_guard::MAX_TERM;
use crate::raft::peer_guard::MAX_TERM_AHEAD;
use crate::runtime::Event;
use crate::runtime::ModuleKind;
use crate::state::NamespaceChange;
use crate::state::Operation;
use crate::state::Proposal;

// --- The node that judges peer messages -------------------------------------------------------

pub(crate) const ME: u64 = 1;
pub(crate) const VOTERS: [u64; 3] = [1, 2, 3];
pub(crate) const CURRENT_TERM: u64 = 5;

/// A node of a three-voter cluster in an ordinary term.
pub(crate) fn view() -> LocalView {
    LocalView { me: ME, current_term: CURRENT_TERM, voters: BTreeSet::from(VOTERS) }
}

/// The same node at the highest term it will ever accept.
pub(crate) fn view_at_the_top() -> LocalView {
    LocalView { current_term: MAX_TERM, ..view() }
}

// --- Mirrors of the Raft messages --------------------------------------------------------------

/// A vote: its leader id (term, node) and whether a quorum granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WVote {
    pub term: u64,
    pub node: u64,
    pub committed: bool,
}

/// A log id: the committed leader id (term, node) and the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct WLogId {
    pub term: u64,
    pub node: u64,
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WMembership {
    pub configs: Vec<BTreeSet<u64>>,
    pub nodes: BTreeMap<u64, Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WPayload {
    Blank,
    Normal(Proposal),
    Membership(WMembership),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WEntry {
    pub log_id: WLogId,
    pub payload: WPayload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WAppend {
    pub vote: WVote,
    pub prev_log_id: Option<WLogId>,
    pub entries: Vec<WEntry>,
    pub leader_commit: Option<WLogId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WVoteRequest {
    pub vote: WVote,
    pub last_log_id: Option<WLogId>,
    pub leadership_transfer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WTransfer {
    pub from_leader: WVote,
    pub to_node_id: u64,
    pub last_log_id: Option<WLogId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WStoredMembership {
    pub log_id: Option<WLogId>,
    pub membership: WMembership,
}

/// Snapshot metadata, with the reserved (always empty) third field of its layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WSnapshotMeta {
    pub last_log_id: Option<WLogId>,
    pub last_membership: WStoredMembership,
    pub snapshot_id: String,
}

/// The body of `/raft/snapshot`: `(Vote, SnapshotMeta, Vec<u8>)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WSnapshotRpc {
    pub vote: WVote,
    pub meta: WSnapshotMeta,
    pub data: ByteBuf,
}

/// `snapshot.bin`: the metadata and the machine image (`raft::state_machine::SnapshotFile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WSnapshotFile {
    pub meta: WSnapshotMeta,
    pub image: ByteBuf,
}

/// A machine image (`state::MachineImage`): pairs, in whatever order the generator chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WImage {
    pub pairs: Vec<(ByteBuf, ByteBuf)>,
}

impl WLogId {
    /// Whether `self` is no newer than `other` (the order of log ids: leader id, then index).
    pub fn at_most(&self, other: Option<&WLogId>) -> bool {
        other.is_some_and(|other| self <= other)
    }
}

// --- Numbers ------------------------------------------------------------------------------------

/// A term: mostly near this node's, sometimes on a boundary of the checks, or anywhere.
pub(crate) fn term(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0..=3 => rng.below(CURRENT_TERM as usize + 4) as u64,
        4 => *rng.pick(&[
            MAX_TERM - 1,
            MAX_TERM,
            MAX_TERM + 1,
            CURRENT_TERM + MAX_TERM_AHEAD,
            CURRENT_TERM + MAX_TERM_AHEAD + 1,
            MAX_TERM + MAX_TERM_AHEAD,
        ]),
        5 => *rng.pick(&INTERESTING_U64),
        6 => rng.next_u64(),
        _ => MAX_TERM + 2 - rng.below(4) as u64,
    }
}

/// A log index: mostly small, sometimes on a boundary or anywhere.
pub(crate) fn index(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0..=2 => rng.below(50) as u64,
        3 => *rng.pick(&[MAX_LOG_INDEX - 1, MAX_LOG_INDEX, MAX_LOG_INDEX + 1]),
        4 => *rng.pick(&INTERESTING_U64),
        _ => rng.next_u64(),
    }
}

/// A node id: mostly a voter.
pub(crate) fn node(rng: &mut Rng) -> u64 {
    if rng.one_in(4) { *rng.pick(&[0, 4, 99, u64::MAX]) } else { *rng.pick(&VOTERS) }
}

pub(crate) fn vote(rng: &mut Rng) -> WVote {
    WVote { term: term(rng), node: node(rng), committed: rng.one_in(2) }
}

pub(crate) fn log_id(rng: &mut Rng) -> WLogId {
    WLogId { term: term(rng), node: node(rng), index: index(rng) }
}

/// A log id no newer than `vote`, mostly; sometimes anything.
fn log_id_under(rng: &mut Rng, vote: &WVote) -> WLogId {
    if rng.one_in(4) {
        return log_id(rng);
    }
    WLogId { term: vote.term.saturating_sub(rng.below(3) as u64), node: node(rng), index: index(rng) }
}

fn maybe<T>(rng: &mut Rng, value: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    if rng.one_in(3) { None } else { Some(value(rng)) }
}

// --- Strings and bytes --------------------------------------------------------------------------

/// A string from the list of trouble: empty, path tricks, NUL, whitespace, non-ASCII, at and
/// past the length limits, or random.
pub(crate) fn text(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => String::new(),
        1 => (*rng.pick(&["public", "dev", "dev-1_a", "*", "DEFAULT_GROUP", "e/"])).to_string(),
        2 => (*rng.pick(&["../", "../../etc/passwd", "a/b", "..", "%2e%2e%2f", "/", "\\"])).to_string(),
        3 => (*rng.pick(&["a\0b", "\0", "\0\0\0\0", "\u{7f}", "\r\n", "\t"])).to_string(),
        4 => (*rng.pick(&[" dev ", " ", "é", "配置", "\u{feff}dev", "\u{10ffff}", "dev\u{301}"])).to_string(),
        5 => "x".repeat(*rng.pick(&[127, 128, 129, 255, 256, 257])),
        6 => "y".repeat(*rng.pick(&[4095, 4096, 4097, 65_536])),
        7 => {
            let len = rng.below(24);
            (0..len).map(|_| (b' ' + rng.below(95) as u8) as char).collect()
        }
        8 => {
            let len = rng.below(12);
            (0..len).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('\u{fffd}')).collect()
        }
        _ => namespace_like(rng),
    }
}

/// Letters, digits, `_` and `-`: a namespace id, when not too long.
fn namespace_like(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    let len = if rng.one_in(8) { *rng.pick(&[128, 129]) } else { 1 + rng.below(16) };
    (0..len).map(|_| *rng.pick(CHARS) as char).collect()
}

/// A namespace id: valid two times in three.
pub(crate) fn namespace(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 | 1 => (*rng.pick(&["public", "dev", "test_1"])).to_string(),
        2 | 3 => namespace_like(rng),
        _ => text(rng),
    }
}

/// Bytes where any bytes are allowed: empty, NUL and 0xff runs, invalid UTF-8, JSON, random.
pub(crate) fn bytes(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => Vec::new(),
        1 => vec![0; 1 + rng.below(16)],
        2 => vec![0xff; 1 + rng.below(16)],
        3 => b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc".to_vec(),
        4 => br#"{"op":"config.get","params":{"dataId":"a","group":"../"}}"#.to_vec(),
        5 => [b"../".as_slice(), &[0, 0xff], b"e/"].concat(),
        _ => {
            let len = rng.below(64);
            rng.bytes(len)
        }
    }
}

pub(crate) fn kind(rng: &mut Rng) -> ModuleKind {
    if rng.one_in(2) { ModuleKind::Naming } else { ModuleKind::Config }
}

/// Bytes claimed to be a module: mostly with the wasm magic, sometimes without.
pub(crate) fn module_bytes(rng: &mut Rng) -> Vec<u8> {
    let body = bytes(rng);
    match rng.below(4) {
        0 => body,
        1 => [b"\0asm\x01\0\0\0".as_slice(), &body].concat(),
        _ => [b"\0asm\x0d\0\x01\0".as_slice(), &body].concat(),
    }
}

// --- Entries ------------------------------------------------------------------------------------

/// An operation with extreme fields; valid often enough to reach what follows validation.
pub(crate) fn operation(rng: &mut Rng) -> Operation {
    match rng.below(6) {
        0 | 1 => Operation::Guest { namespace: namespace(rng), kind: kind(rng), payload: bytes(rng) },
        2 => Operation::InstallModule { bytes: module_bytes(rng) },
        3 => {
            let namespace = if rng.one_in(4) { "*".to_string() } else { namespace(rng) };
            let module_id = match rng.below(4) {
                0 => crate::runtime::module_id(&bytes(rng)),
                1 => "A".repeat(64),
                2 => "g".repeat(64),
                _ => text(rng),
            };
            Operation::Activate { namespace, kind: kind(rng), module_id, by: text(rng) }
        }
        4 => Operation::Bootstrap { naming: module_bytes(rng), config: module_bytes(rng) },
        _ => Operation::Namespace(match rng.below(3) {
            0 => NamespaceChange::Create { id: namespace(rng), name: text(rng), desc: text(rng) },
            1 => NamespaceChange::Update { id: namespace(rng), name: text(rng), desc: text(rng) },
            _ => NamespaceChange::Delete { id: namespace(rng) },
        }),
    }
}

pub(crate) fn proposal(rng: &mut Rng) -> Proposal {
    let timestamp_ms = if rng.one_in(3) { *rng.pick(&INTERESTING_U64) } else { NOW_MS + rng.below(1000) as u64 };
    Proposal { timestamp_ms, op: operation(rng) }
}

pub(crate) fn membership(rng: &mut Rng) -> WMembership {
    let configs = match rng.below(6) {
        0 => Vec::new(),
        1 => vec![BTreeSet::new()],
        2 => vec![BTreeSet::from(VOTERS), BTreeSet::from([2, 3, 4])],
        3 => vec![(0..1 + rng.below(4)).map(|_| node(rng)).collect()],
        _ => vec![BTreeSet::from(VOTERS)],
    };
    let mut ids: BTreeSet<u64> = configs.iter().flatten().copied().collect();
    if rng.one_in(4) {
        ids.insert(node(rng));
    }
    let nodes = ids.into_iter().map(|id| (id, Member { api_addr: text(rng), raft_addr: text(rng) })).collect();
    WMembership { configs, nodes }
}

fn payload(rng: &mut Rng) -> WPayload {
    match rng.below(4) {
        0 => WPayload::Blank,
        1 => WPayload::Membership(membership(rng)),
        _ => WPayload::Normal(proposal(rng)),
    }
}

/// An append: consistent (entries after `prev_log_id`, terms not going back, none newer than
/// the vote) three times in four before the extremes the field generators mix in.
pub(crate) fn append(rng: &mut Rng) -> WAppend {
    let vote = vote(rng);
    let prev_log_id = maybe(rng, |rng| log_id_under(rng, &vote));
    let consistent = !rng.one_in(4);
    let count = rng.below(5);
    let mut next_index = prev_log_id.map_or(0, |id| id.index.wrapping_add(1));
    let mut term = prev_log_id.map_or(0, |id| id.term);
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let log_id = if consistent {
            term = term.max(vote.term.saturating_sub(rng.below(2) as u64)).min(vote.term);
            WLogId { term, node: vote.node, index: next_index }
        } else {
            log_id_under(rng, &vote)
        };
        next_index = log_id.index.wrapping_add(1);
        entries.push(WEntry { log_id, payload: payload(rng) });
    }
    let leader_commit = maybe(rng, |rng| log_id_under(rng, &vote));
    WAppend { vote, prev_log_id, entries, leader_commit }
}

pub(crate) fn vote_request(rng: &mut Rng) -> WVoteRequest {
    let vote = vote(rng);
    WVoteRequest { vote, last_log_id: maybe(rng, |rng| log_id_under(rng, &vote)), leadership_transfer: rng.one_in(2) }
}

pub(crate) fn transfer(rng: &mut Rng) -> WTransfer {
    let from_leader = vote(rng);
    let to_node_id = if rng.one_in(3) { node(rng) } else { ME };
    WTransfer { from_leader, to_node_id, last_log_id: maybe(rng, |rng| log_id_under(rng, &from_leader)) }
}

pub(crate) fn snapshot_meta(rng: &mut Rng, vote: &WVote) -> WSnapshotMeta {
    let last_log_id = maybe(rng, |rng| log_id_under(rng, vote));
    let membership_log_id = match rng.below(3) {
        0 => None,
        1 => last_log_id,
        _ => Some(log_id_under(rng, vote)),
    };
    let snapshot_id = if rng.one_in(8) { text(rng) } else { String::new() };
    WSnapshotMeta {
        last_log_id,
        last_membership: WStoredMembership { log_id: membership_log_id, membership: membership(rng) },
        snapshot_id,
    }
}

// --- Machine images -----------------------------------------------------------------------------

/// Pairs of a machine image: keys from the real layout and binary ones, values from empty to
/// large; in order, or (one time in four) not.
pub(crate) fn image(rng: &mut Rng) -> WImage {
    let mut keys: Vec<Vec<u8>> = (0..rng.below(8))
        .map(|_| match rng.below(5) {
            0 => b"s/clock".to_vec(),
            1 => format!("s/namespace/{}", namespace(rng)).into_bytes(),
            2 => [b"g/config/public\0".as_slice(), &bytes(rng)].concat(),
            3 => Vec::new(),
            _ => bytes(rng),
        })
        .collect();
    if !rng.one_in(4) {
        keys.sort();
        keys.dedup();
    }
    let pairs = keys
        .into_iter()
        .map(|key| {
            let value = if rng.one_in(32) { vec![0x5a; 1 << 16] } else { bytes(rng) };
            (ByteBuf::from(key), ByteBuf::from(value))
        })
        .collect();
    WImage { pairs }
}

// --- AP records -----------------------------------------------------------------------------------

/// The wall clock of the AP targets: a real-looking time, far from any wrap.
pub(crate) const NOW_MS: u64 = 1_700_000_000_000;
/// Low bits of a hybrid clock value that count writes within a millisecond (as the store's).
pub(crate) const LOGICAL_BITS: u32 = 16;

/// The highest clock a store at `now_ms` takes from a peer (its own clock aside).
pub(crate) fn latest_plausible_clock(now_ms: u64) -> u64 {
    (now_ms + MAX_CLOCK_SKEW_MS) << LOGICAL_BITS
}

/// A version clock: now-ish, at the plausibility boundary, or anywhere in `u64`.
pub(crate) fn clock(rng: &mut Rng, now_ms: u64) -> u64 {
    let bound = latest_plausible_clock(now_ms);
    match rng.below(8) {
        0..=2 => ((now_ms - rng.below(5_000) as u64) << LOGICAL_BITS) + rng.below(1 << LOGICAL_BITS) as u64,
        3 => bound - 1 + rng.below(3) as u64,
        4 => *rng.pick(&INTERESTING_U64),
        5 => rng.next_u64(),
        6 => bound + (((1 + rng.below(1_000)) as u64) << LOGICAL_BITS),
        _ => rng.below(10) as u64,
    }
}

pub(crate) fn version(rng: &mut Rng, now_ms: u64) -> Version {
    let node = if rng.one_in(8) { *rng.pick(&INTERESTING_U64) } else { 1 + rng.below(3) as u64 };
    Version { clock: clock(rng, now_ms), node }
}

/// A key: in the AP keyspace, from a small pool so that records meet, three times in four.
pub(crate) fn ap_key(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => (*rng.pick(&[b"".as_slice(), b"e", b"E/a", b"/e/a", b"x/a", b"g/naming/public\0e/a"])).to_vec(),
        1 => [b"e/".as_slice(), &bytes(rng)].concat(),
        2 if rng.one_in(4) => [b"e/".as_slice(), &vec![b'k'; *rng.pick(&[4094, 4095, 4096])]].concat(),
        _ => format!("e/k{}", rng.below(8)).into_bytes(),
    }
}

/// A record with its birth at, before or (sometimes) after its version, and a value that is
/// absent (a tombstone), small, or (rarely) over the runtime's limit.
pub(crate) fn record(rng: &mut Rng, now_ms: u64) -> Record {
    let version = version(rng, now_ms);
    let birth = match rng.below(4) {
        0 | 1 => version,
        2 => Version { clock: version.clock.saturating_sub(rng.below(1 << 20) as u64), node: version.node },
        _ => self::version(rng, now_ms),
    };
    let value = match rng.below(256) {
        0..=47 => None,
        48 => Some(vec![0x61; crate::runtime::limits::MAX_VALUE_BYTES + rng.below(2)]),
        _ => Some(bytes(rng)),
    };
    Record { version, birth, key: ap_key(rng), value: value.map(ByteBuf::from) }
}

/// A partition id, from a small pool (so that batches meet) two times in three.
pub(crate) fn partition_id(rng: &mut Rng) -> PartitionId {
    let (namespace, partition) = if rng.one_in(3) {
        (self::namespace(rng), text(rng))
    } else {
        ((*rng.pick(&["public", "dev"])).to_string(), format!("p{}", rng.below(3)))
    };
    PartitionId { namespace, kind: kind(rng), partition }
}

pub(crate) fn partition_records(rng: &mut Rng, now_ms: u64) -> PartitionRecords {
    let events = match rng.below(16) {
        0 => vec![Event { topic: "t".into(), key: "k".into() }; crate::runtime::limits::MAX_EVENTS_PER_COMMAND + 1],
        1..=4 => Vec::new(),
        _ => (0..1 + rng.below(3)).map(|_| Event { topic: text(rng), key: text(rng) }).collect(),
    };
    let records = (0..rng.below(6)).map(|_| record(rng, now_ms)).collect();
    PartitionRecords { id: partition_id(rng), events, records }
}
