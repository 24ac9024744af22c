//! The mutation engine: a deterministic PRNG and byte-level mutation operators. No
//! dependencies, no `unsafe`: the same seed gives the same inputs on every machine.

/// xorshift64*: deterministic, small, good enough to drive mutations. Seeded through
/// splitmix64, so that nearby seeds (a seed and an iteration number) give unrelated streams.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True once in `n` draws on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// splitmix64's finalizer: a bijective mix of a 64-bit value.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte values that sit on boundaries: zero, all ones, the sign bit, and a varint's
/// continuation bit with and without payload.
pub(crate) const INTERESTING_BYTES: [u8; 6] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];

/// Numbers that sit on boundaries of the wire format and of the checks behind it.
pub(crate) const INTERESTING_U64: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    u32::MAX as u64,
    1 << 32,
    1 << 48,
    (1 << 48) + 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Inputs do not grow past this (module bytes start near half a MiB).
const MAX_INPUT_BYTES: usize = 2 << 20;

/// The operators, one per mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    FlipBit,
    SetInteresting,
    InsertRandom,
    DeleteRange,
    DuplicateRange,
    Truncate,
    Extend,
    Splice,
    HugeVarint,
}

pub(crate) const OPS: [Op; 9] = [
    Op::FlipBit,
    Op::SetInteresting,
    Op::InsertRandom,
    Op::DeleteRange,
    Op::DuplicateRange,
    Op::Truncate,
    Op::Extend,
    Op::Splice,
    Op::HugeVarint,
];

/// Applies one to `max_ops` operators, chosen at random, to `input` (one in two inputs gets
/// one operator, one in four two, ...: a small change keeps most of a structure whole);
/// `corpus` is the source of splices.
pub(crate) fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], max_ops: usize) {
    let mut count = 1;
    while count < max_ops && rng.one_in(2) {
        count += 1;
    }
    for _ in 0..count {
        let op = *rng.pick(&OPS);
        apply(rng, op, input, corpus);
    }
}

/// Applies `op` once. An operator that needs bytes to work on (a flip of an empty input)
/// extends the input instead, so every call changes something most of the time.
pub(crate) fn apply(rng: &mut Rng, op: Op, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    if input.is_empty() && !matches!(op, Op::InsertRandom | Op::Extend | Op::Splice) {
        return apply(rng, Op::Extend, input, corpus);
    }
    let len = input.len();
    match op {
        Op::FlipBit => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        Op::SetInteresting => {
            let at = rng.below(len);
            input[at] = *rng.pick(&INTERESTING_BYTES);
        }
        Op::InsertRandom => {
            if len < MAX_INPUT_BYTES {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(16);
                let bytes = rng.bytes(count);
                input.splice(at..at, bytes);
            }
        }
        Op::DeleteRange => {
            let (start, end) = range(rng, len);
            input.drain(start..end);
        }
        Op::DuplicateRange => {
            if len < MAX_INPUT_BYTES {
                let (start, end) = range(rng, len);
                let copy = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
        }
        Op::Truncate => input.truncate(rng.below(len)),
        Op::Extend => {
            if len < MAX_INPUT_BYTES {
                let count = 1 + rng.below(64);
                let bytes = rng.bytes(count);
                input.extend(bytes);
            }
        }
        Op::Splice => {
            let Some(other) = (!corpus.is_empty()).then(|| rng.pick(corpus)) else {
                return apply(rng, Op::Extend, input, corpus);
            };
            let keep = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
            input.truncate(MAX_INPUT_BYTES);
        }
        Op::HugeVarint => {
            // A varint runs from a byte to the first byte without the continuation bit.
            let start = rng.below(len);
            let end = input[start..].iter().position(|b| b & 0x80 == 0).map_or(len, |at| start + at + 1);
            let value = if rng.one_in(4) { rng.next_u64() } else { *rng.pick(&INTERESTING_U64) };
            input.splice(start..end, varint(value));
        }
    }
}

/// A non-empty range of at most 64 bytes inside `0..len` (`len > 0`).
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len);
    let end = start + 1 + rng.below((len - start).min(64));
    (start, end)
}

/// postcard's encoding of an unsigned integer: LEB128, seven bits a byte, low bits first.
pub(crate) fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let corpus = vec![b"hello, world".to_vec(), vec![0x80; 20]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|i| {
                    let mut input = corpus[i % 2].clone();
                    mutate(&mut rng, &mut input, &corpus, 4);
                    input
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_operator_changes_its_input_most_of_the_time() {
        let corpus = vec![b"another input".to_vec()];
        let mut rng = Rng::new(1);
        for op in OPS {
            let changed = (0..100)
                .filter(|_| {
                    let original = postcard::to_stdvec(&(7u64, "a key", vec![1u8, 2, 3])).unwrap();
                    let mut input = original.clone();
                    apply(&mut rng, op, &mut input, &corpus);
                    input != original
                })
                .count();
            assert!(changed >= 50, "{op:?} changed its input {changed} times in 100");
        }
    }

    #[test]
    fn empty_inputs_and_empty_corpora_are_fine() {
        let mut rng = Rng::new(3);
        for op in OPS {
            for _ in 0..20 {
                let mut input = Vec::new();
                apply(&mut rng, op, &mut input, &[]);
                assert!(input.len() <= 64 + 16);
            }
        }
    }

    #[test]
    fn varints_are_postcards() {
        for value in INTERESTING_U64 {
            assert_eq!(varint(value), postcard::to_stdvec(&value).unwrap(), "{value}");
        }
    }
}
