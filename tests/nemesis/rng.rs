//! xorshift64*: deterministic from its seed, so a run's fault schedule and every client's
//! choice of operation, key and node replay from the printed seed.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point); mixed so that seeds 1, 2, 3 start far apart.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `[low_ms, high_ms]`.
    pub fn millis(&mut self, low_ms: u64, high_ms: u64) -> std::time::Duration {
        std::time::Duration::from_millis(low_ms + self.below(high_ms - low_ms + 1))
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
