//! A batch of layouts packed into rows, and the order in which the rows are computed.
//!
//! Every position of every example is one row, with no padding. Rows are stored in the order
//! they are computed, in *chunks*; within a chunk every row's inputs are known before the chunk
//! starts, so each layer runs as one matrix product over the chunk's rows:
//! ```text
//! no fed-back thoughts:  [ all positions of every example ]                       one chunk
//! n thoughts:            [ everything before the thoughts, every example ]       chunk 0
//!                        [ thought 1 of every example ] ... [ thought n ... ]     chunks 1..=n
//!                        [ everything after the thoughts, every example ]         chunk n + 1
//! ```
//! (Before the thoughts: the question and `<bot>`, and in the last-steps order the written
//! steps.) Thought j of an example takes as input the final hidden state of the row before it,
//! computed in the previous chunk. Attention reads each example's keys and values
//! at positions `0..=t` wherever their rows sit (`Example::rows`), so a thought costs one row
//! per example, never a pass over the prefix again.

use super::noise::StepNoise;
use crate::objective::ExampleWeights;
use anyhow::{ensure, Result};
use coconut_core::decoding::DecodePlan;
use coconut_core::layout::Layout;
use std::ops::Range;

/// What a row takes as its input embedding (before its position embedding is added).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The token's `wte` row.
    Token(u32),
    /// The final hidden state of an earlier row (a fed-back thought).
    Thought(usize),
}

/// One example of the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// `rows[t]` is the row that holds position `t`.
    pub rows: Vec<usize>,
    /// Where this example's attention probabilities start (see [`Plan::attention_len`]).
    pub attention_base: usize,
}

impl Example {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The packed batch of one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub examples: Vec<Example>,
    /// Per row: its example, position (index in the example) and position id (the row of
    /// `wpe` it adds: the position itself with absolute ids, its column with coupled ones).
    pub row_example: Vec<usize>,
    pub row_position: Vec<usize>,
    pub row_wpe: Vec<usize>,
    pub row_input: Vec<Input>,
    /// Row ranges in computation order; together they cover `0..rows()` once.
    pub chunks: Vec<Range<usize>>,
    /// Rows whose output predicts a target token, those targets, and each target's weight in
    /// the loss (1 unless [`Plan::weigh`] set them).
    pub predictors: Vec<usize>,
    pub targets: Vec<u32>,
    pub target_weights: Vec<f32>,
    /// Rows whose output's L2 norm enters the loss, with its weight (the seed's thought-norm
    /// term, [`crate::objective`]).
    pub norm_rows: Vec<(usize, f32)>,
    /// Attention probabilities per layer and head: an example of length L holds L (L + 1) / 2 per
    /// head (query t attends to keys 0..=t).
    pub attention_len_per_head: usize,
    /// The training step's randomness: noise on the fed-back thoughts, dropout.
    pub noise: StepNoise,
    /// Threads each of its matrix products runs on: 1 while the batch's shards each take a
    /// core, more when this plan holds the whole batch (see `sharded.rs`).
    pub product_threads: usize,
}

/// Attention probabilities a causal sequence of `len` positions holds per head.
pub fn triangle(len: usize) -> usize {
    len * (len + 1) / 2
}

impl Plan {
    /// Packs `layouts`; thoughts are fed back when `feeds_back`. Layouts may have different
    /// numbers of thoughts (a stage's batch with earlier stages mixed in): thought chunk j holds
    /// the examples with at least j thoughts.
    pub fn new(layouts: &[&Layout], feeds_back: bool) -> Result<Plan> {
        ensure!(!layouts.is_empty(), "empty batch");
        let thoughts = |e: usize| if feeds_back { layouts[e].thoughts } else { 0 };
        let most = (0..layouts.len()).map(thoughts).max().unwrap_or(0);
        let mut plan = Plan::empty(layouts.iter().map(|l| l.ids.len()));

        // Which positions of example e each chunk holds.
        let chunk_positions = |e: usize, chunk: usize| -> Range<usize> {
            let (layout, n) = (layouts[e], thoughts(e));
            if most == 0 {
                return 0..layout.ids.len();
            }
            let first = layout.first_thought;
            match chunk {
                0 => 0..first,
                j if j <= n => first + j - 1..first + j,
                j if j <= most => 0..0,
                _ => first + n..layout.ids.len(),
            }
        };
        let n_chunks = if most == 0 { 1 } else { most + 2 };
        for chunk in 0..n_chunks {
            let start = plan.row_example.len();
            for (e, layout) in layouts.iter().enumerate() {
                for t in chunk_positions(e, chunk) {
                    let row = plan.row_example.len();
                    let is_thought = thoughts(e) > 0 && layout.thought_positions().contains(&t);
                    let input = if is_thought {
                        Input::Thought(plan.examples[e].rows[t - 1])
                    } else {
                        Input::Token(layout.ids[t])
                    };
                    plan.examples[e].rows[t] = row;
                    plan.row_example.push(e);
                    plan.row_position.push(t);
                    plan.row_wpe.push(layout.positions[t] as usize);
                    plan.row_input.push(input);
                }
            }
            plan.chunks.push(start..plan.row_example.len());
        }
        for (e, layout) in layouts.iter().enumerate() {
            for (t, &is_target) in layout.loss_mask.iter().enumerate() {
                if is_target && t > 0 {
                    plan.predictors.push(plan.examples[e].rows[t - 1]);
                    plan.targets.push(layout.ids[t]);
                }
            }
        }
        ensure!(!plan.targets.is_empty(), "batch has no target token");
        plan.target_weights = vec![1.0; plan.targets.len()];
        Ok(plan)
    }

    /// Sets each target's weight and the thought-norm rows from the examples' weights (the
    /// layouts the plan was made of, in order; thoughts count only where they are fed back).
    pub fn weigh(&mut self, layouts: &[&Layout], weights: &[ExampleWeights]) {
        debug_assert_eq!(layouts.len(), self.examples.len());
        self.target_weights.clear();
        self.norm_rows.clear();
        for (e, (layout, w)) in layouts.iter().zip(weights).enumerate() {
            let targets = layout.loss_mask.iter().skip(1).filter(|&&m| m).count();
            self.target_weights
                .extend(std::iter::repeat_n(w.target, targets));
            if w.thought_norm != 0.0 {
                for t in layout.thought_positions() {
                    if let Input::Thought(_) = self.row_input[self.examples[e].rows[t]] {
                        self.norm_rows
                            .push((self.examples[e].rows[t], w.thought_norm));
                    }
                }
            }
        }
        debug_assert_eq!(self.target_weights.len(), self.targets.len());
    }

    /// No rows yet, for examples of at most these lengths.
    fn empty(lengths: impl Iterator<Item = usize>) -> Plan {
        let mut base = 0;
        let examples = lengths
            .map(|len| {
                base += triangle(len);
                Example {
                    rows: vec![usize::MAX; len],
                    attention_base: base - triangle(len),
                }
            })
            .collect();
        Plan {
            examples,
            row_example: Vec::new(),
            row_position: Vec::new(),
            row_wpe: Vec::new(),
            row_input: Vec::new(),
            chunks: Vec::new(),
            predictors: Vec::new(),
            targets: Vec::new(),
            target_weights: Vec::new(),
            norm_rows: Vec::new(),
            attention_len_per_head: base,
            noise: StepNoise::NONE,
            product_threads: 1,
        }
    }

    pub fn rows(&self) -> usize {
        self.row_example.len()
    }

    /// The start of a greedy generation: each prompt (question and `<bot>`), then its plan's
    /// thought rows (fed back, or the plan's slot token, `<latent>`, for pause), thought j of every example
    /// that has one in chunk j. Every example may grow to `cap` positions; [`Plan::push_chunk`]
    /// adds the generated ones.
    pub fn for_generation(prompts: &[Vec<u32>], plans: &[DecodePlan], cap: usize) -> Result<Plan> {
        ensure!(!prompts.is_empty(), "nothing to generate");
        ensure!(
            prompts
                .iter()
                .zip(plans)
                .all(|(p, d)| !p.is_empty() && p.len() + d.thoughts < cap),
            "a prompt and its thoughts must leave room below {cap} positions"
        );
        let mut plan = Plan::empty(prompts.iter().map(|_| cap));
        plan.push_chunk(prompts.iter().enumerate().flat_map(|(e, p)| {
            let ids = plans[e].prompt_position_ids(p);
            p.iter()
                .zip(ids)
                .enumerate()
                .map(move |(t, (&id, wpe))| (e, t, wpe, Input::Token(id)))
        }));
        // Thoughts that follow the prompt (none when they wait for the model's trigger).
        let after_prompt = |e: usize| plans[e].thought_positions().len();
        let most = (0..prompts.len()).map(after_prompt).max().unwrap_or(0);
        for j in 0..most {
            let rows: Vec<_> = (0..prompts.len())
                .filter(|&e| after_prompt(e) > j)
                .map(|e| {
                    let (d, t) = (&plans[e], prompts[e].len() + j);
                    let input = if d.feeds_back {
                        Input::Thought(plan.examples[e].rows[t - 1])
                    } else {
                        Input::Token(d.slot_token)
                    };
                    (
                        e,
                        t,
                        d.position_id(&d.ids_before_answer(&prompts[e]), t),
                        input,
                    )
                })
                .collect();
            plan.push_chunk(rows);
        }
        Ok(plan)
    }

    /// Appends one chunk of rows `(example, position, position id, input)`; each example's
    /// positions must continue where its rows end.
    pub fn push_chunk(&mut self, rows: impl IntoIterator<Item = (usize, usize, usize, Input)>) {
        let start = self.rows();
        for (e, t, wpe, input) in rows {
            assert!(
                t == 0 || self.examples[e].rows[t - 1] != usize::MAX,
                "position {t} of example {e} comes before {}",
                t - 1
            );
            self.examples[e].rows[t] = self.rows();
            self.row_example.push(e);
            self.row_position.push(t);
            self.row_wpe.push(wpe);
            self.row_input.push(input);
        }
        self.chunks.push(start..self.rows());
    }
}

/// Splits `n` examples of the given lengths into `parts` contiguous groups of about equal total
/// length (the work of a shard grows with its rows). Deterministic; no group is empty unless
/// there are fewer examples than parts.
pub fn balanced_split(lengths: &[usize], parts: usize) -> Vec<Range<usize>> {
    let total: usize = lengths.iter().sum();
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut acc) = (0, 0);
    for part in 1..=parts {
        let goal = total * part / parts;
        let mut end = start;
        while end < lengths.len() && (acc + lengths[end] <= goal || end == start) {
            acc += lengths[end];
            end += 1;
        }
        if part == parts {
            while end < lengths.len() {
                acc += lengths[end];
                end += 1;
            }
        }
        ranges.push(start..end);
        start = end;
    }
    ranges.retain(|r| !r.is_empty());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::stage::Positions;
    use coconut_core::tokenizer::Tokenizer;
    use coconut_core::{Problem, Stage};

    /// Two problems of different lengths at `stage`, and their plan.
    fn planned(stage: &Stage, feeds_back: bool) -> (Vec<Layout>, Plan) {
        let tok = Tokenizer::new();
        let layouts: Vec<Layout> = [Problem::new(7, 5), Problem::new(347, 285)]
            .iter()
            .map(|p| Layout::new(&tok, p, stage).unwrap())
            .collect();
        let plan = Plan::new(&layouts.iter().collect::<Vec<_>>(), feeds_back).unwrap();
        (layouts, plan)
    }

    #[test]
    fn every_position_is_one_row_and_thoughts_read_the_row_before() {
        for positions in [Positions::default(), Positions::LAST_STEPS] {
            rows_and_thoughts(&Stage::latent(2, 1, 5).with_positions(positions));
        }
    }

    fn rows_and_thoughts(stage: &Stage) {
        let (layouts, plan) = planned(stage, true);
        let total: usize = layouts.iter().map(|l| l.ids.len()).sum();
        assert_eq!(plan.rows(), total);
        assert_eq!(plan.chunks.len(), 4);
        assert_eq!(plan.chunks[1].len(), 2, "one row per example per thought");
        let mut seen = vec![false; total];
        for (e, (example, layout)) in plan.examples.iter().zip(&layouts).enumerate() {
            for (t, &row) in example.rows.iter().enumerate() {
                assert!(!seen[row]);
                seen[row] = true;
                assert_eq!((plan.row_example[row], plan.row_position[row]), (e, t));
                let want = if layout.thought_positions().contains(&t) {
                    Input::Thought(example.rows[t - 1])
                } else {
                    Input::Token(layout.ids[t])
                };
                assert_eq!(plan.row_input[row], want);
                if let Input::Thought(source) = want {
                    let chunk = |r: usize| plan.chunks.iter().position(|c| c.contains(&r));
                    assert!(chunk(source) < chunk(row), "a thought's source runs first");
                }
            }
        }
        let targets: usize = layouts
            .iter()
            .map(|l| l.loss_mask.iter().filter(|&&m| m).count())
            .sum();
        assert_eq!(plan.targets.len(), targets);
        assert_eq!(
            plan.attention_len_per_head,
            layouts.iter().map(|l| triangle(l.ids.len())).sum::<usize>()
        );
    }

    #[test]
    fn without_feedback_one_chunk_in_position_order() {
        let (layouts, plan) = planned(&Stage::latent(0, 1, 5), false);
        assert_eq!(plan.chunks, vec![0..plan.rows()]);
        assert_eq!(plan.examples[1].rows[0], layouts[0].ids.len());
    }

    #[test]
    fn splits_balance_rows() {
        assert_eq!(balanced_split(&[10, 10, 10, 10], 2), vec![0..2, 2..4]);
        assert_eq!(balanced_split(&[30, 5, 5, 5, 5], 2), vec![0..1, 1..5]);
        assert_eq!(balanced_split(&[4], 2), vec![0..1]);
        let split = balanced_split(&[7, 3, 9, 1, 4, 4, 8], 3);
        assert_eq!(split.first().unwrap().start, 0);
        assert_eq!(split.last().unwrap().end, 7);
        assert!(split.windows(2).all(|w| w[0].end == w[1].start));
    }
}
