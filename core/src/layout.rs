//! A problem laid out for a stage: the token ids the model sees, where the thoughts go and which
//! positions carry the loss.
//!
//! Stage 2 (c = 1) of 347 + 285:
//! `347 + 285 = <bot> [T] [T] 3+2+1=6 write 6 <eot> 632 <eos>`, where each `[T]` holds the
//! `<latent>` id as a placeholder: its input is the previous position's final hidden state.

use crate::problem::{Problem, Step};
use crate::stage::Stage;
use crate::tokenizer::{Tokenizer, TokenizerError, BOT, EOS, EOT, LATENT};

/// One training or inference sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Token ids; thought slots hold [`LATENT`].
    pub ids: Vec<u32>,
    /// Position of `<bot>`; the thoughts sit at `bot + 1 ..= bot + thoughts`.
    pub bot: usize,
    /// Number of thought slots (fixed by the stage).
    pub thoughts: usize,
    /// `loss_mask[t]` is true when the token at `t` is a prediction target (predicted from the
    /// output at `t - 1`): the written steps left, `<eot>`, the answer and `<eos>`; never the
    /// question, `<bot>` or a thought.
    pub loss_mask: Vec<bool>,
}

impl Layout {
    /// Lays out `problem` for `stage`.
    pub fn new(
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
    ) -> Result<Layout, TokenizerError> {
        let mut ids = prompt(tokenizer, problem)?;
        let bot = ids.len() - 1;
        let thoughts = stage.thoughts();
        ids.extend(std::iter::repeat_n(LATENT, thoughts));
        let first_target = ids.len();
        let steps = problem.steps();
        let written: Vec<String> = steps
            .iter()
            .skip(stage.latent_steps())
            .map(Step::to_string)
            .collect();
        let mut tail = written.join(" <sep> ");
        tail.push_str(&format!(" <eot> {} <eos>", problem.answer()));
        ids.extend(tokenizer.encode(&tail)?);
        let loss_mask = (0..ids.len()).map(|t| t >= first_target).collect();
        Ok(Layout {
            ids,
            bot,
            thoughts,
            loss_mask,
        })
    }

    /// Positions of the thought slots.
    pub fn thought_positions(&self) -> std::ops::Range<usize> {
        self.bot + 1..self.bot + 1 + self.thoughts
    }

    /// The prompt an engine is given: everything up to and including `<bot>`.
    pub fn prompt(&self) -> &[u32] {
        &self.ids[..=self.bot]
    }

    /// Index of `<eot>`.
    pub fn eot(&self) -> usize {
        self.ids
            .iter()
            .rposition(|&id| id == EOT)
            .expect("every layout has <eot>")
    }
}

/// The question's ids followed by `<bot>`: what inference starts from.
pub fn prompt(tokenizer: &Tokenizer, problem: &Problem) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = tokenizer.encode(&problem.question())?;
    ids.push(BOT);
    Ok(ids)
}

/// The answer written between `<eot>` and `<eos>` in generated ids, as digits, if the model
/// finished (`<eos>`) and wrote only digits there.
pub fn answer_digits(tokenizer: &Tokenizer, generated: &[u32]) -> Option<String> {
    let eot = generated.iter().rposition(|&id| id == EOT)?;
    let eos = eot + generated[eot..].iter().position(|&id| id == EOS)?;
    let digits: String = generated[eot + 1..eos]
        .iter()
        .map(|&id| tokenizer.token(id).unwrap_or("?"))
        .collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::StageKind;

    fn text(t: &Tokenizer, ids: &[u32]) -> String {
        t.decode(ids).unwrap()
    }

    #[test]
    fn stage_two_matches_the_design() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let l = Layout::new(&t, &p, &Stage::latent(2, 1, 5)).unwrap();
        assert_eq!(
            text(&t, &l.ids),
            "347 + 285 = <bot> <latent> <latent> 3+2+1=6 write 6 <eot> 632 <eos>"
        );
        assert_eq!(l.thought_positions(), 9..11);
        assert_eq!(text(&t, l.prompt()), "347 + 285 = <bot>");
        // Targets: everything after the thoughts.
        let first = l.loss_mask.iter().position(|&m| m).unwrap();
        assert_eq!(first, 11);
        assert!(l.loss_mask[first..].iter().all(|&m| m));
        assert_eq!(l.loss_mask.len(), l.ids.len());
    }

    #[test]
    fn stage_zero_writes_everything_and_all_latent_writes_nothing() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let s0 = Layout::new(&t, &p, &Stage::latent(0, 1, 5)).unwrap();
        assert_eq!(text(&t, &s0.ids), p.full_text());
        assert_eq!(s0.loss_mask.iter().position(|&m| m), Some(s0.bot + 1));
        let all = Layout::new(&t, &p, &Stage::latent(5, 1, 5)).unwrap();
        assert_eq!(
            text(&t, &all.ids),
            "347 + 285 = <bot> <latent> <latent> <latent> <latent> <latent> <eot> 632 <eos>"
        );
    }

    #[test]
    fn thoughts_per_step_and_baselines() {
        let t = Tokenizer::new();
        let p = Problem::new(999, 1);
        let c2 = Layout::new(&t, &p, &Stage::latent(1, 2, 5)).unwrap();
        assert_eq!(c2.thoughts, 2);
        assert!(text(&t, &c2.ids).starts_with("999 + 1 = <bot> <latent> <latent> 9+0+1=10"));
        let base = Stage::latent(0, 1, 5);
        let nocot = Layout::new(&t, &p, &base.with_kind(StageKind::NoCot)).unwrap();
        assert_eq!(text(&t, &nocot.ids), "999 + 1 = <bot> <eot> 1000 <eos>");
        let pause = Layout::new(&t, &p, &base.with_kind(StageKind::Pause)).unwrap();
        assert_eq!(pause.thoughts, 5);
    }

    #[test]
    fn thought_count_does_not_depend_on_the_problem() {
        let t = Tokenizer::new();
        let stage = Stage::latent(4, 1, 5);
        for p in [Problem::new(1, 2), Problem::new(9999, 9999)] {
            assert_eq!(Layout::new(&t, &p, &stage).unwrap().thoughts, 4);
        }
    }

    #[test]
    fn reads_the_answer() {
        let t = Tokenizer::new();
        let l = Layout::new(&t, &Problem::new(347, 285), &Stage::latent(5, 1, 5)).unwrap();
        assert_eq!(answer_digits(&t, &l.ids).as_deref(), Some("632"));
        assert_eq!(answer_digits(&t, &l.ids[..l.ids.len() - 1]), None);
        let no_digits = t.encode("<bot> <eot> write <eos>").unwrap();
        assert_eq!(answer_digits(&t, &no_digits), None);
    }
}
