//! Drawing a [`DataConfig`]'s sets by its scheme: the legacy single stream, or the stratified
//! scheme of [`crate::stratified`]. (Apart from `data`, so that the config and its schemes do not
//! import each other.)

use crate::data::{DataConfig, DataError, SplitScheme, Splits};
use crate::problem::Problem;
use crate::stratified;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

impl DataConfig {
    /// The test set of [`DataConfig::generate`] without drawing the others (the page's "test it
    /// here" runs on it).
    pub fn test_set(&self) -> Result<Vec<Problem>, DataError> {
        self.validate()?;
        if self.splits == SplitScheme::Stratified {
            return stratified::test_set(self);
        }
        // Legacy: the test set is the first n_test distinct problems of the one stream.
        let mut legacy = self.clone();
        legacy.n_train = 0;
        legacy.n_val = 0;
        legacy.n_ood = 0;
        Ok(legacy.generate()?.test)
    }

    /// Draws the sets. Train, validation and test never share a problem `(a, b)`; the
    /// out-of-distribution problems have `ood_digits` digits in both operands.
    pub fn generate(&self) -> Result<Splits, DataError> {
        self.validate()?;
        if self.splits == SplitScheme::Stratified {
            let mut splits = stratified::draw(self)?;
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(4);
            splits.ood = self.draw_ood(&mut rng);
            return Ok(splits);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let total = self.n_train + self.n_val + self.n_test;
        let mut seen = HashSet::with_capacity(total);
        let mut problems = Vec::with_capacity(total);
        while problems.len() < total {
            let (da, db) = (self.draw_digits(&mut rng), self.draw_digits(&mut rng));
            let p = Problem::new(
                Self::draw_operand(&mut rng, da),
                Self::draw_operand(&mut rng, db),
            );
            if seen.insert(p) {
                problems.push(p);
            }
        }
        // Test first, so growing the training set never changes the test set.
        let train = problems.split_off(self.n_test + self.n_val);
        let val = problems.split_off(self.n_test);
        let test = problems;
        let ood = self.draw_ood(&mut rng);
        Ok(Splits {
            train,
            val,
            test,
            ood,
        })
    }
}
