//! The randomness of a training step (never of evaluation): Gaussian noise on the fed-back
//! thoughts and dropout. Each is a pure function of the step's key and the row it touches, so
//! the forward pass draws it where it computes the row and the backward pass draws the same
//! again instead of storing it, and a batch split into shards draws per shard
//! ([`StepNoise::for_part`]), which the run fixes.

/// What a training step perturbs; [`StepNoise::NONE`] for a plain step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepNoise {
    pub thoughts: Option<ThoughtNoise>,
    pub dropout: Option<Dropout>,
}

impl StepNoise {
    pub const NONE: StepNoise = StepNoise {
        thoughts: None,
        dropout: None,
    };

    /// The same noise with its own streams for part `part` of a batch.
    pub fn for_part(self, part: usize) -> StepNoise {
        StepNoise {
            thoughts: self.thoughts.map(|n| n.for_part(part)),
            dropout: self.dropout.map(|d| d.for_part(part)),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == StepNoise::NONE
    }
}

/// `key` moved to part `part`'s own stream.
fn part_key(key: u64, part: usize) -> u64 {
    key ^ (part as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Gaussian noise added to every fed-back thought of a training step (`TrainConfig::thought_noise`),
/// relative to the thought's size, so a model cannot outgrow it by scaling its thoughts up. The
/// backward pass treats it as a constant (the gradient reaches the fed-back state unchanged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThoughtNoise {
    /// Standard deviation of each element, as a fraction of the thought's root mean square.
    pub std: f32,
    /// The step's random stream.
    pub key: u64,
}

impl ThoughtNoise {
    /// The same noise with its own stream for part `part` of a batch.
    pub fn for_part(self, part: usize) -> ThoughtNoise {
        ThoughtNoise {
            key: part_key(self.key, part),
            ..self
        }
    }

    /// Adds row `row`'s noise, for the fed-back `thought`, to `x` (Box-Muller on the row's own
    /// stream).
    pub fn add_to(&self, x: &mut [f32], row: usize, thought: &[f32]) {
        use rand::{Rng, SeedableRng};
        let mean_square = thought.iter().map(|v| v * v).sum::<f32>() / thought.len().max(1) as f32;
        let std = self.std * mean_square.sqrt();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.key ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        for pair in x.chunks_mut(2) {
            // 1 - u lies in (0, 1], so the logarithm is finite.
            let r = (-2.0 * (1.0 - rng.random::<f32>()).ln()).sqrt() * std;
            let angle = std::f32::consts::TAU * rng.random::<f32>();
            let (sin, cos) = angle.sin_cos();
            pair[0] += r * cos;
            if let Some(second) = pair.get_mut(1) {
                *second += r * sin;
            }
        }
    }
}

/// Where dropout applies: GPT-2's `embd_pdrop` and `resid_pdrop` sites, each vector just before
/// it joins the residual stream. (GPT-2 also drops attention probabilities; this engine does
/// not.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropSite {
    /// The input embedding (token or fed-back thought, plus position).
    Input,
    /// Block `l`'s attention output, after its projection.
    Attention(usize),
    /// Block `l`'s MLP output.
    Mlp(usize),
}

impl DropSite {
    fn id(self) -> u64 {
        match self {
            DropSite::Input => 0,
            DropSite::Attention(l) => 1 + 2 * l as u64,
            DropSite::Mlp(l) => 2 + 2 * l as u64,
        }
    }
}

/// Dropout of a training step (`TrainConfig::dropout`): each element at a [`DropSite`] is
/// zeroed with probability `p` and the others scaled by `1 / (1 - p)`, so the expected value is
/// unchanged and evaluation, which drops nothing, needs no rescaling. Its derivative is the same
/// mask and scale, so the backward pass applies [`Dropout::apply`] to the gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability that an element is zeroed, in [0, 1).
    pub p: f32,
    /// The step's random stream.
    pub key: u64,
}

/// SplitMix64's output function: a bijective mix of 64 bits, so consecutive counters give
/// independent-looking words (Steele, Lea and Flood 2014).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Dropout {
    /// The same dropout with its own stream for part `part` of a batch.
    pub fn for_part(self, part: usize) -> Dropout {
        Dropout {
            key: part_key(self.key, part),
            ..self
        }
    }

    /// Multiplies row `row` of `site` by its mask and `1 / (1 - p)`: in the forward pass the
    /// vector itself, in the backward pass the gradient that reaches it.
    pub fn apply(&self, x: &mut [f32], site: DropSite, row: usize) {
        // Rows stay below 2^40 and sites below 2^24: (site, row) is one distinct word.
        let stream = mix(self.key ^ mix((site.id() << 40) | row as u64));
        // An element survives when the top 32 bits of its word reach p * 2^32.
        let threshold = (self.p as f64 * 4_294_967_296.0) as u64;
        let scale = 1.0 / (1.0 - self.p);
        for (j, v) in x.iter_mut().enumerate() {
            let word = mix(stream.wrapping_add((j as u64 + 1).wrapping_mul(GOLDEN)));
            *v = if word >> 32 < threshold {
                0.0
            } else {
                *v * scale
            };
        }
    }

    /// [`Dropout::apply`] to each row of `rows`, held in `x` as `(rows.len(), width)`.
    pub fn apply_rows(
        &self,
        x: &mut [f32],
        width: usize,
        site: DropSite,
        rows: std::ops::Range<usize>,
    ) {
        for (values, row) in x.chunks_exact_mut(width).zip(rows) {
            self.apply(values, site, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask is a pure function of key, site and row; it drops about p of the elements and
    /// keeps the expected value.
    #[test]
    fn dropout_drops_its_share_and_keeps_the_mean() {
        let dropout = Dropout { p: 0.2, key: 5 };
        let draw = |d: Dropout, site, row| {
            let mut x = vec![1.0f32; 20_000];
            d.apply(&mut x, site, row);
            x
        };
        let x = draw(dropout, DropSite::Mlp(1), 3);
        assert_eq!(x, draw(dropout, DropSite::Mlp(1), 3));
        for other in [
            draw(dropout, DropSite::Mlp(1), 4),
            draw(dropout, DropSite::Attention(1), 3),
            draw(dropout, DropSite::Mlp(0), 3),
            draw(dropout, DropSite::Input, 3),
            draw(dropout.for_part(1), DropSite::Mlp(1), 3),
            draw(Dropout { key: 6, ..dropout }, DropSite::Mlp(1), 3),
        ] {
            assert_ne!(x, other);
        }
        let dropped = x.iter().filter(|&&v| v == 0.0).count() as f64 / x.len() as f64;
        // 20,000 draws: the share's standard error is 0.003.
        assert!((dropped - 0.2).abs() < 0.015, "dropped {dropped}");
        assert!(x.iter().all(|&v| v == 0.0 || v == 1.25));
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
        // p = 0 keeps everything as it is.
        assert!(draw(Dropout { p: 0.0, key: 5 }, DropSite::Input, 3)
            .iter()
            .all(|&v| v == 1.0));
    }

    /// Thought noise is a pure function of key and row, scaled to the thought's size.
    #[test]
    fn thought_noise_has_its_standard_deviation() {
        let noise = ThoughtNoise { std: 0.25, key: 9 };
        let thought = vec![2.0f32; 4096]; // root mean square 2
        let draw = |row| {
            let mut x = vec![0.0f32; 4096];
            noise.add_to(&mut x, row, &thought);
            x
        };
        let x = draw(3);
        assert_eq!(x, draw(3));
        assert_ne!(x, draw(4));
        assert_ne!(x, {
            let mut y = vec![0.0f32; 4096];
            noise.for_part(1).add_to(&mut y, 3, &thought);
            y
        });
        let mean = x.iter().sum::<f32>() / 4096.0;
        let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4096.0).sqrt();
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((std - 0.5).abs() < 0.05, "std {std}");
    }
}
