//! Editing a thought before it is fed in, and watching the rest of the run follow: the
//! experiments that show what a thought carries. A thought can be replaced by the same slot's
//! thought on another problem, zeroed, or reflected across a probe's decision boundary (for a
//! two-class probe such as a column's carry, its reading flips and nothing orthogonal changes).

use crate::decoding::EngineError;

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
                "thought {} does not exist: this stage has {thoughts} (numbered from 0)",
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(message(Intervention { slot: 2, ..zero }).contains("this stage has 2"));
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
}
