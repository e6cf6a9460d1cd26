//! `coconut intervene`: solves problems on a stage as trained and with some thoughts edited (core's
//! `intervention`, on the reference engine), and shows both answers: replace a thought by the
//! same thought of another problem, zero it, or flip what a column's carry probe reads in it.

use crate::args::InterveneArgs;
use crate::intervene_report::{report, Outcome};
use crate::output::{note, outln};
use anyhow::{bail, Context, Result};
use coconut_core::decoding::Solution;
use coconut_core::intervention::{Intervention, PatchContext, PatchSpec};
use coconut_core::manifest::{StageEntry, WeightsDir};
use coconut_core::probes::ThoughtProbes;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;

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
        note!("patching {id}...")
    })?;
    // Per column: the percent of pairs (whose sums differ there) where the patched answer has
    // B's digit.
    let columns = effects.first().map_or(0, |e| e.column_took_b.len());
    let heads: String = (0..columns)
        .map(|c| format!("{:>7}", format!("col{c}")))
        .collect();
    outln!(
        "{:<8} {:>4} {:>6} {:>10} {:>8}{heads}",
        "stage",
        "slot",
        "pairs",
        "unchanged%",
        "=B%"
    )?;
    for e in &effects {
        let cells: String = e
            .column_took_b
            .iter()
            .map(|(p, _)| format!("{p:>7.1}"))
            .collect();
        outln!(
            "{:<8} {:>4} {:>6} {:>10.1} {:>8.1}{cells}",
            e.stage,
            e.slot,
            e.pairs,
            e.unchanged,
            e.became_b
        )?;
    }
    write_measure_json(args, serde_json::to_string_pretty(&effects)?)?;
    Ok(0)
}

/// `coconut intervene --measure-flips N`: the carry-flip table (and JSON).
fn run_measure_flips(args: &InterveneArgs, problems: usize) -> Result<u8> {
    let (folder, stages) = measured(args)?;
    let effects = coconut_trainer::patching::measure_flips(&folder, &stages, problems, |id| {
        note!("flipping carries in {id}...")
    })?;
    outln!(
        "{:<8} {:>4} {:>6} {:>8} {:>10} {:>12} {:>8}",
        "stage",
        "slot",
        "column",
        "problems",
        "unchanged%",
        "as-carry%",
        "probe%"
    )?;
    for e in &effects {
        outln!(
            "{:<8} {:>4} {:>6} {:>8} {:>10.1} {:>12.1} {:>8.1}",
            e.stage,
            e.slot,
            e.column,
            e.problems,
            e.unchanged,
            e.as_the_carry_would,
            e.probe_accuracy
        )?;
    }
    write_measure_json(args, serde_json::to_string_pretty(&effects)?)?;
    Ok(0)
}

/// `--measure-json`, if given: `json` written there.
fn write_measure_json(args: &InterveneArgs, json: String) -> Result<()> {
    if let Some(path) = &args.measure_json {
        coconut_trainer::checkpoint::write_atomic(path, json.as_bytes())?;
        note!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `coconut intervene`; returns the exit code (1 if a problem was refused).
pub fn run_intervene(args: InterveneArgs) -> Result<u8> {
    if let Some(path) = &args.measure_json {
        if args.measure.is_none() && args.measure_flips.is_none() {
            bail!("--measure-json goes with --measure or --measure-flips");
        }
        crate::output::check_output(path, "--measure-json")?;
    }
    let folder = WeightsDir::open(&args.weights)?;
    if folder.manifest.family.layout == coconut_core::family::LayoutFamily::Seed {
        return crate::seed_intervene::run(&folder, &args);
    }
    if let Some(pairs) = args.measure {
        return run_measure(&args, pairs);
    }
    if let Some(problems) = args.measure_flips {
        return run_measure_flips(&args, problems);
    }
    let stage_id = match &args.stage {
        Some(s) => s.clone(),
        None => coconut_core::problem::max_steps(folder.manifest.max_digits).to_string(),
    };
    let (entry, stage, weights) = folder.stage(&stage_id)?;
    let tokenizer = folder.tokenizer()?;
    let model = ReferenceModel::new(&weights);
    let probes = match &args.probes {
        Some(path) => Some(read_probes(path, &entry, folder.manifest.model.n_embd)?),
        None => folder.probes(&entry)?,
    };
    let ctx = PatchContext {
        model: &model,
        tokenizer: &tokenizer,
        stage: &stage,
        // The operands `solve` takes on this stage (coupled stages: up to the longest measured).
        max_digits: folder.manifest.accepted_digits(&entry),
        probes: probes.as_ref(),
    };
    let edits = resolve_edits(&args.patch, &ctx)?;
    report(&args, &entry.id, |input| {
        let p = Problem::parse(input, ctx.max_digits)?;
        let (p, plain, edited) = solve_both(&ctx, &entry.id, &p, &edits)?;
        Ok((p, Outcome::of(plain), Outcome::of(edited)))
    })
}

/// The edits `--patch` asks for on this stage, refused (before any problem) when the stage cannot
/// have them.
fn resolve_edits(patch: &[PatchSpec], ctx: &PatchContext) -> Result<Vec<Intervention>> {
    if ctx.probes.is_none() {
        if let Some(flip) = patch
            .iter()
            .find(|p| matches!(p, PatchSpec::FlipCarry { .. }))
        {
            bail!(
                "--patch {flip}: a flip reads the carry probe, and the weights folder ships none \
                 for this stage; give --probes FILE (`coconut probe --out`)"
            );
        }
    }
    patch
        .iter()
        .map(|spec| ctx.resolve(spec).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
        .context("--patch")
}

/// Reads a probes file given with `--probes` for the stage `entry`, refusing probes of another
/// stage or width.
fn read_probes(path: &std::path::Path, entry: &StageEntry, width: usize) -> Result<ThoughtProbes> {
    let bytes = coconut_core::files::read_regular(path, 64 << 20)
        .with_context(|| format!("reading {}", path.display()))?;
    let probes = ThoughtProbes::from_safetensors(&path.display().to_string(), &bytes)?;
    probes
        .check_stage(&entry.id)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if probes.width() != Some(width) {
        bail!(
            "{}: its probes read thoughts of width {:?}, the model's is {width}",
            path.display(),
            probes.width(),
        );
    }
    Ok(probes)
}

/// A problem solved as trained and with `edits`; an edit of a thought this problem does not have
/// is refused naming both counts (the problem's, and the stage's most).
fn solve_both(
    ctx: &PatchContext,
    stage_id: &str,
    problem: &Problem,
    edits: &[Intervention],
) -> Result<(Problem, Solution, Solution)> {
    let has = ctx.stage.thoughts_of(problem);
    if let Some(edit) = edits.iter().find(|e| e.slot >= has) {
        bail!(
            "thought {} does not exist: {problem} has {has} thoughts at {stage_id} (numbered from \
             0; up to {} for {}-digit operands)",
            edit.slot,
            ctx.stage.most_thoughts(ctx.max_digits),
            ctx.max_digits
        );
    }
    let solve = |edits: &[Intervention]| {
        ctx.model
            .solve_edited(ctx.tokenizer, problem, ctx.stage, false, edits)
    };
    Ok((*problem, solve(&[])?, solve(edits)?))
}
