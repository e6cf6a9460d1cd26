//! The patching and carry-flip measurements of a weights folder (`coconut intervene --measure`,
//! `--measure-flips`): every latent stage, on its manifest's held-out test problems, through
//! core's [`coconut_core::effects`] (the code the page runs too).

use crate::probe::{on_each_stage, thought_stages};
use anyhow::{ensure, Context, Result};
use coconut_core::effects::{flip_effects, patch_effects};
pub use coconut_core::effects::{FlipEffect, PatchEffect};
use coconut_core::intervention::PatchContext;
use coconut_core::manifest::WeightsDir;
use coconut_core::problem::Problem;
use coconut_core::tokenizer::Tokenizer;

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
    let problems = pairs
        .checked_mul(2)
        .with_context(|| format!("{pairs} pairs of problems: too many"))?;
    let (tokenizer, test) =
        held_out(dir, problems).with_context(|| format!("{pairs} pairs of problems"))?;
    let pairs: Vec<(Problem, Problem)> = test.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let columns = dir.manifest.max_digits + 1;
    let entries = thought_stages(dir, stages)?;
    on_each_stage(dir, &entries, &mut progress, |id, stage, model| {
        Ok(patch_effects(
            model, &tokenizer, stage, id, &pairs, columns,
        )?)
    })
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
    let mut probed = Vec::new();
    for entry in thought_stages(dir, stages)? {
        match dir.probes(entry)? {
            Some(probes) => probed.push((entry, probes)),
            None => ensure!(
                stages.is_empty(),
                "{}: the weights folder ships no probes for it (coconut probe --ship)",
                entry.id
            ),
        }
    }
    let entries: Vec<_> = probed.iter().map(|(entry, _)| *entry).collect();
    on_each_stage(dir, &entries, &mut progress, |id, stage, model| {
        let ctx = PatchContext {
            model,
            tokenizer: &tokenizer,
            stage,
            max_digits: dir.manifest.max_digits,
            probes: probed.iter().find(|(e, _)| e.id == id).map(|(_, p)| p),
        };
        flip_effects(&ctx, id, &test).map_err(anyhow::Error::msg)
    })
}
