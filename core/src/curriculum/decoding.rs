//! How a problem is decoded, the same in every engine, and what a decoding produces.
//!
//! A [`DecodePlan`] fixes the positions: the prompt (question and `<bot>`) at `0..prompt_len`,
//! the stage's thoughts right after it, then greedy tokens ([`argmax`], ties to the lowest id)
//! until `<eos>` or the model's last position ([`DecodePlan::runs_next`], the one stop rule).
//! A stage of the last-steps order ([`crate::stage::LatentOrder::Last`]) has no thoughts after
//! the prompt: it writes its first steps, and the thoughts start where the model generates
//! `<latent>` ([`DecodePlan::starts_thoughts`]), that slot the first of them.
//! Engines differ only in how they compute a position; the reference engine
//! ([`crate::reference`]) is the oracle because it is the plainest statement of the maths, one
//! position at a time in f32, and every other engine is tested against it.

use crate::layout::{answer_digits, answer_matches};
use crate::positions::{Coupled, PositionScheme};
use crate::problem::Problem;
use crate::stage::Stage;
use crate::tokenizer::{Tokenizer, TokenizerError, EOS, LATENT};
use std::ops::Range;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the sequence reached the model's {0} positions")]
    SequenceTooLong(usize),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("input vector has {got} values, the model's width is {expected}")]
    Width { got: usize, expected: usize },
    #[error("token id {0} is outside the vocabulary")]
    TokenId(u32),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("intervention refused: {0}")]
    Intervention(String),
    #[error("a stage with coupled positions needs a prompt `a + b = <bot>`")]
    CoupledPrompt,
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What an engine without the trigger says to a last-steps stage.
pub const NO_TRIGGER: &str = "this engine runs thoughts after the prompt only; a stage of the \
     last-steps order (thoughts where the model writes <latent>) runs on the reference and the \
     trainer's engines";

/// Which token classes may follow `<eot>` in an answer of a model family whose answers have no
/// end token (the seed's GPT-2: its training never asked for one): per token id, whether its
/// text is all ASCII digits, and whether it is a space followed by digits (GPT-2 writes the
/// answer's first token with its leading space).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerTokens {
    /// `digits[id]`: the token is one or more ASCII digits.
    pub digits: Vec<bool>,
    /// `spaced_digits[id]`: the token is one space, then one or more ASCII digits.
    pub spaced_digits: Vec<bool>,
}

/// When a decoding ends (besides running out of positions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopRule {
    /// At the first `<eos>` the model writes (this project's models).
    Eos,
    /// The answer runs from `eot` (fed or written) to the first generated token that is not
    /// digits (the first may carry a leading space); that token ends the decoding, kept in the
    /// sequence and never run. Before `eot`, at most `max_written` tokens may be generated.
    AnswerDigits {
        eot: u32,
        tokens: std::sync::Arc<AnswerTokens>,
        max_written: usize,
    },
}

/// The positions of one decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodePlan {
    /// Prompt tokens, at positions `0..prompt_len`.
    pub prompt_len: usize,
    /// Thoughts, at [`DecodePlan::thought_positions`].
    pub thoughts: usize,
    /// Whether a thought's input is the previous position's final hidden state (latent stages)
    /// or the `<latent>` token's embedding (the pause baseline).
    pub feeds_back: bool,
    /// The model's positions; the last one run is `n_positions - 1`.
    pub n_positions: usize,
    /// Coupled position ids of this problem, or `None` for absolute ids
    /// ([`DecodePlan::position_id`]).
    pub coupled: Option<Coupled>,
    /// Whether the thoughts start where the model generates `<latent>` (the last-steps order)
    /// instead of right after the prompt.
    pub on_trigger: bool,
    /// The id that holds a thought's place in the sequence (this project's `<latent>`).
    pub slot_token: u32,
    /// A token fed right after the thoughts that follow the prompt, never predicted (the
    /// seed's `<eot>`).
    pub after_thoughts: Option<u32>,
    pub stop: StopRule,
}

impl DecodePlan {
    /// The plan for `prompt` and `stage`, refused if the prompt is empty (or, with coupled ids,
    /// not `a + b = <bot>`) or the prompt and thoughts do not fit in `n_positions`.
    pub fn new(
        prompt: &[u32],
        stage: &Stage,
        n_positions: usize,
    ) -> Result<DecodePlan, EngineError> {
        let prompt_len = prompt.len();
        if prompt_len == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        let on_trigger = stage.thoughts_on_trigger();
        let coupled = match stage.positions.scheme() {
            PositionScheme::Absolute => None,
            PositionScheme::Coupled => Some(Coupled::for_stage(
                stage,
                Coupled::columns_of(prompt).ok_or(EngineError::CoupledPrompt)?,
                0,
            )),
        };
        let thoughts = coupled.map_or(stage.thoughts(), |c| stage.thoughts_for(c.columns));
        if prompt_len + thoughts > n_positions {
            return Err(EngineError::SequenceTooLong(n_positions));
        }
        Ok(DecodePlan {
            prompt_len,
            thoughts,
            feeds_back: stage.feeds_back(),
            n_positions,
            coupled,
            on_trigger,
            slot_token: LATENT,
            after_thoughts: None,
            stop: StopRule::Eos,
        })
    }

    /// The plan of a model family that feeds `thoughts` back right after a prompt of
    /// `prompt_len` tokens (each held by `slot_token` in the sequence), then `after_thoughts`,
    /// then decodes greedily until `stop`, with absolute position ids (the seed's GPT-2).
    /// Refused where the prompt is empty or it and the thoughts do not fit.
    pub fn with_fed_thoughts(
        prompt_len: usize,
        thoughts: usize,
        n_positions: usize,
        slot_token: u32,
        after_thoughts: Option<u32>,
        stop: StopRule,
    ) -> Result<DecodePlan, EngineError> {
        if prompt_len == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        let forced = usize::from(after_thoughts.is_some());
        if prompt_len + thoughts + forced > n_positions {
            return Err(EngineError::SequenceTooLong(n_positions));
        }
        Ok(DecodePlan {
            prompt_len,
            thoughts,
            feeds_back: true,
            n_positions,
            coupled: None,
            on_trigger: false,
            slot_token,
            after_thoughts,
            stop,
        })
    }

    /// Thoughts run right after the prompt: all of them, or none when they wait for the trigger.
    fn thoughts_after_prompt(&self) -> usize {
        if self.on_trigger {
            0
        } else {
            self.thoughts
        }
    }

    /// Whether `token`, just generated, starts the thoughts (the plan waits for the trigger,
    /// `token` is `<latent>` and the thoughts have not run yet): then it takes the first thought
    /// slot, the rest follow, each fed the previous position's final hidden state, and the
    /// token after the last is generated as usual.
    pub fn starts_thoughts(&self, token: u32, thoughts_ran: bool) -> bool {
        self.on_trigger && !thoughts_ran && token == LATENT
    }

    /// The position-table id of position `t` of `ids` (the sequence: prompt, thought slots,
    /// generated tokens, at least through `t` and the whole prompt): `t` with absolute ids, its
    /// column with coupled ones.
    pub fn position_id(&self, ids: &[u32], t: usize) -> usize {
        let Some(c) = self.coupled else {
            return t;
        };
        let id = if t < self.prompt_len {
            c.prompt_ids(&ids[..self.prompt_len])[t]
        } else if t < self.prompt_len + self.thoughts {
            c.thought_id(t - self.prompt_len)
        } else {
            let tail = &ids[self.prompt_len + self.thoughts..=t];
            let latent_columns = self.thoughts / c.thoughts_per_column.max(1);
            *c.tail_ids(tail, latent_columns)
                .last()
                .expect("t is in the tail")
        };
        id as usize
    }

    /// The position-table ids of the prompt's tokens.
    pub fn prompt_position_ids(&self, prompt: &[u32]) -> Vec<usize> {
        (0..prompt.len())
            .map(|t| self.position_id(prompt, t))
            .collect()
    }

    /// Where the thoughts sit: right after the prompt (none there when they wait for the
    /// trigger).
    pub fn thought_positions(&self) -> Range<usize> {
        self.prompt_len..self.prompt_len + self.thoughts_after_prompt()
    }

    /// The position whose output predicts the first generated token: the last thought after
    /// the prompt, or the prompt's last token.
    pub fn first_prediction(&self) -> usize {
        self.thought_positions().end - 1
    }

    /// The sequence before generation: the prompt, then a [`LATENT`] slot per thought that
    /// follows it.
    pub fn ids_before_answer(&self, prompt: &[u32]) -> Vec<u32> {
        debug_assert_eq!(prompt.len(), self.prompt_len);
        let mut ids = prompt.to_vec();
        ids.extend(std::iter::repeat_n(
            self.slot_token,
            self.thoughts_after_prompt(),
        ));
        ids
    }

    /// Whether the sequence's `len`-th id has a position to run at (`len - 1`, which must be
    /// one of the model's).
    pub fn fits(&self, len: usize) -> bool {
        len <= self.n_positions
    }

    /// This project's stop rule ([`StopRule::Eos`]): after `token` was generated as the
    /// sequence's `len`-th id, whether it is run as the next position (it is not `<eos>`, and
    /// it [fits](DecodePlan::fits)). [`crate::decoder::Decoder`] applies every rule.
    pub fn runs_next(&self, token: u32, len: usize) -> bool {
        token != EOS && self.fits(len)
    }
}

/// The first index of the largest value (ties resolve to the lowest id, in every engine; NaN
/// never wins).
pub fn argmax(values: &[f32]) -> u32 {
    let (mut best, mut best_value) = (0, f32::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        if v > best_value {
            (best, best_value) = (i, v);
        }
    }
    best as u32
}

/// What the model did at one position, for the visualisation.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionTrace {
    /// The residual stream after each block, `[n_layer][C]`.
    pub residual: Vec<Vec<f32>>,
    /// Attention weights `[n_layer][n_head][position + 1]`.
    pub attention: Vec<Vec<Vec<f32>>>,
}

/// Everything one generation produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The whole sequence: prompt, thought slots ([`LATENT`]) and the generated tokens.
    pub ids: Vec<u32>,
    pub prompt_len: usize,
    /// The vectors fed in at the thought slots, in order.
    pub thoughts: Vec<Vec<f32>>,
    /// Whether `<eos>` was generated before the position limit.
    pub finished: bool,
    pub trace: Option<Trace>,
}

/// Per-position internals, for every position that was run through the model (the final
/// `<eos>` is predicted but never run).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub positions: Vec<PositionTrace>,
    /// LM-head logits at each position (what the model "would say" next).
    pub logits: Vec<Vec<f32>>,
}

/// A solved problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub problem: Problem,
    /// The columns the question was written with ([`Stage::columns_for`]): how many digits the
    /// answer may have (one more).
    pub columns: usize,
    /// The digits between `<eot>` and `<eos>`, if the model finished and wrote digits there.
    pub answer: Option<String>,
    /// The decoded sequence, thoughts shown as `<latent>`.
    pub text: String,
    pub generation: Generation,
}

impl Solution {
    /// Reads the answer and the text off a generation of `problem` at `stage`.
    pub fn new(
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        generation: Generation,
    ) -> Result<Solution, EngineError> {
        Ok(Solution {
            problem: *problem,
            columns: stage.columns_for(problem),
            answer: answer_digits(tokenizer, &generation.ids, stage.answer_order),
            text: tokenizer.decode(&generation.ids)?,
            generation,
        })
    }

    pub fn is_correct(&self) -> bool {
        self.answer
            .as_deref()
            .is_some_and(|digits| answer_matches(&self.problem, digits, self.columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Positions, StageKind};

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn plan_places_thoughts_after_the_prompt_and_stops_at_the_last_position() {
        let plan = DecodePlan::new(&[1; 6], &Stage::latent(3, 1, 5), 12).unwrap();
        assert_eq!(plan.thought_positions(), 6..9);
        assert_eq!(plan.first_prediction(), 8);
        assert!(plan.feeds_back);
        assert_eq!(plan.ids_before_answer(&[1; 6])[6..], [LATENT; 3]);
        // The 12th id is run at position 11, the model's last; the 13th is only predicted.
        assert!(plan.runs_next(LATENT, 12));
        assert!(!plan.runs_next(LATENT, 13));
        assert!(!plan.runs_next(EOS, 10));
        let pause = Stage::latent(0, 1, 5).with_kind(StageKind::Pause);
        let plan = DecodePlan::new(&[1; 6], &pause, 12).unwrap();
        assert_eq!((plan.thoughts, plan.feeds_back), (5, false));
        let none = DecodePlan::new(&[1; 6], &Stage::latent(0, 1, 5), 12).unwrap();
        assert_eq!(
            (none.thought_positions(), none.first_prediction()),
            (6..6, 5)
        );
    }

    #[test]
    fn last_steps_plan_waits_for_the_trigger() {
        let stage = Stage::latent(2, 2, 5).with_positions(Positions::LAST_STEPS);
        let plan = DecodePlan::new(&[1; 6], &stage, 40).unwrap();
        assert_eq!((plan.thoughts, plan.on_trigger), (4, true));
        assert_eq!(plan.thought_positions(), 6..6);
        assert_eq!(plan.first_prediction(), 5);
        assert_eq!(plan.ids_before_answer(&[1; 6]), [1; 6]);
        assert!(plan.starts_thoughts(LATENT, false));
        assert!(!plan.starts_thoughts(LATENT, true) && !plan.starts_thoughts(EOS, false));
        // The first order, and the all-latent stage of either, never wait.
        let first =
            DecodePlan::new(&[1; 6], &stage.with_positions(Positions::default()), 40).unwrap();
        assert!(!first.on_trigger && !first.starts_thoughts(LATENT, false));
        let all = Stage::latent(5, 2, 5).with_positions(Positions::LAST_STEPS);
        assert!(!DecodePlan::new(&[1; 6], &all, 40).unwrap().on_trigger);
        // With coupled ids there is no such stage to plan (stage.rs's tests: the last steps
        // with column ids cannot be made).
    }

    #[test]
    fn plan_refuses_what_cannot_run() {
        let stage = Stage::latent(5, 1, 5);
        assert!(matches!(
            DecodePlan::new(&[], &stage, 12),
            Err(EngineError::EmptyPrompt)
        ));
        assert!(matches!(
            DecodePlan::new(&[1; 8], &stage, 12),
            Err(EngineError::SequenceTooLong(12))
        ));
        assert!(DecodePlan::new(&[1; 7], &stage, 12).is_ok());
        let coupled = stage.with_positions(Positions::COUPLED);
        assert!(matches!(
            DecodePlan::new(&[1; 7], &coupled, 12),
            Err(EngineError::CoupledPrompt)
        ));
    }

    #[test]
    fn coupled_plan_gives_the_layouts_ids_from_the_prompt_and_the_tokens_so_far() {
        use crate::layout::{prompt, Layout};
        let t = Tokenizer::new();
        for (k, p, ahead) in [
            (1, Problem::new(347, 285), false),
            (5, Problem::new(99_999, 1), false),
            (0, Problem::new(5, 5), false),
            (1, Problem::new(347, 285), true),
            (5, Problem::new(99_999, 1), true),
            (0, Problem::new(5, 5), true),
            (2, Problem::new(9_995, 7), true),
        ] {
            let stage = Stage::latent(k, 2, 5).with_positions(Positions::coupled(ahead, None));
            let layout = Layout::new(&t, &p, &stage).unwrap();
            let plan = DecodePlan::new(&prompt(&t, &p, &stage).unwrap(), &stage, 200).unwrap();
            assert_eq!(plan.thoughts, layout.thoughts);
            let ids: Vec<usize> = (0..layout.ids.len())
                .map(|t| plan.position_id(&layout.ids[..=t.max(plan.prompt_len - 1)], t))
                .collect();
            let want: Vec<usize> = layout.positions.iter().map(|&i| i as usize).collect();
            assert_eq!(ids, want, "stage {k}, {p:?}, ahead {ahead}");
        }
    }
}
