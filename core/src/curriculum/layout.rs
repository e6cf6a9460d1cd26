//! A problem laid out for a stage: the token ids the model sees, where the thoughts go and which
//! positions carry the loss.
//!
//! Stage 2 (c = 1) of 347 + 285:
//! `347 + 285 = <bot> [T] [T] 3+2+1=6 write 6 <eot> 632 <eos>`, where each `[T]` holds the
//! `<latent>` id as a placeholder: its input is the previous position's final hidden state.
//! In the last-steps order ([`LatentOrder::Last`]) the same stage writes the first steps and
//! thinks the last: `347 + 285 = <bot> 7+5=12 write 2 carry 1 [T] [T] <eot> 632 <eos>`, where
//! the first `[T]`'s `<latent>` is a target (the model says where its thoughts begin).

use crate::positions::{Coupled, PositionScheme, NO_COLUMN};
use crate::problem::{Problem, Step};
use crate::stage::{AnswerOrder, LatentOrder, Stage};
use crate::tokenizer::{Tokenizer, TokenizerError, BOT, DIGIT0, EOS, EOT, LATENT};

/// One training or inference sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Token ids; thought slots hold [`LATENT`].
    pub ids: Vec<u32>,
    /// Position of `<bot>`, the prompt's last token.
    pub bot: usize,
    /// Position of the first thought slot: `bot + 1`, or after the written steps in the
    /// last-steps order.
    pub first_thought: usize,
    /// Number of thought slots (fixed by the stage).
    pub thoughts: usize,
    /// `loss_mask[t]` is true when the token at `t` is a prediction target (predicted from the
    /// output at `t - 1`): the written steps left, `<eot>`, the answer and `<eos>`; never the
    /// question, `<bot>` or a thought.
    pub loss_mask: Vec<bool>,
    /// Each position's id in the position table ([`crate::positions`]).
    pub positions: Vec<u32>,
    /// How those ids were assigned.
    pub scheme: PositionScheme,
}

impl Layout {
    /// Lays out `problem` for `stage` (coupled ids with offset 0, as inference uses them).
    pub fn new(
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
    ) -> Result<Layout, TokenizerError> {
        Layout::with_offset(tokenizer, problem, stage, 0)
    }

    /// [`Layout::new`] with every column id moved up by `offset` (coupled ids; training draws it).
    pub fn with_offset(
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        offset: usize,
    ) -> Result<Layout, TokenizerError> {
        if stage.thoughts_on_trigger() {
            return Layout::last_steps_latent(tokenizer, problem, stage);
        }
        let mut ids = prompt(tokenizer, problem, stage)?;
        let bot = ids.len() - 1;
        let columns = stage.columns_for(problem);
        let thoughts = stage.thoughts_for(columns);
        let latent_columns = stage.latent_columns(columns);
        let coupled = Coupled::for_stage(stage, columns, offset);
        ids.extend(std::iter::repeat_n(LATENT, thoughts));
        let first_target = ids.len();
        let steps = problem.steps_through(columns);
        let written: Vec<String> = steps
            .iter()
            .skip(latent_columns)
            .map(Step::to_string)
            .collect();
        let answer = match stage.positions.scheme() {
            PositionScheme::Absolute => stage
                .answer_order
                .reading_order(problem.answer().to_string()),
            PositionScheme::Coupled => coupled.answer_text(problem.answer()),
        };
        let mut tail = written.join(" <sep> ");
        tail.push_str(&format!(" <eot> {answer} <eos>"));
        ids.extend(tokenizer.encode(&tail)?);
        let loss_mask = (0..ids.len()).map(|t| t >= first_target).collect();
        let positions = match stage.positions.scheme() {
            PositionScheme::Absolute => (0..ids.len() as u32).collect(),
            PositionScheme::Coupled => {
                let mut positions = coupled.prompt_ids(&ids[..=bot]);
                positions.extend((0..thoughts).map(|slot| coupled.thought_id(slot)));
                positions.extend(coupled.tail_ids(&ids[first_target..], latent_columns));
                positions
            }
        };
        Ok(Layout {
            ids,
            bot,
            first_thought: bot + 1,
            thoughts,
            loss_mask,
            positions,
            scheme: stage.positions.scheme(),
        })
    }

    /// The [`LatentOrder::Last`] layout (absolute ids): the first steps written after `<bot>`,
    /// then the thoughts (the first slot's `<latent>` a target, the model's trigger), `<eot>`,
    /// the answer.
    fn last_steps_latent(
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
    ) -> Result<Layout, TokenizerError> {
        debug_assert_eq!(stage.positions.order(), LatentOrder::Last);
        let mut ids = prompt(tokenizer, problem, stage)?;
        let bot = ids.len() - 1;
        let steps = problem.steps_through(stage.columns_for(problem));
        let written = steps.len().saturating_sub(stage.latent_steps());
        let text: Vec<String> = steps[..written].iter().map(Step::to_string).collect();
        if written > 0 {
            ids.extend(tokenizer.encode(&text.join(" <sep> "))?);
        }
        let first_thought = ids.len();
        let thoughts = stage.thoughts();
        ids.extend(std::iter::repeat_n(LATENT, thoughts));
        ids.extend(tokenizer.encode(&format!("<eot> {} <eos>", problem.answer()))?);
        let slots = first_thought + 1..first_thought + thoughts;
        let loss_mask = (0..ids.len())
            .map(|t| t > bot && !slots.contains(&t))
            .collect();
        Ok(Layout {
            positions: (0..ids.len() as u32).collect(),
            ids,
            bot,
            first_thought,
            thoughts,
            loss_mask,
            scheme: PositionScheme::Absolute,
        })
    }

    /// This layout with its column ids moved up by `offset` (coupled ids; absolute ids stay):
    /// the same as [`Layout::with_offset`] from scratch, without tokenizing again.
    pub fn shifted(&self, offset: usize) -> Layout {
        self.spread(offset, &[])
    }

    /// This layout (built at offset 0) with its column ids moved up by `offset` and column `j +
    /// 1` placed `gaps[j]` ids further from column `j` than the one id apart it was (missing gaps
    /// are 0; absolute ids stay): training's random spacing of the columns ([`crate::positions`],
    /// "Ahead").
    pub fn spread(&self, offset: usize, gaps: &[u32]) -> Layout {
        let mut moved = self.clone();
        if self.scheme == PositionScheme::Coupled {
            // Column j (id j + 1 at offset 0) moves by the offset and every gap below it.
            let mut moves = vec![offset as u32];
            for gap in gaps {
                moves.push(moves[moves.len() - 1] + gap);
            }
            for id in moved.positions.iter_mut().filter(|id| **id != NO_COLUMN) {
                let j = *id as usize - 1;
                *id += moves[j.min(moves.len() - 1)];
            }
        }
        moved
    }

    /// This coupled layout (built for `stage` at offset 0, before [`Layout::spread`]) with
    /// `extra[j]` more thoughts for latent column j (missing: 0): training's random extra
    /// thoughts, so a column's thoughts do not always sit at the same slot of the chain and
    /// reading the next column's digits is trained at later slots than the trained lengths
    /// reach ([`crate::positions`], "Extra thoughts"). The extra slots take their column's id
    /// (ahead, each slot the column of the slot after it). A layout with absolute ids or
    /// without thoughts is returned as it is.
    pub fn with_extra_thoughts(&self, stage: &Stage, extra: &[u32]) -> Layout {
        let c = stage.thoughts_per_step.max(1);
        let Some(columns) = self.coupled_columns().filter(|_| self.thoughts > 0) else {
            return self.clone();
        };
        let coupled = Coupled::for_stage(stage, columns, 0);
        // The column of each slot: column j's c thoughts and its extras.
        let slot_columns: Vec<usize> = (0..self.thoughts / c)
            .flat_map(|j| {
                let n = c + extra.get(j).copied().unwrap_or(0) as usize;
                std::iter::repeat_n(j, n)
            })
            .collect();
        let slot_ids = (0..slot_columns.len()).map(|s| {
            if stage.positions.ahead() {
                let next = slot_columns.get(s + 1).copied();
                coupled.column_or_none(next.unwrap_or(slot_columns[s] + 1))
            } else {
                coupled.column(slot_columns[s])
            }
        });
        let (before, after) = (self.first_thought, self.first_thought + self.thoughts);
        let mut layout = Layout {
            ids: self.ids[..before].to_vec(),
            positions: self.positions[..before].to_vec(),
            loss_mask: self.loss_mask[..before].to_vec(),
            thoughts: slot_columns.len(),
            ..self.clone()
        };
        layout
            .ids
            .extend(std::iter::repeat_n(LATENT, slot_columns.len()));
        layout.positions.extend(slot_ids);
        layout
            .loss_mask
            .extend(std::iter::repeat_n(false, slot_columns.len()));
        layout.ids.extend_from_slice(&self.ids[after..]);
        layout.positions.extend_from_slice(&self.positions[after..]);
        layout.loss_mask.extend_from_slice(&self.loss_mask[after..]);
        layout
    }

    /// This coupled layout (built for `stage` at offset 0) with its answer written with `pad`
    /// more leading zeros, each at the id of its column above the carry column: training's
    /// random answer padding ([`crate::positions`], "Padded answers"), so that how many digits
    /// were written does not tell where the answer ends and only the ids do. A layout with
    /// absolute ids, or `pad` 0, is returned as it is.
    pub fn with_answer_pad(&self, stage: &Stage, pad: usize) -> Layout {
        let Some(columns) = self.coupled_columns().filter(|_| pad > 0) else {
            return self.clone();
        };
        let coupled = Coupled {
            answer_pad: pad,
            ..Coupled::for_stage(stage, columns, 0)
        };
        let mut layout = self.clone();
        // Most significant first the zeros lead the digits; units first they end them.
        let at = match stage.answer_order {
            AnswerOrder::MostSignificantFirst => self.eot() + 1,
            AnswerOrder::LeastSignificantFirst => self.ids.len() - 1,
        };
        debug_assert_eq!(self.ids.last(), Some(&EOS));
        layout.ids.splice(at..at, std::iter::repeat_n(DIGIT0, pad));
        layout
            .loss_mask
            .splice(at..at, std::iter::repeat_n(true, pad));
        let tail = self.first_thought + self.thoughts;
        layout.positions.truncate(tail);
        layout
            .positions
            .extend(coupled.tail_ids(&layout.ids[tail..], stage.latent_columns(columns)));
        layout
    }

    /// The problem's columns, for a layout with coupled ids (what the training transforms above
    /// apply to); `None` with absolute ids.
    fn coupled_columns(&self) -> Option<usize> {
        (self.scheme == PositionScheme::Coupled)
            .then(|| Coupled::columns_of(self.prompt()))
            .flatten()
    }

    /// Positions of the thought slots.
    pub fn thought_positions(&self) -> std::ops::Range<usize> {
        self.first_thought..self.first_thought + self.thoughts
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

/// The question's ids as `stage` writes it ([`Stage::question`]) followed by `<bot>`: what
/// inference starts from.
pub fn prompt(
    tokenizer: &Tokenizer,
    problem: &Problem,
    stage: &Stage,
) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = tokenizer.encode(&stage.question(problem))?;
    ids.push(BOT);
    Ok(ids)
}

/// The answer written between `<eot>` and `<eos>` in generated ids, as digits in reading order
/// (most significant first, whatever `order` they were written in), if the model finished
/// (`<eos>`) and wrote only digits there.
pub fn answer_digits(
    tokenizer: &Tokenizer,
    generated: &[u32],
    order: AnswerOrder,
) -> Option<String> {
    let eot = generated.iter().rposition(|&id| id == EOT)?;
    let eos = eot + generated[eot..].iter().position(|&id| id == EOS)?;
    let digits: String = generated[eot + 1..eos]
        .iter()
        .map(|&id| tokenizer.token(id).unwrap_or("?"))
        .collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| order.reading_order(digits))
}

/// Whether `digits` (as [`answer_digits`] reads them) are `problem`'s answer: written plainly,
/// or with the leading zeros of a coupled layout's `columns + 1` digits, `columns` being those
/// the question was written with ([`Stage::columns_for`]).
pub fn answer_matches(problem: &Problem, digits: &str, columns: usize) -> bool {
    let plain = problem.answer().to_string();
    // A sum has at most columns + 1 digits, so `plain` always fits.
    digits.len() <= columns.max(problem.columns()) + 1
        && digits.len() >= plain.len()
        && digits.ends_with(&plain)
        && digits[..digits.len() - plain.len()]
            .bytes()
            .all(|b| b == b'0')
}

/// The significances (units = 0, through the carry column) whose digit the answer `digits` (as
/// [`answer_digits`] reads it) gets wrong; a digit missing above a shorter answer counts as the
/// zero a coupled layout writes there. Empty exactly when [`answer_matches`] holds; `None` when
/// no digit can be compared: nothing readable (`None`) or more digits than `columns + 1`
/// (`columns` as in [`answer_matches`]).
pub fn wrong_significances(
    problem: &Problem,
    digits: Option<&str>,
    columns: usize,
) -> Option<Vec<usize>> {
    let digits = digits?;
    let width = columns.max(problem.columns()) + 1;
    if digits.len() > width {
        return None;
    }
    // A sum has at most columns + 1 digits, so the padded answer is exactly `width` long.
    let gold = format!("{:0width$}", problem.answer());
    let written = digits.bytes().rev().chain(std::iter::repeat(b'0'));
    Some(
        gold.bytes()
            .rev()
            .zip(written)
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .map(|(j, _)| j)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Positions, StageKind};

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

    /// Padded operands: both written with the longer one's digits and the stage's padding, each
    /// zero at its column's id, the steps and the answer over every written column.
    #[test]
    fn padded_operands_are_written_at_their_columns() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 85);
        let stage = Stage::latent(2, 1, 5).with_positions(Positions::coupled(false, Some(2)));
        assert_eq!((stage.columns_for(&p), stage.thoughts_of(&p)), (5, 2));
        let l = Layout::new(&t, &p, &stage).unwrap();
        assert_eq!(
            text(&t, &l.ids),
            "00347 + 00085 = <bot> <latent> <latent> 3+0+1=4 write 4 <sep> 0+0=0 write 0 \
             <sep> 0+0=0 write 0 <eot> 000432 <eos>"
        );
        assert_eq!(&l.positions[..6], [5, 4, 3, 2, 1, 0]);
        assert_eq!(&l.positions[6..12], [5, 4, 3, 2, 1, 0]);
        assert_eq!(&l.positions[l.eot()..], [0, 6, 5, 4, 3, 2, 1, 0]);
        let all = stage.with_kind(StageKind::Latent { k: 5 });
        assert_eq!(all.thoughts_of(&p), 6);
        let read = answer_digits(
            &t,
            &Layout::new(&t, &p, &all).unwrap().ids,
            all.answer_order,
        );
        assert!(answer_matches(
            &p,
            read.as_deref().unwrap(),
            all.columns_for(&p)
        ));
        // As typed, the same stage without padding writes what it always did.
        let typed = stage.with_positions(Positions::COUPLED);
        assert_eq!(
            text(&t, Layout::new(&t, &p, &typed).unwrap().prompt()),
            "347 + 85 = <bot>"
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
    fn coupled_layout_puts_each_column_at_one_id() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let stage = Stage::latent(1, 2, 5).with_positions(Positions::COUPLED);
        let l = Layout::new(&t, &p, &stage).unwrap();
        assert_eq!(
            text(&t, &l.ids),
            "347 + 285 = <bot> <latent> <latent> 4+8+1=13 write 3 carry 1 <sep> 3+2+1=6 write 6 \
             <eot> 0632 <eos>"
        );
        assert_eq!(l.positions.len(), l.ids.len());
        assert_eq!(&l.positions[..l.bot + 1], [3, 2, 1, 0, 3, 2, 1, 0, 0]);
        assert_eq!(&l.positions[l.thought_positions()], [1, 1]);
        assert_eq!(&l.positions[l.eot()..], [0, 4, 3, 2, 1, 0]);
        assert_eq!(
            answer_digits(&t, &l.ids, AnswerOrder::MostSignificantFirst).as_deref(),
            Some("0632")
        );
        let shifted = Layout::with_offset(&t, &p, &stage, 4).unwrap();
        assert_eq!(shifted.ids, l.ids);
        let moved: Vec<u32> = l
            .positions
            .iter()
            .map(|&i| if i == 0 { 0 } else { i + 4 })
            .collect();
        assert_eq!(shifted.positions, moved);
        assert_eq!(l.shifted(4), shifted);
        // Absolute ids ignore the offset.
        let absolute = Layout::with_offset(&t, &p, &Stage::latent(1, 2, 5), 4).unwrap();
        assert_eq!(
            absolute.positions,
            (0..absolute.ids.len() as u32).collect::<Vec<_>>()
        );
        assert_eq!(absolute.shifted(4), absolute);
        assert_eq!(absolute.spread(4, &[2, 2]), absolute);
        // Gaps: columns 0..3 (ids 1..4) at offset 3 with gaps 2, 0, 1 between them.
        let spread = l.spread(3, &[2, 0, 1]);
        let want: Vec<u32> = l
            .positions
            .iter()
            .map(|&i| [0, 4, 7, 8, 10][i as usize])
            .collect();
        assert_eq!(spread.positions, want);
        assert_eq!(spread.ids, l.ids);
    }

    #[test]
    fn coupled_all_latent_thinks_every_column_of_a_longer_problem() {
        let t = Tokenizer::new();
        let stage = Stage::latent(5, 2, 5).with_positions(Positions::COUPLED);
        let l = Layout::new(&t, &Problem::new(123_456, 7), &stage).unwrap();
        assert_eq!(l.thoughts, 14);
        let ids: Vec<u32> = (1..=7).flat_map(|j| [j, j]).collect();
        assert_eq!(&l.positions[l.thought_positions()], ids);
        assert!(text(&t, &l.ids).ends_with("<eot> 0123463 <eos>"));
    }

    #[test]
    fn units_first_answers_keep_their_columns_and_read_back() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let stage = Stage::latent(5, 1, 5)
            .with_positions(Positions::COUPLED)
            .with_answer_order(AnswerOrder::LeastSignificantFirst);
        let l = Layout::new(&t, &p, &stage).unwrap();
        assert!(text(&t, &l.ids).ends_with("<eot> 2360 <eos>"));
        assert_eq!(&l.positions[l.eot()..], [0, 1, 2, 3, 4, 0]);
        let read = answer_digits(&t, &l.ids, stage.answer_order);
        assert_eq!(read.as_deref(), Some("0632"));
        assert!(answer_matches(&p, &read.unwrap(), p.columns()));
        // With absolute ids the digits are reversed without padding.
        let absolute = stage.with_positions(Positions::default());
        let l = Layout::new(&t, &p, &absolute).unwrap();
        assert!(text(&t, &l.ids).ends_with("<eot> 236 <eos>"));
        let read = answer_digits(&t, &l.ids, absolute.answer_order);
        assert_eq!(read.as_deref(), Some("632"));
    }

    #[test]
    fn last_steps_order_writes_the_first_steps_then_thinks() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285);
        let last = |k| Stage::latent(k, 1, 5).with_positions(Positions::LAST_STEPS);
        let l = Layout::new(&t, &p, &last(2)).unwrap();
        assert_eq!(
            text(&t, &l.ids),
            "347 + 285 = <bot> 7+5=12 write 2 carry 1 <latent> <latent> <eot> 632 <eos>"
        );
        assert_eq!(l.thought_positions(), l.first_thought..l.first_thought + 2);
        assert_eq!(text(&t, &l.ids[l.thought_positions()]), "<latent> <latent>");
        // Every token after <bot> is a target but the thoughts after the first (the trigger).
        let targets: Vec<usize> = (0..l.ids.len()).filter(|&i| l.loss_mask[i]).collect();
        let want: Vec<usize> = (l.bot + 1..l.ids.len())
            .filter(|&i| i != l.first_thought + 1)
            .collect();
        assert_eq!(targets, want);
        // More latent steps than the problem has: nothing written, the trigger after <bot>.
        let short = Layout::new(&t, &Problem::new(2, 3), &last(2)).unwrap();
        assert_eq!(
            text(&t, &short.ids),
            "2 + 3 = <bot> <latent> <latent> <eot> 5 <eos>"
        );
        assert!(short.loss_mask[short.first_thought]);
        // Stage 0, the all-latent stage and the baselines are the same in both orders.
        for stage in [
            last(0),
            last(5),
            last(0).with_kind(StageKind::Pause),
            last(0).with_kind(StageKind::NoCot),
        ] {
            let first = stage.with_positions(Positions::default());
            assert_eq!(
                Layout::new(&t, &p, &stage).unwrap(),
                Layout::new(&t, &p, &first).unwrap()
            );
        }
    }

    #[test]
    fn reads_the_answer() {
        let t = Tokenizer::new();
        let l = Layout::new(&t, &Problem::new(347, 285), &Stage::latent(5, 1, 5)).unwrap();
        assert_eq!(
            answer_digits(&t, &l.ids, AnswerOrder::MostSignificantFirst).as_deref(),
            Some("632")
        );
        assert_eq!(
            answer_digits(
                &t,
                &l.ids[..l.ids.len() - 1],
                AnswerOrder::MostSignificantFirst
            ),
            None
        );
        let no_digits = t.encode("<bot> <eot> write <eos>").unwrap();
        assert_eq!(
            answer_digits(&t, &no_digits, AnswerOrder::MostSignificantFirst),
            None
        );
        let p = Problem::new(347, 285);
        let matches = |p: &Problem, d: &str| answer_matches(p, d, p.columns());
        assert!(matches(&p, "632") && matches(&p, "0632"));
        assert!(!matches(&p, "00632") && !matches(&p, "1632"));
        assert!(!matches(&p, "32") && !matches(&p, "63"));
        let zero = Problem::new(0, 0);
        assert!(matches(&zero, "0") && matches(&zero, "00"));
        // Written with two columns of padding, up to 3 + 2 + 1 digits; fewer columns than the
        // problem's own count as its own.
        assert!(answer_matches(&p, "000632", 5) && !answer_matches(&p, "0000632", 5));
        assert!(answer_matches(&p, "0632", 1) && !answer_matches(&p, "00632", 1));
    }

    #[test]
    fn extra_thoughts_lengthen_their_column_and_keep_the_rest() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285); // 3 columns: 4 latent columns at the all-latent stage
        let coupled =
            |c, ahead| Stage::latent(5, c, 5).with_positions(Positions::coupled(ahead, None));
        for stage in [coupled(1, false), coupled(2, true), coupled(1, true)] {
            let l = Layout::new(&t, &p, &stage).unwrap();
            assert_eq!(l.with_extra_thoughts(&stage, &[]), l);
            assert_eq!(l.with_extra_thoughts(&stage, &[0, 0, 0, 0, 0]), l);
        }
        // A partly latent stage: the thoughts lengthen, the written steps stay.
        let partial = Stage::latent(2, 1, 5).with_positions(Positions::COUPLED);
        let written = Layout::new(&t, &p, &partial).unwrap();
        let longer = written.with_extra_thoughts(&partial, &[1]);
        assert_eq!(longer.thoughts, written.thoughts + 1);
        assert_eq!(
            longer.ids[longer.thought_positions().end..],
            written.ids[written.thought_positions().end..]
        );
        // Slot columns 0, 1, 1, 2, 3, 3, 3: own ids j + 1; ahead the next slot's (the last's:
        // none, <eot> follows).
        let extra = [0, 1, 0, 2];
        for (ahead, want) in [
            (false, [1, 2, 2, 3, 4, 4, 4]),
            (true, [2, 2, 3, 4, 4, 4, 0]),
        ] {
            let stage = coupled(1, ahead);
            let l = Layout::new(&t, &p, &stage).unwrap();
            let x = l.with_extra_thoughts(&stage, &extra);
            assert_eq!(x.thoughts, 7);
            assert_eq!(&x.positions[x.thought_positions()], &want);
            assert!(x.ids[x.thought_positions()].iter().all(|&id| id == LATENT));
            assert!(!x.loss_mask[..x.thought_positions().end].contains(&true));
            // Everything after the thoughts is the original's, ids and targets alike.
            let (a, b) = (x.thought_positions().end, l.thought_positions().end);
            assert_eq!(x.ids[a..], l.ids[b..]);
            assert_eq!(x.positions[a..], l.positions[b..]);
            assert_eq!(x.loss_mask[a..], l.loss_mask[b..]);
            assert_eq!(x.prompt(), l.prompt());
        }
        // Absolute ids: unchanged.
        let absolute = Stage::latent(5, 1, 5);
        let l = Layout::new(&t, &p, &absolute).unwrap();
        assert_eq!(l.with_extra_thoughts(&absolute, &[1, 1]), l);
    }

    #[test]
    fn a_padded_answer_puts_its_zeros_above_the_carry_column() {
        let t = Tokenizer::new();
        let p = Problem::new(347, 285); // 3 columns: 0632, carry column 3
        let coupled = |ahead, order| {
            Stage::latent(5, 1, 5)
                .with_positions(Positions::coupled(ahead, None))
                .with_answer_order(order)
        };
        let msd = AnswerOrder::MostSignificantFirst;
        let lsd = AnswerOrder::LeastSignificantFirst;
        for (ahead, order, text, ids) in [
            (
                false,
                msd,
                "<eot> 000632 <eos>",
                vec![0, 6, 5, 4, 3, 2, 1, 0],
            ),
            (
                true,
                msd,
                "<eot> 000632 <eos>",
                vec![6, 5, 4, 3, 2, 1, 0, 0],
            ),
            (
                false,
                lsd,
                "<eot> 236000 <eos>",
                vec![0, 1, 2, 3, 4, 5, 6, 0],
            ),
            (
                true,
                lsd,
                "<eot> 236000 <eos>",
                vec![1, 2, 3, 4, 5, 6, 0, 0],
            ),
        ] {
            let stage = coupled(ahead, order);
            let l = Layout::new(&t, &p, &stage).unwrap();
            assert_eq!(l.with_answer_pad(&stage, 0), l);
            let x = l.with_answer_pad(&stage, 2);
            let eot = x.eot();
            assert_eq!(t.decode(&x.ids[eot..]).unwrap(), text);
            assert_eq!(x.positions[eot..], ids, "ahead {ahead} {order:?}");
            assert_eq!(x.ids[..eot], l.ids[..eot]);
            assert_eq!(x.positions[..eot], l.positions[..eot]);
            assert!(x.loss_mask[eot..].iter().all(|&m| m));
            // Read in reading order whichever order it was written in.
            assert_eq!(answer_digits(&t, &x.ids, order).unwrap(), "000632");
        }
    }

    #[test]
    fn names_the_wrong_digits_by_significance() {
        let p = Problem::new(347, 285); // 632, written 0632 by a coupled layout
        let wrong = |d: Option<&str>| wrong_significances(&p, d, p.columns());
        assert_eq!(wrong(Some("632")), Some(vec![]));
        assert_eq!(wrong(Some("0632")), Some(vec![]));
        assert_eq!(wrong(Some("642")), Some(vec![1]));
        assert_eq!(wrong(Some("1532")), Some(vec![2, 3]));
        // A digit short: the hundreds are missing, read as the leading zero.
        assert_eq!(wrong(Some("32")), Some(vec![2]));
        assert_eq!(wrong(Some("00632")), None);
        assert_eq!(wrong(None), None);
        // Written with a column of padding: one significance more, the padded zero included.
        let padded = wrong_significances(&p, Some("10632"), 4);
        assert_eq!(padded, Some(vec![4]));
        // Nothing wrong exactly when the answer matches, over every short answer.
        for p in [
            Problem::new(347, 285),
            Problem::new(999, 1),
            Problem::new(5, 0),
        ] {
            for n in 0..10_000u32 {
                for digits in [n.to_string(), format!("{n:05}")] {
                    for columns in [p.columns(), p.columns() + 2] {
                        let none_wrong = wrong_significances(&p, Some(&digits), columns)
                            .is_some_and(|w| w.is_empty());
                        let matches = answer_matches(&p, &digits, columns);
                        assert_eq!(none_wrong, matches, "{p:?} {digits} {columns}");
                    }
                }
            }
        }
    }
}
