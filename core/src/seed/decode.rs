//! The seed family's decoding, as core's [`Decoder`] runs it: the free-run prompt of a
//! thought-count protocol ([`FreePrompt`]), its thoughts fed back after it, `<eot>` fed (stages
//! 1-3; at stage 0 the model writes its own), and the answer read by the family's rule, to the
//! first token that is not digits ([`Gpt2Vocab::answer_from`]).

use super::layout::{FreePrompt, SeedStage, ThoughtCount};
use super::vocab::{DigitKind, Gpt2Vocab};
use super::{ACT, EOT};
use crate::decoder::Decoder;
use crate::decoding::{AnswerTokens, DecodePlan, EngineError, StopRule};
use crate::problem::Problem;
use std::sync::Arc;

/// The most tokens the model may write before its `<eot>` at stage 0: the longest stage-0 text
/// of the seed's data is 68 tokens (4-digit operands, every column carrying).
pub const MAX_WRITTEN: usize = 72;

/// What a seed decoding needs of the tokenizer, computed once: which tokens may continue an
/// answer.
pub fn answer_tokens(tokenizer: &Gpt2Vocab) -> Arc<AnswerTokens> {
    let table = tokenizer.digit_table();
    Arc::new(AnswerTokens {
        digits: table.iter().map(|&k| k == DigitKind::Digits).collect(),
        spaced_digits: table
            .iter()
            .map(|&k| k == DigitKind::SpacedDigits)
            .collect(),
    })
}

/// The decoding of `problem` at `stage` under the protocol `count`, on a model of
/// `n_positions` positions. Thought slots hold `<act>` in the sequence (the seed never feeds
/// it).
pub fn decoder(
    tokenizer: &Gpt2Vocab,
    tokens: &Arc<AnswerTokens>,
    problem: &Problem,
    stage: SeedStage,
    count: ThoughtCount,
    n_positions: usize,
) -> Result<Decoder, EngineError> {
    let prompt = FreePrompt::new(tokenizer, problem, stage, count);
    let plan = DecodePlan::with_fed_thoughts(
        prompt.ids.len(),
        prompt.thoughts,
        n_positions,
        ACT,
        prompt.feeds_eot.then_some(EOT),
        StopRule::AnswerDigits {
            eot: EOT,
            tokens: Arc::clone(tokens),
            max_written: MAX_WRITTEN,
        },
    )?;
    Ok(Decoder::from_plan(&prompt.ids, plan))
}

/// The answer of a finished seed decoding: the digits after the first `<eot>` past the prompt.
pub fn answer(tokenizer: &Gpt2Vocab, ids: &[u32], prompt_len: usize) -> Option<String> {
    let after = ids.get(prompt_len..)?;
    let eot = after.iter().position(|&id| id == EOT)?;
    tokenizer.answer_from(&after[eot + 1..])
}

/// A sequence as text (transformers' `decode`), thought slots (`<act>`) shown as `[thought]`,
/// white space runs made one space: what `coconut solve` prints and the page shows.
pub fn text(tokenizer: &Gpt2Vocab, ids: &[u32]) -> String {
    ids.split(|&id| id == ACT)
        .map(|part| tokenizer.decode(part))
        .collect::<Vec<_>>()
        .join(" [thought] ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the seed's published metric reads off one problem: the greedy token at each answer
/// position with the gold layout fed (written steps, thoughts fed back, `<eot>`, gold answer
/// tokens), and the fed thought vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherForced {
    pub answer_argmax: Vec<u32>,
    pub thoughts: Vec<Vec<f32>>,
}

/// Runs `layout` through the reference engine position by position, each thought slot fed the
/// previous position's final hidden state.
pub fn teacher_forced(
    model: &crate::reference::ReferenceModel,
    layout: &super::layout::SeedLayout,
) -> Result<TeacherForced, EngineError> {
    let mut cache = model.new_cache();
    let mut hidden = Vec::new();
    let mut thoughts = Vec::new();
    let mut answer_argmax = Vec::new();
    for (t, &id) in layout.ids.iter().enumerate() {
        let input = if layout.thoughts.contains(&t) {
            thoughts.push(hidden.clone());
            hidden.clone()
        } else {
            model.token_embedding(id)?
        };
        hidden = model.step(&mut cache, &input, t, None)?;
        if layout.answer_positions.contains(&t) {
            answer_argmax.push(crate::decoding::argmax(&model.logits(&hidden)));
        }
    }
    Ok(TeacherForced {
        answer_argmax,
        thoughts,
    })
}
