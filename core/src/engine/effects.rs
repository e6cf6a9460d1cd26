//! What editing thoughts does, measured over many problems: the numbers of the model card's
//! patching and carry-flip tables, computed by the same code in `coconut intervene --measure` and
//! in the page (reference engine, so int8 weights give the same numbers in both).
//!
//! **Patching**: for pairs of held-out problems (A, B), thought j of A is replaced by thought j of
//! B and the answer A's run then writes is compared with A's sum and B's, column by column. Where
//! a thought carries a column's result forward, that column's digit follows B.
//!
//! **Carry flips**: thought j is reflected across column c's carry probe (what the probe reads
//! flips, nothing orthogonal to it changes). Flipping the carry out of column c moves the sum by
//! exactly 10^(c+1), down if the column carried and up if it did not: the answer changes "the way
//! the carry would" when it is that number.

use crate::decoding::EngineError;
use crate::intervention::{Edit, Intervention, PatchContext, PatchSpec};
use crate::probes::Quantity;
use crate::problem::Problem;
use crate::reference::ReferenceModel;
use crate::stage::Stage;
use crate::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

/// What patching one thought slot did over all pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchEffect {
    pub stage: String,
    pub slot: usize,
    /// Pairs measured (with coupled ids, those whose problems both have the slot).
    pub pairs: usize,
    /// Percent of pairs whose patched answer is still A's sum.
    pub unchanged: f64,
    /// Percent of pairs whose patched answer is B's sum.
    pub became_b: f64,
    /// Per column (least significant first): among the pairs whose sums differ in that column,
    /// the percent whose patched answer has B's digit there, and how many pairs that was.
    pub column_took_b: Vec<(f64, usize)>,
}

/// What flipping one column's carry probe at one thought slot did over all problems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlipEffect {
    pub stage: String,
    pub slot: usize,
    pub column: usize,
    /// Problems measured (with coupled ids, those that have the slot).
    pub problems: usize,
    /// Percent of problems whose answer stayed the sum.
    pub unchanged: f64,
    /// Percent whose answer became the sum with column `column`'s carry flipped
    /// (sum - 10^(column+1) where it carried, sum + 10^(column+1) where it did not).
    pub as_the_carry_would: f64,
    /// The carry probe's held-out accuracy (percent), for reading the row.
    pub probe_accuracy: f64,
}

fn percent(k: usize, n: usize) -> f64 {
    100.0 * k as f64 / n.max(1) as f64
}

/// Digit `column` of `n` (least significant first), or `None` past its last digit.
pub fn digit(n: u64, column: usize) -> Option<u64> {
    let p = 10u64.checked_pow(column as u32)?;
    (column == 0 || n >= p).then(|| (n / p) % 10)
}

/// The sum of `p` with the carry out of `column` flipped.
pub fn carry_flipped(p: &Problem, column: usize) -> Option<u64> {
    let step = 10u64.checked_pow(column as u32 + 1)?;
    match Quantity::Carry.label(p, column) {
        1 => p.answer().checked_sub(step),
        _ => p.answer().checked_add(step),
    }
}

/// The number a run writes with `edits`, if it writes one.
fn answer(
    model: &ReferenceModel,
    tokenizer: &Tokenizer,
    stage: &Stage,
    problem: &Problem,
    edits: &[Intervention],
) -> Result<Option<u64>, EngineError> {
    let solution = model.solve_edited(tokenizer, problem, stage, false, edits)?;
    Ok(solution.answer.and_then(|t| t.parse().ok()))
}

/// Patching counts of one stage, added to chunk by chunk (so a page can measure without
/// freezing), read as [`PatchEffect`]s at any point.
#[derive(Clone, Debug)]
pub struct PatchTally {
    stage_id: String,
    columns: usize,
    slots: Vec<SlotCounts>,
}

/// One slot's patching counts.
#[derive(Clone, Debug)]
struct SlotCounts {
    used: usize,
    unchanged: usize,
    became_b: usize,
    /// Per column: pairs whose sums differ there, and those whose patched answer took B's digit.
    took: Vec<(usize, usize)>,
}

impl PatchTally {
    /// Nothing counted yet, for `stage_id`, reading `columns` columns of the answers.
    pub fn new(stage_id: &str, columns: usize) -> PatchTally {
        PatchTally {
            stage_id: stage_id.to_string(),
            columns,
            slots: Vec::new(),
        }
    }

    /// Counts `pairs` (A, B): every thought slot of A replaced by B's.
    pub fn add(
        &mut self,
        model: &ReferenceModel,
        tokenizer: &Tokenizer,
        stage: &Stage,
        pairs: &[(Problem, Problem)],
    ) -> Result<(), EngineError> {
        // B's thoughts, run once for every slot.
        let b_thoughts = pairs
            .iter()
            .map(|(_, b)| Ok(model.solve(tokenizer, b, stage, false)?.generation.thoughts))
            .collect::<Result<Vec<_>, EngineError>>()?;
        let slots = b_thoughts.iter().map(Vec::len).max().unwrap_or(0);
        while self.slots.len() < slots {
            self.slots.push(SlotCounts {
                used: 0,
                unchanged: 0,
                became_b: 0,
                took: vec![(0, 0); self.columns],
            });
        }
        for (slot, counts) in self.slots.iter_mut().enumerate() {
            for ((a, b), thoughts) in pairs.iter().zip(&b_thoughts) {
                // With coupled ids a shorter problem has fewer thoughts: pairs that both have it.
                if thoughts.len() <= slot || stage.thoughts_of(a) <= slot {
                    continue;
                }
                counts.used += 1;
                let edit = Intervention {
                    slot,
                    edit: Edit::Replace(thoughts[slot].clone()),
                };
                let got = answer(model, tokenizer, stage, a, &[edit])?;
                counts.unchanged += usize::from(got == Some(a.answer()));
                counts.became_b += usize::from(got == Some(b.answer()));
                for (column, (n, hits)) in counts.took.iter_mut().enumerate() {
                    let (da, db) = (digit(a.answer(), column), digit(b.answer(), column));
                    if da != db {
                        *n += 1;
                        *hits += usize::from(got.and_then(|g| digit(g, column)) == db);
                    }
                }
            }
        }
        Ok(())
    }

    /// The effects counted so far, one per slot.
    pub fn effects(&self) -> Vec<PatchEffect> {
        let slots = self.slots.iter().enumerate();
        slots
            .map(|(slot, c)| PatchEffect {
                stage: self.stage_id.clone(),
                slot,
                pairs: c.used,
                unchanged: percent(c.unchanged, c.used),
                became_b: percent(c.became_b, c.used),
                column_took_b: c.took.iter().map(|&(n, k)| (percent(k, n), n)).collect(),
            })
            .collect()
    }
}

/// Patches every thought slot of `stage` (called `stage_id` in the results) over `pairs` (A, B),
/// reading `columns` columns of the answers.
pub fn patch_effects(
    model: &ReferenceModel,
    tokenizer: &Tokenizer,
    stage: &Stage,
    stage_id: &str,
    pairs: &[(Problem, Problem)],
    columns: usize,
) -> Result<Vec<PatchEffect>, EngineError> {
    let mut tally = PatchTally::new(stage_id, columns);
    tally.add(model, tokenizer, stage, pairs)?;
    Ok(tally.effects())
}

/// Carry-flip counts of one stage, added to chunk by chunk, read as [`FlipEffect`]s.
#[derive(Clone, Debug)]
pub struct FlipTally {
    stage_id: String,
    probes: Vec<FlipCounts>,
}

/// One carry probe's flip and its counts.
#[derive(Clone, Debug)]
struct FlipCounts {
    slot: usize,
    column: usize,
    /// The probe's held-out accuracy.
    accuracy: f64,
    edit: Intervention,
    problems: usize,
    unchanged: usize,
    as_carry: usize,
}

impl FlipTally {
    /// Resolves the flip of every carry probe of `ctx`'s probes (refused without probes).
    pub fn new(ctx: &PatchContext<'_>, stage_id: &str) -> Result<FlipTally, String> {
        let probes = ctx.probes.ok_or("this stage has no probes")?;
        let carries = probes
            .scores
            .iter()
            .filter(|s| s.quantity == Quantity::Carry);
        let probes = carries
            .map(|score| {
                let (slot, column) = (score.slot, score.column);
                let edit = ctx.resolve(&PatchSpec::FlipCarry { slot, column })?;
                Ok(FlipCounts {
                    slot,
                    column,
                    accuracy: score.accuracy,
                    edit,
                    problems: 0,
                    unchanged: 0,
                    as_carry: 0,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(FlipTally {
            stage_id: stage_id.to_string(),
            probes,
        })
    }

    /// Counts `problems` under every flip.
    pub fn add(&mut self, ctx: &PatchContext<'_>, problems: &[Problem]) -> Result<(), String> {
        for f in &mut self.probes {
            for p in problems {
                if ctx.stage.thoughts_of(p) <= f.slot {
                    continue;
                }
                let edits = std::slice::from_ref(&f.edit);
                let got = answer(ctx.model, ctx.tokenizer, ctx.stage, p, edits)
                    .map_err(|e| e.to_string())?;
                f.problems += 1;
                f.unchanged += usize::from(got == Some(p.answer()));
                f.as_carry += usize::from(got.is_some() && got == carry_flipped(p, f.column));
            }
        }
        Ok(())
    }

    /// The effects counted so far, one per carry probe.
    pub fn effects(&self) -> Vec<FlipEffect> {
        self.probes
            .iter()
            .map(|f| FlipEffect {
                stage: self.stage_id.clone(),
                slot: f.slot,
                column: f.column,
                problems: f.problems,
                unchanged: percent(f.unchanged, f.problems),
                as_the_carry_would: percent(f.as_carry, f.problems),
                probe_accuracy: f.accuracy,
            })
            .collect()
    }
}

/// Flips every column's carry probe of `ctx`'s probes at every thought slot, on `problems`.
pub fn flip_effects(
    ctx: &PatchContext<'_>,
    stage_id: &str,
    problems: &[Problem],
) -> Result<Vec<FlipEffect>, String> {
    let mut tally = FlipTally::new(ctx, stage_id)?;
    tally.add(ctx, problems)?;
    Ok(tally.effects())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_by_column_stop_at_the_number_s_length() {
        assert_eq!(digit(632, 0), Some(2));
        assert_eq!(digit(632, 2), Some(6));
        assert_eq!(digit(632, 3), None);
        assert_eq!(digit(0, 0), Some(0));
        assert_eq!(digit(10000, 4), Some(1));
    }

    #[test]
    fn counting_in_chunks_gives_the_numbers_of_one_pass() {
        let config = crate::ModelConfig {
            n_positions: 48,
            n_embd: 16,
            n_layer: 1,
            n_head: 2,
            ..crate::ModelConfig::default()
        };
        let model = ReferenceModel::new(&crate::weights::random_weights(&config, 3));
        let tokenizer = Tokenizer::new();
        let pairs: Vec<(Problem, Problem)> = [(12, 7), (345, 6), (1, 2), (99, 99), (5, 50)]
            .iter()
            .zip([(3, 4), (88, 12), (7, 777), (10, 1), (6, 6)])
            .map(|(&(a, b), (c, d))| (Problem::new(a, b), Problem::new(c, d)))
            .collect();
        let stage = Stage::latent(2, 1, 5);
        let whole = patch_effects(&model, &tokenizer, &stage, "stage2", &pairs, 5).unwrap();
        assert_eq!(whole.len(), 2);
        assert!(whole
            .iter()
            .all(|e| e.pairs == 5 && e.column_took_b.len() == 5));
        let mut tally = PatchTally::new("stage2", 5);
        for chunk in pairs.chunks(2) {
            tally.add(&model, &tokenizer, &stage, chunk).unwrap();
        }
        assert_eq!(tally.effects(), whole);
    }

    #[test]
    fn a_flipped_carry_moves_the_sum_by_the_next_column() {
        let p = Problem::new(347, 285); // 7+5 carries, 4+8+1 carries, 3+2+1 does not
        assert_eq!(carry_flipped(&p, 0), Some(632 - 10));
        assert_eq!(carry_flipped(&p, 1), Some(632 - 100));
        assert_eq!(carry_flipped(&p, 2), Some(632 + 1000));
        assert_eq!(carry_flipped(&Problem::new(1, 2), 0), Some(13));
    }
}
