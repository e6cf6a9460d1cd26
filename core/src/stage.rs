//! The curriculum: which steps of the chain of thought a stage writes and which it thinks.
//!
//! Stage 0 writes every step. Stage k replaces the first k steps (each with its trailing `<sep>`)
//! by `k * c` continuous thoughts right after `<bot>`; the last stage, K = the most steps any
//! problem in range can need, is all-latent. Two baselines share the all-latent layout or none:
//! `nocot` answers right after `<bot> <eot>`, and `pause` feeds a fixed learned embedding (the
//! `<latent>` token's) instead of the fed-back hidden state, so the value of the feedback shows.

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

/// A stage of the curriculum with the settings that fix its thought count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    pub kind: StageKind,
    /// Continuous thoughts per replaced step (the paper's c).
    pub thoughts_per_step: usize,
    /// The most steps a problem in range needs (columns + final carry): the all-latent stage.
    pub max_steps: usize,
}

impl Stage {
    pub fn latent(k: usize, thoughts_per_step: usize, max_steps: usize) -> Stage {
        Stage {
            kind: StageKind::Latent {
                k: k.min(max_steps),
            },
            thoughts_per_step,
            max_steps,
        }
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

    /// The number of thought slots after `<bot>`: depends only on the stage, never on the problem.
    pub fn thoughts(&self) -> usize {
        match self.kind {
            StageKind::Latent { k } => k * self.thoughts_per_step,
            StageKind::NoCot => 0,
            StageKind::Pause => self.max_steps * self.thoughts_per_step,
        }
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
}
