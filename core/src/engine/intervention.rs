//! Editing a thought before it is fed in, and watching the rest of the run follow: the
//! experiments that show what a thought carries. A thought can be replaced by the same slot's
//! thought on another problem, zeroed, or reflected across a probe's decision boundary (for a
//! two-class probe such as a column's carry, its reading flips and nothing orthogonal changes).

use crate::decoder::Decoder;
use crate::decoding::{EngineError, Generation, Solution};
use crate::layout::prompt;
use crate::probes::{Quantity, ThoughtProbes};
use crate::problem::Problem;
use crate::reference::ReferenceModel;
use crate::stage::Stage;
use crate::tokenizer::Tokenizer;

/// What happens to the vector at a thought slot.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// Feed this vector instead (e.g. the same slot's thought on another problem).
    Replace(Vec<f32>),
    /// Feed zeros.
    Zero,
    /// Reflect across the hyperplane `direction · h + offset = 0`:
    /// `h - 2 (direction · h + offset) / |direction|² direction`.
    Reflect { direction: Vec<f32>, offset: f32 },
}

/// An edit of thought slot `slot` (0 = the first thought after `<bot>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Intervention {
    pub slot: usize,
    pub edit: Edit,
}

impl Intervention {
    /// Refuses an edit that cannot apply to a run with `thoughts` slots of width `width`.
    pub fn check(&self, thoughts: usize, width: usize) -> Result<(), EngineError> {
        let refuse = |why: String| Err(EngineError::Intervention(why));
        if self.slot >= thoughts {
            return refuse(format!(
                "thought {} does not exist: this problem has {thoughts} thoughts at this stage \
                 (numbered from 0)",
                self.slot
            ));
        }
        match &self.edit {
            Edit::Replace(v) | Edit::Reflect { direction: v, .. } if v.len() != width => {
                refuse(format!(
                    "the vector for thought {} has {} values, not {width}",
                    self.slot,
                    v.len()
                ))
            }
            Edit::Reflect { direction, .. } if direction.iter().all(|&d| d == 0.0) => refuse(
                format!("thought {}: a zero direction reflects nothing", self.slot),
            ),
            _ => Ok(()),
        }
    }

    /// `h` edited (checked before with [`Intervention::check`]).
    pub fn apply(&self, h: &[f32]) -> Vec<f32> {
        match &self.edit {
            Edit::Replace(v) => v.clone(),
            Edit::Zero => vec![0.0; h.len()],
            Edit::Reflect { direction, offset } => {
                let dot: f32 = direction.iter().zip(h).map(|(d, x)| d * x).sum();
                let norm2: f32 = direction.iter().map(|d| d * d).sum();
                let step = 2.0 * (dot + offset) / norm2;
                h.iter().zip(direction).map(|(x, d)| x - step * d).collect()
            }
        }
    }
}

/// The input at thought slot `slot`: `h` with that slot's edits applied, in order.
pub fn edited(edits: &[Intervention], slot: usize, h: Vec<f32>) -> Vec<f32> {
    edits
        .iter()
        .filter(|e| e.slot == slot)
        .fold(h, |h, e| e.apply(&h))
}

/// An edit as a person writes it (`coconut intervene --patch`, the page's `?patch=`): `J=zero`,
/// `J=from:A+B` (thought J of the problem A + B on the same stage) or `J=flip:C` (reflect thought
/// J across the boundary of column C's carry probe). J counts thoughts from 0.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchSpec {
    Zero { slot: usize },
    From { slot: usize, problem: String },
    FlipCarry { slot: usize, column: usize },
}

impl std::str::FromStr for PatchSpec {
    type Err = String;
    fn from_str(spec: &str) -> Result<PatchSpec, String> {
        let expected =
            "expected J=zero, J=from:A+B or J=flip:C (J the thought, from 0; C a column)";
        let (slot, edit) = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}': {expected}"))?;
        let slot: usize = slot
            .trim()
            .parse()
            .map_err(|_| format!("'{spec}': '{slot}' is not a thought number; {expected}"))?;
        let edit = edit.trim();
        if edit == "zero" {
            Ok(PatchSpec::Zero { slot })
        } else if let Some(problem) = edit.strip_prefix("from:") {
            Ok(PatchSpec::From {
                slot,
                problem: problem.to_string(),
            })
        } else if let Some(column) = edit.strip_prefix("flip:") {
            let column = column
                .parse()
                .map_err(|_| format!("'{spec}': '{column}' is not a column number"))?;
            Ok(PatchSpec::FlipCarry { slot, column })
        } else {
            Err(format!("'{spec}': {expected}"))
        }
    }
}

impl PatchSpec {
    /// The thought it edits.
    pub fn slot(&self) -> usize {
        match self {
            PatchSpec::Zero { slot }
            | PatchSpec::From { slot, .. }
            | PatchSpec::FlipCarry { slot, .. } => *slot,
        }
    }
}

impl std::fmt::Display for PatchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatchSpec::Zero { slot } => write!(f, "thought {slot} zeroed"),
            PatchSpec::From { slot, problem } => write!(f, "thought {slot} from {problem}"),
            PatchSpec::FlipCarry { slot, column } => {
                write!(f, "thought {slot} with column {column}'s carry flipped")
            }
        }
    }
}

/// What turns a [`PatchSpec`] into an [`Intervention`]: the stage's model (a `from:` edit takes
/// the other problem's thought from it), the largest operand, and the stage's probes (a flip
/// reflects across one of them).
pub struct PatchContext<'a> {
    pub model: &'a ReferenceModel,
    pub tokenizer: &'a Tokenizer,
    pub stage: &'a Stage,
    pub max_digits: usize,
    pub probes: Option<&'a ThoughtProbes>,
}

impl PatchContext<'_> {
    /// The edit `spec` means on this stage, refused with a message a person can act on (a thought
    /// the stage does not have for any problem it takes, a problem out of range, a flip without
    /// probes). A thought that a shorter problem lacks is refused when that problem is solved.
    pub fn resolve(&self, spec: &PatchSpec) -> Result<Intervention, String> {
        // With coupled ids the thoughts follow the problem's columns: the most are the longest's.
        let thoughts = self.stage.most_thoughts(self.max_digits);
        let slot = spec.slot();
        if slot >= thoughts {
            return Err(format!(
                "{spec}: thought {slot} does not exist: this stage has at most {thoughts} \
                 (numbered from 0)"
            ));
        }
        let edit = match spec {
            PatchSpec::Zero { .. } => Edit::Zero,
            PatchSpec::From { problem, .. } => {
                let other = Problem::parse(problem, self.max_digits)
                    .map_err(|e| format!("{slot}=from:{problem}: {e}"))?;
                let solved = self
                    .model
                    .solve(self.tokenizer, &other, self.stage, false)
                    .map_err(|e| e.to_string())?;
                let thought = solved.generation.thoughts.get(slot).ok_or_else(|| {
                    format!("{slot}=from:{problem}: that run has no thought {slot}")
                })?;
                Edit::Replace(thought.clone())
            }
            PatchSpec::FlipCarry { column, .. } => {
                let probes = self.probes.ok_or_else(|| {
                    format!(
                        "{slot}=flip:{column} reads the carry probe, and this stage has no probes"
                    )
                })?;
                let probe = probes.get(slot, *column, Quantity::Carry).ok_or_else(|| {
                    format!(
                        "{slot}=flip:{column}: the probes have no carry probe of column {column} \
                         at thought {slot}"
                    )
                })?;
                let (w, b) = (&probe.weight, &probe.bias);
                let c = probe.width();
                // The probe's margin (carry 1 minus carry 0) is direction · h + offset.
                Edit::Reflect {
                    direction: (0..c).map(|i| w[c + i] - w[i]).collect(),
                    offset: b[1] - b[0],
                }
            }
        };
        Ok(Intervention { slot, edit })
    }
}

/// The reference engine's runs with edited thoughts.
impl ReferenceModel {
    /// [`ReferenceModel::generate`] with `edits` applied to the thoughts before they are fed in
    /// (`Generation::thoughts` holds what was fed).
    pub fn generate_edited(
        &self,
        prompt_ids: &[u32],
        stage: &Stage,
        with_trace: bool,
        edits: &[Intervention],
    ) -> Result<Generation, EngineError> {
        let decoder = Decoder::new(prompt_ids, stage, self.config().n_positions)?;
        self.run_decoder_edited(decoder, with_trace, edits)
    }

    /// [`ReferenceModel::run_decoder`] with `edits` applied to its thoughts (each checked
    /// against the plan's thoughts and the model's width first).
    pub fn run_decoder_edited(
        &self,
        decoder: Decoder,
        with_trace: bool,
        edits: &[Intervention],
    ) -> Result<Generation, EngineError> {
        for edit in edits {
            edit.check(decoder.plan().thoughts, self.config().n_embd)?;
        }
        self.run_decoder_with(decoder, with_trace, |slot, input| {
            edited(edits, slot, input)
        })
    }

    /// [`ReferenceModel::solve`] with `edits` applied to the thoughts
    /// ([`ReferenceModel::generate_edited`]).
    pub fn solve_edited(
        &self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        with_trace: bool,
        edits: &[Intervention],
    ) -> Result<Solution, EngineError> {
        let ids = prompt(tokenizer, problem, stage)?;
        let generation = self.generate_edited(&ids, stage, with_trace, edits)?;
        Solution::new(tokenizer, problem, stage, generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::{Probe, ProbeScore};
    use crate::weights::random_weights;
    use crate::ModelConfig;

    #[test]
    fn patch_specs_parse_and_read_back() {
        let parse = |s: &str| s.parse::<PatchSpec>();
        assert_eq!(parse("2=zero"), Ok(PatchSpec::Zero { slot: 2 }));
        assert_eq!(
            parse("0=from:999+1"),
            Ok(PatchSpec::From {
                slot: 0,
                problem: "999+1".into()
            })
        );
        assert_eq!(
            parse(" 1 = flip:3"),
            Ok(PatchSpec::FlipCarry { slot: 1, column: 3 })
        );
        assert_eq!(
            parse("1=flip:3").unwrap().to_string(),
            "thought 1 with column 3's carry flipped"
        );
        for bad in ["zero", "x=zero", "1=swap", "1=flip:x", "-1=zero"] {
            assert!(parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn a_patch_resolves_on_its_stage_or_says_why_not() {
        let config = ModelConfig {
            n_positions: 64,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            ..ModelConfig::default()
        };
        let model = ReferenceModel::new(&random_weights(&config, 3));
        let tokenizer = Tokenizer::new();
        let stage = Stage::latent(2, 1, 5);
        let mut probes = ThoughtProbes::default();
        let score = ProbeScore {
            stage: "stage2".into(),
            slot: 1,
            column: 0,
            quantity: Quantity::Carry,
            accuracy: 99.0,
            shuffled: 50.0,
            majority: 50.0,
            n_fit: 1,
            n_test: 1,
        };
        let mut weight = vec![0.0; 16];
        weight[8] = 2.0; // class 1 reads the first number of the thought
        probes.scores.push(score);
        probes.probes.push((
            1,
            0,
            Quantity::Carry,
            Probe {
                weight,
                bias: vec![0.5, 0.0],
                classes: 2,
            },
        ));
        let ctx = PatchContext {
            model: &model,
            tokenizer: &tokenizer,
            stage: &stage,
            max_digits: 4,
            probes: Some(&probes),
        };
        let resolve = |s: &str| ctx.resolve(&s.parse().unwrap());
        assert_eq!(
            resolve("1=zero").unwrap(),
            Intervention {
                slot: 1,
                edit: Edit::Zero
            }
        );
        // `from:` takes the other problem's thought at the same slot.
        let other = model
            .solve(&tokenizer, &Problem::new(999, 1), &stage, false)
            .unwrap();
        let from = resolve("0=from:999+1").unwrap();
        assert_eq!(
            from.edit,
            Edit::Replace(other.generation.thoughts[0].clone())
        );
        // A flip reflects across the carry probe: direction w1 - w0, offset b1 - b0.
        let Edit::Reflect { direction, offset } = resolve("1=flip:0").unwrap().edit else {
            panic!("a flip reflects")
        };
        assert_eq!((direction[0], offset), (2.0, -0.5));
        let refused = |s: &str| resolve(s).unwrap_err();
        assert!(refused("2=zero").contains("this stage has at most 2"));
        assert!(refused("0=from:12345+1").contains("12345"));
        assert!(refused("0=from:").contains("0=from:"));
        assert!(refused("0=flip:0").contains("no carry probe of column 0 at thought 0"));
        let bare = PatchContext {
            probes: None,
            ..ctx
        };
        assert!(bare
            .resolve(&"1=flip:0".parse().unwrap())
            .unwrap_err()
            .contains("has no probes"));
    }

    #[test]
    fn a_reflection_flips_the_side_and_keeps_the_distance() {
        let e = Intervention {
            slot: 0,
            edit: Edit::Reflect {
                direction: vec![1.0, 1.0, 0.0],
                offset: -1.0,
            },
        };
        let h = [2.0, 1.0, 5.0]; // side: 2 + 1 - 1 = 2
        let r = e.apply(&h);
        let side = |v: &[f32]| v[0] + v[1] - 1.0;
        assert!((side(&r) + side(&h)).abs() < 1e-6, "{r:?}");
        assert_eq!(r[2], 5.0, "orthogonal parts stay");
        assert_eq!(e.apply(&r), h.to_vec(), "reflecting twice gives it back");
    }

    #[test]
    fn edits_apply_to_their_slot_only_and_bad_ones_are_refused() {
        let zero = Intervention {
            slot: 1,
            edit: Edit::Zero,
        };
        assert_eq!(
            edited(std::slice::from_ref(&zero), 0, vec![1.0, 2.0]),
            [1.0, 2.0]
        );
        assert_eq!(
            edited(std::slice::from_ref(&zero), 1, vec![1.0, 2.0]),
            [0.0, 0.0]
        );
        assert!(zero.check(2, 2).is_ok());
        let message = |e: Intervention| e.check(2, 2).unwrap_err().to_string();
        assert!(message(Intervention { slot: 2, ..zero }).contains("this problem has 2 thoughts"));
        let short = Intervention {
            slot: 0,
            edit: Edit::Replace(vec![1.0]),
        };
        assert!(message(short).contains("1 values, not 2"));
        let flat = Intervention {
            slot: 0,
            edit: Edit::Reflect {
                direction: vec![0.0, 0.0],
                offset: 1.0,
            },
        };
        assert!(message(flat).contains("zero direction"));
    }

    #[test]
    fn an_edited_thought_is_fed_and_the_run_continues_from_it() {
        let model = ReferenceModel::new(&random_weights(&ModelConfig::tiny(), 5));
        let stage = Stage::latent(3, 1, 5);
        let prompt = prompt(&Tokenizer::new(), &Problem::new(12, 34), &stage).unwrap();
        let plain = model.generate(&prompt, &stage, false).unwrap();
        // Replacing a thought by itself changes nothing.
        let same = Intervention {
            slot: 1,
            edit: Edit::Replace(plain.thoughts[1].clone()),
        };
        assert_eq!(
            model
                .generate_edited(&prompt, &stage, false, &[same])
                .unwrap(),
            plain
        );
        // Zeroing thought 1 feeds zeros there and changes the thought after it (computed from
        // the edited input), not the one before.
        let zero = Intervention {
            slot: 1,
            edit: Edit::Zero,
        };
        let edited = model
            .generate_edited(&prompt, &stage, false, &[zero])
            .unwrap();
        assert_eq!(edited.thoughts[0], plain.thoughts[0]);
        assert!(edited.thoughts[1].iter().all(|&v| v == 0.0));
        assert_ne!(edited.thoughts[2], plain.thoughts[2]);
        // A slot the stage does not have is refused.
        let missing = Intervention {
            slot: 3,
            edit: Edit::Zero,
        };
        let err = model.generate_edited(&prompt, &stage, false, &[missing]);
        assert!(matches!(err, Err(EngineError::Intervention(_))), "{err:?}");
    }
}
