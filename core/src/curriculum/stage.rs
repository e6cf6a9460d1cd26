//! The curriculum: which steps of the chain of thought a stage writes and which it thinks.
//!
//! Stage 0 writes every step. Stage k replaces the first k steps (each with its trailing `<sep>`)
//! by `k * c` continuous thoughts right after `<bot>`; the last stage, K = the most steps any
//! problem in range can need, is all-latent. Two baselines share the all-latent layout or none:
//! `nocot` answers right after `<bot> <eot>`, and `pause` feeds a fixed learned embedding (the
//! `<latent>` token's) instead of the fed-back hidden state, so the value of the feedback shows.

pub use crate::positions::AnswerOrder;
use crate::positions::{Coupled, PositionScheme};
use crate::Problem;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a stage does with the chain of thought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// The first `k` steps are continuous thoughts, the rest are written.
    Latent { k: usize },
    /// No chain of thought at all: `question <bot> <eot> answer <eos>`.
    NoCot,
    /// The all-latent layout, but every thought is the `<latent>` token's embedding.
    Pause,
}

/// Which steps of the chain of thought a latent stage replaces by thoughts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentOrder {
    /// The first `k` steps (Coconut's order, this project's curriculum): the thoughts follow
    /// `<bot>` and the later steps are written after them.
    #[default]
    First,
    /// The last `k` steps (the order the published attempt we started from trained; kept to
    /// compare with): the first steps are written, then the model writes `<latent>` where its
    /// thoughts begin, and the answer follows them. Absolute position ids only.
    Last,
}

impl std::str::FromStr for LatentOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "first" => Ok(LatentOrder::First),
            "last" => Ok(LatentOrder::Last),
            other => Err(format!(
                "unknown latent order '{other}': expected first or last"
            )),
        }
    }
}

impl std::str::FromStr for AnswerOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "msd-first" | "most-significant-first" => Ok(AnswerOrder::MostSignificantFirst),
            "lsd-first" | "least-significant-first" => Ok(AnswerOrder::LeastSignificantFirst),
            other => Err(format!(
                "unknown answer order '{other}': expected msd-first or lsd-first"
            )),
        }
    }
}

/// A stage of the curriculum with the settings that fix its thought count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    pub kind: StageKind,
    /// Continuous thoughts per replaced step (the paper's c).
    pub thoughts_per_step: usize,
    /// The most steps a problem in range needs (columns + final carry): the all-latent stage.
    pub max_steps: usize,
    /// Position ids ([`crate::positions`]); with coupled ids the thought count follows the
    /// problem's columns ([`Stage::thoughts_for`]).
    #[serde(default)]
    pub positions: PositionScheme,
    /// Which steps the thoughts replace ([`LatentOrder`]).
    #[serde(default)]
    pub order: LatentOrder,
    /// The order of the answer's digits ([`AnswerOrder`]).
    #[serde(default)]
    pub answer_order: AnswerOrder,
    /// With coupled ids, whether each position from `<bot>` on takes the column of what follows it
    /// ([`crate::positions`], "Ahead"; the manifest's stage entry says `"ids_ahead": true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ids_ahead: bool,
    /// How the question's operands are written: as typed (`None`), or both with the longer
    /// operand's digits and `k` more, leading zeros filling them (`Some(k)`; coupled ids only;
    /// [`Stage::columns_for`]), so the shorter operand is never missing a column's digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operand_pad: Option<usize>,
}

impl Stage {
    pub fn latent(k: usize, thoughts_per_step: usize, max_steps: usize) -> Stage {
        Stage {
            kind: StageKind::Latent {
                k: k.min(max_steps),
            },
            thoughts_per_step,
            max_steps,
            positions: PositionScheme::Absolute,
            order: LatentOrder::First,
            answer_order: AnswerOrder::MostSignificantFirst,
            ids_ahead: false,
            operand_pad: None,
        }
    }

    pub fn with_ids_ahead(self, ids_ahead: bool) -> Stage {
        Stage { ids_ahead, ..self }
    }

    pub fn with_operand_pad(self, operand_pad: Option<usize>) -> Stage {
        Stage {
            operand_pad,
            ..self
        }
    }

    /// The columns `problem` is written with at this stage: its longer operand's digits, and
    /// the [`Stage::operand_pad`] columns of leading zeros above them.
    pub fn columns_for(&self, problem: &Problem) -> usize {
        problem.columns() + self.operand_pad.unwrap_or(0)
    }

    /// The question as this stage writes it before `<bot>`: `347 + 85 =`, or with padded
    /// operands `00347 + 00085 =` (`operand_pad` 2).
    pub fn question(&self, problem: &Problem) -> String {
        match self.operand_pad {
            None => problem.question(),
            Some(_) => problem.padded_question(self.columns_for(problem)),
        }
    }

    pub fn with_answer_order(self, answer_order: AnswerOrder) -> Stage {
        Stage {
            answer_order,
            ..self
        }
    }

    pub fn with_order(self, order: LatentOrder) -> Stage {
        Stage { order, ..self }
    }

    /// Whether the model starts its thoughts itself, by writing `<latent>` after the steps it
    /// writes (the last-steps order, when a stage writes some steps and feeds thoughts back);
    /// otherwise they follow the prompt.
    pub fn thoughts_on_trigger(&self) -> bool {
        self.order == LatentOrder::Last
            && matches!(self.kind, StageKind::Latent { k } if k > 0)
            && !self.is_all_latent()
    }

    pub fn with_positions(self, positions: PositionScheme) -> Stage {
        Stage { positions, ..self }
    }

    /// The stages of the curriculum in training order, 0 to all-latent.
    pub fn curriculum(thoughts_per_step: usize, max_steps: usize) -> Vec<Stage> {
        (0..=max_steps)
            .map(|k| Stage::latent(k, thoughts_per_step, max_steps))
            .collect()
    }

    pub fn with_kind(self, kind: StageKind) -> Stage {
        Stage { kind, ..self }
    }

    /// How many steps are replaced by thoughts (all of them for the baselines' layouts).
    pub fn latent_steps(&self) -> usize {
        match self.kind {
            StageKind::Latent { k } => k,
            StageKind::NoCot | StageKind::Pause => self.max_steps,
        }
    }

    /// The number of thought slots after `<bot>` with absolute ids (the most any problem in range
    /// gets with coupled ids): depends only on the stage, never on the problem.
    pub fn thoughts(&self) -> usize {
        match self.kind {
            StageKind::Latent { k } => k * self.thoughts_per_step,
            StageKind::NoCot => 0,
            StageKind::Pause => self.max_steps * self.thoughts_per_step,
        }
    }

    /// The columns (steps) a problem of `columns` columns thinks: with absolute ids the stage's
    /// `k`; with coupled ids the first `k` of its `columns + 1` (all of them at the all-latent
    /// stage, however long the problem).
    pub fn latent_columns(&self, columns: usize) -> usize {
        match self.positions {
            PositionScheme::Absolute => self.latent_steps(),
            PositionScheme::Coupled if self.is_all_latent() => columns + 1,
            PositionScheme::Coupled => self.latent_steps().min(columns + 1),
        }
    }

    /// The thought slots of a problem of `columns` columns: [`Stage::thoughts`] with absolute
    /// ids, one per latent column and `c` with coupled ids (none for `nocot`).
    pub fn thoughts_for(&self, columns: usize) -> usize {
        match (self.positions, self.kind) {
            (PositionScheme::Absolute, _) | (_, StageKind::NoCot) => self.thoughts(),
            (PositionScheme::Coupled, _) => self.latent_columns(columns) * self.thoughts_per_step,
        }
    }

    /// The thought slots of `problem` as this stage writes it ([`Stage::columns_for`]).
    pub fn thoughts_of(&self, problem: &Problem) -> usize {
        self.thoughts_for(self.columns_for(problem))
    }

    /// The thought slots of the longest problem of `digits`-digit operands.
    pub fn most_thoughts(&self, digits: usize) -> usize {
        self.thoughts_for(digits + self.operand_pad.unwrap_or(0))
    }

    /// Whether a thought is the previous position's final hidden state (true) or a fixed embedding.
    pub fn feeds_back(&self) -> bool {
        matches!(self.kind, StageKind::Latent { .. })
    }

    pub fn is_all_latent(&self) -> bool {
        self.latent_steps() >= self.max_steps
    }

    /// The stage's id in files and URLs: `stage0` … `stage5`, `nocot`, `pause`.
    pub fn id(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageKind::Latent { k } => write!(f, "stage{k}"),
            StageKind::NoCot => f.write_str("nocot"),
            StageKind::Pause => f.write_str("pause"),
        }
    }
}

/// A stage id that names no stage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage '{0}': expected a number, stageN, nocot or pause")]
pub struct UnknownStage(pub String);

impl FromStr for StageKind {
    type Err = UnknownStage;

    /// Accepts `3`, `stage3`, `nocot` and `pause`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "nocot" | "no-cot" => return Ok(StageKind::NoCot),
            "pause" => return Ok(StageKind::Pause),
            _ => {}
        }
        let digits = t.strip_prefix("stage").unwrap_or(&t);
        digits
            .parse()
            .map(|k| StageKind::Latent { k })
            .map_err(|_| UnknownStage(s.to_string()))
    }
}

/// A stage's coupled ids ([`crate::positions`]).
impl Coupled {
    /// The ids of a problem of `columns` columns decoded or trained at `stage`.
    pub fn for_stage(stage: &Stage, columns: usize, offset: usize) -> Coupled {
        Coupled {
            columns,
            thoughts_per_column: stage.thoughts_per_step,
            offset,
            answer_order: stage.answer_order,
            ahead: stage.ids_ahead,
            answer_pad: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thought_counts() {
        let stages = Stage::curriculum(2, 5);
        assert_eq!(stages.len(), 6);
        let counts: Vec<usize> = stages.iter().map(Stage::thoughts).collect();
        assert_eq!(counts, [0, 2, 4, 6, 8, 10]);
        assert!(stages[5].is_all_latent() && !stages[4].is_all_latent());
        let pause = stages[0].with_kind(StageKind::Pause);
        assert_eq!((pause.thoughts(), pause.feeds_back()), (10, false));
        assert_eq!(stages[0].with_kind(StageKind::NoCot).thoughts(), 0);
    }

    #[test]
    fn coupled_thoughts_follow_the_columns() {
        let stages: Vec<Stage> = Stage::curriculum(2, 5)
            .into_iter()
            .map(|s| s.with_positions(PositionScheme::Coupled))
            .collect();
        // A 4-digit problem has 5 columns with the carry column: as with absolute ids.
        let four: Vec<usize> = stages.iter().map(|s| s.thoughts_for(4)).collect();
        assert_eq!(four, [0, 2, 4, 6, 8, 10]);
        // A 2-digit problem thinks at most its 3 columns; a 7-digit one all 8 when all-latent.
        assert_eq!(stages[4].thoughts_for(2), 6);
        assert_eq!(stages[5].thoughts_for(7), 16);
        assert_eq!(stages[4].thoughts_for(7), 8);
        let pause = stages[5].with_kind(StageKind::Pause);
        assert_eq!(pause.thoughts_for(6), 14);
        assert_eq!(stages[5].with_kind(StageKind::NoCot).thoughts_for(6), 0);
        assert_eq!(Stage::latent(3, 2, 5).thoughts_for(1), 6);
    }

    #[test]
    fn ids_round_trip() {
        for kind in [
            StageKind::Latent { k: 0 },
            StageKind::Latent { k: 5 },
            StageKind::NoCot,
            StageKind::Pause,
        ] {
            assert_eq!(kind.to_string().parse::<StageKind>(), Ok(kind));
        }
        assert_eq!("3".parse(), Ok(StageKind::Latent { k: 3 }));
        assert!("stage-1".parse::<StageKind>().is_err());
        assert!("banana".parse::<StageKind>().is_err());
    }

    #[test]
    fn answer_orders_read_back_to_the_number() {
        let lsd: AnswerOrder = "lsd-first".parse().unwrap();
        assert_eq!(lsd, AnswerOrder::LeastSignificantFirst);
        assert_eq!(lsd.reading_order("2360".into()), "0632");
        assert_eq!(AnswerOrder::default().reading_order("0632".into()), "0632");
        assert!("backwards".parse::<AnswerOrder>().is_err());
        // Older manifests and configs, without the field, read as most significant first.
        let old = r#"{"kind":{"latent":{"k":2}},"thoughts_per_step":2,"max_steps":5}"#;
        let stage: Stage = serde_json::from_str(old).unwrap();
        assert_eq!(stage.answer_order, AnswerOrder::MostSignificantFirst);
    }
}
