//! `coconut solve`: answers problems with a shipped stage, one result per input line.
//!
//! With `--json`, each input line gives exactly one JSON object:
//! `{"input","stage","answer","text","thoughts"}` (answer: the digits between `<eot>` and `<eos>`,
//! or null if the model wrote none; thoughts: how many were fed), or `{"input","error"}` for a
//! line that was refused. Refused lines never stop the run; the caller learns of them from the
//! return value (the command exits 1).

use crate::args::{EngineKind, SolveArgs};
use crate::input::{argument_lines, parse_line, Line, Lines};
use anyhow::{Context, Result};
use candle_core::Device;
use coconut_core::layout::{answer_digits, answer_matches};
use coconut_core::manifest::StageEntry;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_trainer::cpu::CpuTrainer;
use coconut_trainer::Gpt;
use serde_json::json;
use std::io::Write;

/// A loaded engine.
pub enum Engine {
    Reference(Box<ReferenceModel>),
    Candle(Box<Gpt>),
    Cpu(Box<CpuTrainer>),
    Wgpu(Box<coconut_shaders::WgpuEngine>),
}

impl Engine {
    pub fn load(kind: EngineKind, weights: &ModelWeights, device: &Device) -> Result<Engine> {
        Ok(match kind {
            EngineKind::Reference => Engine::Reference(Box::new(ReferenceModel::new(weights))),
            EngineKind::Candle => Engine::Candle(Box::new(Gpt::from_weights(weights, device)?)),
            EngineKind::Cpu => Engine::Cpu(Box::new(CpuTrainer::for_inference(weights)?)),
            EngineKind::Wgpu => Engine::Wgpu(Box::new(
                coconut_shaders::WgpuEngine::new_blocking(weights).map_err(|e| {
                    anyhow::anyhow!("{e}; use --engine reference to run on the CPU instead")
                })?,
            )),
        })
    }

    /// The whole generated sequence: prompt, thought slots and the generated tokens.
    pub fn generate(
        &mut self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
    ) -> Result<Vec<u32>> {
        Ok(match self {
            Engine::Reference(m) => m.solve(tokenizer, problem, stage, false)?.generation.ids,
            Engine::Candle(m) => coconut_trainer::eval::solve(m, tokenizer, problem, stage)?,
            Engine::Cpu(m) => {
                let prompt = coconut_core::layout::prompt(tokenizer, problem, stage)?;
                m.generate(&[prompt], stage, 1)?.remove(0)
            }
            Engine::Wgpu(m) => {
                coconut_shaders::block_on(m.solve(tokenizer, problem, stage, false))?
                    .generation
                    .ids
            }
        })
    }

    /// How many lines to answer together: the WGSL engine decodes a batch of problems in one
    /// submission; the others take them one by one.
    pub fn batch_size(&self) -> usize {
        match self {
            Engine::Wgpu(_) => BATCH_LINES,
            _ => 1,
        }
    }

    /// [`Engine::generate`] for each of `problems`, as one batch where the engine has one.
    pub fn generate_all(
        &mut self,
        tokenizer: &Tokenizer,
        problems: &[Problem],
        stage: &Stage,
    ) -> Vec<Result<Vec<u32>>> {
        if let (Engine::Wgpu(m), true) = (&mut *self, problems.len() > 1) {
            if let Ok(solved) = coconut_shaders::block_on(m.solve_batch(tokenizer, problems, stage))
            {
                return solved.into_iter().map(|s| Ok(s.generation.ids)).collect();
            }
            // A batch that failed is answered one problem at a time, so that each line gets
            // its own result or error.
        }
        problems
            .iter()
            .map(|p| self.generate(tokenizer, p, stage))
            .collect()
    }
}

/// Lines the WGSL engine answers as one batch (read from a file or a pipe; typed lines are
/// answered one by one).
pub const BATCH_LINES: usize = 256;

/// One answered line.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub problem: Problem,
    pub answer: Option<String>,
    pub text: String,
}

/// Answers every line, writing exactly one result per line to `out` (a blank line is refused
/// like any line that is not a problem), `batch` lines at a time. Returns how many lines were
/// refused; an error reading the input stops the run.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &mut Engine,
    tokenizer: &Tokenizer,
    stage: &Stage,
    measured_by: Option<&StageEntry>,
    max_digits: usize,
    lines: impl IntoIterator<Item = std::io::Result<Line>>,
    batch: usize,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<usize> {
    let mut refused = 0;
    let mut pending = Vec::new();
    let mut answer_pending = |pending: &mut Vec<(String, Result<Problem>)>| {
        answer(engine, tokenizer, stage, measured_by, pending, as_json, out)
    };
    for line in lines {
        pending.push(parse_line(line.context("reading the input")?, max_digits));
        if pending.len() >= batch.max(1) {
            refused += answer_pending(&mut pending)?;
        }
    }
    refused += answer_pending(&mut pending)?;
    Ok(refused)
}

/// Answers the `pending` lines' problems together and writes one result per line, in order,
/// each with what the manifest entry `measured_by` measured for that kind of problem (its
/// operand-length pair); returns how many were refused.
fn answer(
    engine: &mut Engine,
    tokenizer: &Tokenizer,
    stage: &Stage,
    measured_by: Option<&StageEntry>,
    pending: &mut Vec<(String, Result<Problem>)>,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<usize> {
    let problems: Vec<Problem> = pending
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok().copied())
        .collect();
    let mut generated = engine.generate_all(tokenizer, &problems, stage).into_iter();
    let mut refused = 0;
    for (input, parsed) in pending.drain(..) {
        let answer = parsed.and_then(|problem| {
            let ids = generated.next().expect("one generation per problem")?;
            Ok(Answer {
                problem,
                answer: answer_digits(tokenizer, &ids, stage.answer_order),
                text: tokenizer.decode(&ids)?,
            })
        });
        match answer {
            Ok(a) if as_json => writeln!(
                out,
                "{}",
                json!({
                    "input": input,
                    "stage": stage.id(),
                    "answer": a.answer,
                    "text": a.text,
                    "thoughts": stage.thoughts_of(&a.problem),
                    "measured": measured_by.and_then(|e| e.measured_for(&a.problem)),
                })
            )?,
            Ok(a) => {
                let verdict = match &a.answer {
                    Some(x) if answer_matches(&a.problem, x, stage.columns_for(&a.problem)) => {
                        "correct"
                    }
                    Some(_) => "WRONG",
                    None => "no answer",
                };
                writeln!(
                    out,
                    "{} = {}   [{}, {verdict}]\n    {}",
                    a.problem,
                    a.answer.as_deref().unwrap_or("?"),
                    stage.id(),
                    a.text
                )?;
                if let Some(entry) = measured_by {
                    writeln!(out, "    {}", measured_note(entry, &a.problem))?;
                }
            }
            Err(e) => {
                refused += 1;
                if as_json {
                    writeln!(
                        out,
                        "{}",
                        json!({"input": input, "error": format!("{e:#}")})
                    )?;
                } else {
                    writeln!(out, "{input:?}: error: {e:#}")?;
                }
            }
        }
    }
    Ok(refused)
}

/// What the manifest measured for `problem`'s kind: its operand-length pair, and its carry
/// chain where the same set counted it; never another kind's figure.
pub fn measured_note(entry: &StageEntry, problem: &Problem) -> String {
    let (da, db) = problem.digit_counts();
    let Some(f) = entry.measured_for(problem) else {
        return format!("not measured for {da}-digit + {db}-digit problems");
    };
    let mut note = format!(
        "this stage answers {:.1}% of {da}-digit + {db}-digit problems (n = {}, set {})",
        f.greedy, f.n, f.set
    );
    // A chain of one carry is every other problem; longer ones are the hard kind.
    if let Some(c) = f.carry_chain.filter(|c| c.chain >= 2) {
        note += &format!(
            "; {:.1}% of that set's problems with a {}-column carry chain (n = {})",
            c.greedy, c.chain, c.n
        );
    }
    note
}

/// Runs `coconut solve`; returns the process exit code (1 if any line was refused).
pub fn run_solve(args: SolveArgs) -> Result<u8> {
    let folder = coconut_core::manifest::WeightsDir::open(&args.weights)?;
    if folder.manifest.family.layout == coconut_core::family::LayoutFamily::Seed {
        let refused = crate::seed::solve(
            &folder,
            args.stage.as_deref(),
            args.engine,
            args.thoughts,
            &args.problems,
            args.json,
        )?;
        return Ok(u8::from(refused > 0));
    }
    let manifest = &folder.manifest;
    let stage_id = match &args.stage {
        Some(s) => s.clone(),
        None => coconut_core::problem::max_steps(manifest.max_digits).to_string(),
    };
    let (entry, stage, weights) = folder.stage(&stage_id)?;
    let tokenizer = folder.tokenizer()?;
    let mut engine = Engine::load(args.engine, &weights, &Device::Cpu)?;
    // Results go out through the one stdout writer: a reader that closes it stops the run
    // quietly, a full disk is an error naming stdout.
    let mut out = crate::output::Stdout;
    // Every line of stdin is answered, whatever its bytes: see `Lines`.
    // Lines typed at a terminal are answered as they come; piped ones in batches.
    let batch = if args.problems.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        1
    } else {
        engine.batch_size()
    };
    let lines: Box<dyn Iterator<Item = std::io::Result<Line>>> = if args.problems.is_empty() {
        Box::new(Lines::new(std::io::stdin().lock()))
    } else {
        Box::new(
            argument_lines(&args.problems)
                .into_iter()
                .map(|p| Ok(Line::Text(p))),
        )
    };
    let refused = {
        // Coupled stages also answer the longer operands their figures measured.
        let max_digits = manifest.accepted_digits(&entry);
        run(
            &mut engine,
            &tokenizer,
            &stage,
            Some(&entry),
            max_digits,
            lines,
            batch,
            args.json,
            &mut out,
        )?
    };
    Ok(u8::from(refused > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::weights::random_weights;
    use coconut_core::ModelConfig;

    /// Whether a `--json` object is an error that mentions `part`.
    fn error_has(object: &serde_json::Value, part: &str) -> bool {
        object["error"].as_str().is_some_and(|e| e.contains(part))
    }

    fn engines() -> Vec<Engine> {
        let config = ModelConfig {
            n_layer: 1,
            ..ModelConfig::tiny()
        };
        let w = random_weights(&config, 8);
        // The WGSL engine joins when this machine has an adapter (lavapipe in CI).
        [
            EngineKind::Reference,
            EngineKind::Candle,
            EngineKind::Cpu,
            EngineKind::Wgpu,
        ]
        .into_iter()
        .filter_map(|k| match Engine::load(k, &w, &Device::Cpu) {
            Ok(engine) => Some(engine),
            Err(e) if k == EngineKind::Wgpu => {
                eprintln!("skipping the wgpu engine: {e}");
                None
            }
            Err(e) => panic!("{k:?}: {e}"),
        })
        .collect()
    }

    #[test]
    fn json_contract_one_object_per_line_and_refusals() {
        let tok = Tokenizer::new();
        let stage = Stage::latent(2, 1, 5);
        let lines = ["347 + 285", "", "12 + x", "99999 + 1", "5+1234 =", "7 + 8"].map(String::from);
        let mut outputs = Vec::new();
        // One line at a time, and batches that split the refused lines from the answered ones.
        for (mut engine, batch) in engines().into_iter().flat_map(|e| [(e, 1)]).chain(
            engines()
                .into_iter()
                .filter(|e| e.batch_size() > 1)
                .flat_map(|e| [(e, 3)]),
        ) {
            let mut out = Vec::new();
            let input = lines.clone().map(|l| Ok(Line::Text(l)));
            let refused = run(
                &mut engine,
                &tok,
                &stage,
                None,
                4,
                input,
                batch,
                true,
                &mut out,
            )
            .unwrap();
            assert_eq!(refused, 3);
            let text = String::from_utf8(out).unwrap();
            let objects: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(
                objects.len(),
                6,
                "one object per input line, blank ones too"
            );
            assert_eq!(objects[0]["input"], "347 + 285");
            assert_eq!(objects[0]["stage"], "stage2");
            assert_eq!(objects[0]["thoughts"], 2);
            assert!(objects[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("347 + 285 = <bot> <latent> <latent>"));
            assert!(objects[0].get("answer").is_some());
            assert_eq!(objects[1]["input"], "");
            assert!(error_has(&objects[1], "empty"));
            assert!(error_has(&objects[2], "letters"));
            assert!(error_has(&objects[3], "at most 4 digits"));
            assert_eq!(objects[4]["input"], "5+1234 =");
            assert_eq!(objects[5]["input"], "7 + 8");
            assert!(objects[5].get("answer").is_some());
            outputs.push(text);
        }
        // Every engine writes the same lines as the reference engine.
        assert!(outputs.len() >= 2);
        for other in &outputs[1..] {
            assert_eq!(&outputs[0], other);
        }
    }
}
