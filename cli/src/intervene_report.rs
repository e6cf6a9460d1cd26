//! What `coconut intervene` prints, for this project's models and the seed's alike: per
//! problem, the answer as trained and with the thoughts edited, as a line or a JSON object.

use crate::args::InterveneArgs;
use crate::output::outln;
use anyhow::Result;
use coconut_core::decoding::Solution;
use coconut_core::problem::Problem;
use serde_json::json;

/// One run of a problem as `intervene` reports it.
pub struct Outcome {
    pub answer: Option<String>,
    pub text: String,
    pub correct: bool,
}

impl Outcome {
    /// A run of this project's model, judged by its answer rule.
    pub fn of(s: Solution) -> Outcome {
        Outcome {
            correct: s.is_correct(),
            answer: s.answer,
            text: s.text,
        }
    }
}

/// One line (or JSON object) per problem of `args`: `solve` gives the problem and its runs as
/// trained and edited, or why it was refused. Returns the exit code (1 if one was refused).
pub fn report(
    args: &InterveneArgs,
    stage: &str,
    mut solve: impl FnMut(&str) -> Result<(Problem, Outcome, Outcome)>,
) -> Result<u8> {
    let patches: Vec<String> = args.patch.iter().map(ToString::to_string).collect();
    let mut refused = false;
    for input in &crate::input::argument_lines(&args.problems) {
        let line = match solve(input) {
            Ok((problem, plain, edited)) if args.json => json!({
                "input": input,
                "stage": stage,
                "patches": patches,
                "answer": plain.answer,
                "edited_answer": edited.answer,
                "expected": problem.answer().to_string(),
                "text": plain.text,
                "edited_text": edited.text,
            })
            .to_string(),
            Ok((problem, plain, edited)) => {
                shown(&problem, stage, &plain, &edited, &patches.join(", "))
            }
            Err(e) => {
                refused = true;
                match args.json {
                    true => json!({"input": input, "error": format!("{e:#}")}).to_string(),
                    false => format!("{input:?}: error: {e:#}"),
                }
            }
        };
        outln!("{line}")?;
    }
    Ok(refused as u8)
}

/// A problem's two answers in words.
fn shown(
    problem: &Problem,
    stage: &str,
    plain: &Outcome,
    edited: &Outcome,
    patches: &str,
) -> String {
    let verdict = |s: &Outcome| if s.correct { "correct" } else { "wrong" };
    format!(
        "{} + {} on {stage} (the sum is {})\n  as trained: {}  [{}]\n  edited ({patches}): {}  [{}]",
        problem.a,
        problem.b,
        problem.answer(),
        plain.answer.as_deref().unwrap_or("(none)"),
        verdict(plain),
        edited.answer.as_deref().unwrap_or("(none)"),
        verdict(edited)
    )
}
