//! What a training step minimises over a batch of layouts, as weights both engines apply.
//!
//! This project's curriculum takes the mean cross-entropy over the batch's target tokens. The
//! seed's recipe (docs/seed-format.md, section 7) averages differently: its physical batch was
//! 16 at stage 0 (accumulated twice) and 1 from stage 1 on (accumulated 16 times), each
//! micro-batch's loss the mean over its own target tokens, and from stage 1 on each example adds
//! `0.001 * mean_t ||o_t||_2` over the outputs at its thought positions. Written as weights:
//! ```text
//! loss = sum_g 1/G sum_{i in g} CE_i / N_g  +  sum_e 1/B  lambda/m_e sum_t ||o_{e,t}||
//! ```
//! for G groups of `group` consecutive examples (N_g target tokens in group g), B examples, m_e
//! thoughts in example e. One group and lambda = 0 is this project's loss; a batch of 16 in
//! groups of 1 is the seed's 16 accumulated single-example steps, computed in one pass.

use coconut_core::layout::Layout;

/// How a batch's loss is formed (module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// Examples per averaged group: each group's loss is the mean over its target tokens and the
    /// batch's loss the mean over groups. `None`: the whole batch is one group.
    pub group: Option<usize>,
    /// lambda: the weight of each example's mean thought-output norm (0: no such term).
    pub thought_norm: f64,
}

impl Default for Objective {
    /// The mean over the batch's target tokens.
    fn default() -> Self {
        Objective {
            group: None,
            thought_norm: 0.0,
        }
    }
}

/// One example's weights in the batch's loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExampleWeights {
    /// The weight of each of its target tokens' cross-entropy.
    pub target: f32,
    /// The weight of each of its thought positions' output norm.
    pub thought_norm: f32,
}

impl Objective {
    /// Per layout, its weights (thoughts count only where they are fed back).
    pub fn for_layouts(&self, layouts: &[&Layout], feeds_back: bool) -> Vec<ExampleWeights> {
        let targets: Vec<usize> = layouts
            .iter()
            .map(|l| l.loss_mask.iter().skip(1).filter(|&&m| m).count())
            .collect();
        let thoughts: Vec<usize> = layouts
            .iter()
            .map(|l| if feeds_back { l.thoughts } else { 0 })
            .collect();
        self.weights(&targets, &thoughts)
    }

    /// Per example, its weights, given each example's target tokens and thoughts.
    pub fn weights(&self, targets: &[usize], thoughts: &[usize]) -> Vec<ExampleWeights> {
        let b = targets.len();
        let group = self.group.unwrap_or(b).clamp(1, b.max(1));
        let groups = b.div_ceil(group);
        let mut out = Vec::with_capacity(b);
        for (g, chunk) in targets.chunks(group).enumerate() {
            let n: usize = chunk.iter().sum();
            for i in 0..chunk.len() {
                let m = thoughts[g * group + i];
                out.push(ExampleWeights {
                    target: if n == 0 {
                        0.0
                    } else {
                        (1.0 / (groups as f64 * n as f64)) as f32
                    },
                    thought_norm: if m == 0 {
                        0.0
                    } else {
                        (self.thought_norm / (b as f64 * m as f64)) as f32
                    },
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_mean_over_tokens() {
        let w = Objective::default().weights(&[3, 1, 4], &[2, 0, 5]);
        for e in &w {
            assert_eq!(e.target, 1.0 / 8.0);
            assert_eq!(e.thought_norm, 0.0);
        }
    }

    #[test]
    fn groups_average_their_own_tokens_then_each_other() {
        let seed = Objective {
            group: Some(1),
            thought_norm: 0.001,
        };
        let w = seed.weights(&[2, 4], &[1, 4]);
        assert_eq!(w[0].target, 0.25); // 1/2 groups * 1/2 tokens
        assert_eq!(w[1].target, 0.125);
        assert_eq!(w[0].thought_norm, (0.001f64 / 2.0) as f32);
        assert_eq!(w[1].thought_norm, (0.001f64 / 8.0) as f32);
        // Groups of two over five examples: the last group holds one.
        let w = Objective {
            group: Some(2),
            thought_norm: 0.0,
        }
        .weights(&[1, 1, 2, 2, 5], &[0; 5]);
        let got: Vec<f32> = w.iter().map(|e| e.target).collect();
        let third = 1.0f64 / 3.0;
        let want = [
            third / 2.0,
            third / 2.0,
            third / 4.0,
            third / 4.0,
            third / 5.0,
        ];
        assert_eq!(got, want.map(|x| x as f32));
        // The weights of every token sum to one: a mean.
        let total: f64 = w
            .iter()
            .zip([1, 1, 2, 2, 5])
            .map(|(e, n)| e.target as f64 * n as f64)
            .sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
