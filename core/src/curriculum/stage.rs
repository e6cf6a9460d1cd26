//! The curriculum: which steps of the chain of thought a stage writes and which it thinks.
//!
//! Stage 0 writes every step. Stage k replaces the first k steps (each with its trailing `<sep>`)
//! by `k * c` continuous thoughts right after `<bot>`; the last stage, K = the most steps any
//! problem in range can need, is all-latent. Two baselines share the all-latent layout or none:
//! `nocot` answers right after `<bot> <eot>`, and `pause` feeds a fixed learned embedding (the
//! `<latent>` token's) instead of the fed-back hidden state, so the value of the feedback shows.

pub use crate::positions::AnswerOrder;
pub use crate::positions::{ColumnIds, PositionIds, PositionsError};
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

/// A stage's position ids and the steps its thoughts replace, together because only absolute
/// ids may think the last steps: no value holds coupled ids with the last-steps order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Positions {
    /// A token's index; the thoughts replace the first or the last steps.
    Absolute { order: LatentOrder },
    /// A token's column ([`crate::positions`]); the thoughts replace the first steps.
    Coupled(ColumnIds),
}

impl Default for Positions {
    fn default() -> Self {
        Positions::Absolute {
            order: LatentOrder::First,
        }
    }
}

impl Positions {
    /// Coupled ids without options.
    pub const COUPLED: Positions = Positions::Coupled(ColumnIds {
        ahead: false,
        operand_pad: None,
    });

    /// Absolute ids, thinking the last steps (the research order).
    pub const LAST_STEPS: Positions = Positions::Absolute {
        order: LatentOrder::Last,
    };

    /// Coupled ids with their options.
    pub const fn coupled(ahead: bool, operand_pad: Option<usize>) -> Positions {
        Positions::Coupled(ColumnIds { ahead, operand_pad })
    }

    /// `ids` thinking the first steps, which every scheme may.
    pub fn first_steps(ids: PositionIds) -> Positions {
        match ids {
            PositionIds::Absolute => Positions::default(),
            PositionIds::Coupled(c) => Positions::Coupled(c),
        }
    }

    /// `ids` thinking the steps `order` says, refused for coupled ids and the last steps.
    pub fn new(ids: PositionIds, order: LatentOrder) -> Result<Positions, PositionsError> {
        match (ids, order) {
            (PositionIds::Absolute, order) => Ok(Positions::Absolute { order }),
            (ids, LatentOrder::First) => Ok(Positions::first_steps(ids)),
            (PositionIds::Coupled(_), LatentOrder::Last) => {
                Err(PositionsError::LastStepsNeedAbsolute)
            }
        }
    }

    /// The ids without the order, as files write them.
    pub fn ids(&self) -> PositionIds {
        match *self {
            Positions::Absolute { .. } => PositionIds::Absolute,
            Positions::Coupled(c) => PositionIds::Coupled(c),
        }
    }

    pub fn scheme(&self) -> PositionScheme {
        self.ids().scheme()
    }

    pub fn is_absolute(&self) -> bool {
        matches!(self, Positions::Absolute { .. })
    }

    /// Which steps the thoughts replace (the first, with coupled ids).
    pub fn order(&self) -> LatentOrder {
        match self {
            Positions::Absolute { order } => *order,
            Positions::Coupled(_) => LatentOrder::First,
        }
    }

    /// With coupled ids, whether each position from `<bot>` on takes the column of what follows
    /// it ([`crate::positions`], "Ahead").
    pub fn ahead(&self) -> bool {
        self.ids().ahead()
    }

    /// With coupled ids, the padded columns above the longer operand's ([`Stage::columns_for`]).
    pub fn operand_pad(&self) -> Option<usize> {
        self.ids().operand_pad()
    }
}

/// A stage of the curriculum with the settings that fix its thought count. Serialized with
/// flat fields (`positions`, `order`, `ids_ahead`, `operand_pad`), read back through
/// [`Positions::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StageFields", into = "StageFields")]
pub struct Stage {
    pub kind: StageKind,
    /// Continuous thoughts per replaced step (the paper's c).
    pub thoughts_per_step: usize,
    /// The most steps a problem in range needs (columns + final carry): the all-latent stage.
    pub max_steps: usize,
    /// Position ids and the steps the thoughts replace; with coupled ids the thought count
    /// follows the problem's columns ([`Stage::thoughts_for`]).
    pub positions: Positions,
    /// The order of the answer's digits ([`AnswerOrder`]).
    pub answer_order: AnswerOrder,
}

/// [`Stage`] as it is serialized.
#[derive(Serialize, Deserialize)]
struct StageFields {
    kind: StageKind,
    thoughts_per_step: usize,
    max_steps: usize,
    #[serde(flatten)]
    ids: PositionIds,
    #[serde(default)]
    order: LatentOrder,
    #[serde(default)]
    answer_order: AnswerOrder,
}

impl TryFrom<StageFields> for Stage {
    type Error = PositionsError;

    fn try_from(f: StageFields) -> Result<Self, Self::Error> {
        Ok(Stage {
            kind: f.kind,
            thoughts_per_step: f.thoughts_per_step,
            max_steps: f.max_steps,
            positions: Positions::new(f.ids, f.order)?,
            answer_order: f.answer_order,
        })
    }
}

impl From<Stage> for StageFields {
    fn from(s: Stage) -> Self {
        StageFields {
            kind: s.kind,
            thoughts_per_step: s.thoughts_per_step,
            max_steps: s.max_steps,
            ids: s.positions.ids(),
            order: s.positions.order(),
            answer_order: s.answer_order,
        }
    }
}

impl Stage {
    pub fn latent(k: usize, thoughts_per_step: usize, max_steps: usize) -> Stage {
        Stage {
            kind: StageKind::Latent {
                k: k.min(max_steps),
            },
            thoughts_per_step,
            max_steps,
            positions: Positions::default(),
            answer_order: AnswerOrder::MostSignificantFirst,
        }
    }

    /// The columns `problem` is written with at this stage: its longer operand's digits, and
    /// the [`Positions::operand_pad`] columns of leading zeros above them.
    pub fn columns_for(&self, problem: &Problem) -> usize {
        problem.columns() + self.positions.operand_pad().unwrap_or(0)
    }

    /// The question as this stage writes it before `<bot>`: `347 + 85 =`, or with padded
    /// operands `00347 + 00085 =` (`operand_pad` 2).
    pub fn question(&self, problem: &Problem) -> String {
        match self.positions.operand_pad() {
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

    /// Whether the model starts its thoughts itself, by writing `<latent>` after the steps it
    /// writes (the last-steps order, when a stage writes some steps and feeds thoughts back);
    /// otherwise they follow the prompt.
    pub fn thoughts_on_trigger(&self) -> bool {
        self.positions.order() == LatentOrder::Last
            && matches!(self.kind, StageKind::Latent { k } if k > 0)
            && !self.is_all_latent()
    }

    pub fn with_positions(self, positions: Positions) -> Stage {
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
            Positions::Absolute { .. } => self.latent_steps(),
            Positions::Coupled(_) if self.is_all_latent() => columns + 1,
            Positions::Coupled(_) => self.latent_steps().min(columns + 1),
        }
    }

    /// The thought slots of a problem of `columns` columns: [`Stage::thoughts`] with absolute
    /// ids, one per latent column and `c` with coupled ids (none for `nocot`).
    pub fn thoughts_for(&self, columns: usize) -> usize {
        match (self.positions, self.kind) {
            (Positions::Absolute { .. }, _) | (_, StageKind::NoCot) => self.thoughts(),
            (Positions::Coupled(_), _) => self.latent_columns(columns) * self.thoughts_per_step,
        }
    }

    /// The thought slots of `problem` as this stage writes it ([`Stage::columns_for`]).
    pub fn thoughts_of(&self, problem: &Problem) -> usize {
        self.thoughts_for(self.columns_for(problem))
    }

    /// The thought slots of the longest problem of `digits`-digit operands.
    pub fn most_thoughts(&self, digits: usize) -> usize {
        self.thoughts_for(digits + self.positions.operand_pad().unwrap_or(0))
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
            ahead: stage.positions.ahead(),
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
            .map(|s| s.with_positions(Positions::COUPLED))
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

    /// The settings that cannot go together are refused where files and flags become a stage,
    /// and every stage that can be made reads back as itself.
    #[test]
    fn positions_hold_only_settings_that_go_together() {
        let ahead_padded = PositionIds::Coupled(ColumnIds {
            ahead: true,
            operand_pad: Some(2),
        });
        for (ids, order, refused) in [
            (PositionIds::Absolute, LatentOrder::Last, None),
            (ahead_padded, LatentOrder::First, None),
            (
                PositionIds::COUPLED,
                LatentOrder::Last,
                Some(PositionsError::LastStepsNeedAbsolute),
            ),
        ] {
            let made = Positions::new(ids, order);
            assert_eq!(made.err(), refused, "{ids:?} {order:?}");
            if let Ok(positions) = made {
                assert_eq!((positions.ids(), positions.order()), (ids, order));
            }
        }
        assert_eq!(
            PositionIds::from_fields(PositionScheme::Absolute, true, None),
            Err(PositionsError::AheadNeedsCoupled)
        );
        assert_eq!(
            PositionIds::from_fields(PositionScheme::Absolute, false, Some(0)),
            Err(PositionsError::PadNeedsCoupled)
        );
        let stages = [
            Stage::latent(2, 1, 5),
            Stage::latent(2, 1, 5).with_positions(Positions::LAST_STEPS),
            Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, Some(2))),
        ];
        for stage in stages {
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(
                serde_json::from_str::<Stage>(&json).unwrap(),
                stage,
                "{json}"
            );
        }
        // The flat fields of a file that cannot go together.
        let base = r#""kind":{"latent":{"k":2}},"thoughts_per_step":1,"max_steps":5"#;
        for (fields, says) in [
            (
                r#""positions":"coupled","order":"last""#,
                "last-steps order",
            ),
            (r#""ids_ahead":true"#, "ahead ids are a variant of coupled"),
            (
                r#""positions":"absolute","operand_pad":1"#,
                "padded operands",
            ),
        ] {
            let e = serde_json::from_str::<Stage>(&format!("{{{base},{fields}}}")).unwrap_err();
            assert!(e.to_string().contains(says), "{fields}: {e}");
        }
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
