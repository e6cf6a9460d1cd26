//! `coconut solve`: answers problems with a shipped stage, one result per input line.
//!
//! With `--json`, each input line gives exactly one JSON object:
//! `{"input","stage","answer","text","thoughts"}` (answer: the digits between `<eot>` and `<eos>`,
//! or null if the model wrote none; thoughts: how many were fed), or `{"input","error"}` for a
//! line that was refused. Refused lines never stop the run; the caller learns of them from the
//! return value (the command exits 1).

use crate::model::Gpt;
use anyhow::Result;
use candle_core::Device;
use coconut_core::layout::answer_digits;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use serde_json::json;
use std::io::Write;

/// Which implementation of the model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// core's plain-Rust reference engine (the oracle).
    Reference,
    /// The trainer's candle model.
    Candle,
    /// The WGSL engine on wgpu (Vulkan or GL natively; lavapipe works without a GPU).
    Wgpu,
}

/// A loaded engine.
pub enum Engine {
    Reference(ReferenceModel),
    Candle(Box<Gpt>),
    Wgpu(Box<coconut_shaders::WgpuEngine>),
}

impl Engine {
    pub fn load(kind: EngineKind, weights: &ModelWeights, device: &Device) -> Result<Engine> {
        Ok(match kind {
            EngineKind::Reference => Engine::Reference(ReferenceModel::new(weights)),
            EngineKind::Candle => Engine::Candle(Box::new(Gpt::from_weights(weights, device)?)),
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
            Engine::Candle(m) => crate::eval::solve(m, tokenizer, problem, stage)?,
            Engine::Wgpu(m) => {
                m.solve_blocking(tokenizer, problem, stage, false)?
                    .generation
                    .ids
            }
        })
    }
}

/// One answered line.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub problem: Problem,
    pub answer: Option<String>,
    pub text: String,
}

/// Parses and answers one input line.
pub fn answer_line(
    engine: &mut Engine,
    tokenizer: &Tokenizer,
    stage: &Stage,
    max_digits: usize,
    line: &str,
) -> Result<Answer> {
    let problem = Problem::parse(line, max_digits)?;
    let ids = engine.generate(tokenizer, &problem, stage)?;
    Ok(Answer {
        problem,
        answer: answer_digits(tokenizer, &ids),
        text: tokenizer.decode(&ids)?,
    })
}

/// Answers every line, writing one result per line to `out`. Blank lines are skipped.
/// Returns how many lines were refused.
pub fn run(
    engine: &mut Engine,
    tokenizer: &Tokenizer,
    stage: &Stage,
    max_digits: usize,
    lines: impl IntoIterator<Item = String>,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<usize> {
    let mut refused = 0;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let input = line.trim_end_matches(['\r', '\n']);
        match answer_line(engine, tokenizer, stage, max_digits, input) {
            Ok(a) if as_json => writeln!(
                out,
                "{}",
                json!({
                    "input": input,
                    "stage": stage.id(),
                    "answer": a.answer,
                    "text": a.text,
                    "thoughts": stage.thoughts(),
                })
            )?,
            Ok(a) => {
                let verdict = match &a.answer {
                    Some(x) if *x == a.problem.answer().to_string() => "correct",
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

/// `coconut solve`.
#[derive(clap::Args, Debug)]
pub struct SolveArgs {
    /// Problems such as "347 + 285"; without any, one problem per line is read from stdin.
    pub problems: Vec<String>,
    /// The stage: 0..K, stageN, nocot or pause (default: the all-latent stage).
    #[arg(long)]
    pub stage: Option<String>,
    /// A weights folder (manifest.json, tokenizer.json, stage files).
    #[arg(long, default_value = "weights")]
    pub weights: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = EngineKind::Reference)]
    pub engine: EngineKind,
    /// One JSON object per input line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `coconut solve`; returns the process exit code (1 if any line was refused).
pub fn run_solve(args: SolveArgs) -> Result<u8> {
    use std::io::BufRead;
    let folder = coconut_core::manifest::WeightsDir::open(&args.weights)?;
    let manifest = &folder.manifest;
    let stage_id = match &args.stage {
        Some(s) => s.clone(),
        None => coconut_core::problem::max_steps(manifest.max_digits).to_string(),
    };
    let (_, stage, weights) = folder.stage(&stage_id)?;
    let tokenizer = folder.tokenizer()?;
    let mut engine = Engine::load(args.engine, &weights, &Device::Cpu)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let lines: Box<dyn Iterator<Item = String>> = if args.problems.is_empty() {
        Box::new(std::io::stdin().lock().lines().map_while(|l| l.ok()))
    } else {
        Box::new(args.problems.clone().into_iter())
    };
    let refused = {
        let max_digits = manifest.max_digits;
        run(
            &mut engine,
            &tokenizer,
            &stage,
            max_digits,
            lines,
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

    fn engines() -> Vec<Engine> {
        let config = ModelConfig {
            n_positions: 40,
            n_embd: 16,
            n_layer: 1,
            n_head: 2,
            ..ModelConfig::default()
        };
        let w = random_weights(&config, 8);
        // The WGSL engine joins when this machine has an adapter (lavapipe in CI).
        [EngineKind::Reference, EngineKind::Candle, EngineKind::Wgpu]
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
        let lines = ["347 + 285", "", "12 + x", "99999 + 1", "5+1234 ="].map(String::from);
        let mut outputs = Vec::new();
        for mut engine in engines() {
            let mut out = Vec::new();
            let refused = run(&mut engine, &tok, &stage, 4, lines.clone(), true, &mut out).unwrap();
            assert_eq!(refused, 2);
            let text = String::from_utf8(out).unwrap();
            let objects: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(
                objects.len(),
                4,
                "blank line skipped, every other line answered"
            );
            assert_eq!(objects[0]["input"], "347 + 285");
            assert_eq!(objects[0]["stage"], "stage2");
            assert_eq!(objects[0]["thoughts"], 2);
            assert!(objects[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("347 + 285 = <bot> <latent> <latent>"));
            assert!(objects[0].get("answer").is_some());
            assert!(objects[1]["error"].as_str().unwrap().contains("letters"));
            assert!(objects[2]["error"]
                .as_str()
                .unwrap()
                .contains("at most 4 digits"));
            assert_eq!(objects[3]["input"], "5+1234 =");
            outputs.push(text);
        }
        // Every engine writes the same lines as the reference engine.
        assert!(outputs.len() >= 2);
        for other in &outputs[1..] {
            assert_eq!(&outputs[0], other);
        }
    }
}
