//! Activation patching of thoughts, measured: for pairs of held-out problems (A, B), thought j of
//! A is replaced by thought j of B (same stage, reference engine) and the answer A's run then
//! writes is compared with A's sum and B's, column by column. Where a thought carries a column's
//! result forward, that column's digit follows B.
//!
//! And carry flips, measured: thought j is reflected across column c's carry probe (what the
//! probe reads flips, nothing orthogonal to it changes). Flipping the carry out of column c moves
//! the sum by exactly 10^(c+1), down if the column carried and up if it did not: the answer
//! changes "the way the carry would" when it is that number.

use anyhow::{ensure, Context, Result};
use coconut_core::intervention::{Edit, Intervention, PatchContext, PatchSpec};
use coconut_core::manifest::WeightsDir;
use coconut_core::probes::Quantity;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use serde::Serialize;

/// What patching one thought slot did over all pairs.
#[derive(Clone, Debug, Serialize)]
pub struct PatchEffect {
    pub stage: String,
    pub slot: usize,
    pub pairs: usize,
    /// Percent of pairs whose patched answer is still A's sum.
    pub unchanged: f64,
    /// Percent of pairs whose patched answer is B's sum.
    pub became_b: f64,
    /// Per column (least significant first): among the pairs whose sums differ in that column,
    /// the percent whose patched answer has B's digit there, and how many pairs that was.
    pub column_took_b: Vec<(f64, usize)>,
}

/// Digit `column` of `n` (least significant first), or `None` past its last digit.
fn digit(n: u64, column: usize) -> Option<u64> {
    let p = 10u64.checked_pow(column as u32)?;
    (column == 0 || n >= p).then(|| (n / p) % 10)
}

/// The number a run writes with `edits`, if it writes one.
fn answer(
    model: &ReferenceModel,
    tokenizer: &Tokenizer,
    stage: &Stage,
    problem: &Problem,
    edits: &[Intervention],
) -> Result<Option<u64>> {
    let solution = model.solve_edited(tokenizer, problem, stage, false, edits)?;
    Ok(solution.answer.and_then(|t| t.parse().ok()))
}

/// The tokenizer and the first `n` held-out test problems of `dir` (the set of its manifest's
/// figures).
fn held_out(dir: &WeightsDir, n: usize) -> Result<(Tokenizer, Vec<Problem>)> {
    let mut test = dir.manifest.test_data().test_set()?;
    ensure!(
        n <= test.len(),
        "at most {} held-out test problems, {n} asked",
        test.len()
    );
    test.truncate(n);
    Ok((dir.tokenizer()?, test))
}

/// Patches every thought slot of every latent stage named in `stages` (all with fed-back thoughts
/// when empty), over `pairs` pairs of held-out test problems (A = test[2i], B = test[2i + 1]).
pub fn measure_patching(
    dir: &WeightsDir,
    stages: &[String],
    pairs: usize,
    mut progress: impl FnMut(&str),
) -> Result<Vec<PatchEffect>> {
    let (tokenizer, test) =
        held_out(dir, 2 * pairs).with_context(|| format!("{pairs} pairs of problems"))?;
    let columns = dir.manifest.max_digits + 1;
    let mut effects = Vec::new();
    for entry in crate::probe::thought_stages(dir, stages)? {
        progress(&entry.id);
        let (_, stage, weights) = dir.stage(&entry.id)?;
        let model = ReferenceModel::new(&weights);
        let (a_set, b_set): (Vec<Problem>, Vec<Problem>) =
            test.chunks_exact(2).map(|pair| (pair[0], pair[1])).unzip();
        // B's thoughts, run once for every slot.
        let b_thoughts = crate::probe::thoughts(&model, &tokenizer, &b_set, &stage)?;
        for slot in 0..entry.thoughts {
            let (mut unchanged, mut became_b, mut used) = (0, 0, 0);
            let mut took = vec![(0usize, 0usize); columns];
            for ((a, b), thoughts) in a_set.iter().zip(&b_set).zip(&b_thoughts) {
                // With coupled ids a shorter problem has fewer thoughts: pairs that both have
                // the slot.
                if thoughts.len() <= slot || stage.thoughts_for(a.columns()) <= slot {
                    continue;
                }
                used += 1;
                let edit = Intervention {
                    slot,
                    edit: Edit::Replace(thoughts[slot].clone()),
                };
                let got = answer(&model, &tokenizer, &stage, a, &[edit])?;
                unchanged += (got == Some(a.answer())) as usize;
                became_b += (got == Some(b.answer())) as usize;
                for (column, (n, hits)) in took.iter_mut().enumerate() {
                    let (da, db) = (digit(a.answer(), column), digit(b.answer(), column));
                    if da != db {
                        *n += 1;
                        *hits += (got.and_then(|g| digit(g, column)) == db) as usize;
                    }
                }
            }
            let percent = |k: usize, n: usize| 100.0 * k as f64 / n.max(1) as f64;
            effects.push(PatchEffect {
                stage: entry.id.clone(),
                slot,
                pairs: used,
                unchanged: percent(unchanged, used),
                became_b: percent(became_b, used),
                column_took_b: took.iter().map(|&(n, k)| (percent(k, n), n)).collect(),
            });
        }
    }
    Ok(effects)
}

/// What flipping one column's carry probe at one thought slot did over all problems.
#[derive(Clone, Debug, Serialize)]
pub struct FlipEffect {
    pub stage: String,
    pub slot: usize,
    pub column: usize,
    pub problems: usize,
    /// Percent of problems whose answer stayed the sum.
    pub unchanged: f64,
    /// Percent whose answer became the sum with column `column`'s carry flipped
    /// (sum - 10^(column+1) where it carried, sum + 10^(column+1) where it did not).
    pub as_the_carry_would: f64,
    /// The carry probe's held-out accuracy (percent), for reading the row.
    pub probe_accuracy: f64,
}

/// The sum of `p` with the carry out of `column` flipped.
fn carry_flipped(p: &Problem, column: usize) -> Option<u64> {
    let step = 10u64.checked_pow(column as u32 + 1)?;
    match Quantity::Carry.label(p, column) {
        1 => p.answer().checked_sub(step),
        _ => p.answer().checked_add(step),
    }
}

/// Flips every column's carry probe at every thought slot of every latent stage named in
/// `stages` (all with fed-back thoughts and shipped probes when empty) on the first `problems`
/// held-out test problems.
pub fn measure_flips(
    dir: &WeightsDir,
    stages: &[String],
    problems: usize,
    mut progress: impl FnMut(&str),
) -> Result<Vec<FlipEffect>> {
    let (tokenizer, test) = held_out(dir, problems)?;
    let mut effects = Vec::new();
    for entry in crate::probe::thought_stages(dir, stages)? {
        let Some(probes) = dir.probes(entry)? else {
            ensure!(
                stages.is_empty(),
                "{}: the weights folder ships no probes for it (coconut probe --ship)",
                entry.id
            );
            continue;
        };
        progress(&entry.id);
        let (_, stage, weights) = dir.stage(&entry.id)?;
        let model = ReferenceModel::new(&weights);
        let ctx = PatchContext {
            model: &model,
            tokenizer: &tokenizer,
            stage: &stage,
            max_digits: dir.manifest.max_digits,
            probes: Some(&probes),
        };
        for score in probes
            .scores
            .iter()
            .filter(|s| s.quantity == Quantity::Carry)
        {
            let (slot, column) = (score.slot, score.column);
            let edit = ctx
                .resolve(&PatchSpec::FlipCarry { slot, column })
                .map_err(anyhow::Error::msg)?;
            let (mut unchanged, mut as_carry) = (0, 0);
            let having: Vec<&Problem> = test
                .iter()
                .filter(|p| stage.thoughts_for(p.columns()) > slot)
                .collect();
            for p in having.iter().copied() {
                let got = answer(&model, &tokenizer, &stage, p, std::slice::from_ref(&edit))?;
                unchanged += (got == Some(p.answer())) as usize;
                as_carry += (got.is_some() && got == carry_flipped(p, column)) as usize;
            }
            let percent = |k: usize| 100.0 * k as f64 / having.len().max(1) as f64;
            effects.push(FlipEffect {
                stage: entry.id.clone(),
                slot,
                column,
                problems: having.len(),
                unchanged: percent(unchanged),
                as_the_carry_would: percent(as_carry),
                probe_accuracy: score.accuracy,
            });
        }
    }
    Ok(effects)
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
    fn a_flipped_carry_moves_the_sum_by_the_next_column() {
        let p = Problem::new(347, 285); // 7+5 carries, 4+8+1 carries, 3+2+1 does not
        assert_eq!(carry_flipped(&p, 0), Some(632 - 10));
        assert_eq!(carry_flipped(&p, 1), Some(632 - 100));
        assert_eq!(carry_flipped(&p, 2), Some(632 + 1000));
        assert_eq!(carry_flipped(&Problem::new(1, 2), 0), Some(13));
    }
}
