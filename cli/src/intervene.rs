//! `coconut intervene`: solves problems on a stage as trained and with some thoughts edited (core's
//! `intervention`, on the reference engine), and shows both answers: replace a thought by the
//! same thought of another problem, zero it, or flip what a column's carry probe reads in it.

use crate::args::InterveneArgs;
use anyhow::{bail, Context, Result};
use coconut_core::decoding::Solution;
use coconut_core::intervention::{Intervention, PatchContext, PatchSpec};
use coconut_core::manifest::WeightsDir;
use coconut_core::probes::ThoughtProbes;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use serde_json::json;

/// The folder a measurement reads and its stages (`--stage`, or every one when empty).
fn measured(args: &InterveneArgs) -> Result<(WeightsDir, Vec<String>)> {
    let stages = match &args.stage {
        Some(s) => vec![crate::args::stage_id(s)?],
        None => Vec::new(),
    };
    Ok((WeightsDir::open(&args.weights)?, stages))
}

/// `coconut intervene --measure N`: the patching table (and JSON).
fn run_measure(args: &InterveneArgs, pairs: usize) -> Result<u8> {
    let (folder, stages) = measured(args)?;
    let effects = coconut_trainer::patching::measure_patching(&folder, &stages, pairs, |id| {
        eprintln!("patching {id}...")
    })?;
    // Per column: the percent of pairs (whose sums differ there) where the patched answer has
    // B's digit.
    let columns = effects.first().map_or(0, |e| e.column_took_b.len());
    let heads: String = (0..columns)
        .map(|c| format!("{:>7}", format!("col{c}")))
        .collect();
    println!(
        "{:<8} {:>4} {:>6} {:>10} {:>8}{heads}",
        "stage", "slot", "pairs", "unchanged%", "=B%"
    );
    for e in &effects {
        let cells: String = e
            .column_took_b
            .iter()
            .map(|(p, _)| format!("{p:>7.1}"))
            .collect();
        println!(
            "{:<8} {:>4} {:>6} {:>10.1} {:>8.1}{cells}",
            e.stage, e.slot, e.pairs, e.unchanged, e.became_b
        );
    }
    write_measure_json(args, serde_json::to_string_pretty(&effects)?)?;
    Ok(0)
}

/// `coconut intervene --measure-flips N`: the carry-flip table (and JSON).
fn run_measure_flips(args: &InterveneArgs, problems: usize) -> Result<u8> {
    let (folder, stages) = measured(args)?;
    let effects = coconut_trainer::patching::measure_flips(&folder, &stages, problems, |id| {
        eprintln!("flipping carries in {id}...")
    })?;
    println!(
        "{:<8} {:>4} {:>6} {:>8} {:>10} {:>12} {:>8}",
        "stage", "slot", "column", "problems", "unchanged%", "as-carry%", "probe%"
    );
    for e in &effects {
        println!(
            "{:<8} {:>4} {:>6} {:>8} {:>10.1} {:>12.1} {:>8.1}",
            e.stage,
            e.slot,
            e.column,
            e.problems,
            e.unchanged,
            e.as_the_carry_would,
            e.probe_accuracy
        );
    }
    write_measure_json(args, serde_json::to_string_pretty(&effects)?)?;
    Ok(0)
}

/// `--measure-json`, if given: `json` written there.
fn write_measure_json(args: &InterveneArgs, json: String) -> Result<()> {
    if let Some(path) = &args.measure_json {
        coconut_trainer::checkpoint::write_atomic(path, json.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `coconut intervene`; returns the exit code (1 if a problem was refused).
pub fn run_intervene(args: InterveneArgs) -> Result<u8> {
    if let Some(pairs) = args.measure {
        return run_measure(&args, pairs);
    }
    if let Some(problems) = args.measure_flips {
        return run_measure_flips(&args, problems);
    }
    if args.measure_json.is_some() {
        bail!("--measure-json goes with --measure or --measure-flips");
    }
    let folder = WeightsDir::open(&args.weights)?;
    let stage_id = match &args.stage {
        Some(s) => s.clone(),
        None => coconut_core::problem::max_steps(folder.manifest.max_digits).to_string(),
    };
    let (entry, stage, weights) = folder.stage(&stage_id)?;
    let tokenizer = folder.tokenizer()?;
    let model = ReferenceModel::new(&weights);
    let probes = match &args.probes {
        Some(path) => {
            let bytes = coconut_core::files::read_regular(path, 64 << 20)
                .with_context(|| format!("reading {}", path.display()))?;
            let probes = ThoughtProbes::from_safetensors(&path.display().to_string(), &bytes)?;
            if probes.width() != Some(folder.manifest.model.n_embd) {
                bail!(
                    "{}: its probes read thoughts of width {:?}, the model's is {}",
                    path.display(),
                    probes.width(),
                    folder.manifest.model.n_embd
                );
            }
            Some(probes)
        }
        None => folder.probes(&entry)?,
    };
    let ctx = PatchContext {
        model: &model,
        tokenizer: &tokenizer,
        stage: &stage,
        max_digits: folder.manifest.max_digits,
        probes: probes.as_ref(),
    };
    if probes.is_none() {
        if let Some(flip) = args
            .patch
            .iter()
            .find(|p| matches!(p, PatchSpec::FlipCarry { .. }))
        {
            bail!(
                "--patch {flip}: a flip reads the carry probe, and the weights folder ships none \
                 for this stage; give --probes FILE (`coconut probe --out`)"
            );
        }
    }
    let edits = args
        .patch
        .iter()
        .map(|spec| ctx.resolve(spec).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
        .context("--patch")?;
    let solve = |p: &Problem, edits: &[Intervention]| {
        model.solve_edited(&tokenizer, p, &stage, false, edits)
    };
    let patches: Vec<String> = args.patch.iter().map(ToString::to_string).collect();
    let mut refused = false;
    for input in &crate::solve::argument_lines(&args.problems) {
        let result = Problem::parse(input, ctx.max_digits)
            .map_err(anyhow::Error::from)
            .and_then(|p| Ok((p, solve(&p, &[])?, solve(&p, &edits)?)));
        let (problem, plain, edited) = match result {
            Ok(r) => r,
            Err(e) => {
                refused = true;
                eprintln!("{input}: {e:#}");
                continue;
            }
        };
        let verdict = |s: &Solution| if s.is_correct() { "correct" } else { "wrong" };
        if args.json {
            let object = json!({
                "input": input,
                "stage": entry.id,
                "patches": patches,
                "answer": plain.answer,
                "edited_answer": edited.answer,
                "expected": problem.answer().to_string(),
                "text": plain.text,
                "edited_text": edited.text,
            });
            println!("{object}");
        } else {
            println!(
                "{} + {} on {} (the sum is {})",
                problem.a,
                problem.b,
                entry.id,
                problem.answer()
            );
            println!(
                "  as trained: {}  [{}]",
                plain.answer.as_deref().unwrap_or("(none)"),
                verdict(&plain)
            );
            println!(
                "  edited ({}): {}  [{}]",
                patches.join(", "),
                edited.answer.as_deref().unwrap_or("(none)"),
                verdict(&edited)
            );
        }
    }
    Ok(refused as u8)
}
