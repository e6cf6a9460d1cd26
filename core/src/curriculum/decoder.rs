//! The one decoding loop, as a per-row state machine every engine drives.
//!
//! An engine owns only its maths: it runs a position given an input vector and a position id,
//! and reads the final hidden state's logits. What goes in at each position, at which position
//! id, and when the decoding ends is the [`Decoder`]'s to say, from core's [`DecodePlan`]:
//!
//! ```text
//! let mut decoder = Decoder::new(&prompt, &stage, n_positions)?;
//! loop {
//!     match decoder.next(|| argmax(&logits(&hidden))) {
//!         Feed::Token { id, position_id } => hidden = run(embedding(id), position_id),
//!         Feed::Thought { slot, position_id } => hidden = run(thought(slot, &hidden), position_id),
//!         Feed::Stop { finished } => break,
//!     }
//! }
//! ```
//!
//! The prompt's tokens and the thoughts right after it come first and need no prediction; an
//! engine that runs them as one block takes them with [`Decoder::prefix`]. After that, each call
//! asks for the model's prediction at the last position run (the closure is called only then)
//! and answers with what runs next: the predicted token, a thought (the last-steps order starts
//! its thoughts where the model writes `<latent>`), or the end (`<eos>`, or no position left).
//! A thought's input is the previous position's final hidden state when the plan feeds back,
//! the `<latent>` token's embedding otherwise (the pause baseline).

use crate::decoding::{DecodePlan, EngineError, StopRule};
use crate::stage::Stage;
use crate::tokenizer::EOS;

/// What runs at the next position of one decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// The token's embedding, at position-table row `position_id`.
    Token { id: u32, position_id: usize },
    /// A thought (the `slot`-th of the decoding) at position-table row `position_id`.
    Thought { slot: usize, position_id: usize },
    /// The decoding is over: `finished` when the model wrote `<eos>`, not when it ran out of
    /// positions.
    Stop { finished: bool },
}

impl Feed {
    /// The position-table row the feed runs at (`None` for [`Feed::Stop`]).
    pub fn position_id(&self) -> Option<usize> {
        match *self {
            Feed::Token { position_id, .. } | Feed::Thought { position_id, .. } => {
                Some(position_id)
            }
            Feed::Stop { .. } => None,
        }
    }
}

/// Where a decoding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Feeding the prompt's token at this index.
    Prompt(usize),
    /// Feeding thoughts that need no prediction: the next slot to feed, and the slot after the
    /// last of this chain.
    Thinking {
        slot: usize,
        end: usize,
    },
    /// Feeding the plan's token after the thoughts.
    Forced,
    /// Each position's prediction decides what runs next.
    Generating,
    Stopped {
        finished: bool,
    },
}

/// One row's decoding (module doc).
#[derive(Clone, Debug)]
pub struct Decoder {
    plan: DecodePlan,
    /// The sequence so far: prompt, thought slots (`<latent>`), generated tokens. A thought
    /// after the prompt holds its slot from the start; one the model triggers, from its turn.
    ids: Vec<u32>,
    phase: Phase,
    /// Thoughts fed so far.
    thoughts_run: usize,
    /// Under [`StopRule::AnswerDigits`]: answer tokens generated since its `<eot>` (`None`
    /// before it); tokens generated before it.
    answer_len: Option<usize>,
    written: usize,
}

impl Decoder {
    /// The decoding of `prompt` at `stage` on a model of `n_positions` positions, refused as
    /// [`DecodePlan::new`] refuses.
    pub fn new(prompt: &[u32], stage: &Stage, n_positions: usize) -> Result<Decoder, EngineError> {
        Ok(Decoder::from_plan(
            prompt,
            DecodePlan::new(prompt, stage, n_positions)?,
        ))
    }

    /// The decoding of `prompt` by `plan` (made for that prompt: its length is the plan's).
    pub fn from_plan(prompt: &[u32], plan: DecodePlan) -> Decoder {
        debug_assert_eq!(prompt.len(), plan.prompt_len);
        Decoder {
            ids: plan.ids_before_answer(prompt),
            plan,
            phase: Phase::Prompt(0),
            thoughts_run: 0,
            answer_len: None,
            written: 0,
        }
    }

    pub fn plan(&self) -> &DecodePlan {
        &self.plan
    }

    /// The sequence so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The whole sequence: prompt, thought slots, generated tokens (the last one predicted,
    /// `<eos>` or the token no position was left for, included).
    pub fn into_ids(self) -> Vec<u32> {
        self.ids
    }

    /// How many thoughts were fed so far.
    pub fn thoughts_fed(&self) -> usize {
        self.thoughts_run
    }

    /// `Some(finished)` once the decoding stopped.
    pub fn stopped(&self) -> Option<bool> {
        match self.phase {
            Phase::Stopped { finished } => Some(finished),
            _ => None,
        }
    }

    /// Whether the next [`Decoder::next`] needs the model's prediction.
    pub fn needs_prediction(&self) -> bool {
        self.phase == Phase::Generating
    }

    /// The feeds that need no prediction: the prompt's tokens and the thoughts right after it,
    /// taken all at once by an engine that runs them as a block (after it, every
    /// [`Decoder::next`] asks for a prediction). Empty once they were taken.
    pub fn prefix(&mut self) -> Vec<Feed> {
        let mut feeds = Vec::new();
        while !self.needs_prediction() && self.stopped().is_none() {
            feeds.push(self.next(|| unreachable!("the prefix needs no prediction")));
        }
        feeds
    }

    /// What runs at the next position. `predict` gives the model's greedy token at the last
    /// position run; it is called only when the decoder needs it.
    pub fn next(&mut self, predict: impl FnOnce() -> u32) -> Feed {
        match self.phase {
            Phase::Prompt(t) => {
                self.phase = if t + 1 < self.plan.prompt_len {
                    Phase::Prompt(t + 1)
                } else {
                    self.after_prompt()
                };
                Feed::Token {
                    id: self.ids[t],
                    position_id: self.plan.position_id(&self.ids, t),
                }
            }
            Phase::Thinking { slot, end } => self.thought(slot, end),
            Phase::Forced => {
                let id = self.plan.after_thoughts.expect("a forced token is planned");
                self.phase = Phase::Generating;
                self.push_run(id)
            }
            Phase::Generating => self.generated(predict()),
            Phase::Stopped { finished } => Feed::Stop { finished },
        }
    }

    fn after_prompt(&self) -> Phase {
        match self.plan.thought_positions().len() {
            0 => self.after_thoughts(),
            end => Phase::Thinking { slot: 0, end },
        }
    }

    fn after_thoughts(&self) -> Phase {
        match self.plan.after_thoughts {
            Some(_) => Phase::Forced,
            None => Phase::Generating,
        }
    }

    /// Feeds thought `slot` of a chain ending before slot `end`. A triggered chain's slots
    /// after the first take their `<latent>` now, and stop the decoding where no position is
    /// left for them.
    fn thought(&mut self, slot: usize, end: usize) -> Feed {
        let t = if self.plan.on_trigger {
            if slot > 0 {
                self.ids.push(self.plan.slot_token);
                if !self.plan.fits(self.ids.len()) {
                    return self.stop(false);
                }
            }
            self.ids.len() - 1
        } else {
            self.plan.prompt_len + slot
        };
        self.phase = if slot + 1 < end {
            Phase::Thinking {
                slot: slot + 1,
                end,
            }
        } else if self.plan.on_trigger {
            Phase::Generating
        } else {
            self.after_thoughts()
        };
        self.thoughts_run += 1;
        Feed::Thought {
            slot,
            position_id: self.plan.position_id(&self.ids, t),
        }
    }

    /// The model predicted `token`: it ends the decoding, starts the thoughts (the last-steps
    /// order's `<latent>` takes the first thought slot), or runs as the next position.
    fn generated(&mut self, token: u32) -> Feed {
        let ends = self.ends_with(token);
        if ends.is_some() || !self.plan.fits(self.ids.len() + 1) {
            self.ids.push(token);
            return self.stop(ends.unwrap_or(false));
        }
        if self.plan.starts_thoughts(token, self.thoughts_run > 0) {
            self.ids.push(token);
            return self.thought(0, self.plan.thoughts);
        }
        self.push_run(token)
    }

    /// Whether the plan's stop rule ends the decoding with `token` (just generated), and if so
    /// whether it finished.
    fn ends_with(&mut self, token: u32) -> Option<bool> {
        match &self.plan.stop {
            StopRule::Eos => (token == EOS).then_some(true),
            StopRule::AnswerDigits {
                tokens,
                max_written,
                ..
            } => match self.answer_len {
                Some(n) => {
                    let digits = |table: &[bool]| table.get(token as usize) == Some(&true);
                    let fits = digits(&tokens.digits) || (n == 0 && digits(&tokens.spaced_digits));
                    (!fits).then_some(true)
                }
                None => {
                    self.written += 1;
                    (self.written > *max_written).then_some(false)
                }
            },
        }
    }

    /// Appends `id` and runs it at the sequence's end; an `<eot>` of the plan's stop rule
    /// starts the answer.
    fn push_run(&mut self, id: u32) -> Feed {
        self.ids.push(id);
        if let StopRule::AnswerDigits { eot, .. } = &self.plan.stop {
            self.answer_len = match self.answer_len {
                Some(n) => Some(n + 1),
                None => (id == *eot).then_some(0),
            };
        }
        Feed::Token {
            id,
            position_id: self.plan.position_id(&self.ids, self.ids.len() - 1),
        }
    }

    fn stop(&mut self, finished: bool) -> Feed {
        self.phase = Phase::Stopped { finished };
        Feed::Stop { finished }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoding::AnswerTokens;
    use crate::stage::{Positions, StageKind};
    use crate::tokenizer::LATENT;
    use std::sync::Arc;

    /// Drives a decoder with predictions taken from `script` in turn; returns every feed.
    fn drive(decoder: &mut Decoder, script: &[u32]) -> Vec<Feed> {
        let mut script = script.iter();
        let mut feeds = Vec::new();
        loop {
            let feed = decoder.next(|| *script.next().expect("a prediction left"));
            feeds.push(feed);
            if let Feed::Stop { .. } = feed {
                return feeds;
            }
        }
    }

    const TOKEN: fn(u32, usize) -> Feed = |id, position_id| Feed::Token { id, position_id };
    const THOUGHT: fn(usize, usize) -> Feed =
        |slot, position_id| Feed::Thought { slot, position_id };

    #[test]
    fn prompt_then_thoughts_then_tokens_until_eos() {
        let mut d = Decoder::new(&[5, 6, 7], &Stage::latent(2, 1, 5), 16).unwrap();
        let feeds = drive(&mut d, &[9, 10, EOS]);
        assert_eq!(
            feeds,
            [
                TOKEN(5, 0),
                TOKEN(6, 1),
                TOKEN(7, 2),
                THOUGHT(0, 3),
                THOUGHT(1, 4),
                TOKEN(9, 5),
                TOKEN(10, 6),
                Feed::Stop { finished: true }
            ]
        );
        assert_eq!(d.thoughts_fed(), 2);
        assert_eq!(d.into_ids(), [5, 6, 7, LATENT, LATENT, 9, 10, EOS]);
    }

    #[test]
    fn the_last_position_ends_the_decoding_unfinished() {
        let mut d = Decoder::new(&[5, 6], &Stage::latent(0, 1, 5), 4).unwrap();
        // Positions 0-3: the prompt, then two tokens; the third token has no position left.
        let feeds = drive(&mut d, &[9, 10, 11]);
        assert_eq!(
            feeds[2..],
            [TOKEN(9, 2), TOKEN(10, 3), Feed::Stop { finished: false }]
        );
        assert_eq!(d.ids(), [5, 6, 9, 10, 11]);
        assert_eq!(d.stopped(), Some(false));
        // Once stopped, it stays stopped and asks for nothing.
        assert_eq!(d.next(|| unreachable!()), Feed::Stop { finished: false });
    }

    #[test]
    fn the_prefix_is_taken_at_once_and_the_rest_asks_for_predictions() {
        let pause = Stage::latent(0, 1, 5).with_kind(StageKind::Pause);
        let mut d = Decoder::new(&[5, 6], &pause, 16).unwrap();
        assert!(!d.plan().feeds_back);
        let prefix = d.prefix();
        assert_eq!(prefix.len(), 2 + 5);
        assert_eq!(prefix[6], THOUGHT(4, 6));
        assert!(d.needs_prediction() && d.prefix().is_empty());
        assert_eq!(d.next(|| 3), TOKEN(3, 7));
    }

    #[test]
    fn a_generated_latent_starts_the_last_steps_thoughts_once() {
        let stage = Stage::latent(2, 2, 5).with_positions(Positions::LAST_STEPS);
        let mut d = Decoder::new(&[5, 6], &stage, 40).unwrap();
        let feeds = drive(&mut d, &[9, LATENT, 11, LATENT, EOS]);
        assert_eq!(
            feeds[2..],
            [
                TOKEN(9, 2),
                THOUGHT(0, 3),
                THOUGHT(1, 4),
                THOUGHT(2, 5),
                THOUGHT(3, 6),
                TOKEN(11, 7),
                // A second <latent> is an ordinary token.
                TOKEN(LATENT, 8),
                Feed::Stop { finished: true }
            ]
        );
        assert_eq!(
            d.into_ids(),
            [5, 6, 9, LATENT, LATENT, LATENT, LATENT, 11, LATENT, EOS]
        );
    }

    #[test]
    fn triggered_thoughts_stop_where_no_position_is_left() {
        let stage = Stage::latent(2, 2, 5).with_positions(Positions::LAST_STEPS);
        let mut d = Decoder::new(&[5, 6], &stage, 7).unwrap();
        let feeds = drive(&mut d, &[9, 10, LATENT]);
        assert_eq!(
            feeds[2..],
            [
                TOKEN(9, 2),
                TOKEN(10, 3),
                THOUGHT(0, 4),
                THOUGHT(1, 5),
                THOUGHT(2, 6),
                Feed::Stop { finished: false }
            ]
        );
        assert_eq!(
            d.ids().len(),
            8,
            "the slot that did not fit is in the sequence"
        );
    }

    #[test]
    fn coupled_ids_follow_the_plan() {
        use crate::layout::{prompt, Layout};
        use crate::problem::Problem;
        use crate::tokenizer::Tokenizer;
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let stage = Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, None));
        let layout = Layout::new(&t, &p, &stage).unwrap();
        let mut d = Decoder::new(&prompt(&t, &p, &stage).unwrap(), &stage, 64).unwrap();
        // Predictions taken from the layout: every feed's id is the layout's position id.
        let feeds = drive(&mut d, &layout.ids[layout.thought_positions().end..]);
        let ids: Vec<usize> = feeds.iter().filter_map(Feed::position_id).collect();
        let want: Vec<usize> = layout.positions[..layout.ids.len() - 1]
            .iter()
            .map(|&i| i as usize)
            .collect();
        assert_eq!(ids, want);
        assert_eq!(d.into_ids(), layout.ids);
    }

    /// The seed family's rule over a toy vocabulary: ids 10-19 are digits, 20-29 a space and
    /// digits, 7 is `<eot>`, 3 the thought slot.
    fn seed_plan(prompt_len: usize, thoughts: usize, n_positions: usize) -> DecodePlan {
        let tokens = AnswerTokens {
            digits: (0..32).map(|id| (10..20).contains(&id)).collect(),
            spaced_digits: (0..32).map(|id| (20..30).contains(&id)).collect(),
        };
        let stop = StopRule::AnswerDigits {
            eot: 7,
            tokens: Arc::new(tokens),
            max_written: 4,
        };
        let forced = (thoughts > 0).then_some(7);
        DecodePlan::with_fed_thoughts(prompt_len, thoughts, n_positions, 3, forced, stop).unwrap()
    }

    #[test]
    fn the_seeds_eot_is_fed_after_the_thoughts_and_the_answer_ends_at_a_non_digit() {
        let mut d = Decoder::from_plan(&[1, 2], seed_plan(2, 2, 32));
        let feeds = drive(&mut d, &[21, 12, 13, 5]);
        assert_eq!(
            feeds,
            [
                TOKEN(1, 0),
                TOKEN(2, 1),
                THOUGHT(0, 2),
                THOUGHT(1, 3),
                TOKEN(7, 4),
                TOKEN(21, 5),
                TOKEN(12, 6),
                TOKEN(13, 7),
                Feed::Stop { finished: true }
            ]
        );
        assert_eq!(d.into_ids(), [1, 2, 3, 3, 7, 21, 12, 13, 5]);
        // A space and digits only opens the answer: later, it ends it.
        let mut d = Decoder::from_plan(&[1, 2], seed_plan(2, 1, 32));
        let feeds = drive(&mut d, &[21, 22]);
        assert_eq!(feeds.last(), Some(&Feed::Stop { finished: true }));
        assert_eq!(d.ids()[4..], [21, 22]);
    }

    #[test]
    fn the_seeds_stage_0_writes_its_own_eot_within_a_budget() {
        let mut d = Decoder::from_plan(&[1, 2], seed_plan(2, 0, 32));
        assert!(d.prefix().len() == 2 && d.needs_prediction());
        let feeds = drive(&mut d, &[4, 5, 7, 11, 6]);
        assert_eq!(feeds[..3], [TOKEN(4, 2), TOKEN(5, 3), TOKEN(7, 4)]);
        assert_eq!(feeds[3..], [TOKEN(11, 5), Feed::Stop { finished: true }]);
        // Four tokens may be written before <eot>; the fifth ends the decoding unfinished.
        let mut d = Decoder::from_plan(&[1, 2], seed_plan(2, 0, 32));
        let feeds = drive(&mut d, &[4, 4, 4, 4, 4]);
        assert_eq!(feeds.len(), 2 + 4 + 1);
        assert_eq!(d.stopped(), Some(false));
    }
}
