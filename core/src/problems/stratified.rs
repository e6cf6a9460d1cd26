//! Train, validation and test sets stratified by the operands' digit counts.
//!
//! A class is a pair of digit counts (da, db): 1x1 holds 100 problems, 4x4 81 million. Each class
//! is drawn with weight `w(da) * w(db)` (the config's digit weights; uniform by default, so every
//! class is 1/16 of each set) under these rules:
//! - the test and the validation set each take their share of every class, but at most a tenth of
//!   its distinct problems (1x1: 10 each), the shortfall going to the other classes by weight;
//! - training takes its share of every class from the problems no held-out set holds; a class
//!   with fewer distinct problems left than its share repeats them (1x1: 80 problems, each about
//!   78 times in 100,000), so short problems are trained as often as their weight says;
//! - the sets never share a problem; each is shuffled, so any prefix is a fair sample.
//!
//! Each set has its own random stream: the test set does not depend on the sizes of the others,
//! and validation depends only on the test set.

use crate::data::{DataConfig, DataError, Splits};
use crate::problem::Problem;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The largest share of a class's distinct problems one held-out set may take.
pub const HELD_OUT_SHARE: f64 = 0.1;

/// One digit-count class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Class {
    pub digits: (usize, usize),
    /// Drawing weight; the classes' weights sum to 1.
    pub weight: f64,
    /// Distinct problems in the class.
    pub size: u64,
}

fn numbers_with(d: usize) -> (u64, u64) {
    if d == 1 {
        (0, 9)
    } else {
        (10u64.pow(d as u32 - 1), 10u64.pow(d as u32) - 1)
    }
}

/// The classes of `config`'s digit range with their weights, in (da, db) order.
pub fn classes(config: &DataConfig) -> Vec<Class> {
    let range = config.min_digits..=config.max_digits;
    let weight = |d: usize| -> f64 {
        if config.digit_weights.is_empty() {
            1.0
        } else {
            config.digit_weights[d - config.min_digits]
        }
    };
    let total: f64 = range.clone().map(weight).sum::<f64>().powi(2);
    let count = |d: usize| {
        let (lo, hi) = numbers_with(d);
        hi - lo + 1
    };
    range
        .clone()
        .flat_map(|da| range.clone().map(move |db| (da, db)))
        .map(|(da, db)| Class {
            digits: (da, db),
            weight: weight(da) * weight(db) / total,
            size: count(da).saturating_mul(count(db)),
        })
        .collect()
}

/// Splits `n` over classes by weight (largest remainders), no class above its cap: a capped
/// class's shortfall is shared by the others by weight.
pub fn quotas(n: usize, weights: &[f64], caps: &[u64]) -> Result<Vec<usize>, DataError> {
    let available: u128 = caps.iter().map(|&c| c as u128).sum();
    if (n as u128) > available {
        return Err(DataError::TooMany {
            asked: n as u128,
            available,
        });
    }
    let mut quota = vec![0usize; weights.len()];
    let mut capped = vec![false; weights.len()];
    loop {
        let fixed: usize = (0..quota.len())
            .filter(|&i| capped[i])
            .map(|i| quota[i])
            .sum();
        let free: Vec<usize> = (0..quota.len())
            .filter(|&i| !capped[i] && weights[i] > 0.0)
            .collect();
        let left = n - fixed;
        let total: f64 = free.iter().map(|&i| weights[i]).sum();
        if free.is_empty() || total <= 0.0 {
            break;
        }
        let exact: Vec<f64> = free
            .iter()
            .map(|&i| left as f64 * weights[i] / total)
            .collect();
        for (&i, e) in free.iter().zip(&exact) {
            quota[i] = e.floor() as usize;
        }
        let mut order: Vec<usize> = (0..free.len()).collect();
        // Largest remainder first; ties to the earlier class, so the result is deterministic.
        order.sort_by(|&a, &b| {
            let ra = exact[a] - exact[a].floor();
            let rb = exact[b] - exact[b].floor();
            rb.total_cmp(&ra).then(a.cmp(&b))
        });
        let short = left - free.iter().map(|&i| quota[i]).sum::<usize>();
        for &k in order.iter().take(short) {
            quota[free[k]] += 1;
        }
        let over: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&i| quota[i] as u64 > caps[i])
            .collect();
        if over.is_empty() {
            break;
        }
        for i in over {
            quota[i] = caps[i] as usize;
            capped[i] = true;
        }
    }
    Ok(quota)
}

/// `count` distinct problems of class `digits` not in `taken`, uniformly, added to `taken`.
fn draw_distinct(
    rng: &mut ChaCha8Rng,
    digits: (usize, usize),
    size: u64,
    count: usize,
    taken: &mut HashSet<Problem>,
) -> Vec<Problem> {
    let (a_range, b_range) = (numbers_with(digits.0), numbers_with(digits.1));
    let mut out = Vec::with_capacity(count);
    // Small classes are enumerated (rejection would slow down as the class fills up).
    if size <= 1_000_000 && (count as u64) * 4 >= size {
        let mut all: Vec<Problem> = (a_range.0..=a_range.1)
            .flat_map(|a| (b_range.0..=b_range.1).map(move |b| Problem::new(a, b)))
            .filter(|p| !taken.contains(p))
            .collect();
        all.shuffle(rng);
        all.truncate(count);
        taken.extend(all.iter().copied());
        out = all;
    } else {
        while out.len() < count {
            let p = Problem::new(
                rng.random_range(a_range.0..=a_range.1),
                rng.random_range(b_range.0..=b_range.1),
            );
            if taken.insert(p) {
                out.push(p);
            }
        }
    }
    out
}

/// The random stream of each set: test, validation, training (the out-of-distribution set: 4).
fn stream(config: &DataConfig, set: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(set);
    rng
}

/// A held-out set of `n` problems, each class its quota (at most [`HELD_OUT_SHARE`] of it),
/// none in `taken`; adds them to `taken`.
fn held_out(
    config: &DataConfig,
    classes: &[Class],
    n: usize,
    set: u64,
    taken: &mut HashSet<Problem>,
) -> Result<Vec<Problem>, DataError> {
    let weights: Vec<f64> = classes.iter().map(|c| c.weight).collect();
    let cap: Vec<u64> = classes
        .iter()
        .map(|c| (c.size as f64 * HELD_OUT_SHARE).floor() as u64)
        .collect();
    let quota = quotas(n, &weights, &cap)?;
    let mut rng = stream(config, set);
    let mut problems = Vec::with_capacity(n);
    for (class, &q) in classes.iter().zip(&quota) {
        problems.extend(draw_distinct(&mut rng, class.digits, class.size, q, taken));
    }
    problems.shuffle(&mut rng);
    Ok(problems)
}

/// The test set alone: drawn first, so it is the test set of [`draw`] without the rest.
pub fn test_set(config: &DataConfig) -> Result<Vec<Problem>, DataError> {
    held_out(
        config,
        &classes(config),
        config.n_test,
        1,
        &mut HashSet::new(),
    )
}

/// The in-distribution sets of a stratified draw (the out-of-distribution set left empty).
pub fn draw(config: &DataConfig) -> Result<Splits, DataError> {
    let classes = classes(config);
    let weights: Vec<f64> = classes.iter().map(|c| c.weight).collect();
    let mut taken = HashSet::new();
    let test = held_out(config, &classes, config.n_test, 1, &mut taken)?;
    let val = held_out(config, &classes, config.n_val, 2, &mut taken)?;

    let mut rng = stream(config, 3);
    let unlimited = vec![u64::MAX; classes.len()];
    let quota = quotas(config.n_train, &weights, &unlimited)?;
    let mut train = Vec::with_capacity(config.n_train);
    for (class, &q) in classes.iter().zip(&quota) {
        let left = class.size - taken.iter().filter(|p| class_of(p) == class.digits).count() as u64;
        let distinct = draw_distinct(
            &mut rng,
            class.digits,
            class.size,
            q.min(left as usize),
            &mut taken,
        );
        if distinct.is_empty() {
            continue;
        }
        train.extend(distinct.iter().cycle().take(q).copied());
    }
    train.shuffle(&mut rng);
    Ok(Splits {
        train,
        val,
        test,
        ood: Vec::new(),
    })
}

/// The digit counts of a problem's operands.
pub fn class_of(p: &Problem) -> (usize, usize) {
    (
        crate::problem::digit_count(p.a),
        crate::problem::digit_count(p.b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> DataConfig {
        DataConfig {
            n_train: 20_000,
            n_val: 800,
            n_test: 2_000,
            n_ood: 0,
            ..DataConfig::default()
        }
    }

    fn counts(set: &[Problem]) -> HashMap<(usize, usize), usize> {
        let mut m = HashMap::new();
        for p in set {
            *m.entry(class_of(p)).or_default() += 1;
        }
        m
    }

    #[test]
    fn quotas_follow_weights_and_caps() {
        assert_eq!(quotas(10, &[0.5, 0.5], &[100, 100]).unwrap(), vec![5, 5]);
        assert_eq!(quotas(10, &[0.5, 0.5], &[2, 100]).unwrap(), vec![2, 8]);
        assert_eq!(
            quotas(7, &[1.0, 1.0, 1.0], &[9, 9, 9]).unwrap(),
            vec![3, 2, 2]
        );
        assert!(quotas(10, &[0.5, 0.5], &[2, 3]).is_err());
    }

    #[test]
    fn every_class_in_every_set_disjoint_and_in_proportion() {
        let Splits {
            train, val, test, ..
        } = draw(&config()).unwrap();
        assert_eq!((train.len(), val.len(), test.len()), (20_000, 800, 2_000));
        let held: HashSet<Problem> = val.iter().chain(&test).copied().collect();
        assert_eq!(held.len(), 2_800, "validation and test share a problem");
        assert!(
            train.iter().all(|p| !held.contains(p)),
            "training holds a held-out problem"
        );
        let (tr, va, te) = (counts(&train), counts(&val), counts(&test));
        for da in 1..=4 {
            for db in 1..=4 {
                let c = (da, db);
                assert!(tr.get(&c) > Some(&0) && va.get(&c) > Some(&0) && te.get(&c) > Some(&0));
                // Training: exactly its share, 1/16, repeats allowed.
                assert_eq!(tr[&c], 20_000 / 16, "{c:?}");
            }
        }
        // 1x1 has 100 problems: a tenth for each held-out set, the other 80 trained.
        assert_eq!((te[&(1, 1)], va[&(1, 1)]), (10, 10));
        let ones: HashSet<_> = train.iter().filter(|p| class_of(p) == (1, 1)).collect();
        assert_eq!(ones.len(), 80);
        // Large classes get the held-out shortfall; nothing is repeated in them.
        assert!(te[&(4, 4)] > 2_000 / 16);
        let fours: HashSet<_> = train.iter().filter(|p| class_of(p) == (4, 4)).collect();
        assert_eq!(fours.len(), 20_000 / 16);
    }

    #[test]
    fn test_set_is_independent_of_the_other_sizes_and_deterministic() {
        let test = draw(&config()).unwrap().test;
        let bigger = DataConfig {
            n_train: 30_000,
            n_val: 1_000,
            ..config()
        };
        assert_eq!(draw(&bigger).unwrap().test, test);
        assert_eq!(draw(&config()).unwrap().test, test);
        let other = DataConfig {
            seed: 7,
            ..config()
        };
        assert_ne!(draw(&other).unwrap().test, test);
    }
}
