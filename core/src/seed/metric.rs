//! The seed's published metric, restated (docs/seed-format.md, section 8): teacher-forced, on
//! the first 500 validation problems, with each stage's own layout ([`super::layout::SeedLayout`]):
//! the argmax at `<eot>` and at every answer token but the last is decoded with transformers'
//! `decode`, stripped, and compared as *text* with the answer, so different ids that decode to
//! the same digits count (`"632"` without GPT-2's leading space does).

use super::vocab::{python_strip, Gpt2Vocab};
use crate::problem::Problem;

/// How many validation problems (from the first) the seed's published accuracy is measured on.
pub const PUBLISHED_PROBLEMS: usize = 500;

/// The seed's judgement of one problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeacherForcedJudgement {
    /// `tokenizer.decode(argmax).strip()`.
    pub decoded: String,
    /// Whether `decoded` is the answer's text.
    pub correct: bool,
}

/// Judges the argmax ids at a layout's `answer_positions` as the seed does.
pub fn judge(
    tokenizer: &Gpt2Vocab,
    problem: &Problem,
    answer_argmax: &[u32],
) -> TeacherForcedJudgement {
    let decoded = python_strip(&tokenizer.decode(answer_argmax)).to_string();
    let correct = decoded == problem.answer().to_string();
    TeacherForcedJudgement { decoded, correct }
}

#[cfg(all(test, feature = "hf-tokenizer"))]
mod tests {
    use super::*;
    use crate::seed::layout::{SeedLayout, SeedStage};
    use serde_json::Value;

    fn golden() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/seed-standin/golden.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn ids(v: &Value) -> Vec<u32> {
        serde_json::from_value(v.clone()).unwrap()
    }

    fn problem(case: &Value) -> Problem {
        Problem::new(case["a"].as_u64().unwrap(), case["b"].as_u64().unwrap())
    }

    #[test]
    fn judgements_equal_the_goldens() {
        let (fx, tok) = (golden(), crate::seed::tokenizer::shared());
        for case in fx["problems"].as_array().unwrap() {
            let p = problem(case);
            for stage in SeedStage::ALL {
                let g = &case["stages"][format!("stage{}", stage.index())]["teacher_forced"];
                let j = judge(tok, &p, &ids(&g["answer_argmax"]));
                assert_eq!(j.decoded, g["decoded"].as_str().unwrap(), "{p}");
                assert_eq!(j.correct, g["correct"].as_bool().unwrap(), "{p}");
                // The argmax at the answer positions of the whole-sequence argmax.
                let all = ids(&g["argmax"]);
                let layout = SeedLayout::new(tok, &p, stage);
                let picked: Vec<u32> = layout.answer_positions.map(|t| all[t]).collect();
                assert_eq!(picked, ids(&g["answer_argmax"]));
            }
        }
    }

    #[test]
    fn the_answer_counts_with_or_without_its_space() {
        let tok = crate::seed::tokenizer::shared();
        let p = Problem::new(347, 285);
        let layout = SeedLayout::new(tok, &p, SeedStage::ALL[3]);
        assert!(judge(tok, &p, &layout.answer_targets).correct);
        assert!(judge(tok, &p, &[21, 2624]).correct); // "6" "32"
        let wrong = judge(tok, &p, &[718, 2624, 13]); // " 6" "32" "."
        assert_eq!((wrong.decoded.as_str(), wrong.correct), ("632.", false));
    }

    /// Issue 31's answer rule on every free run of the goldens (stage 0: after its own `<eot>`).
    #[test]
    fn answer_rule_equals_the_goldens() {
        let (fx, tok) = (golden(), crate::seed::tokenizer::shared());
        let mut checked = 0;
        for case in fx["problems"].as_array().unwrap() {
            for (stage, runs) in case["stages"].as_object().unwrap() {
                for (name, run) in runs.as_object().unwrap() {
                    let generated = match name.as_str() {
                        "teacher_forced" => continue,
                        "free" => match run["eot_index"].as_u64() {
                            Some(eot) => ids(&run["generated"])[eot as usize + 1..].to_vec(),
                            None => continue,
                        },
                        _ => ids(&run["generated"]),
                    };
                    let got = tok.answer_from(&generated).unwrap_or_default();
                    assert_eq!(got, run["answer"].as_str().unwrap(), "{stage} {name}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 16 * 8);
    }
}
