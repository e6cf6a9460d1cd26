//! Held-out sets for length generalization, one class per operand-length pair.
//!
//! A problem's class is the pair of its operands' digit counts in the order written
//! ([`Problem::digit_counts`]): `654122 + 299` is (6, 3), `299 + 654122` is (3, 6). A figure
//! measured on two 6-digit operands says nothing about (6, 3), so every figure shown beside a
//! problem comes from its own pair ([`crate::manifest::StageEntry::measured_for`]).
//!
//! Each pair's set starts with long carry chains, where a model that tracks the carry column by
//! column most often loses it: the largest operands (`99999 + 99`, a carry through every
//! column), nines plus the smallest number that carries from the units (`99999 + 1`,
//! `99999 + 101`), and an eighth of the set drawn with a carry through every column. The rest
//! are uniform draws of the pair's operands. Every pair's set has its own random stream of the
//! config's seed, so adding a pair or changing `n` elsewhere leaves the others as they were.

use crate::data::{DataConfig, DataError};
use crate::problem::{Problem, MAX_DIGITS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every pair `(a, b)` of operand lengths whose longer operand has `longer` digits, both orders:
/// `2 * longer - 1` pairs.
pub fn pairs_with_longer(longer: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (1..=longer).map(|b| (longer, b)).collect();
    pairs.extend((1..longer).map(|a| (a, longer)));
    pairs
}

/// A number with `digits` digits, each drawn by `digit(significance, rng)` (the leading digit
/// redrawn until it is not 0, unless the number has one digit).
fn number_of(
    digits: usize,
    rng: &mut ChaCha8Rng,
    mut digit: impl FnMut(usize, &mut ChaCha8Rng) -> u64,
) -> u64 {
    (0..digits).rev().fold(0, |n, j| {
        let mut d = digit(j, rng);
        while j > 0 && j == digits - 1 && d == 0 {
            d = digit(j, rng);
        }
        n * 10 + d
    })
}

/// A problem of the pair whose carry runs through every column: the units sum to 10 or more,
/// every other column of the shorter operand sums to 9, and the longer operand's digits above
/// it are 9.
fn full_chain(da: usize, db: usize, rng: &mut ChaCha8Rng) -> Problem {
    let shorter = da.min(db);
    // One digit per column for the first operand; the second's follow from it.
    let first = number_of(da, rng, |j, rng| match j {
        0 => rng.random_range(1..=9),
        // 0..=8 leaves the second operand's digit 9 - x at least 1.
        j if j < shorter => rng.random_range(0..=8),
        _ => 9,
    });
    let digit_of = |n: u64, j: usize| (n / 10u64.pow(j as u32)) % 10;
    let second = number_of(db, rng, |j, rng| match j {
        0 => rng.random_range(10 - digit_of(first, 0)..=9),
        j if j < shorter => 9 - digit_of(first, j),
        _ => 9,
    });
    Problem::new(first, second)
}

/// The fixed carry chains of a pair: the largest operands, and nines plus the smallest number
/// that carries from the units.
fn fixed_chains(da: usize, db: usize) -> [Problem; 2] {
    let nines = |d: usize| 10u64.pow(d as u32) - 1;
    let smallest_carrying = |d: usize| {
        if d == 1 {
            1
        } else {
            10u64.pow(d as u32 - 1) + 1
        }
    };
    let nines_plus = if da >= db {
        Problem::new(nines(da), smallest_carrying(db))
    } else {
        Problem::new(smallest_carrying(da), nines(db))
    };
    [Problem::new(nines(da), nines(db)), nines_plus]
}

impl DataConfig {
    /// `n` problems of the operand-length pair `(da, db)`, longer than any trained on (the
    /// longer operand has more than `max_digits` digits, so none is in training): the pair's
    /// carry chains first, then uniform draws (module doc).
    pub fn pair_set(&self, da: usize, db: usize, n: usize) -> Result<Vec<Problem>, DataError> {
        let longer = da.max(db);
        if longer <= self.max_digits || longer > MAX_DIGITS || da.min(db) == 0 {
            return Err(DataError::OodDigits {
                ood: longer,
                max: self.max_digits,
            });
        }
        let tag = 0x7061_6972 ^ ((da as u64) << 40) ^ ((db as u64) << 48);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ tag);
        let mut problems: Vec<Problem> = fixed_chains(da, db).into_iter().take(n).collect();
        let chains = n / 8;
        while problems.len() < n.min(2 + chains) {
            problems.push(full_chain(da, db, &mut rng));
        }
        while problems.len() < n {
            let a = number_of(da, &mut rng, |_, rng| rng.random_range(0..=9));
            let b = number_of(db, &mut rng, |_, rng| rng.random_range(0..=9));
            problems.push(Problem::new(a, b));
        }
        Ok(problems)
    }

    /// [`DataConfig::pair_set`] for every pair whose longer operand has one of the `longer`
    /// lengths, `n` each, pair after pair.
    pub fn pairs_set(&self, longer: &[usize], n: usize) -> Result<Vec<Problem>, DataError> {
        let mut problems = Vec::new();
        for &l in longer {
            for (da, db) in pairs_with_longer(l) {
                problems.extend(self.pair_set(da, db, n)?);
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::digit_count;

    #[test]
    fn every_pair_of_a_length_both_orders() {
        assert_eq!(pairs_with_longer(1), [(1, 1)]);
        assert_eq!(
            pairs_with_longer(3),
            [(3, 1), (3, 2), (3, 3), (1, 3), (2, 3)]
        );
        assert_eq!(pairs_with_longer(8).len(), 15);
    }

    #[test]
    fn a_pair_set_holds_its_pair_and_its_carry_chains() {
        let config = DataConfig::default();
        for (da, db) in [(6, 3), (3, 6), (5, 1), (1, 5), (8, 8), (7, 2), (16, 12)] {
            let set = config.pair_set(da, db, 200).unwrap();
            assert_eq!(set.len(), 200);
            assert!(
                set.iter().all(|p| p.digit_counts() == (da, db)),
                "({da}, {db}): {:?}",
                set.iter().find(|p| p.digit_counts() != (da, db))
            );
            let through_every_column = set
                .iter()
                .filter(|p| p.carry_chain() == p.columns())
                .count();
            assert!(through_every_column >= 2 + 200 / 8, "({da}, {db})");
            let nines = Problem::new(10u64.pow(da as u32) - 1, 10u64.pow(db as u32) - 1);
            assert_eq!(set[0], nines);
            // Its own stream: the same set again, another pair's set differs.
            assert_eq!(config.pair_set(da, db, 200).unwrap(), set);
        }
        assert_eq!(
            config.pair_set(5, 1, 2).unwrap()[1],
            Problem::new(99_999, 1)
        );
        assert_eq!(
            config.pair_set(2, 5, 2).unwrap()[1],
            Problem::new(11, 99_999)
        );
        assert_ne!(
            config.pair_set(6, 5, 50).unwrap()[2..],
            config.pair_set(5, 6, 50).unwrap()[2..]
        );
        // Uniform draws reach both ends of each operand's range of digits.
        let set = config.pair_set(6, 2, 2000).unwrap();
        assert!(set.iter().any(|p| p.b < 20) && set.iter().any(|p| p.b > 89));
        assert!(set.iter().all(|p| digit_count(p.a) == 6));
    }

    #[test]
    fn pair_sets_never_hold_trained_lengths() {
        let config = DataConfig::default();
        assert!(config.pair_set(4, 4, 10).is_err());
        assert!(config.pair_set(2, 3, 10).is_err());
        assert!(config.pair_set(19, 1, 10).is_err());
        assert!(config.pair_set(5, 0, 10).is_err());
        let set = config.pairs_set(&[5, 6], 3).unwrap();
        assert_eq!(set.len(), 3 * (9 + 11));
        assert_eq!(set[0].digit_counts(), (5, 1));
    }
}
