//! The seed's problem splits, drawn exactly as its generator drew them (docs/seed-format.md,
//! section 2): per problem one weighted choice of the digit count `d`, then `a` and `b` by
//! `randint(10^(d-1), 10^d - 1)`, all from the split's own `random.Random(seed)`. Evaluating the
//! seed's checkpoints honestly means leaving out the problems they trained on, so the 100,000
//! training problems must come back bit for bit ([`TrainingSet`]).

use std::collections::HashSet;

use super::random::PyRandom;
use crate::problem::Problem;

/// One of the seed's four splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeedSplit {
    /// 100,000 problems, seed 42: stage 0 trained on all of them, stages 1-3 on the first 20,000.
    Train,
    /// 5,000 problems, seed 123: the published accuracy is on the first 500.
    Validation,
    /// 5,000 problems, seed 456.
    Test,
    /// 1,000 five-digit problems, seed 789.
    Ood,
}

impl SeedSplit {
    pub const ALL: [SeedSplit; 4] = [
        SeedSplit::Train,
        SeedSplit::Validation,
        SeedSplit::Test,
        SeedSplit::Ood,
    ];

    /// The split's name in `seed-problems.json`.
    pub fn name(self) -> &'static str {
        match self {
            SeedSplit::Train => "train",
            SeedSplit::Validation => "val",
            SeedSplit::Test => "test",
            SeedSplit::Ood => "ood",
        }
    }

    /// The integer `random.Random` is seeded with.
    pub fn seed(self) -> u64 {
        match self {
            SeedSplit::Train => 42,
            SeedSplit::Validation => 123,
            SeedSplit::Test => 456,
            SeedSplit::Ood => 789,
        }
    }

    /// How many problems the split holds (duplicates included).
    pub fn count(self) -> usize {
        match self {
            SeedSplit::Train => 100_000,
            SeedSplit::Validation | SeedSplit::Test => 5_000,
            SeedSplit::Ood => 1_000,
        }
    }

    /// The operand digit counts and their weights, in the order `random.choices` gets them.
    pub fn digit_weights(self) -> &'static [(u32, f64)] {
        match self {
            SeedSplit::Ood => &[(5, 1.0)],
            _ => &[(2, 0.3), (3, 0.4), (4, 0.3)],
        }
    }
}

/// Every problem of a split, in draw order, duplicates kept.
pub fn split(which: SeedSplit) -> Vec<Problem> {
    draw(which.seed(), which.count(), which.digit_weights())
}

/// `count` problems from `random.Random(seed)`: per problem one `choices` of the digit count,
/// then `a`, then `b` (both with that many digits).
pub fn draw(seed: u64, count: usize, digit_weights: &[(u32, f64)]) -> Vec<Problem> {
    let weights: Vec<f64> = digit_weights.iter().map(|&(_, w)| w).collect();
    let mut rng = PyRandom::new(seed);
    (0..count)
        .map(|_| {
            let d = digit_weights[rng.weighted_index(&weights)].0;
            let (lo, hi) = (10u64.pow(d - 1), 10u64.pow(d) - 1);
            let a = rng.randint(lo, hi);
            let b = rng.randint(lo, hi);
            Problem::new(a, b)
        })
        .collect()
}

/// The text `seed-problems.json`'s sha256 is taken over: one line `"{a}+{b}\n"` per problem.
pub fn canonical_text(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}+{}\n", p.a, p.b))
        .collect()
}

/// The seed's 100,000 training problems as a set: what an honest evaluation leaves out.
pub struct TrainingSet {
    problems: HashSet<Problem>,
}

impl TrainingSet {
    /// Draws the training split (about 0.1 s in a release build).
    pub fn new() -> TrainingSet {
        TrainingSet {
            problems: split(SeedSplit::Train).into_iter().collect(),
        }
    }

    /// Whether the seed trained on `problem` (as the ordered pair `(a, b)`).
    pub fn contains(&self, problem: &Problem) -> bool {
        self.problems.contains(problem)
    }

    /// Distinct training problems (76,568).
    pub fn len(&self) -> usize {
        self.problems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Default for TrainingSet {
    fn default() -> Self {
        TrainingSet::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::sha256_hex;
    use serde_json::Value;

    fn fixture() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/seed-standin/seed-problems.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn first_outputs_of_each_seed_equal_the_fixture() {
        let fx = fixture();
        for which in SeedSplit::ALL {
            let want = &fx["splits"][which.name()]["first_u32"];
            let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
            let mut rng = PyRandom::new(which.seed());
            let got: Vec<u32> = want.iter().map(|_| rng.next_u32()).collect();
            assert_eq!(got, want, "{}", which.name());
        }
    }

    #[test]
    fn the_first_200_of_each_split_equal_the_fixture() {
        let fx = fixture();
        for which in SeedSplit::ALL {
            let entry = &fx["splits"][which.name()];
            assert_eq!(entry["seed"], which.seed());
            assert_eq!(entry["count"], which.count());
            let want: Vec<(u64, u64)> = serde_json::from_value(entry["first"].clone()).unwrap();
            let got: Vec<(u64, u64)> = draw(which.seed(), want.len(), which.digit_weights())
                .iter()
                .map(|p| (p.a, p.b))
                .collect();
            assert_eq!(got, want, "{}", which.name());
        }
    }

    /// The whole splits: 111,000 problems, quick in release, a few seconds in debug.
    #[test]
    fn whole_splits_have_the_documented_hash_and_counts() {
        let fx = fixture();
        for which in SeedSplit::ALL {
            let entry = &fx["splits"][which.name()];
            let problems = split(which);
            assert_eq!(problems.len(), which.count());
            let sha = sha256_hex(canonical_text(&problems).as_bytes());
            assert_eq!(sha, entry["sha256"].as_str().unwrap(), "{}", which.name());
            let distinct: HashSet<&Problem> = problems.iter().collect();
            assert_eq!(distinct.len() as u64, entry["distinct_ordered_pairs"]);
            let extra = problems.iter().filter(|p| p.steps().len() > p.columns());
            assert_eq!(extra.count() as u64, entry["with_extra_carry_step"]);
        }
    }

    #[test]
    fn training_set_knows_its_problems_and_the_overlaps() {
        let fx = fixture();
        let train = TrainingSet::new();
        assert_eq!(train.len(), 76_568);
        assert!(train.contains(&Problem::new(125, 859)));
        let val = split(SeedSplit::Validation);
        let first500 = val[..500].iter().filter(|p| train.contains(p)).count();
        assert_eq!(
            first500 as u64,
            fx["overlaps"]["val_first500_problems_in_train"]
        );
        let distinct: HashSet<&Problem> = val.iter().filter(|p| train.contains(p)).collect();
        assert_eq!(distinct.len() as u64, fx["overlaps"]["val_in_train"]);
    }
}
