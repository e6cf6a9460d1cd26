//! `solve` and `eval` on a weights folder of the seed's family (an imported GPT-2 Coconut
//! checkpoint, docs/seed-format.md): its tokenizer, layouts and answer rule. `solve` runs on the
//! reference engine (which keeps int8 weights as stored), the candle model, the CPU engine
//! (`coconut_trainer::seed`) or the WGSL engine's per-layer path
//! (`WgpuEngine::run_decoder`), each through its own loop over core's seed decoder, with the
//! same lines; `eval` runs on the reference engine.
//!
//! Evaluation is honest first: greedy free runs on the seed's validation problems that are not
//! in its training set, by digit count and thought-count protocol (`gold`: the problem's own
//! step count, which tells the model whether the sum has an extra digit, as the seed's loop
//! did; `columns` and `columns-plus-one`: counted from the operands alone); and, beside it, the
//! seed's published metric (teacher-forced answer tokens on its first 500 validation problems,
//! training problems included, as it measured them) so the two can be compared.

use crate::args::{EngineKind, PROTOCOLS};
use crate::input::{argument_lines, parse_line, Line, Lines};
use crate::output::{note, outln};
use anyhow::{Context, Result};
use coconut_core::manifest::WeightsDir;
use coconut_core::seed::decode::{answer, answer_tokens, decoder};
use coconut_core::seed::layout::{SeedLayout, SeedStage, ThoughtCount};
use coconut_core::seed::metric::{judge, PUBLISHED_PROBLEMS};
use coconut_core::seed::problems::{split, SeedSplit, TrainingSet};
use coconut_core::seed::vocab::Gpt2Vocab;
use coconut_core::Problem;
use coconut_trainer::seed::{FreeRun, SeedEngine, SeedEngineKind};
use serde_json::json;
use std::collections::BTreeMap;

/// The engine a seed folder's stage runs on: one of the trainer's CPU engines, or the WGSL
/// engine's per-layer path (the one-dispatch solver does not take the seed's shape).
pub enum SeedRunner {
    Cpu(SeedEngine),
    Wgpu(Box<coconut_shaders::WgpuEngine>),
}

impl SeedRunner {
    fn load(kind: EngineKind, weights: &coconut_core::weights::ModelWeights) -> Result<SeedRunner> {
        let cpu = |kind| Ok(SeedRunner::Cpu(SeedEngine::load(kind, weights)?));
        match kind {
            EngineKind::Reference => cpu(SeedEngineKind::Reference),
            EngineKind::Candle => cpu(SeedEngineKind::Candle),
            EngineKind::Cpu => cpu(SeedEngineKind::Cpu),
            EngineKind::Wgpu => Ok(SeedRunner::Wgpu(Box::new(
                coconut_shaders::WgpuEngine::per_layer_blocking(weights).map_err(|e| {
                    anyhow::anyhow!("{e}; use --engine reference to run on the CPU instead")
                })?,
            ))),
        }
    }

    fn n_positions(&self) -> usize {
        match self {
            SeedRunner::Cpu(e) => e.n_positions(),
            SeedRunner::Wgpu(e) => e.config().n_positions,
        }
    }

    /// One free run through the engine's own loop over `decoder`.
    fn run(&mut self, decoder: coconut_core::decoder::Decoder) -> Result<FreeRun> {
        Ok(match self {
            SeedRunner::Cpu(e) => e.run(decoder)?,
            SeedRunner::Wgpu(e) => {
                let g = coconut_shaders::block_on(e.run_decoder(decoder, false))?;
                FreeRun {
                    thoughts: g.thoughts.len(),
                    ids: g.ids,
                    prompt_len: g.prompt_len,
                }
            }
        })
    }

    /// The seed's teacher-forced metric (the CPU engines only; `eval` runs the reference).
    fn teacher_forced(
        &mut self,
        layout: &SeedLayout,
    ) -> Result<coconut_core::seed::decode::TeacherForced> {
        match self {
            SeedRunner::Cpu(e) => e.teacher_forced(layout),
            SeedRunner::Wgpu(_) => {
                anyhow::bail!("the seed's teacher-forced metric runs on the CPU engines")
            }
        }
    }
}

/// A seed folder's stage, loaded: its model on one engine, and its tokenizer.
pub struct SeedModel {
    pub stage: SeedStage,
    pub id: String,
    pub engine: SeedRunner,
    pub tokenizer: Gpt2Vocab,
    tokens: std::sync::Arc<coconut_core::decoding::AnswerTokens>,
}

impl SeedModel {
    pub fn load(folder: &WeightsDir, id: Option<&str>, engine: EngineKind) -> Result<SeedModel> {
        let id = id.unwrap_or("stage3");
        let (entry, _, weights) = folder.stage(id)?;
        let stage = SeedStage::of_entry(&entry).map_err(anyhow::Error::msg)?;
        let tokenizer = folder.seed_vocab()?;
        Ok(SeedModel {
            stage,
            id: entry.id,
            engine: SeedRunner::load(engine, &weights)?,
            tokens: answer_tokens(&tokenizer),
            tokenizer,
        })
    }

    /// The greedy free run of `problem` under `count`: the whole sequence and its answer.
    pub fn run(
        &mut self,
        problem: &Problem,
        count: ThoughtCount,
    ) -> Result<(Vec<u32>, usize, Option<String>)> {
        let run = self.engine.run(self.decoder(problem, count)?)?;
        let read = self.answer(&run.ids, run.prompt_len);
        Ok((run.ids, run.thoughts, read))
    }

    /// The seed's decoder of `problem` under `count`, for a run driven elsewhere (edits).
    pub fn decoder(
        &self,
        problem: &Problem,
        count: ThoughtCount,
    ) -> Result<coconut_core::decoder::Decoder> {
        let n_positions = self.engine.n_positions();
        let d = decoder(
            &self.tokenizer,
            &self.tokens,
            problem,
            self.stage,
            count,
            n_positions,
        )?;
        Ok(d)
    }

    /// The answer a finished sequence reads (the digits after `<eot>`).
    pub fn answer(&self, ids: &[u32], prompt_len: usize) -> Option<String> {
        answer(&self.tokenizer, ids, prompt_len)
    }

    /// The sequence as text, thought slots shown as `[thought]`.
    pub fn text(&self, ids: &[u32]) -> String {
        coconut_core::seed::decode::text(&self.tokenizer, ids)
    }
}

/// The seed's model reads two operands of the same length, 2 to 4 digits (its training data).
pub fn check_seed_problem(p: &Problem) -> Result<()> {
    coconut_core::seed::layout::check_problem(p).map_err(anyhow::Error::msg)
}

/// `coconut solve` on a seed folder: one line (or JSON object) per input line; returns how many
/// were refused.
pub fn solve(
    folder: &WeightsDir,
    stage: Option<&str>,
    engine: EngineKind,
    count: ThoughtCount,
    problems: &[String],
    as_json: bool,
) -> Result<usize> {
    let mut seed = SeedModel::load(folder, stage, engine)?;
    let lines: Box<dyn Iterator<Item = std::io::Result<Line>>> = if problems.is_empty() {
        Box::new(Lines::new(std::io::stdin().lock()))
    } else {
        Box::new(
            argument_lines(problems)
                .into_iter()
                .map(|p| Ok(Line::Text(p))),
        )
    };
    let mut refused = 0;
    for line in lines {
        let (input, parsed) = parse_line(line.context("reading the input")?, 4);
        let result = parsed.and_then(|p| {
            check_seed_problem(&p)?;
            let (ids, thoughts, read) = seed.run(&p, count)?;
            Ok((p, ids, thoughts, read))
        });
        match result {
            Ok((p, ids, thoughts, read)) => {
                let right = read.as_deref() == Some(p.answer().to_string().as_str());
                if as_json {
                    let line = json!({"input": input, "stage": seed.id, "answer": read,
                        "text": seed.text(&ids), "thoughts": thoughts, "measured": null});
                    outln!("{line}")?;
                } else {
                    let verdict = match &read {
                        Some(_) if right => "correct",
                        Some(_) => "WRONG",
                        None => "no answer",
                    };
                    outln!(
                        "{p} = {}   [{}, {verdict}]\n    {}",
                        read.as_deref().unwrap_or("?"),
                        seed.id,
                        seed.text(&ids)
                    )?;
                }
            }
            Err(e) => {
                refused += 1;
                if as_json {
                    outln!("{}", json!({"input": input, "error": format!("{e:#}")}))?;
                } else {
                    outln!("{input:?}: error: {e:#}")?;
                }
            }
        }
    }
    Ok(refused)
}

/// Right / total per digit count.
type Tally = BTreeMap<usize, (usize, usize)>;

fn percent((right, n): (usize, usize)) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * right as f64 / n as f64
    }
}

/// Whether the seed's own metric (teacher-forced argmax over the answer) gets `p` right.
fn teacher_forced_right(seed: &mut SeedModel, p: &Problem) -> Result<bool> {
    let layout = SeedLayout::new(&seed.tokenizer, p, seed.stage);
    let tf = seed.engine.teacher_forced(&layout)?;
    Ok(judge(&seed.tokenizer, p, &tf.answer_argmax).correct)
}

/// Over the held-out problems: greedy accuracy per thought-count protocol (stage 0 writes its
/// own steps: only `gold`) and teacher-forced accuracy, each by digit count.
fn held_out_tallies(
    seed: &mut SeedModel,
    held_out: &[Problem],
) -> Result<(BTreeMap<&'static str, Tally>, Tally)> {
    let mut greedy: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut forced: Tally = Tally::new();
    for p in held_out {
        let ok = teacher_forced_right(seed, p)?;
        let e = forced.entry(p.columns()).or_default();
        (e.0, e.1) = (e.0 + ok as usize, e.1 + 1);
        for (name, count) in PROTOCOLS {
            if seed.stage.index() == 0 && name != "gold" {
                continue; // stage 0 writes its own steps: no thoughts to count
            }
            let (_, _, read) = seed.run(p, count)?;
            let ok = read.as_deref() == Some(p.answer().to_string().as_str());
            let e = greedy
                .entry(name)
                .or_default()
                .entry(p.columns())
                .or_default();
            (e.0, e.1) = (e.0 + ok as usize, e.1 + 1);
        }
    }
    Ok((greedy, forced))
}

fn tally_json(t: &Tally) -> serde_json::Value {
    let all = t.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    json!({
        "n": all.1, "accuracy": percent(all),
        "by_digits": t.iter().map(|(d, &v)| json!({"digits": d, "n": v.1, "accuracy": percent(v)})).collect::<Vec<_>>(),
    })
}

/// `coconut eval` on a seed folder: returns the report as JSON and prints its table.
pub fn eval(folder: &WeightsDir, stage: &str, n: usize) -> Result<serde_json::Value> {
    let mut seed = SeedModel::load(folder, Some(stage), EngineKind::Reference)?;
    let training = TrainingSet::new();
    let validation = split(SeedSplit::Validation);
    let held_out: Vec<Problem> = validation
        .iter()
        .filter(|p| !training.contains(p))
        .take(n)
        .copied()
        .collect();
    note!(
        "{}: {} held-out validation problems (the seed's validation set without its training problems)",
        seed.id,
        held_out.len()
    );
    let (greedy, forced) = held_out_tallies(&mut seed, &held_out)?;
    let published_problems = &validation[..PUBLISHED_PROBLEMS.min(n).min(validation.len())];
    let in_training = published_problems
        .iter()
        .filter(|p| training.contains(p))
        .count();
    let mut published: Tally = Tally::new();
    for p in published_problems {
        let e = published.entry(p.columns()).or_default();
        let ok = teacher_forced_right(&mut seed, p)?;
        (e.0, e.1) = (e.0 + ok as usize, e.1 + 1);
    }
    outln!(
        "{:<8} {:<36} {:>6} {:>6} {:>9}",
        "stage",
        "measure",
        "digits",
        "n",
        "right%"
    )?;
    let mut rows: Vec<(String, &Tally)> = greedy
        .iter()
        .map(|(name, t)| (format!("greedy, thoughts: {name}"), t))
        .collect();
    rows.push(("teacher-forced (seed's metric)".into(), &forced));
    let published_name = format!("published set, {in_training} in training");
    rows.push((published_name, &published));
    for (name, t) in &rows {
        for (d, &v) in t.iter() {
            outln!(
                "{:<8} {:<36} {:>6} {:>6} {:>9.2}",
                seed.id,
                name,
                d,
                v.1,
                percent(v)
            )?;
        }
    }
    Ok(json!({
        "stage": seed.id,
        "held_out": {
            "set": "the seed's validation problems (seed 123) not in its training set (seed 42, 100,000)",
            "greedy": greedy.iter().map(|(k, t)| (k.to_string(), tally_json(t))).collect::<serde_json::Map<_, _>>(),
            "teacher_forced": tally_json(&forced),
        },
        "published_set": {
            "set": format!("the seed's first {} validation problems, as it measured them", PUBLISHED_PROBLEMS.min(n)),
            "in_training": in_training,
            "teacher_forced": tally_json(&published),
        },
    }))
}
