//! MD5 (RFC 1321), which Nacos uses to tell clients whether their copy of a config is current.
//! Not for security: only for agreeing with Nacos clients on a content fingerprint. Written
//! here because it is small and the guest then needs no hashing crate.

/// Per-step constants: floor(|sin(i + 1)| * 2^32). Two rows per round.
#[rustfmt::skip]
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// Left-rotation amounts, four per round.
const SHIFTS: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];

const INITIAL_STATE: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
const BLOCK_BYTES: usize = 64;
/// The message length (in bits) closes the last block in this many bytes.
const LENGTH_BYTES: usize = 8;

/// The lowercase hex MD5 of `data`, as Nacos's `MD5Utils.md5Hex` gives it.
pub fn md5_hex(data: &[u8]) -> String {
    digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn digest(data: &[u8]) -> [u8; 16] {
    let mut state = INITIAL_STATE;
    let mut blocks = data.chunks_exact(BLOCK_BYTES);
    for block in &mut blocks {
        compress(&mut state, block);
    }

    // Padding: 0x80, zeros up to 8 bytes short of a block boundary, then the bit length.
    let rest = blocks.remainder();
    let mut tail = [0u8; 2 * BLOCK_BYTES];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() + 1 + LENGTH_BYTES <= BLOCK_BYTES { BLOCK_BYTES } else { 2 * BLOCK_BYTES };
    let bit_len = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - LENGTH_BYTES..tail_len].copy_from_slice(&bit_len.to_le_bytes());
    for block in tail[..tail_len].chunks_exact(BLOCK_BYTES) {
        compress(&mut state, block);
    }

    let mut out = [0u8; 16];
    for (word, bytes) in state.iter().zip(out.chunks_exact_mut(4)) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// One 64-byte block. The four rounds are separate loops with their own mixing function and
/// message order, so each compiles to straight-line code: MD5 runs on every publish of up to
/// a megabyte, under the host's per-command fuel.
fn compress(state: &mut [u32; 4], block: &[u8]) {
    let mut m = [0u32; 16];
    for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let mut v = *state;
    for i in 0..16 {
        let [_, b, c, d] = v;
        step(&mut v, (b & c) | (!b & d), K[i], m[i], SHIFTS[0][i % 4]);
    }
    for i in 16..32 {
        let [_, b, c, d] = v;
        step(&mut v, (d & b) | (!d & c), K[i], m[(5 * i + 1) % 16], SHIFTS[1][i % 4]);
    }
    for i in 32..48 {
        let [_, b, c, d] = v;
        step(&mut v, b ^ c ^ d, K[i], m[(3 * i + 5) % 16], SHIFTS[2][i % 4]);
    }
    for i in 48..64 {
        let [_, b, c, d] = v;
        step(&mut v, c ^ (b | !d), K[i], m[(7 * i) % 16], SHIFTS[3][i % 4]);
    }
    for (s, x) in state.iter_mut().zip(v) {
        *s = s.wrapping_add(x);
    }
}

/// `a' = b + ((a + f + k + m) <<< shift)`, then the words move one place: (d, a', b, c).
#[inline(always)]
fn step(v: &mut [u32; 4], f: u32, k: u32, m: u32, shift: u32) {
    let [a, b, c, d] = *v;
    let mixed = a.wrapping_add(f).wrapping_add(k).wrapping_add(m).rotate_left(shift);
    *v = [d, b.wrapping_add(mixed), b, c];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1321_test_suite() {
        let cases: [(&str, &str); 7] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(md5_hex(input.as_bytes()), want, "md5({input:?})");
        }
    }

    #[test]
    fn padding_edges_around_the_block_size() {
        // 55 bytes fits the length in one block, 56 does not; 64 is exactly one block.
        assert_eq!(md5_hex(&[b'a'; 55]), "ef1772b6dff9a122358552954ad0df65");
        assert_eq!(md5_hex(&[b'a'; 56]), "3b0c8ac703f828b04c6c197006d17218");
        assert_eq!(md5_hex(&[b'a'; 64]), "014842d480b571495a4a0363793f7367");
    }
}
