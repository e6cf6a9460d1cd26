//! A decoding's position ids as tables a GPU kernel can follow without the host (solve.wgsl).
//!
//! The ids of the prompt and of the thought slots after it are known before the decoding starts.
//! Those of the generated tail depend on what the model writes: with coupled ids, a `<sep>` moves
//! to the next column and `<eot>` to the answer's digits ([`Coupled::tail_step`]); with absolute
//! ids the tail's next id is one more than the last. Both are finite automata over the tail's
//! tokens, and [`Coupled::tail_step`] reads a token only through its [`TailClass`], so the
//! automaton is a table: per state, per class, the next state and the token's id. The table is
//! derived here from the same step function the [`crate::decoder::Decoder`] uses, so following
//! it gives [`DecodePlan::position_id`] at every position (tested below against the decoder).

use crate::decoding::{DecodePlan, EngineError, NO_TRIGGER};
use crate::positions::{Coupled, TailClass, TailState};

/// One problem's position ids as tables ([module doc](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionTable {
    /// The ids of the positions before generation: the prompt's, then the thought slots'.
    pub fixed: Vec<u32>,
    /// Per automaton state (state 0 before the tail's first token), per [`TailClass`] in
    /// [`TailClass::ALL`]'s order: `[state after a token of that class, the token's id]`.
    pub transitions: Vec<[[u32; 2]; 4]>,
}

impl PositionTable {
    /// The tables of `plan` for `prompt` (the prompt the plan was made for). Refused for a
    /// plan whose thoughts start where the model writes `<latent>` (where the thoughts sit is
    /// then the model's to say, not a table's).
    pub fn of(plan: &DecodePlan, prompt: &[u32]) -> Result<PositionTable, EngineError> {
        if plan.on_trigger {
            return Err(EngineError::Unsupported(NO_TRIGGER));
        }
        let before = plan.ids_before_answer(prompt);
        let fixed: Vec<u32> = (0..before.len())
            .map(|t| plan.position_id(&before, t) as u32)
            .collect();
        // Tail positions a decoding can run: every position after the fixed ones.
        let tail = plan.n_positions.saturating_sub(fixed.len()).max(1);
        let transitions = match plan.coupled {
            None => counter(fixed.len(), tail),
            Some(c) => coupled(&c, plan.thoughts / c.thoughts_per_column.max(1), tail),
        };
        Ok(PositionTable { fixed, transitions })
    }

    /// The ids of `sequence` (prompt, thought slots, tail) by following the tables, as the
    /// kernel does.
    pub fn follow(&self, sequence: &[u32]) -> Vec<u32> {
        let mut state = 0;
        sequence
            .iter()
            .enumerate()
            .map(|(t, &id)| match self.fixed.get(t) {
                Some(&position_id) => position_id,
                None => {
                    let [next, position_id] = self.transitions[state][TailClass::of(id).index()];
                    state = next as usize;
                    position_id
                }
            })
            .collect()
    }
}

/// Absolute ids: state `s` is the tail's `s`-th token, at `first + s`.
fn counter(first: usize, tail: usize) -> Vec<[[u32; 2]; 4]> {
    (0..tail)
        .map(|s| [[(s + 1).min(tail - 1) as u32, (first + s) as u32]; 4])
        .collect()
}

/// Coupled ids: the states [`Coupled::tail_step`] can reach within `tail` tokens, the columns
/// of the written steps first (from `latent_columns` on, one more per `<sep>` at most), then
/// the answer's digit counts.
fn coupled(c: &Coupled, latent_columns: usize, tail: usize) -> Vec<[[u32; 2]; 4]> {
    let answer_states = c.most_answer_digits() + 1;
    let index = |state: TailState| -> u32 {
        match state {
            // A column past the last only follows `tail` `<sep>`s, after the last tail token.
            TailState::Steps { column } => (column - latent_columns).min(tail) as u32,
            TailState::Answer { digits } => (tail + 1 + digits) as u32,
        }
    };
    let steps = (0..=tail).map(|i| TailState::Steps {
        column: latent_columns + i,
    });
    let answer = (0..answer_states).map(|digits| TailState::Answer { digits });
    steps
        .chain(answer)
        .map(|state| {
            TailClass::ALL.map(|class| {
                let (next, position_id) = c.tail_step(state, class.representative());
                [index(next), position_id]
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{Decoder, Feed};
    use crate::positions::AnswerOrder;
    use crate::stage::{Positions, Stage};
    use crate::tokenizer::{Tokenizer, EOT, SEP, VOCAB};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn stages() -> Vec<Stage> {
        let coupled = |latent, c| Stage::latent(latent, c, 5).with_positions(Positions::COUPLED);
        vec![
            Stage::latent(0, 1, 5),
            Stage::latent(3, 2, 5),
            coupled(0, 1),
            coupled(2, 2),
            coupled(5, 1),
            coupled(2, 1).with_positions(Positions::coupled(true, None)),
            coupled(5, 1).with_positions(Positions::coupled(true, Some(2))),
            coupled(1, 1)
                .with_positions(Positions::coupled(true, None))
                .with_answer_order(AnswerOrder::LeastSignificantFirst),
        ]
    }

    /// Token ids leaning to the ones that move the automaton (`<sep>`, `<eot>`, digits).
    fn random_token(r: &mut impl Rng) -> u32 {
        match r.random_range(0..6) {
            0 => SEP,
            1 => EOT,
            2 | 3 => Tokenizer::new()
                .encode(&r.random_range(0..10).to_string())
                .unwrap()[0],
            _ => r.random_range(0..VOCAB.len() as u32),
        }
    }

    #[test]
    fn every_token_acts_as_its_class() {
        let c = Coupled::for_stage(&stages()[6], 3, 1);
        for digits in 0..=c.most_answer_digits() {
            for state in [
                TailState::Steps { column: digits },
                TailState::Answer { digits },
            ] {
                for id in 0..VOCAB.len() as u32 {
                    let class = TailClass::of(id).representative();
                    assert_eq!(
                        c.tail_step(state, id),
                        c.tail_step(state, class),
                        "{state:?} {id}"
                    );
                }
            }
        }
    }

    /// Row by row: the table's ids are the decoder's, for random tails (most of them
    /// nonsense, which the automaton must still follow), every stage kind, 1-6 digit operands.
    #[test]
    fn following_the_table_gives_the_decoders_position_ids() {
        let tok = Tokenizer::new();
        let mut r = ChaCha8Rng::seed_from_u64(11);
        let n_positions = 64;
        let mut rows = 0;
        for stage in stages() {
            for _ in 0..60 {
                let digits = r.random_range(1..=6u32);
                let (a, b) = (
                    r.random_range(0..10u64.pow(digits)),
                    r.random_range(0..1000),
                );
                let prompt =
                    crate::layout::prompt(&tok, &crate::problem::Problem::new(a, b), &stage)
                        .unwrap();
                let mut decoder = Decoder::new(&prompt, &stage, n_positions).unwrap();
                let table = PositionTable::of(decoder.plan(), &prompt).unwrap();
                let mut want = Vec::new();
                loop {
                    match decoder.next(|| random_token(&mut r)) {
                        Feed::Stop { .. } => break,
                        feed => want.push(feed.position_id().unwrap() as u32),
                    }
                }
                let ids = decoder.into_ids();
                let got = table.follow(&ids[..want.len()]);
                assert_eq!(got, want, "{} {a} + {b}: {ids:?}", stage.id());
                rows += want.len();
            }
        }
        assert!(rows > 10_000, "{rows} positions compared");
    }

    #[test]
    fn a_last_steps_plan_has_no_table() {
        let stage = Stage::latent(2, 1, 5).with_positions(Positions::LAST_STEPS);
        let tok = Tokenizer::new();
        let prompt =
            crate::layout::prompt(&tok, &crate::problem::Problem::new(12, 34), &stage).unwrap();
        let plan = DecodePlan::new(&prompt, &stage, 64).unwrap();
        assert!(matches!(
            PositionTable::of(&plan, &prompt),
            Err(EngineError::Unsupported(_))
        ));
    }
}
