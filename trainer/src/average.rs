//! An exponential moving average of the weights (Polyak averaging), `--ema-decay d`:
//!
//! `average <- average + (1 - d) * (weights - average)` after every optimizer step of a stage,
//! starting from the weights the stage starts with. Greedy accuracy swings by points from one
//! validation check to the next at a constant learning rate (the step noise of a 1-layer model
//! on batches of freshly drawn layouts); the average over the last ~`1 / (1 - d)` steps is the
//! centre of those swings. Validation, the stage's weights and the next stage's start all use
//! the average; the optimizer keeps stepping the raw weights within the stage.

/// The averaged weights, flat in the model's tensor order ([`crate::learner::Learner::flat_params`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightAverage {
    decay: f64,
    values: Vec<f32>,
}

impl WeightAverage {
    /// An average that starts at `weights`.
    pub fn start(decay: f64, weights: Vec<f32>) -> WeightAverage {
        WeightAverage {
            decay,
            values: weights,
        }
    }

    /// One step: moves the average `1 - decay` of the way towards `weights`.
    pub fn update(&mut self, weights: &[f32]) {
        assert_eq!(weights.len(), self.values.len(), "the same model's weights");
        let rate = (1.0 - self.decay) as f32;
        for (a, &w) in self.values.iter_mut().zip(weights) {
            *a += rate * (w - *a);
        }
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_weighs_recent_steps_by_powers_of_the_decay() {
        // After steps w1, w2, w3 from a0: a3 = d^3 a0 + (1-d)(d^2 w1 + d w2 + w3).
        let d = 0.9f64;
        let mut avg = WeightAverage::start(d, vec![1.0, -2.0]);
        let steps = [[3.0f32, 0.5], [-1.0, 4.0], [2.0, 2.0]];
        for w in &steps {
            avg.update(w);
        }
        for i in 0..2 {
            let expected = d.powi(3) * [1.0, -2.0][i]
                + (1.0 - d)
                    * (d * d * steps[0][i] as f64 + d * steps[1][i] as f64 + steps[2][i] as f64);
            assert!((avg.values()[i] as f64 - expected).abs() < 1e-6, "{i}");
        }
        // Constant weights are a fixed point.
        let mut still = WeightAverage::start(0.999, vec![0.25; 3]);
        still.update(&[0.25; 3]);
        assert_eq!(still.values(), &[0.25; 3]);
    }
}
