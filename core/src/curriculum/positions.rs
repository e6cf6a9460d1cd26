//! Position ids: which row of the position table (`wpe`) each position of a sequence adds.
//!
//! **Absolute** (GPT-2's): a token's index in the sequence. Trained on 1-4 digit operands, a
//! 5-digit problem puts its tokens at indices the model never saw in those roles, and every model
//! we and others trained that way scores 0% there.
//!
//! **Coupled** (Cho et al., NeurIPS 2024, "Position Coupling"): the id says which *column* a token
//! belongs to, so the digits the model must combine share an id however long the problem is.
//! With `col(j) = offset + 1 + j` for the column of significance `j` (units = 0) of a problem with
//! `L` columns (the longer operand's digits) plus the carry column `L`:
//!
//! | tokens | id |
//! |---|---|
//! | a digit of `a` or `b` of significance `j` | `col(j)` |
//! | the thoughts of column `j` (c per column) | `col(j)` |
//! | every token of the written step of column `j`, with its trailing `<sep>` | `col(j)` |
//! | the answer digit of significance `j` (the answer is written with `L + 1` digits, a leading zero when nothing carries out, so a digit's significance is known when it is written; most significant first, or units first with [`AnswerOrder::LeastSignificantFirst`]) | `col(j)` |
//! | `+`, `=`, `<bot>`, `<eot>`, `<eos>` (marks whose meaning is their content) | [`NO_COLUMN`] |
//!
//! Training draws `offset` at random per example, so the ids of columns beyond the trained lengths
//! are trained too; inference uses offset 0. The thoughts follow the input: `(L + 1) * c` for the
//! all-latent stage, so a longer problem gets more of them.
//!
//! **Ahead** ([`Coupled::ahead`]; the shipped stages use it): from `<bot>` on, each position takes
//! the column of what comes after it, the token it predicts or the next thought slot's column,
//! instead of its own. Then every prediction reads the column it writes by matching equal ids:
//! `<eot>` sits at the top column and predicts its digit, each answer digit at the column of the
//! next one, a step's `<sep>` at the next step's column. With its own ids, an answer digit at
//! `col(j + 1)` must find the thoughts of `col(j)`, a relation that holds only while columns are
//! numbered one apart; ahead, training may also space the columns by random gaps
//! ([`crate::layout::Layout::spread`]), so that ids further apart than any trained problem's
//! columns are trained as different columns too. What follows the last thought when every column is
//! latent (`<eot>`) and the last answer digit (`<eos>`) belongs to no column, so those two take
//! [`NO_COLUMN`].
//!
//! **Padded answers** (training only; the shipped stages were trained with it): an answer may be
//! written with extra leading zeros above the carry column, each at its own column's id (ahead, the
//! next digit's), so that the end of the answer is told by the ids, not by how many digits were
//! written ([`crate::layout::Layout::with_answer_pad`]).
//!
//! **Extra thoughts** (an experiment, training only): a latent column may get more than `c`
//! thoughts, all at its id (ahead, the next slot's), so that what a thought does is not tied to
//! its index in the chain ([`crate::layout::Layout::with_extra_thoughts`]).

use crate::tokenizer::{BOT, DIGIT0, EOT, EQUALS, PLUS, SEP};
use serde::{Deserialize, Serialize};

/// The id of the tokens that belong to no column.
pub const NO_COLUMN: u32 = 0;

/// How a stage assigns position ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionScheme {
    /// A token's index in the sequence (GPT-2).
    #[default]
    Absolute,
    /// A token's column (see the module's table).
    Coupled,
}

impl PositionScheme {
    pub fn is_absolute(&self) -> bool {
        *self == PositionScheme::Absolute
    }
}

/// The options only coupled ids have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ColumnIds {
    /// Whether each position from `<bot>` on takes the column of what follows it (the module's
    /// "Ahead").
    pub ahead: bool,
    /// How the question's operands are written: as typed (`None`), or both with the longer
    /// operand's digits and `k` more, leading zeros filling them (`Some(k)`;
    /// [`crate::stage::Stage::columns_for`]), so the shorter operand never misses a column's digit.
    pub operand_pad: Option<usize>,
}

/// A stage's position ids with the options of their scheme, as the manifest's stage entries and
/// training configurations write them: flat fields `positions` (written when coupled),
/// `ids_ahead` (written when true) and `operand_pad` (written when set). Ahead ids or padded
/// operands with absolute ids are refused when a file is read ([`PositionIds::from_fields`]), so
/// no value of this type holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PositionFields", into = "PositionFields")]
pub enum PositionIds {
    #[default]
    Absolute,
    Coupled(ColumnIds),
}

impl PositionIds {
    /// Coupled ids without options.
    pub const COUPLED: PositionIds = PositionIds::Coupled(ColumnIds {
        ahead: false,
        operand_pad: None,
    });

    /// The ids the flat settings name, refused where an option needs coupled ids and the scheme
    /// is absolute: the one check of these settings, for files and command lines alike.
    pub fn from_fields(
        scheme: PositionScheme,
        ahead: bool,
        operand_pad: Option<usize>,
    ) -> Result<PositionIds, PositionsError> {
        match scheme {
            PositionScheme::Coupled => Ok(PositionIds::Coupled(ColumnIds { ahead, operand_pad })),
            PositionScheme::Absolute if ahead => Err(PositionsError::AheadNeedsCoupled),
            PositionScheme::Absolute if operand_pad.is_some() => {
                Err(PositionsError::PadNeedsCoupled)
            }
            PositionScheme::Absolute => Ok(PositionIds::Absolute),
        }
    }

    pub fn scheme(&self) -> PositionScheme {
        match self {
            PositionIds::Absolute => PositionScheme::Absolute,
            PositionIds::Coupled(_) => PositionScheme::Coupled,
        }
    }

    pub fn is_absolute(&self) -> bool {
        self.scheme().is_absolute()
    }

    /// Whether positions take the column of what follows them (coupled ids only).
    pub fn ahead(&self) -> bool {
        matches!(self, PositionIds::Coupled(c) if c.ahead)
    }

    /// The padded columns above the longer operand's (coupled ids only).
    pub fn operand_pad(&self) -> Option<usize> {
        match self {
            PositionIds::Coupled(c) => c.operand_pad,
            PositionIds::Absolute => None,
        }
    }
}

/// Position settings that cannot go together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PositionsError {
    #[error("ids_ahead: ahead ids are a variant of coupled positions, and these are absolute")]
    AheadNeedsCoupled,
    #[error(
        "operand_pad: padded operands are written with coupled positions, and these are absolute"
    )]
    PadNeedsCoupled,
    #[error("latent_order: the last-steps order has absolute position ids only")]
    LastStepsNeedAbsolute,
}

/// [`PositionIds`] as files write it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct PositionFields {
    #[serde(skip_serializing_if = "PositionScheme::is_absolute")]
    positions: PositionScheme,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ids_ahead: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    operand_pad: Option<usize>,
}

impl TryFrom<PositionFields> for PositionIds {
    type Error = PositionsError;

    fn try_from(f: PositionFields) -> Result<Self, Self::Error> {
        PositionIds::from_fields(f.positions, f.ids_ahead, f.operand_pad)
    }
}

impl From<PositionIds> for PositionFields {
    fn from(ids: PositionIds) -> Self {
        PositionFields {
            positions: ids.scheme(),
            ids_ahead: ids.ahead(),
            operand_pad: ids.operand_pad(),
        }
    }
}

impl std::str::FromStr for PositionScheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "absolute" => Ok(PositionScheme::Absolute),
            "coupled" => Ok(PositionScheme::Coupled),
            other => Err(format!(
                "unknown position scheme '{other}': expected absolute or coupled"
            )),
        }
    }
}

impl std::fmt::Display for PositionScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PositionScheme::Absolute => "absolute",
            PositionScheme::Coupled => "coupled",
        })
    }
}

fn is_digit(id: u32) -> bool {
    (DIGIT0..DIGIT0 + 10).contains(&id)
}

/// In which order a stage writes the answer's digits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerOrder {
    /// The most significant digit first, as people write a number (this project's default).
    #[default]
    MostSignificantFirst,
    /// The units digit first (Cho et al.'s order for addition): each digit is written after
    /// the one whose carry it takes. With coupled ids the answer keeps its `columns + 1`
    /// digits (trailing zero when nothing carries out), so each digit's column is known as it
    /// is written.
    LeastSignificantFirst,
}

impl AnswerOrder {
    pub fn is_most_significant_first(&self) -> bool {
        *self == AnswerOrder::MostSignificantFirst
    }

    /// The number that `written` (digits in this order) spells, most significant digit first;
    /// also the other way round (the map is its own inverse).
    pub fn reading_order(&self, written: String) -> String {
        match self {
            AnswerOrder::MostSignificantFirst => written,
            AnswerOrder::LeastSignificantFirst => written.chars().rev().collect(),
        }
    }
}

/// Where [`Coupled::tail_ids`] stands between two tokens of the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TailState {
    /// In the written steps: the column of the step being written.
    Steps { column: usize },
    /// After `<eot>`: answer digits written so far.
    Answer { digits: usize },
}

impl TailState {
    /// Before the tail's first token, when the first `latent_columns` columns were thoughts.
    pub fn start(latent_columns: usize) -> TailState {
        TailState::Steps {
            column: latent_columns,
        }
    }
}

/// What a tail token is to the coupled ids: all that [`Coupled::tail_step`] reads of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TailClass {
    Eot,
    Sep,
    Digit,
    Other,
}

impl TailClass {
    pub const ALL: [TailClass; 4] = [
        TailClass::Eot,
        TailClass::Sep,
        TailClass::Digit,
        TailClass::Other,
    ];

    pub fn of(id: u32) -> TailClass {
        if id == EOT {
            TailClass::Eot
        } else if id == SEP {
            TailClass::Sep
        } else if is_digit(id) {
            TailClass::Digit
        } else {
            TailClass::Other
        }
    }

    /// A token of the class.
    pub fn representative(self) -> u32 {
        match self {
            TailClass::Eot => EOT,
            TailClass::Sep => SEP,
            TailClass::Digit => DIGIT0,
            TailClass::Other => PLUS,
        }
    }

    /// Its index in [`TailClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The coupled ids of one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coupled {
    /// The problem's columns: the longer operand's digits (the carry column is one more).
    pub columns: usize,
    /// Thoughts per column (the stage's c).
    pub thoughts_per_column: usize,
    /// Added to every column's id.
    pub offset: usize,
    /// The order the answer's digits are written in.
    pub answer_order: AnswerOrder,
    /// Whether positions from `<bot>` on take the column of what follows them (the module's
    /// "Ahead").
    pub ahead: bool,
    /// Leading zeros written above the carry column (training's random answer padding; 0 at
    /// inference), each at the id of its own column past the carry column.
    pub answer_pad: usize,
}

impl Coupled {
    /// The id of the column of significance `j`.
    pub fn column(&self, j: usize) -> u32 {
        (self.offset + 1 + j) as u32
    }

    /// The columns of a prompt `a + b = <bot>` (digits, `+`, digits, `=`, then anything), or
    /// `None` if the prompt does not have that shape.
    pub fn columns_of(prompt: &[u32]) -> Option<usize> {
        let plus = prompt.iter().position(|&id| id == PLUS)?;
        let equals = plus + 1 + prompt[plus + 1..].iter().position(|&id| id == EQUALS)?;
        let (a, b) = (&prompt[..plus], &prompt[plus + 1..equals]);
        let digits = |s: &[u32]| !s.is_empty() && s.iter().all(|&id| is_digit(id));
        (digits(a) && digits(b)).then_some(a.len().max(b.len()))
    }

    /// The ids of a prompt `a + b = <bot>`: each operand digit at its column, the rest
    /// [`NO_COLUMN`] (ahead, `<bot>` at the units column: it predicts the units' step or feeds
    /// the first thought).
    pub fn prompt_ids(&self, prompt: &[u32]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(prompt.len());
        for (t, &id) in prompt.iter().enumerate() {
            if self.ahead && id == BOT {
                ids.push(self.column(0));
            } else if is_digit(id) {
                // Digits left in this operand after this one = its significance.
                let end = prompt[t..]
                    .iter()
                    .position(|&x| !is_digit(x))
                    .map_or(prompt.len(), |n| t + n);
                ids.push(self.column(end - t - 1));
            } else {
                ids.push(NO_COLUMN);
            }
        }
        ids
    }

    /// The id of thought slot `slot` (0-based): its column's (ahead, the next slot's column; the
    /// last slot's is the column after the last thought's: the first written step's, or when
    /// every column is a thought, none, as `<eot>` follows).
    pub fn thought_id(&self, slot: usize) -> u32 {
        let slot = slot + usize::from(self.ahead);
        self.column_or_none(slot / self.thoughts_per_column.max(1))
    }

    /// The id of column `j`, or [`NO_COLUMN`] past the carry column (ahead, what follows the
    /// last thought or the last answer digit belongs to no column).
    pub fn column_or_none(&self, j: usize) -> u32 {
        if j <= self.columns {
            self.column(j)
        } else {
            NO_COLUMN
        }
    }

    /// The ids of the tokens after the thoughts (`tail`: written steps, `<eot>`, the answer,
    /// `<eos>`), when the first `latent_columns` columns were thoughts: the written step of
    /// column j (through its `<sep>`) at `col(j)`, the answer digit of significance j at `col(j)`.
    /// Ahead, each token takes the column of what follows it, as far as the prompt and the tokens
    /// so far tell: a step's tokens their column, its `<sep>` the next column (whether a step or
    /// `<eot>` follows is the model's to say), `<eot>` the first answer digit's, an answer digit
    /// the next digit's and the last [`NO_COLUMN`].
    pub fn tail_ids(&self, tail: &[u32], latent_columns: usize) -> Vec<u32> {
        let mut state = TailState::start(latent_columns);
        tail.iter()
            .map(|&id| {
                let (next, position_id) = self.tail_step(state, id);
                state = next;
                position_id
            })
            .collect()
    }

    /// One token of the tail ([`Coupled::tail_ids`]): its id, and where the tail stands after
    /// it. The id and the next state depend on the token only through its [`TailClass`].
    pub fn tail_step(&self, state: TailState, id: u32) -> (TailState, u32) {
        let ahead = usize::from(self.ahead);
        let (next, significance) = match (state, TailClass::of(id)) {
            (TailState::Steps { .. }, TailClass::Eot) => (
                TailState::Answer { digits: 0 },
                self.ahead.then(|| self.significance(0)),
            ),
            (TailState::Steps { column }, class) => {
                let after = column + usize::from(class == TailClass::Sep);
                let own = if self.ahead { after } else { column };
                (TailState::Steps { column: after }, Some(own))
            }
            (TailState::Answer { digits }, TailClass::Digit) if digits <= self.top() => {
                let digit = digits + ahead;
                (
                    TailState::Answer { digits: digits + 1 },
                    (digit <= self.top()).then(|| self.significance(digit)),
                )
            }
            (answer @ TailState::Answer { .. }, _) => (answer, None),
        };
        (next, significance.map_or(NO_COLUMN, |j| self.column(j)))
    }

    /// The most answer digits [`Coupled::tail_step`] counts; past them the state stays.
    pub fn most_answer_digits(&self) -> usize {
        self.top() + 1
    }

    /// The significance of the answer's highest written digit: the carry column's, or above it
    /// with a padded answer.
    fn top(&self) -> usize {
        self.columns + self.answer_pad
    }

    /// The significance of the answer's `i`-th written digit.
    fn significance(&self, i: usize) -> usize {
        match self.answer_order {
            AnswerOrder::MostSignificantFirst => self.top() - i,
            AnswerOrder::LeastSignificantFirst => i,
        }
    }

    /// The answer as a coupled layout writes it: `columns + 1` digits (and `answer_pad` more
    /// leading zeros), in the answer order.
    pub fn answer_text(&self, answer: u64) -> String {
        let padded = format!("{answer:0width$}", width = self.top() + 1);
        self.answer_order.reading_order(padded) // its own inverse: reading to written order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Tokenizer;

    fn ids(text: &str) -> Vec<u32> {
        Tokenizer::new().encode(text).unwrap()
    }

    #[test]
    fn prompt_digits_share_their_column_id() {
        let prompt = ids("347 + 85 = <bot>");
        assert_eq!(Coupled::columns_of(&prompt), Some(3));
        let c = Coupled {
            columns: 3,
            thoughts_per_column: 2,
            offset: 0,
            answer_order: AnswerOrder::MostSignificantFirst,
            ahead: false,
            answer_pad: 0,
        };
        assert_eq!(c.prompt_ids(&prompt), [3, 2, 1, 0, 2, 1, 0, 0]);
        let shifted = Coupled { offset: 5, ..c };
        assert_eq!(shifted.prompt_ids(&prompt), [8, 7, 6, 0, 7, 6, 0, 0]);
        assert_eq!(
            (c.thought_id(0), c.thought_id(1), c.thought_id(2)),
            (1, 1, 2)
        );
    }

    #[test]
    fn tail_steps_and_padded_answer() {
        let c = Coupled {
            columns: 3,
            thoughts_per_column: 1,
            offset: 0,
            answer_order: AnswerOrder::MostSignificantFirst,
            ahead: false,
            answer_pad: 0,
        };
        // Column 0 latent; columns 1 and 2 written; answer 0632 by significance 3, 2, 1, 0.
        let tail = ids("4+8+1=13 write 3 carry 1 <sep> 3+2+1=6 write 6 <eot> 0632 <eos>");
        let got = c.tail_ids(&tail, 1);
        let step1 = ids("4+8+1=13 write 3 carry 1 <sep>").len();
        let step2 = ids("3+2+1=6 write 6").len();
        let mut want = vec![2; step1];
        want.extend(vec![3; step2]);
        want.extend([0, 4, 3, 2, 1, 0]);
        assert_eq!(got, want);
        assert_eq!(c.answer_text(632), "0632");
        // Units first: the same digits at the same ids, read the other way.
        let lsd = Coupled {
            answer_order: AnswerOrder::LeastSignificantFirst,
            ..c
        };
        assert_eq!(lsd.answer_text(632), "2360");
        let tail = ids("<eot> 2360 <eos>");
        assert_eq!(lsd.tail_ids(&tail, 4), [0, 1, 2, 3, 4, 0]);
    }

    #[test]
    fn ahead_each_position_takes_the_column_it_predicts() {
        let c = Coupled {
            columns: 3,
            thoughts_per_column: 1,
            offset: 0,
            answer_order: AnswerOrder::MostSignificantFirst,
            ahead: true,
            answer_pad: 0,
        };
        // Operand digits keep their columns; <bot> feeds the units column's thought.
        assert_eq!(
            c.prompt_ids(&ids("347 + 285 = <bot>")),
            [3, 2, 1, 0, 3, 2, 1, 0, 1]
        );
        // The thought of column j sits at column j + 1's id (what follows it); the carry
        // column's, followed by <eot>, at none.
        assert_eq!(
            (0..4).map(|s| c.thought_id(s)).collect::<Vec<_>>(),
            [2, 3, 4, 0]
        );
        // <eot> at the top column, each digit at the next digit's column, the last at none.
        assert_eq!(c.tail_ids(&ids("<eot> 0632 <eos>"), 4), [4, 3, 2, 1, 0, 0]);
        // Written steps: a step's tokens at its column, its <sep> at the next one.
        let tail = ids("4+8+1=13 write 3 carry 1 <sep> 3+2+1=6 write 6 <eot> 0632 <eos>");
        let got = c.tail_ids(&tail, 1);
        let step1 = ids("4+8+1=13 write 3 carry 1").len();
        let step2 = ids("3+2+1=6 write 6").len();
        let mut want = vec![2; step1];
        want.push(3);
        want.extend(vec![3; step2]);
        want.extend([4, 3, 2, 1, 0, 0]);
        assert_eq!(got, want);
        // Two thoughts per column: the second of column j is at column j + 1.
        let c2 = Coupled {
            thoughts_per_column: 2,
            ..c
        };
        assert_eq!(
            (0..4).map(|s| c2.thought_id(s)).collect::<Vec<_>>(),
            [1, 2, 2, 3]
        );
        // Units first: <eot> at the units column, each digit at the next higher one.
        let lsd = Coupled {
            answer_order: AnswerOrder::LeastSignificantFirst,
            ..c
        };
        assert_eq!(
            lsd.tail_ids(&ids("<eot> 2360 <eos>"), 4),
            [1, 2, 3, 4, 0, 0]
        );
    }

    #[test]
    fn refuses_prompts_of_another_shape() {
        assert_eq!(Coupled::columns_of(&ids("347 = <bot>")), None);
        assert_eq!(Coupled::columns_of(&ids("+ 1 = <bot>")), None);
        assert_eq!(Coupled::columns_of(&ids("12 + 3 <bot>")), None);
        assert_eq!(Coupled::columns_of(&ids("12 + 3 =")), Some(2));
    }
}
