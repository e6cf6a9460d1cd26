//! `coconut solve`: answers problems with a shipped stage, one result per input line.
//!
//! With `--json`, each input line gives exactly one JSON object:
//! `{"input","stage","answer","text","thoughts"}` (answer: the digits between `<eot>` and `<eos>`,
//! or null if the model wrote none; thoughts: how many were fed), or `{"input","error"}` for a
//! line that was refused. Refused lines never stop the run; the caller learns of them from the
//! return value (the command exits 1).

use crate::args::SolveArgs;
use anyhow::{Context, Result};
use candle_core::Device;
use coconut_core::layout::{answer_digits, answer_matches};
use coconut_core::manifest::StageEntry;
use coconut_core::problem::{ParseError, Problem};
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_trainer::cpu::CpuTrainer;
use coconut_trainer::Gpt;
use serde_json::json;
use std::io::Write;

/// Which implementation of the model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// core's plain-Rust reference engine (the oracle).
    Reference,
    /// The trainer's candle model.
    Candle,
    /// The trainer's hand-written CPU engine (what `coconut eval` runs on the CPU).
    Cpu,
    /// The WGSL engine on wgpu (Vulkan or GL natively; lavapipe works without a GPU).
    Wgpu,
}

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
                let prompt = coconut_core::layout::prompt(tokenizer, problem)?;
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

/// The longest input line answered. A problem is a few dozen bytes; a longer line is refused
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 4096;
/// How much of a refused line is shown back.
const SHOWN_CHARS: usize = 64;

/// One line of input: its text, or why it cannot be a problem before it is even parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    Text(String),
    /// `shown` is what can be shown of the line (lossy, shortened); `reason` why it was refused.
    Refused {
        shown: String,
        reason: String,
    },
}

impl From<String> for Line {
    fn from(text: String) -> Line {
        Line::Text(text)
    }
}

/// The start of a line as text, lossily decoded and cut at [`SHOWN_CHARS`] characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Splits a byte stream into [`Line`]s, every line (blank ones too) giving exactly one item. A
/// line is read through a `take` of [`MAX_LINE_BYTES`] + 1 bytes: a longer one is refused and the
/// rest of it skipped chunk by chunk, so memory stays bounded whatever the input. Bytes that are
/// not UTF-8 refuse their line only.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
}

impl<R: std::io::BufRead> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            buf: Vec::new(),
        }
    }

    /// Consumes input up to and including the next newline (or to the end).
    fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }

    fn read_line(&mut self) -> std::io::Result<Option<Line>> {
        use std::io::{BufRead, Read};
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE_BYTES {
            self.skip_line()?;
            return Ok(Some(Line::Refused {
                shown: shown(&self.buf),
                reason: format!(
                    "the line is longer than {MAX_LINE_BYTES} bytes: a problem is two numbers \
                     joined by '+'"
                ),
            }));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(text) => Line::Text(text.to_string()),
            Err(e) => Line::Refused {
                shown: shown(&self.buf),
                reason: format!(
                    "not valid UTF-8 (byte 0x{:02x} at byte {}): save the input as UTF-8",
                    self.buf[e.valid_up_to()],
                    e.valid_up_to() + 1
                ),
            },
        }))
    }
}

impl<R: std::io::BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_line().transpose()
    }
}

/// Why a line of text is refused before parsing, if it is.
fn refuse_text(line: &str) -> Option<&'static str> {
    if line.starts_with('\u{feff}') {
        Some("the line starts with a byte-order mark (U+FEFF): save the input as UTF-8 without BOM")
    } else {
        None
    }
}

/// The problems given as arguments, one line each. A shell splits an unquoted `347 + 285` into
/// three arguments; arguments that form a problem only together (two or three in a row, whatever
/// the digit bound, which is checked later) are joined, so `coconut solve 347 + 285` answers one
/// problem instead of refusing three fragments. Anything else stays one line per argument; a blank
/// argument is never a fragment (joined, it would vanish without a result).
pub fn argument_lines(args: &[String]) -> Vec<String> {
    // Shaped like a problem: it parses, or fails only on its operands' digits.
    let is_problem = |text: &str| {
        matches!(
            Problem::parse(text, usize::MAX),
            Ok(_) | Err(ParseError::TooManyDigits { .. } | ParseError::LeadingZero(_))
        )
    };
    let mut lines = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let joined = (2..=3)
            .take_while(|n| {
                i + n <= args.len()
                    && !is_problem(&args[i])
                    && args[i..i + n].iter().all(|a| !a.trim().is_empty())
            })
            .map(|n| (n, args[i..i + n].join(" ")))
            .find(|(_, text)| is_problem(text));
        let (taken, line) = joined.unwrap_or_else(|| (1, args[i].clone()));
        lines.push(line);
        i += taken;
    }
    lines
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

/// A line as it is shown back, and its problem or why it cannot be one.
pub(crate) fn parse_line(line: Line, max_digits: usize) -> (String, Result<Problem>) {
    match line {
        Line::Text(text) => {
            let input = text.trim_end_matches(['\r', '\n']).to_string();
            let problem = match refuse_text(&input) {
                Some(reason) => Err(anyhow::anyhow!(reason)),
                None => Problem::parse(&input, max_digits).map_err(anyhow::Error::from),
            };
            (input, problem)
        }
        Line::Refused { shown, reason } => (shown, Err(anyhow::anyhow!(reason))),
    }
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
                    "thoughts": stage.thoughts_for(a.problem.columns()),
                    "measured": measured_by.and_then(|e| e.measured_for(&a.problem)),
                })
            )?,
            Ok(a) => {
                let verdict = match &a.answer {
                    Some(x) if answer_matches(&a.problem, x) => "correct",
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

    #[test]
    fn unquoted_problems_are_joined_and_nothing_else() {
        let lines =
            |args: &[&str]| argument_lines(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(lines(&["347", "+", "285"]), ["347 + 285"]);
        assert_eq!(lines(&["347+", "285", "1", "+1"]), ["347+ 285", "1 +1"]);
        // Longer than the stage takes: joined all the same, so the refusal names the digits.
        assert_eq!(lines(&["99999", "+", "1"]), ["99999 + 1"]);
        assert_eq!(
            lines(&["123456789012345678901", "+", "07"]),
            ["123456789012345678901 + 07"]
        );
        // Quoted problems, and fragments that never form one, stay one line each.
        assert_eq!(lines(&["347 + 285", "1+1"]), ["347 + 285", "1+1"]);
        assert_eq!(lines(&["347", "285"]), ["347", "285"]);
        assert_eq!(lines(&["1", "+", "x", "+", "2"]), ["1", "+", "x", "+", "2"]);
        assert_eq!(lines(&["1+1", "+", "2"]), ["1+1", "+", "2"]);
        // A blank argument is a line of its own, refused like a blank input line.
        assert_eq!(lines(&["", "1 + 2"]), ["", "1 + 2"]);
        assert_eq!(lines(&["1", " ", "+ 2"]), ["1", " ", "+ 2"]);
    }

    fn read_all(bytes: &[u8]) -> Vec<Line> {
        Lines::new(bytes).map(Result::unwrap).collect()
    }

    fn text(s: &str) -> Line {
        Line::Text(s.to_string())
    }

    #[test]
    fn every_line_is_one_item_whatever_its_bytes() {
        let lines = read_all(b"1 + 2\ncaf\xe9 + 1\n\n3 + 4\r\n\xef\xbb\xbf5 + 6\n7 + 8");
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], text("1 + 2"));
        assert_eq!(
            lines[1],
            Line::Refused {
                shown: "caf\u{fffd} + 1".into(),
                reason: "not valid UTF-8 (byte 0xe9 at byte 4): save the input as UTF-8".into(),
            }
        );
        assert_eq!(lines[2], text(""));
        assert_eq!(lines[3], text("3 + 4"));
        assert_eq!(lines[4], text("\u{feff}5 + 6"));
        assert!(refuse_text("\u{feff}5 + 6")
            .unwrap()
            .contains("byte-order mark"));
        assert_eq!(lines[5], text("7 + 8"));
        assert!(read_all(b"").is_empty());
        assert_eq!(read_all(b"\n"), [text("")]);
    }

    #[test]
    fn a_huge_line_is_refused_in_bounded_memory() {
        use std::io::Read;
        // 100 MB without a newline, generated as it is read: never held anywhere.
        let huge = std::io::repeat(b'7').take(100_000_000);
        let input = b"1 + 2\n".chain(huge).chain(&b"\n3 + 4\n"[..]);
        let mut lines = Lines::new(std::io::BufReader::new(input));
        assert_eq!(lines.next().unwrap().unwrap(), text("1 + 2"));
        match lines.next().unwrap().unwrap() {
            Line::Refused { shown, reason } => {
                assert_eq!(shown, format!("{}…", "7".repeat(SHOWN_CHARS)));
                assert!(reason.contains("longer than 4096 bytes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(lines.buf.capacity() <= 2 * MAX_LINE_BYTES + 64);
        assert_eq!(lines.next().unwrap().unwrap(), text("3 + 4"));
        assert!(lines.next().is_none());
        // Exactly the limit is still a line.
        let long = "1".repeat(MAX_LINE_BYTES);
        assert_eq!(read_all(long.as_bytes()), [text(&long)]);
        assert!(matches!(
            read_all(format!("{long}1").as_bytes())[0],
            Line::Refused { .. }
        ));
    }
}
