//! CPython's `random.Random`, restated: the Mersenne Twister (MT19937, the reference algorithm),
//! seeded from a non-negative integer exactly as CPython seeds it, and the few draws the seed's
//! data generator makes (`random()`, `getrandbits`, `_randbelow`, `randint`, `choices(k=1)`).
//! The seed drew its problems with it (docs/seed-format.md, section 2), so regenerating them,
//! and excluding its training problems from an evaluation, needs these draws bit for bit.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A `random.Random(seed)` of CPython 3: the same stream of numbers for the same seed.
#[derive(Clone)]
pub struct PyRandom {
    state: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)`: CPython cuts the integer into 32-bit words, least significant
    /// first (one word `[0]` for 0), and seeds with `init_by_array` of those words.
    pub fn new(seed: u64) -> PyRandom {
        let (low, high) = (seed as u32, (seed >> 32) as u32);
        if high == 0 {
            PyRandom::from_key(&[low])
        } else {
            PyRandom::from_key(&[low, high])
        }
    }

    /// The reference `init_by_array(key)`, which CPython applies to every integer seed.
    pub fn from_key(key: &[u32]) -> PyRandom {
        let mut mt = init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000; // the reference's "MSB is 1, assuring a non-zero initial array"
        PyRandom {
            state: mt,
            index: N,
        }
    }

    /// The next 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        let mt = &mut self.state;
        for k in 0..N {
            let y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `random()`: a double in [0, 1) with 53 random bits, from two outputs.
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `getrandbits(k)` for `k <= 64`: one output per started 32 bits, least significant word
    /// first, the last word cut to its top bits (as CPython fills its integer).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(
            k <= 64,
            "getrandbits is restated for at most 64 bits, got {k}"
        );
        let (mut value, mut left, mut shift) = (0u64, k, 0u32);
        while left > 0 {
            let mut word = self.next_u32();
            if left < 32 {
                word >>= 32 - left;
            }
            value |= (word as u64) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        value
    }

    /// `_randbelow(n)`: `getrandbits(n.bit_length())`, drawn again until it is below `n`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0) has no value (CPython raises)");
        let k = u64::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randint(lo, hi)`: `lo + _randbelow(hi - lo + 1)`, both ends included.
    pub fn randint(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "randint({lo}, {hi}) has an empty range");
        let span = (hi - lo)
            .checked_add(1)
            .expect("randint over the whole u64 range is not restated");
        lo + self.randbelow(span)
    }

    /// `choices(range(len(weights)), weights, k=1)[0]`: the running sums of the weights (added
    /// left to right in f64, as `itertools.accumulate` does), one `random()` times the total,
    /// and the index `bisect_right` finds, capped at the last one. Exactly one `random()` is
    /// drawn, also for a single choice.
    pub fn weighted_index(&mut self, weights: &[f64]) -> usize {
        assert!(!weights.is_empty(), "choices from an empty population");
        let mut running = Vec::with_capacity(weights.len());
        let mut total = 0.0f64;
        for &w in weights {
            total += w;
            running.push(total);
        }
        assert!(
            total > 0.0 && total.is_finite(),
            "weights must sum to a positive finite number"
        );
        let x = self.random() * total;
        let found = running.partition_point(|&c| c <= x); // bisect_right
        found.min(weights.len() - 1)
    }
}

/// The reference `init_genrand(s)`.
fn init_genrand(seed: u32) -> [u32; N] {
    let mut mt = [0u32; N];
    mt[0] = seed;
    for i in 1..N {
        mt[i] = 1_812_433_253u32
            .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
            .wrapping_add(i as u32);
    }
    mt
}

#[cfg(test)]
mod tests {
    use super::*;

    // The values below were printed by CPython 3.11.7's `random.Random` (see each test).

    #[test]
    fn first_outputs_equal_cpython_for_one_and_two_word_seeds() {
        // [random.Random(s).getrandbits(32) for _ in range(3)]
        let cases: [(u64, [u32; 3]); 4] = [
            (42, [2746317213, 478163327, 107420369]),
            (0, [3626764237, 1654615998, 3255389356]),
            ((1 << 40) + 5, [2166296868, 2220160828, 1153647273]),
            (u64::MAX, [93740670, 1068495656, 1452108352]),
        ];
        for (seed, want) in cases {
            let mut rng = PyRandom::new(seed);
            let got: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn random_equals_cpython_bit_for_bit() {
        // [struct.pack("<d", random.Random(42).random()) ...] as u64 bits: the same doubles as
        // 0x1.4762f307200c5p-1, 0x1.99c6b5eeb2060p-6, 0x1.19a1491f589dcp-2
        let mut rng = PyRandom::new(42);
        let want: [u64; 3] = [
            0x3fe4_762f_3072_00c5,
            0x3f99_9c6b_5eeb_2060,
            0x3fd1_9a14_91f5_89dc,
        ];
        for w in want {
            assert_eq!(rng.random().to_bits(), w);
        }
    }

    #[test]
    fn getrandbits_randbelow_randint_choices_equal_cpython() {
        // r = random.Random(7); [r.getrandbits(k) for k in (1, 5, 17, 31, 32, 33, 48, 64)]
        let mut rng = PyRandom::new(7);
        let bits: Vec<u64> = [1, 5, 17, 31, 32, 33, 48, 64]
            .iter()
            .map(|&k| rng.getrandbits(k))
            .collect();
        let want: [u64; 8] = [
            0,
            30,
            19772,
            847876999,
            2795742288,
            207388624,
            150838483814436,
            6745769884264228881,
        ];
        assert_eq!(bits, want);
        // r = random.Random(7); [r._randbelow(n) for n in (1, 2, 3, 90, ..., 10**15)]
        let mut rng = PyRandom::new(7);
        let ns: [u64; 10] = [
            1,
            2,
            3,
            90,
            900,
            9000,
            90000,
            1 << 32,
            (1 << 32) + 1,
            1_000_000_000_000_000,
        ];
        let below: Vec<u64> = ns.iter().map(|&n| rng.randbelow(n)).collect();
        let want: [u64; 10] = [
            0,
            0,
            1,
            83,
            49,
            1186,
            70239,
            404285457,
            2503055453,
            571324751830420,
        ];
        assert_eq!(below, want);
        // r = random.Random(7); [r.randint(10, 99) for _ in range(5)], r.randint(5, 5)
        let mut rng = PyRandom::new(7);
        let ints: Vec<u64> = (0..5).map(|_| rng.randint(10, 99)).collect();
        assert_eq!(ints, [51, 29, 60, 93, 16]);
        assert_eq!(rng.randint(5, 5), 5);
        // r = random.Random(7); [r.choices([2, 3, 4], weights=[0.3, 0.4, 0.3])[0] ...]
        let mut rng = PyRandom::new(7);
        let picks: Vec<usize> = (0..10)
            .map(|_| [2, 3, 4][rng.weighted_index(&[0.3, 0.4, 0.3])])
            .collect();
        assert_eq!(picks, [3, 2, 3, 2, 3, 3, 2, 3, 2, 3]);
    }
}
