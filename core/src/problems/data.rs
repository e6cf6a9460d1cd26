//! Seeded problem sets: train, validation and test, disjoint as problems, and a longer
//! out-of-distribution set.

use crate::problem::Problem;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How train, validation and test are drawn from the digit range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitScheme {
    /// Stratified by digit-count class (see `crate::stratified`): every class in every set,
    /// short classes repeated in training to their weight. The default since 2026-12-01.
    #[default]
    Stratified,
    /// Digit counts drawn per problem, duplicates rejected, test drawn first: small classes all
    /// but vanish from training (2 of the 100 1x1 problems in 100,000). The weights shipped on
    /// 2026-11-28 were trained on it; kept so their figures can be reproduced.
    Legacy,
}

impl SplitScheme {
    /// The scheme of a manifest or config written before the field existed.
    pub fn legacy() -> SplitScheme {
        SplitScheme::Legacy
    }
}

/// How the problem sets are drawn. The same config gives the same sets on every platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    pub seed: u64,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub n_ood: usize,
    /// Fewest digits of an in-distribution operand.
    pub min_digits: usize,
    /// Most digits of an in-distribution operand.
    pub max_digits: usize,
    /// Relative weight of each digit count `min_digits..=max_digits`, drawn independently for
    /// each operand. Empty means uniform.
    pub digit_weights: Vec<f64>,
    /// Digits of both operands in the out-of-distribution set.
    pub ood_digits: usize,
    /// How the in-distribution sets are split.
    pub splits: SplitScheme,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            seed: 1234,
            n_train: 100_000,
            n_val: 2_000,
            n_test: 5_000,
            n_ood: 1_000,
            min_digits: 1,
            max_digits: 4,
            digit_weights: Vec::new(),
            ood_digits: 5,
            splits: SplitScheme::Stratified,
        }
    }
}

/// The drawn problem sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Vec<Problem>,
    pub val: Vec<Problem>,
    pub test: Vec<Problem>,
    pub ood: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("digit range {min}..={max} is invalid: need 1 <= min <= max <= 18")]
    DigitRange { min: usize, max: usize },
    #[error("digit_weights has {got} entries for {expected} digit counts")]
    WeightCount { got: usize, expected: usize },
    #[error("digit_weights must be finite, non-negative and not all zero")]
    Weights,
    #[error("asked for {asked} distinct problems but only {available} exist in the digit range")]
    TooMany { asked: u128, available: u128 },
    #[error("ood_digits ({ood}) must exceed max_digits ({max}) and be at most 18")]
    OodDigits { ood: usize, max: usize },
}

/// Smallest and largest number with exactly `d` digits.
fn digit_bounds(d: usize) -> (u64, u64) {
    if d == 1 {
        (0, 9)
    } else {
        (10u64.pow(d as u32 - 1), 10u64.pow(d as u32) - 1)
    }
}

impl DataConfig {
    /// Refuses settings that cannot draw the sets; [`DataConfig::generate`] checks them too.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.min_digits == 0 || self.min_digits > self.max_digits || self.max_digits > 18 {
            return Err(DataError::DigitRange {
                min: self.min_digits,
                max: self.max_digits,
            });
        }
        let counts = self.max_digits - self.min_digits + 1;
        if !self.digit_weights.is_empty() {
            if self.digit_weights.len() != counts {
                return Err(DataError::WeightCount {
                    got: self.digit_weights.len(),
                    expected: counts,
                });
            }
            let ok = self
                .digit_weights
                .iter()
                .all(|w| w.is_finite() && *w >= 0.0)
                && self.digit_weights.iter().sum::<f64>() > 0.0;
            if !ok {
                return Err(DataError::Weights);
            }
        }
        if self.n_ood > 0 && (self.ood_digits <= self.max_digits || self.ood_digits > 18) {
            return Err(DataError::OodDigits {
                ood: self.ood_digits,
                max: self.max_digits,
            });
        }
        let numbers: u128 = (self.min_digits..=self.max_digits)
            .map(|d| {
                let (lo, hi) = digit_bounds(d);
                (hi - lo + 1) as u128
            })
            .sum();
        let asked = (self.n_train + self.n_val + self.n_test) as u128;
        // Rejection sampling slows down long before the space is exhausted: keep a wide margin.
        if asked * 2 > numbers * numbers {
            return Err(DataError::TooMany {
                asked,
                available: numbers * numbers,
            });
        }
        Ok(())
    }

    pub(crate) fn draw_digits(&self, rng: &mut ChaCha8Rng) -> usize {
        if self.digit_weights.is_empty() {
            return rng.random_range(self.min_digits..=self.max_digits);
        }
        let total: f64 = self.digit_weights.iter().sum();
        let mut x = rng.random::<f64>() * total;
        for (i, w) in self.digit_weights.iter().enumerate() {
            if x < *w {
                return self.min_digits + i;
            }
            x -= w;
        }
        self.max_digits
    }

    pub(crate) fn draw_operand(rng: &mut ChaCha8Rng, digits: usize) -> u64 {
        let (lo, hi) = digit_bounds(digits);
        rng.random_range(lo..=hi)
    }

    pub(crate) fn draw_ood(&self, rng: &mut ChaCha8Rng) -> Vec<Problem> {
        (0..self.n_ood)
            .map(|_| {
                Problem::new(
                    Self::draw_operand(rng, self.ood_digits),
                    Self::draw_operand(rng, self.ood_digits),
                )
            })
            .collect()
    }

    /// `n` problems whose operands both have `digits` digits, longer than any trained on (held
    /// out by construction), drawn from their own stream of this config's seed: the evaluation
    /// sets of length generalization (5, 6, 8 digits).
    pub fn longer_set(&self, digits: usize, n: usize) -> Result<Vec<Problem>, DataError> {
        if digits <= self.max_digits || digits > 18 {
            return Err(DataError::OodDigits {
                ood: digits,
                max: self.max_digits,
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6C6F_6E67 ^ ((digits as u64) << 40));
        Ok((0..n)
            .map(|_| {
                Problem::new(
                    Self::draw_operand(&mut rng, digits),
                    Self::draw_operand(&mut rng, digits),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::digit_count;
    use std::collections::HashSet;

    fn small() -> DataConfig {
        DataConfig {
            n_train: 3000,
            n_val: 300,
            n_test: 500,
            n_ood: 100,
            ..DataConfig::default()
        }
    }

    /// [`small`] with each split scheme.
    fn each_scheme() -> [DataConfig; 2] {
        [SplitScheme::Stratified, SplitScheme::Legacy]
            .map(|splits| DataConfig { splits, ..small() })
    }

    #[test]
    fn splits_are_disjoint_and_sized() {
        for config in each_scheme() {
            let s = config.generate().unwrap();
            assert_eq!(
                (s.train.len(), s.val.len(), s.test.len(), s.ood.len()),
                (3000, 300, 500, 100)
            );
            let train: HashSet<_> = s.train.iter().collect();
            let val: HashSet<_> = s.val.iter().collect();
            if config.splits == SplitScheme::Legacy {
                assert_eq!(train.len(), 3000, "duplicates inside train");
            }
            assert_eq!(val.len(), 300, "duplicates inside val");
            assert!(s
                .test
                .iter()
                .all(|p| !train.contains(p) && !val.contains(p)));
            assert!(s.val.iter().all(|p| !train.contains(p)));
        }
    }

    #[test]
    fn longer_sets_have_exactly_their_digits_and_refuse_trained_lengths() {
        let config = small();
        for digits in [5, 6, 8] {
            let set = config.longer_set(digits, 200).unwrap();
            assert_eq!(set.len(), 200);
            assert!(set
                .iter()
                .all(|p| p.a.to_string().len() == digits && p.b.to_string().len() == digits));
            assert_eq!(set, config.longer_set(digits, 200).unwrap());
        }
        assert_ne!(
            config.longer_set(6, 10).unwrap()[..],
            config.longer_set(5, 10).unwrap()[..]
        );
        assert!(config.longer_set(config.max_digits, 10).is_err());
        assert!(config.longer_set(19, 10).is_err());
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        assert_eq!(small().generate(), small().generate());
        let other = DataConfig {
            seed: 99,
            ..small()
        };
        assert_ne!(
            small().generate().unwrap().test,
            other.generate().unwrap().test
        );
    }

    #[test]
    fn the_test_set_does_not_depend_on_the_other_sets() {
        for config in each_scheme() {
            let scheme = config.splits;
            let more_training = DataConfig {
                n_train: 6000,
                ..config.clone()
            };
            // Drawn alone, as the page's "test it here" does.
            let test = config.test_set().unwrap();
            assert_eq!(test.len(), 500);
            assert_eq!(test, config.generate().unwrap().test, "{scheme:?}");
            assert_eq!(test, more_training.generate().unwrap().test, "{scheme:?}");
        }
    }

    #[test]
    fn digit_counts_follow_the_settings() {
        let s = small().generate().unwrap();
        for p in s.train.iter().chain(&s.test) {
            let (da, db) = (digit_count(p.a), digit_count(p.b));
            assert!((1..=4).contains(&da) && (1..=4).contains(&db));
        }
        assert!(s
            .ood
            .iter()
            .all(|p| digit_count(p.a) == 5 && digit_count(p.b) == 5));
        // Weight only 3-digit operands.
        let three = DataConfig {
            digit_weights: vec![0.0, 0.0, 1.0, 0.0],
            ..small()
        };
        let s = three.generate().unwrap();
        assert!(s
            .train
            .iter()
            .all(|p| digit_count(p.a) == 3 && digit_count(p.b) == 3));
    }

    #[test]
    fn refuses_impossible_settings() {
        let tiny = DataConfig {
            max_digits: 1,
            ..small()
        };
        assert!(matches!(tiny.generate(), Err(DataError::TooMany { .. })));
        let bad = DataConfig {
            digit_weights: vec![1.0],
            ..small()
        };
        assert!(matches!(bad.generate(), Err(DataError::WeightCount { .. })));
        let ood = DataConfig {
            ood_digits: 4,
            ..small()
        };
        assert!(matches!(ood.generate(), Err(DataError::OodDigits { .. })));
    }
}
