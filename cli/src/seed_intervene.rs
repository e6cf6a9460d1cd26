//! `coconut intervene` on a folder of the seed's family (an imported GPT-2 Coconut checkpoint):
//! each problem solved as trained and with thoughts edited, on the reference engine, through
//! the seed's own decoder. A thought can be zeroed (`J=zero`) or replaced by the same thought of
//! another problem (`J=from:A+B`, run under the same thought count). Flips read a carry probe,
//! and no probes are fitted for the seed's thoughts: refused by name.

use crate::args::EngineKind;
use crate::args::InterveneArgs;
use crate::intervene_report::{report, Outcome};
use crate::seed::{check_seed_problem, SeedModel, SeedRunner};
use anyhow::{bail, Context, Result};
use coconut_core::decoding::Generation;
use coconut_core::intervention::{Edit, Intervention, PatchSpec};
use coconut_core::manifest::WeightsDir;
use coconut_core::reference::ReferenceModel;
use coconut_core::seed::layout::ThoughtCount;
use coconut_core::Problem;
use coconut_trainer::seed::SeedEngine;

/// One run of a problem: the sequence as text and the answer it reads.
struct Run {
    text: String,
    answer: Option<String>,
    thoughts: Vec<Vec<f32>>,
}

/// Runs `coconut intervene` on a seed folder; returns the exit code (1 if a problem was refused).
pub fn run(folder: &WeightsDir, args: &InterveneArgs) -> Result<u8> {
    if args.measure.is_some() || args.measure_flips.is_some() {
        bail!(
            "{}: --measure and --measure-flips draw this project's own held-out problems; for the \
             seed's model, edit thoughts of given problems (--patch J=zero, J=from:A+B)",
            folder.dir.display()
        );
    }
    if args.probes.is_some()
        || args
            .patch
            .iter()
            .any(|p| matches!(p, PatchSpec::FlipCarry { .. }))
    {
        bail!(
            "{}: a flip (J=flip:C, --probes) reads a carry probe, and none is fitted for the seed's \
             thoughts; use J=zero or J=from:A+B",
            folder.dir.display()
        );
    }
    let stage = args
        .stage
        .as_deref()
        .map(crate::args::stage_id)
        .transpose()?;
    let seed = SeedModel::load(folder, stage.as_deref(), EngineKind::Reference)?;
    let SeedRunner::Cpu(SeedEngine::Reference(model)) = &seed.engine else {
        unreachable!("loaded on the reference engine")
    };
    let edits = args
        .patch
        .iter()
        .map(|spec| resolve(&seed, model, spec, args.thoughts))
        .collect::<Result<Vec<_>>>()
        .context("--patch")?;
    report(args, &seed.id, |input| {
        let p = Problem::parse(input, 4)?;
        check_seed_problem(&p)?;
        let outcome = |run: Run| Outcome {
            correct: run.answer == Some(p.answer().to_string()),
            answer: run.answer,
            text: run.text,
        };
        let plain = solve(&seed, model, &p, args.thoughts, &[])?;
        let edited = solve(&seed, model, &p, args.thoughts, &edits)?;
        Ok((p, outcome(plain), outcome(edited)))
    })
}

/// A greedy run of `problem` with `edits` applied to its thoughts (refused, naming the counts,
/// when an edit's thought is past the ones this problem gets).
fn solve(
    seed: &SeedModel,
    model: &ReferenceModel,
    problem: &Problem,
    count: ThoughtCount,
    edits: &[Intervention],
) -> Result<Run> {
    let decoder = seed.decoder(problem, count)?;
    let Generation {
        ids,
        prompt_len,
        thoughts,
        ..
    } = model.run_decoder_edited(decoder, false, edits)?;
    Ok(Run {
        answer: seed.answer(&ids, prompt_len),
        text: seed.text(&ids),
        thoughts,
    })
}

/// The edit a `--patch` means on the seed's model: zeros, or the other problem's thought.
fn resolve(
    seed: &SeedModel,
    model: &ReferenceModel,
    spec: &PatchSpec,
    count: ThoughtCount,
) -> Result<Intervention> {
    let edit = match spec {
        PatchSpec::Zero { .. } => Edit::Zero,
        PatchSpec::From { slot, problem } => {
            let other = Problem::parse(problem, 4).with_context(|| format!("{spec}"))?;
            check_seed_problem(&other).with_context(|| format!("{spec}"))?;
            let run = solve(seed, model, &other, count, &[])?;
            let thought = run.thoughts.get(*slot).with_context(|| {
                format!(
                    "{spec}: {other} gets {} thoughts at {}",
                    run.thoughts.len(),
                    seed.id
                )
            })?;
            Edit::Replace(thought.clone())
        }
        PatchSpec::FlipCarry { .. } => unreachable!("flips are refused before"),
    };
    Ok(Intervention {
        slot: spec.slot(),
        edit,
    })
}
