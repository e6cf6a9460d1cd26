//! Golden activations: what the trainer's (candle) model computes for a few fixed problems, written
//! to JSON so engines that cannot run candle (the reference engine, the WGSL engine in the browser)
//! are checked against the model the weights were trained with. The reference engine stays the
//! oracle (the plainest statement of the maths, see `coconut_core::decoding`); these files tie the
//! training code to it.
//!
//! Per problem and stage: the whole greedy sequence, every thought vector fed back, and the LM-head
//! logits at every position that was run.

use crate::model::{to_host, Gpt};
use anyhow::Result;
use candle_core::Tensor;
use coconut_core::decoder::{Decoder, Feed};
use coconut_core::decoding::argmax;
use coconut_core::golden::{GoldenRun, GoldenStage, GOLDEN_PROBLEMS};
use coconut_core::layout::prompt;
use coconut_core::problem::Problem;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::{Tokenizer, LATENT};
use std::path::Path;

/// Runs one problem position by position with the KV cache, as every engine does.
pub fn golden_run(
    model: &Gpt,
    tokenizer: &Tokenizer,
    problem: &Problem,
    stage: &Stage,
) -> Result<GoldenRun> {
    let mut cache = model.new_cache();
    let c = model.config().n_embd;
    let device = model.device().clone();
    let prompt = prompt(tokenizer, problem, stage)?;
    let mut decoder = Decoder::new(&prompt, stage, model.config().n_positions)?;
    anyhow::ensure!(
        !decoder.plan().on_trigger,
        coconut_core::decoding::NO_TRIGGER
    );
    let feeds_back = decoder.plan().feeds_back;
    let mut thoughts = Vec::new();
    let mut logits: Vec<Vec<f32>> = Vec::new();
    // Runs one position at its position id.
    let mut run_position = |input: &Tensor, position_id: usize, logits: &mut Vec<Vec<f32>>| {
        let id = Tensor::from_vec(vec![position_id as u32], (1, 1), &device)?;
        let input = input.reshape((1, 1, c))?;
        let hidden = model.forward_at(&input, Some(&id), Some(&mut cache))?; // (1, 1, C)
        logits.push(to_host(&model.logits(&hidden)?)?);
        Ok::<_, anyhow::Error>(hidden)
    };
    let mut hidden: Option<Tensor> = None;
    loop {
        let predicted = logits.last().map(|l| argmax(l));
        match decoder.next(|| predicted.expect("the prompt runs first")) {
            Feed::Token { id, position_id } => {
                let input = model.token_embedding(id)?;
                hidden = Some(run_position(&input, position_id, &mut logits)?);
            }
            Feed::Thought { position_id, .. } => {
                let input = match (&hidden, feeds_back) {
                    (Some(h), true) => h.reshape(c)?,
                    _ => model.token_embedding(LATENT)?,
                };
                thoughts.push(to_host(&input)?);
                hidden = Some(run_position(&input, position_id, &mut logits)?);
            }
            Feed::Stop { .. } => break,
        }
    }
    let ids = decoder.into_ids();
    Ok(GoldenRun {
        a: problem.a,
        b: problem.b,
        ids,
        thoughts,
        logits,
    })
}

/// Golden runs of every fixed problem for one stage.
pub fn golden_stage(model: &Gpt, tokenizer: &Tokenizer, stage: &Stage) -> Result<GoldenStage> {
    let runs = GOLDEN_PROBLEMS
        .iter()
        .map(|&(a, b)| golden_run(model, tokenizer, &Problem::new(a, b), stage))
        .collect::<Result<_>>()?;
    Ok(GoldenStage {
        stage: stage.id(),
        runs,
    })
}

/// Writes golden activations for every stage of the weights folder `folder` to `out`; returns
/// how many stages.
pub fn golden_folder(folder: &coconut_core::manifest::WeightsDir, out: &Path) -> Result<usize> {
    let tokenizer = folder.tokenizer()?;
    let mut stages = Vec::new();
    for entry in &folder.manifest.stages {
        let (_, stage, weights) = folder.stage(&entry.id)?;
        let model = Gpt::from_weights(&weights, &candle_core::Device::Cpu)?;
        stages.push(golden_stage(&model, &tokenizer, &stage)?);
    }
    write_golden(&stages, out)?;
    Ok(stages.len())
}

pub fn write_golden(stages: &[GoldenStage], out: &Path) -> Result<()> {
    crate::checkpoint::write_atomic(out, serde_json::to_string(stages)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::stage::Positions;

    #[test]
    fn golden_runs_agree_with_the_reference_engine() {
        let (reference, model, tok) = crate::test_support::oracle_and_candle(21);
        let absolute = Stage::latent(3, 1, 5);
        let coupled = absolute.with_positions(Positions::COUPLED);
        for stage in [absolute, coupled] {
            let golden = golden_stage(&model, &tok, &stage).unwrap();
            assert_eq!(golden.runs.len(), GOLDEN_PROBLEMS.len());
            for run in &golden.runs {
                let p = Problem::new(run.a, run.b);
                let s = reference.solve(&tok, &p, &stage, true).unwrap();
                assert_eq!(s.generation.ids, run.ids);
                assert_eq!(run.thoughts.len(), stage.thoughts_of(&p));
                let trace = s.generation.trace.unwrap();
                assert_eq!(trace.logits.len(), run.logits.len());
                for (a, b) in run.logits.iter().zip(&trace.logits) {
                    assert!(coconut_core::compare::relative_error(a, b) < 1e-5);
                }
            }
        }
    }
}
