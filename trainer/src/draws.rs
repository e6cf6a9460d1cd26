//! What each training step draws: the slice of the epoch's data order that makes its batch,
//! the earlier stages mixed in, and the augmentation draws (operand padding, position offsets,
//! column gaps, extra thoughts, answer padding, thought noise). Every draw is a pure function of
//! (seed, stage, step), or (seed, stage, epoch) for the order, so a resumed run draws what an
//! unbroken one would have.

use crate::config::{StagePlan, TrainConfig};
use crate::cpu::noise::{Dropout, StepNoise, ThoughtNoise};
use anyhow::Result;
use coconut_core::layout::Layout;
use coconut_core::stage::{ColumnIds, Positions};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::{Problem, Stage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

/// The training set's order in one epoch of one stage: a pure function of its arguments.
pub fn epoch_order(n: usize, seed: u64, stage_index: usize, epoch: u64) -> Vec<usize> {
    let key = seed
        ^ (stage_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ epoch.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(17);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

/// The batches of one stage, step by step.
pub struct StageDraws {
    seed: u64,
    stage_index: usize,
    batch_size: usize,
    /// One epoch: every training problem, plus the stage's extra copies of the hard ones.
    pool: Vec<usize>,
    /// The epoch whose order was drawn last, and that order (indices of training problems).
    order: (u64, Vec<usize>),
}

/// One step's batch as drawn: its problems and each one's draws.
pub struct Draw {
    /// Indices of the training problems.
    problems: Vec<usize>,
    /// A problem's layout when it is not the stage's own one (None): an earlier stage's mixed
    /// in, or its operands written with another padding.
    relaid: Vec<Option<Layout>>,
    /// Whether a problem's layout is an earlier stage's.
    mixed: Vec<bool>,
    offsets: Vec<usize>,
    gaps: Vec<Vec<u32>>,
    extra: Vec<Vec<u32>>,
    pads: Vec<usize>,
    /// The step's noise on the thoughts fed back and dropout, where the run asks for them.
    pub noise: StepNoise,
}

impl StageDraws {
    pub fn new(
        config: &TrainConfig,
        plan: &StagePlan,
        stage_index: usize,
        train: &[Problem],
    ) -> Self {
        StageDraws {
            seed: plan.draw_seed(config),
            stage_index,
            batch_size: config.batch_size,
            pool: plan.epoch_pool(train),
            order: (u64::MAX, Vec::new()),
        }
    }

    /// Problems in one epoch.
    pub fn epoch_len(&self) -> usize {
        self.pool.len()
    }

    /// The batch of `step`: a slice of its epoch's order, and its draws.
    pub fn draw(
        &mut self,
        config: &TrainConfig,
        plan: &StagePlan,
        stage: &Stage,
        tokenizer: &Tokenizer,
        train: &[Problem],
        step: u64,
    ) -> Result<Draw> {
        let steps_per_epoch = self.pool.len().div_ceil(self.batch_size) as u64;
        let (epoch, index) = (step / steps_per_epoch, (step % steps_per_epoch) as usize);
        if self.order.0 != epoch {
            let shuffled = epoch_order(self.pool.len(), self.seed, self.stage_index, epoch);
            self.order = (epoch, shuffled.into_iter().map(|j| self.pool[j]).collect());
        }
        let start = index * self.batch_size;
        let end = (start + self.batch_size).min(self.pool.len());
        let problems = self.order.1[start..end].to_vec();
        let key = |stream| stream_key(stream, self.seed, self.stage_index, step);
        let own_max = plan.operand_pad_max(config);
        let widest = plan.widest_operand_pad(config);
        let (n, columns) = (problems.len(), config.data.max_digits + widest + 1);
        let earlier = mixed_in(
            plan.mixing(config),
            key(Stream::Mixing),
            stage,
            problems.len(),
        );
        let operand_pads = operand_pads(config, own_max, &earlier, key);
        let relaid = relaid(stage, tokenizer, train, &problems, &earlier, operand_pads)?;
        Ok(Draw {
            relaid,
            mixed: earlier.iter().map(Option::is_some).collect(),
            offsets: per_example_draws(config.max_position_offset, key(Stream::Offsets), n),
            gaps: per_column_draws(config.max_column_gap, key(Stream::Gaps), n, columns),
            extra: per_column_draws(
                config.max_extra_thoughts,
                key(Stream::ExtraThoughts),
                n,
                columns,
            ),
            pads: per_example_draws(config.max_answer_pad, key(Stream::AnswerPad), n),
            noise: StepNoise {
                thoughts: (plan.thought_noise_std(config) > 0.0).then(|| ThoughtNoise {
                    std: plan.thought_noise_std(config) as f32,
                    key: key(Stream::Noise),
                }),
                dropout: (plan.dropout_rate(config) > 0.0).then(|| Dropout {
                    p: plan.dropout_rate(config) as f32,
                    key: key(Stream::Dropout),
                }),
            },
            problems,
        })
    }
}

impl Draw {
    /// The batch's layouts, from `layouts` (every training problem's at this stage) or the
    /// earlier stages mixed in, with the draws applied.
    pub fn members<'a>(&'a self, layouts: &'a [Layout], stage: &Stage) -> Vec<Cow<'a, Layout>> {
        (0..self.problems.len())
            .map(|j| self.member(j, &layouts[self.problems[j]], stage))
            .collect()
    }

    /// A member with a padded answer, extra thoughts, an offset or gaps is a copy (with its
    /// answer or thoughts lengthened, its column ids moved); the rest are borrowed.
    fn member<'a>(&'a self, j: usize, own: &'a Layout, stage: &Stage) -> Cow<'a, Layout> {
        let layout = self.relaid[j].as_ref().unwrap_or(own);
        // A mixed-in layout is another stage's, whose written steps the padding would number
        // as this stage's: only the stage's own answers are padded.
        let pad = self.pads[j];
        let padded = if pad == 0 || self.mixed[j] {
            Cow::Borrowed(layout)
        } else {
            Cow::Owned(layout.with_answer_pad(stage, pad))
        };
        let extra = &self.extra[j];
        let lengthened = if extra.iter().all(|&x| x == 0) {
            padded
        } else {
            Cow::Owned(padded.with_extra_thoughts(stage, extra))
        };
        let (offset, gaps) = (self.offsets[j], &self.gaps[j]);
        if offset == 0 && gaps.iter().all(|&g| g == 0) {
            lengthened
        } else {
            Cow::Owned(lengthened.spread(offset, gaps))
        }
    }
}

/// Each batch member's drawn operand padding (None where its layout draws none): from
/// `0..=own_max` for the stage's own layouts, from the run's range for the earlier stages mixed
/// in. Where the two ranges are one, one stream serves both, as it did before stages had their
/// own.
fn operand_pads(
    config: &TrainConfig,
    own_max: usize,
    earlier: &[Option<Stage>],
    key: impl Fn(Stream) -> u64,
) -> Vec<Option<usize>> {
    let n = earlier.len();
    let own = per_example_draws(own_max, key(Stream::OperandPad), n);
    let run_max = config.max_operand_pad;
    let mixed = if run_max == own_max {
        own.clone()
    } else {
        per_example_draws(run_max, key(Stream::MixedOperandPad), n)
    };
    earlier
        .iter()
        .enumerate()
        .map(|(j, at)| match at {
            None => (own_max > 0).then_some(own[j]),
            Some(_) => (run_max > 0).then_some(mixed[j]),
        })
        .collect()
}

/// Each batch member's layout where it is not the stage's own one (None): at its mixed-in
/// earlier stage, with its drawn operand padding where it draws one, or both.
fn relaid(
    stage: &Stage,
    tokenizer: &Tokenizer,
    train: &[Problem],
    batch: &[usize],
    earlier: &[Option<Stage>],
    operand_pads: Vec<Option<usize>>,
) -> Result<Vec<Option<Layout>>> {
    batch
        .iter()
        .zip(earlier)
        .zip(operand_pads)
        .map(|((&i, earlier), pad)| {
            if earlier.is_none() && pad.is_none_or(|p| stage.positions.operand_pad() == Some(p)) {
                return Ok(None);
            }
            let at = earlier.unwrap_or(*stage);
            // Drawn paddings are validated to need coupled ids.
            let at = match (at.positions, pad) {
                (Positions::Coupled(ids), Some(pad)) => {
                    at.with_positions(Positions::Coupled(ColumnIds {
                        operand_pad: Some(pad),
                        ..ids
                    }))
                }
                _ => at,
            };
            Ok(Some(Layout::new(tokenizer, &train[i], &at)?))
        })
        .collect()
}

/// Coconut's data mixing: for each of a batch's `n` problems at latent stage k >= 1, with
/// probability `mix`, a uniformly drawn earlier stage to lay it out at (None: the stage
/// itself). A pure function of `key` ([`stream_key`]: seed, stage, step), like the data order.
fn mixed_in(mix: f64, key: u64, stage: &Stage, n: usize) -> Vec<Option<Stage>> {
    let coconut_core::StageKind::Latent { k } = stage.kind else {
        return vec![None; n];
    };
    if mix <= 0.0 || k == 0 {
        return vec![None; n];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    (0..n)
        .map(|_| {
            if rng.random::<f64>() >= mix {
                return None;
            }
            // The stage's own settings (ids, orders) with fewer latent steps.
            Some(stage.with_kind(coconut_core::StageKind::Latent {
                k: rng.random_range(0..k),
            }))
        })
        .collect()
}

/// One draw per batch member, uniform in `0..=max`: its column-id offset, its answer's
/// padding or its operands' (none drawn when `max` is 0, so runs without them keep their
/// random streams).
fn per_example_draws(max: usize, key: u64, n: usize) -> Vec<usize> {
    if max == 0 {
        return vec![0; n];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    (0..n).map(|_| rng.random_range(0..=max)).collect()
}

/// For each of `n` examples, `columns` draws from `0..=max` (none when `max` is 0): the gaps
/// between its column ids, or its columns' extra thoughts.
fn per_column_draws(max: usize, key: u64, n: usize, columns: usize) -> Vec<Vec<u32>> {
    if max == 0 {
        return vec![Vec::new(); n];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    (0..n)
        .map(|_| {
            (0..columns)
                .map(|_| rng.random_range(0..=max as u32))
                .collect()
        })
        .collect()
}

/// The independent random streams of a training step, each tagged by a constant (ASCII of its
/// name) so that no two draw the same numbers.
#[derive(Clone, Copy)]
#[repr(u64)]
enum Stream {
    Mixing = 0x6D69_7869_6E67,
    Offsets = 0x6F66_6673_6574,
    Gaps = 0x6761_7073,
    ExtraThoughts = 0x0065_7874_7261,
    AnswerPad = 0x7061_6464,
    Noise = 0x006E_6F69_7365,
    OperandPad = 0x6F70_6164,
    MixedOperandPad = 0x6D6F_7061_6464,
    Dropout = 0x6472_6F70,
}

/// The seed of `stream` at a step: a pure function of the stage's seed, the stage and the step,
/// like the data order.
fn stream_key(stream: Stream, seed: u64, stage_index: usize, step: u64) -> u64 {
    seed ^ stream as u64 ^ ((stage_index as u64) << 48) ^ step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_column_draws_are_a_pure_function_of_the_key_and_cover_their_range() {
        assert_eq!(per_column_draws(0, 7, 3, 5), vec![Vec::<u32>::new(); 3]);
        let gaps = per_column_draws(3, 7, 64, 5);
        assert_eq!(gaps, per_column_draws(3, 7, 64, 5));
        assert_ne!(gaps, per_column_draws(3, 8, 64, 5));
        assert!(gaps.iter().all(|g| g.len() == 5));
        let drawn: std::collections::BTreeSet<u32> = gaps.iter().flatten().copied().collect();
        assert_eq!(drawn.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
    }

    /// Padded operands: each member is its problem laid out with the padding drawn for it, every
    /// padding of the range is drawn, and the stage's own layout is used where the draw is the
    /// stage's padding.
    #[test]
    fn each_member_is_laid_out_at_its_drawn_operand_padding() {
        use coconut_core::positions::{Coupled, PositionIds};
        let config = TrainConfig {
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: Some(2),
            }),
            max_operand_pad: 4,
            ..TrainConfig::default()
        };
        config.validate().unwrap();
        let plan = &config.stages[3];
        let stage = config.stage(plan).unwrap();
        let tok = Tokenizer::new();
        let train: Vec<Problem> = (0..64).map(|i| Problem::new(7 + 131 * i, 3 + i)).collect();
        let own: Vec<Layout> = train
            .iter()
            .map(|p| Layout::new(&tok, p, &stage).unwrap())
            .collect();
        let mut draws = StageDraws::new(&config, plan, 3, &train);
        let draw = draws.draw(&config, plan, &stage, &tok, &train, 0).unwrap();
        let members = draw.members(&own, &stage);
        assert_eq!(members.len(), train.len());
        let mut drawn = std::collections::BTreeSet::new();
        for (j, (member, &i)) in members.iter().zip(&draw.problems).enumerate() {
            let p = &train[i];
            let pad = Coupled::columns_of(member.prompt()).unwrap() - p.columns();
            drawn.insert(pad);
            let padded = stage.with_positions(Positions::coupled(true, Some(pad)));
            let want = Layout::new(&tok, p, &padded).unwrap();
            assert_eq!(**member, want, "{p} padded by {pad}");
            // Laid out again exactly where the draw is not the stage's own padding.
            assert_eq!(draw.relaid[j].is_none(), pad == 2, "{p} padded by {pad}");
        }
        assert_eq!(drawn.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }

    /// A stage's own padding range: its own layouts draw from it, the earlier stages mixed in
    /// from the run's; a stage setting equal to the run's draws what the run alone would.
    #[test]
    fn a_stage_pads_its_own_layouts_wider_than_the_stages_mixed_in() {
        use coconut_core::positions::{Coupled, PositionIds};
        let mut config = TrainConfig {
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: Some(2),
            }),
            max_operand_pad: 4,
            ..TrainConfig::default()
        };
        config.stages[3].mix = Some(0.5);
        let tok = Tokenizer::new();
        let train: Vec<Problem> = (0..200).map(|i| Problem::new(7 + 131 * i, 3 + i)).collect();
        let pads_of = |config: &TrainConfig, step| {
            config.validate().unwrap();
            let plan = &config.stages[3];
            let stage = config.stage(plan).unwrap();
            let own: Vec<Layout> = train
                .iter()
                .map(|p| Layout::new(&tok, p, &stage).unwrap())
                .collect();
            let mut draws = StageDraws::new(config, plan, 3, &train);
            let draw = draws
                .draw(config, plan, &stage, &tok, &train, step)
                .unwrap();
            let members = draw.members(&own, &stage);
            let pads: Vec<(bool, usize)> = members
                .iter()
                .zip(&draw.problems)
                .zip(&draw.mixed)
                .map(|((m, &i), &mixed)| {
                    (
                        mixed,
                        Coupled::columns_of(m.prompt()).unwrap() - train[i].columns(),
                    )
                })
                .collect();
            pads
        };
        let run_alone = pads_of(&config, 5);
        config.stages[3].max_operand_pad = Some(4);
        assert_eq!(pads_of(&config, 5), run_alone);
        config.stages[3].max_operand_pad = Some(9);
        let (mut own, mut mixed) = (Vec::new(), Vec::new());
        for step in 0..4 {
            for (is_mixed, pad) in pads_of(&config, step) {
                if is_mixed { &mut mixed } else { &mut own }.push(pad);
            }
        }
        let range = |pads: &[usize]| (*pads.iter().min().unwrap(), *pads.iter().max().unwrap());
        assert_eq!(range(&own), (0, 9));
        assert_eq!(range(&mixed), (0, 4));
    }
}
