//! AP sync records: `ap::store::ApStore::merge` fed generated and mutated `PartitionRecords`,
//! on a store that sees every batch (the store's own guarantees) and on one that sees only what
//! `PartitionRecords::validate` accepts (what a node's `Ap::merge` keeps).

use crate::ap::store::ApStore;
use crate::ap::store::Origin;
use crate::ap::store::PartitionId;
use crate::ap::store::PartitionRecords;
use crate::ap::store::Record;
use crate::runtime::KvRead as _;
use crate::runtime::limits::MAX_KEY_BYTES;
use crate::runtime::limits::MAX_VALUE_BYTES;

use super::Inputs;
use super::Plan;
use super::mutate::Rng;
use super::wire;
use crate::scope::Scope;

/// A full check of the store (every record, every view) once in this many inputs.
const FULL_CHECK_EVERY: u64 = 64;
/// The store starts over after this many inputs, so that long runs stay linear.
const RESET_EVERY: u64 = 1_024;
/// This node's id, in the versions it makes.
const NODE: u64 = 1;

/// What can be seen of a store from outside.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    digest: u64,
    generation: u64,
    live: usize,
    checksums: Vec<(PartitionId, u64)>,
    partition: Option<PartitionRecords>,
}

impl Observed {
    fn of(store: &ApStore, id: &PartitionId) -> Observed {
        Observed {
            digest: store.digest(),
            generation: store.generation(),
            live: store.live_records(),
            checksums: store.checksums(),
            partition: store.partition_records(id),
        }
    }
}

/// Which batches reach the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Every batch, as `ApStore::merge` must withstand.
    None,
    /// Only those `PartitionRecords::validate` accepts, as `Ap::merge` (the node) keeps them.
    Validate,
}

/// A store with what the harness knows it may hold.
pub(crate) struct CheckedStore {
    pub store: ApStore,
    gate: Gate,
    now_ms: u64,
    /// The highest version clock this store may hold: the plausibility bound of every merge
    /// so far, and every version it made itself.
    ceiling: u64,
    /// The clock of the last version this store made.
    last_made: u64,
    inputs: u64,
}

impl CheckedStore {
    pub fn new(gate: Gate) -> CheckedStore {
        CheckedStore { store: ApStore::default(), gate, now_ms: wire::NOW_MS, ceiling: 0, last_made: 0, inputs: 0 }
    }

    /// One step of wall time: the clock moves forward a little (never back, as a node's
    /// clock is read).
    pub fn tick(&mut self, rng: &mut Rng) {
        self.inputs += 1;
        if self.inputs.is_multiple_of(RESET_EVERY) {
            *self = CheckedStore::new(self.gate);
        }
        self.now_ms += rng.below(5) as u64;
    }

    /// The node's merge of batches from a peer, as `ap::Ap::merge` does it: the batches the
    /// gate refuses are dropped whole. Returns the ids of the partitions that changed.
    fn merge_as_the_node(&mut self, batches: Vec<PartitionRecords>) -> Vec<PartitionId> {
        let gate = self.gate;
        let now_ms = self.now_ms;
        let store = &mut self.store;
        batches
            .into_iter()
            .filter(|batch| gate == Gate::None || batch.validate().is_ok())
            .filter_map(|batch| {
                let id = batch.id.clone();
                store.merge(batch, now_ms).then_some(id)
            })
            .collect()
    }

    /// Receives batches from a peer, asserting every property of the merge on each.
    pub fn receive(&mut self, batches: Vec<PartitionRecords>) {
        self.ceiling = self.ceiling.max(wire::latest_plausible_clock(self.now_ms));
        for batch in batches {
            self.receive_one(batch);
        }
        self.make_version();
        if self.inputs.is_multiple_of(FULL_CHECK_EVERY) {
            self.check_everything();
        }
    }

    fn receive_one(&mut self, batch: PartitionRecords) {
        let id = batch.id.clone();
        let accepted = batch.validate();
        let before = Observed::of(&self.store, &id);
        let changed = self.merge_as_the_node(vec![batch.clone()]);
        let after = Observed::of(&self.store, &id);
        if self.gate == Gate::Validate && accepted.is_err() {
            assert_eq!(before, after, "a batch validate refuses ({accepted:?}) changed the node's store");
            return;
        }
        if changed.is_empty() {
            assert_eq!(before, after, "a merge that reported no change changed the store");
        } else {
            assert_eq!(after.generation, before.generation + 1, "a changing merge moves the generation by one");
        }
        let again = self.merge_as_the_node(vec![batch.clone()]);
        assert!(again.is_empty(), "merging the same batch twice changed the store the second time");
        assert_eq!(after, Observed::of(&self.store, &id), "a repeated merge changed what is seen");
        if let Some(held) = &after.partition {
            for record in &held.records {
                self.check_record(&held.id, record);
            }
        }
        self.check_visible(&id, after.partition.as_ref(), &batch.records);
    }

    /// What a held record must be whatever the gate, and, behind `validate`, what the node
    /// keeps sensibly.
    fn check_record(&self, id: &PartitionId, record: &Record) {
        assert!(
            record.version.clock <= self.ceiling,
            "held a version from beyond the clock: {:?} over the ceiling {:#x}",
            record.version,
            self.ceiling
        );
        if record.value.is_some() {
            assert!(record.birth <= record.version, "held a record born after its version: {record:?}");
        }
        if self.gate == Gate::Validate {
            assert!(
                crate::state::namespace_id(&id.namespace, "namespace").is_ok(),
                "the node holds records of an invalid namespace {:?}",
                id.namespace
            );
            assert!(id.partition.len() <= MAX_KEY_BYTES, "the node holds a partition name over the key limit");
            assert!(
                nacre_protocol::keyspace::is_ap(&record.key) && record.key.len() <= MAX_KEY_BYTES,
                "the node holds a key outside the AP keyspace or over the key limit: {}",
                super::hex_prefix(&record.key, 64)
            );
            assert!(
                record.value.as_ref().is_none_or(|value| value.len() <= MAX_VALUE_BYTES),
                "the node holds a value over the value limit"
            );
        }
    }

    /// The view of the batch's keys shows what the partition holds, and never a record the
    /// batch carried from beyond the clock.
    fn check_visible(&self, id: &PartitionId, held: Option<&PartitionRecords>, sent: &[Record]) {
        let view = self.store.view(Scope::new(&id.namespace, id.kind));
        for record in sent {
            let Some(holder) = held.and_then(|held| held.records.iter().find(|r| r.key == record.key)) else {
                continue;
            };
            if record.version.clock > self.ceiling {
                assert_ne!(holder.version, record.version, "a record from beyond the clock is held");
            }
            assert_eq!(
                view.get(&record.key).as_deref(),
                holder.value.as_deref().map(|value| value.as_slice()),
                "the view does not show the record held for a key"
            );
        }
    }

    /// A version made here now: above every version before it, never at the wrap.
    fn make_version(&mut self) {
        let made = self.store.next_version(self.now_ms, NODE);
        assert!(
            made.clock > self.last_made,
            "next_version went from {:#x} to {:#x}: the clock stuck or wrapped",
            self.last_made,
            made.clock
        );
        assert!(made.clock >= self.now_ms << wire::LOGICAL_BITS, "next_version is behind the wall clock");
        assert!(made.clock <= self.ceiling.max(self.now_ms << wire::LOGICAL_BITS) + 1, "next_version jumped ahead");
        self.last_made = made.clock;
        self.ceiling = self.ceiling.max(made.clock);
    }

    /// A write of a command applied here (as `Ap::apply_here` stores it): AP keys only.
    pub fn write_here(&mut self, rng: &mut Rng) {
        let id = wire::partition_id(rng);
        if crate::state::namespace_id(&id.namespace, "namespace").is_err() || id.partition.len() > MAX_KEY_BYTES {
            return;
        }
        let version = self.store.next_version(self.now_ms, NODE);
        assert!(version.clock > self.last_made, "next_version stuck or wrapped");
        self.last_made = version.clock;
        self.ceiling = self.ceiling.max(version.clock);
        let writes = (0..1 + rng.below(3))
            .map(|_| (format!("e/k{}", rng.below(8)).into_bytes(), (!rng.one_in(4)).then(|| wire::bytes(rng))))
            .collect();
        let origin = if rng.one_in(3) { Origin::Duty } else { Origin::Client };
        let batch = self.store.write(&id, version, writes, Vec::new(), self.now_ms, origin).expect("far from full");
        assert!(batch.validate().is_ok(), "a batch written here is one every peer accepts: {:?}", batch.validate());
        for record in &batch.records {
            assert!(record.birth <= record.version, "a local write made a record born after its version");
        }
    }

    /// Every record held and every view: within the ceiling, and the views show exactly the
    /// live records.
    pub fn check_everything(&self) {
        for batch in self.store.all_records() {
            let mut live = Vec::new();
            for record in &batch.records {
                self.check_record(&batch.id, record);
                if let Some(value) = &record.value {
                    live.push((record.key.clone(), value.to_vec()));
                }
            }
            let view = self.store.view(Scope::new(&batch.id.namespace, batch.id.kind));
            for (key, value) in live {
                assert_eq!(view.get(&key), Some(value), "a live record is not what its view shows");
            }
        }
    }
}

fn corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..32)
        .map(|_| {
            let batches: Vec<PartitionRecords> =
                (0..1 + rng.below(3)).map(|_| wire::partition_records(rng, wire::NOW_MS)).collect();
            postcard::to_stdvec(&batches).expect("records serialize")
        })
        .collect()
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let batches: Vec<PartitionRecords> =
        (0..rng.below(4)).map(|_| wire::partition_records(rng, wire::NOW_MS)).collect();
    postcard::to_stdvec(&batches).expect("records serialize")
}

/// `ApStore::merge` on every batch (its own guarantees), and behind `validate` (the node's),
/// with local writes in between.
#[test]
fn merge() {
    let plan = Plan::from_env("ap::merge");
    let corpus = corpus(&mut Rng::new(plan.seed));
    let inputs = Inputs { corpus: &corpus, generate: &generate, max_ops: 4 };
    let mut raw = CheckedStore::new(Gate::None);
    let mut node = CheckedStore::new(Gate::Validate);
    super::run(&plan, &inputs, |rng, input| {
        raw.tick(rng);
        node.tick(rng);
        let Ok(batches) = postcard::from_bytes::<Vec<PartitionRecords>>(input) else { return "malformed" };
        let valid = batches.iter().filter(|batch| batch.validate().is_ok()).count();
        raw.receive(batches.clone());
        node.receive(batches);
        if rng.one_in(4) {
            node.write_here(rng);
        }
        if valid == 0 { "refused by validate" } else { "merged" }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The properties hold on what the generator makes, unmutated: and the generator makes
    /// batches of every kind (accepted, refused, with records from beyond the clock).
    #[test]
    fn generated_batches_are_of_every_kind() {
        let mut rng = Rng::new(11);
        let (mut valid, mut invalid, mut beyond) = (0, 0, 0);
        let mut node = CheckedStore::new(Gate::Validate);
        for _ in 0..300 {
            let batch = wire::partition_records(&mut rng, wire::NOW_MS);
            if batch.validate().is_ok() {
                valid += 1
            } else {
                invalid += 1
            }
            beyond +=
                batch.records.iter().filter(|r| r.version.clock > wire::latest_plausible_clock(wire::NOW_MS)).count();
            node.tick(&mut rng);
            node.receive(vec![batch]);
        }
        node.check_everything();
        assert!(valid > 50 && invalid > 50 && beyond > 20, "valid {valid}, invalid {invalid}, beyond {beyond}");
        assert!(node.store.live_records() > 0);
    }
}
