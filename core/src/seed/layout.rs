//! The seed's layouts (docs/seed-format.md, section 5) and the thought counts of free runs.
//!
//! Stage `k` makes `m` of a problem's `n` steps latent (`m = 0`, `min(1, n)`, `min(2, n)`, `n`
//! for stages 0-3). In the seed's order ([`LatentOrder::Last`]) they are the *last* `m`, and the
//! first `n - m` are written. Stage 0 is one text,
//! `"{a} + {b} = <bot> " + " <sep> ".join(steps) + " <eot> {answer}"`; stages 1-3 are three
//! pieces, tokenized separately as the seed does: the prefix `"{a} + {b} = <bot>"` with
//! `" {step} <sep>"` per written step, `m` thought positions (no token), and `"<eot> {answer}"`.
//! `347 + 285` at stage 3: `30995 1343 33015 796 220 50257 [t] [t] [t] 50259 718 2624`.
//!
//! This project's order on the same texts ([`LatentOrder::First`], `train --recipe
//! coconut-lab`): the *first* `m` steps are thoughts right after `"{a} + {b} = <bot>"`, and the
//! rest of stage 0's text follows them as one piece, `" {step} <sep> ... {step} <eot> {answer}"`
//! (`"<eot> {answer}"` when every step is latent, so stage 3 is the seed's in both orders).
//!
//! A step's text is [`Step`]'s `Display`, which is the seed's for equal-length operands (the
//! only ones the seed has): `7+5=12 write 2 carry 1`, `4+8+1=13 write 3 carry 1`,
//! `carry 1 write 1`.

use std::ops::Range;

use super::vocab::Gpt2Vocab;
use crate::problem::{Problem, Step};
pub use crate::stage::LatentOrder;

/// What [`SeedLayout::ids`] holds at a thought position: never a token id (the vocabulary ends
/// at 50260), so an engine that looked it up would fail loudly; the position's input is the
/// previous position's final hidden state (after `ln_f`), plus the position's `wpe` row.
pub const THOUGHT_SLOT: u32 = u32::MAX;

/// A stage of the seed's curriculum: 0 (every step written), 1 and 2 (one or two steps latent),
/// 3 (all latent; the seed's file `stage3_alllatent.pt`), and which steps are latent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeedStage {
    latent: u8,
    order: LatentOrder,
}

impl SeedStage {
    /// The seed's four stages, in its order (the last steps latent).
    pub const ALL: [SeedStage; 4] = [
        SeedStage::last(0),
        SeedStage::last(1),
        SeedStage::last(2),
        SeedStage::last(3),
    ];

    const fn last(latent: u8) -> SeedStage {
        SeedStage {
            latent,
            order: LatentOrder::Last,
        }
    }

    /// The seed's stage `index` (0-3, the last steps latent), `None` past its curriculum.
    pub fn new(index: u8) -> Option<SeedStage> {
        (index <= 3).then_some(SeedStage::last(index))
    }

    /// The stage a seed-family manifest entry describes: its kind (`stage0` .. `stage3`) and its
    /// order (the seed's when absent).
    pub fn of_entry(entry: &crate::manifest::StageEntry) -> Result<SeedStage, String> {
        let crate::stage::StageKind::Latent { k } = entry.kind else {
            return Err(format!("{}: not a seed stage", entry.id));
        };
        let stage = u8::try_from(k)
            .ok()
            .and_then(SeedStage::new)
            .ok_or_else(|| format!("{}: the seed's stages are stage0 to stage3", entry.id))?;
        Ok(stage.with_order(entry.latent_order.unwrap_or(LatentOrder::Last)))
    }

    /// The same stage with the steps of `order` latent.
    pub fn with_order(self, order: LatentOrder) -> SeedStage {
        SeedStage { order, ..self }
    }

    pub fn index(self) -> u8 {
        self.latent
    }

    pub fn order(self) -> LatentOrder {
        self.order
    }

    /// `m`: how many of a problem's `steps` steps are thoughts at this stage.
    pub fn latent_steps(self, steps: usize) -> usize {
        match self.latent {
            3 => steps,
            k => steps.min(k as usize),
        }
    }

    /// Whether a free run feeds `<eot>` after its thoughts: in the seed's order from stage 1 on
    /// (the written steps come before the thoughts); in the first-steps order only at stage 3,
    /// where no step is left to write (before it the model writes the rest and its own
    /// `<eot>`).
    pub fn feeds_eot(self) -> bool {
        match self.order {
            LatentOrder::Last => self.latent > 0,
            LatentOrder::First => self.latent == 3,
        }
    }
}

/// The problems the seed's model was trained on: two operands of the same length, 2 to 4 digits
/// (its data); others are refused, saying so.
pub fn check_problem(p: &Problem) -> Result<(), String> {
    let (da, db) = p.digit_counts();
    if da == db && (2..=4).contains(&da) {
        Ok(())
    } else {
        Err(format!(
            "the seed's model was trained on two operands of the same length, 2 to 4 digits; \
             this problem has {da} and {db}"
        ))
    }
}

/// How many steps a free run counts, hence how many thoughts it gets: the seed's own loop uses
/// the gold count, which tells the model whether the sum has an extra digit; the two operand-only
/// counts do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThoughtCount {
    /// The problem's steps: `d`, or `d + 1` when the sum has an extra digit (the seed's rule).
    Gold,
    /// The operands' digit count `d` (the final carry step is never thought).
    Columns,
    /// `d + 1`, whatever the sum.
    ColumnsPlusOne,
}

impl ThoughtCount {
    pub const ALL: [ThoughtCount; 3] = [
        ThoughtCount::Gold,
        ThoughtCount::Columns,
        ThoughtCount::ColumnsPlusOne,
    ];

    /// The step count this protocol gives `problem`.
    pub fn steps_counted(self, problem: &Problem) -> usize {
        match self {
            ThoughtCount::Gold => problem.steps().len(),
            ThoughtCount::Columns => problem.columns(),
            ThoughtCount::ColumnsPlusOne => problem.columns() + 1,
        }
    }

    /// `(written, thoughts)` of a free run's prompt at a stage from 1 on: `m` thoughts for the
    /// counted steps and, in the seed's order, the first `counted - m` gold steps written before
    /// them. The written steps always exist (`counted - m <= n` for `m >= 1`); for `Columns`
    /// they are the first `d - m` column steps. In the first-steps order the prompt writes none
    /// (the model writes the rest after its thoughts). Stage 0 thinks nothing and writes its own
    /// steps: `(0, 0)`.
    pub fn written_and_thoughts(self, problem: &Problem, stage: SeedStage) -> (usize, usize) {
        if stage.index() == 0 {
            return (0, 0);
        }
        let counted = self.steps_counted(problem);
        let thoughts = stage.latent_steps(counted);
        match stage.order() {
            LatentOrder::Last => (counted - thoughts, thoughts),
            LatentOrder::First => (0, thoughts),
        }
    }
}

/// The prefix of stages 1-3 and the prompt of every free run: `"{a} + {b} = <bot>"`, then
/// `" {step} <sep>"` per written step (so each written step keeps its `<sep>`).
pub fn prefix_text(problem: &Problem, written: &[Step]) -> String {
    let mut text = format!("{} + {} = <bot>", problem.a, problem.b);
    for step in written {
        text.push_str(&format!(" {step} <sep>"));
    }
    text
}

/// Stage 0's one text, single spaces around every special token, no `<sep>` before `<eot>`.
pub fn stage0_text(problem: &Problem) -> String {
    let steps: Vec<String> = problem.steps().iter().map(Step::to_string).collect();
    format!(
        "{} + {} = <bot> {} <eot> {}",
        problem.a,
        problem.b,
        steps.join(" <sep> "),
        problem.answer()
    )
}

/// The last piece of stages 1-3: `"<eot> {answer}"` (no space before `<eot>`, one after).
pub fn answer_text(problem: &Problem) -> String {
    format!("<eot> {}", problem.answer())
}

/// The piece after the thoughts in the first-steps order: the `written` steps as stage 0's text
/// writes them, then `<eot>` and the answer (`"<eot> {answer}"` when none is written).
pub fn after_thoughts_text(problem: &Problem, written: &[Step]) -> String {
    if written.is_empty() {
        return answer_text(problem);
    }
    let steps: Vec<String> = written.iter().map(Step::to_string).collect();
    format!(" {} <eot> {}", steps.join(" <sep> "), problem.answer())
}

/// The ids of a layout's text: digits, `+`, `=`, words and specials, all printable ASCII.
fn encode(vocab: &Gpt2Vocab, text: &str) -> Vec<u32> {
    vocab
        .encode(text)
        .expect("the seed's layout texts are printable ASCII")
}

/// A problem laid out for a stage as the seed trained it and measured its published accuracy:
/// the gold written steps, `m` thoughts, `<eot>` and the answer tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedLayout {
    /// Token ids, [`THOUGHT_SLOT`] at the thoughts.
    pub ids: Vec<u32>,
    /// The thought positions, right after the prefix. The seed's norm term is over the outputs
    /// at these positions (the last one's output is never fed).
    pub thoughts: Range<usize>,
    /// Positions whose logits predict the answer tokens: `<eot>` and every answer token but the
    /// last (the seed's metric and its loss from stage 1 on).
    pub answer_positions: Range<usize>,
    /// The answer's tokens (`" 632"` is `[718, 2624]`), predicted at `answer_positions`.
    pub answer_targets: Vec<u32>,
    /// `loss_mask[t]`: the token at `t` is a training target, predicted from the output at
    /// `t - 1`. The seed's order: every token but the first at stage 0, the answer tokens only
    /// at stages 1-3. The first-steps order: every token after `<bot>` and the thoughts (the
    /// written steps, `<eot>` and the answer).
    pub loss_mask: Vec<bool>,
}

impl SeedLayout {
    pub fn new(vocab: &Gpt2Vocab, problem: &Problem, stage: SeedStage) -> SeedLayout {
        let steps = problem.steps();
        let m = stage.latent_steps(steps.len());
        let (ids, thoughts) = match (stage.index(), stage.order()) {
            (0, _) => (encode(vocab, &stage0_text(problem)), 0..0),
            (_, LatentOrder::Last) => {
                let mut ids = encode(vocab, &prefix_text(problem, &steps[..steps.len() - m]));
                let thoughts = ids.len()..ids.len() + m;
                ids.extend(std::iter::repeat_n(THOUGHT_SLOT, m));
                ids.extend(encode(vocab, &answer_text(problem)));
                (ids, thoughts)
            }
            (_, LatentOrder::First) => {
                let mut ids = encode(vocab, &prefix_text(problem, &[]));
                let thoughts = ids.len()..ids.len() + m;
                ids.extend(std::iter::repeat_n(THOUGHT_SLOT, m));
                ids.extend(encode(vocab, &after_thoughts_text(problem, &steps[m..])));
                (ids, thoughts)
            }
        };
        // Stage 0's text holds one <eot>; stages 1-3 put it after the thoughts (and, in the
        // first-steps order, after the steps still written).
        let eot = ids
            .iter()
            .position(|&id| id == super::EOT)
            .expect("every seed layout holds <eot>");
        let bot = ids
            .iter()
            .position(|&id| id == super::BOT)
            .expect("every seed layout holds <bot>");
        let loss_mask = (0..ids.len())
            .map(|t| match stage.order() {
                LatentOrder::Last if stage.index() == 0 => t > 0,
                LatentOrder::Last => t > eot,
                LatentOrder::First => t > bot && t >= thoughts.end,
            })
            .collect();
        SeedLayout {
            answer_positions: eot..ids.len() - 1,
            answer_targets: ids[eot + 1..].to_vec(),
            ids,
            thoughts,
            loss_mask,
        }
    }

    /// This layout as core's [`Layout`], for an engine that runs layouts in one pass (the
    /// trainer's candle model and CPU engine): thought slots hold `<act>` (never looked up: an
    /// engine feeds the previous position's final hidden state there), position ids are the
    /// sequence's own (GPT-2's absolute ids), and the only targets are the answer tokens, so the
    /// outputs it predicts them from are those at [`SeedLayout::answer_positions`], in order:
    /// the seed's published metric.
    pub fn metric_layout(&self) -> crate::layout::Layout {
        let targets = self.answer_positions.start + 1..self.answer_positions.end + 1;
        self.as_layout((0..self.ids.len()).map(|t| targets.contains(&t)).collect())
    }

    /// This layout as core's [`Layout`] with its training targets ([`SeedLayout::loss_mask`]),
    /// for fine-tuning.
    pub fn training_layout(&self) -> crate::layout::Layout {
        self.as_layout(self.loss_mask.clone())
    }

    fn as_layout(&self, loss_mask: Vec<bool>) -> crate::layout::Layout {
        let ids: Vec<u32> = self
            .ids
            .iter()
            .map(|&id| if id == THOUGHT_SLOT { super::ACT } else { id })
            .collect();
        let bot = ids
            .iter()
            .position(|&id| id == super::BOT)
            .expect("every seed layout holds <bot>");
        crate::layout::Layout {
            loss_mask,
            positions: (0..ids.len() as u32).collect(),
            bot,
            first_thought: self.thoughts.start,
            thoughts: self.thoughts.len(),
            scheme: crate::positions::PositionScheme::Absolute,
            ids,
        }
    }
}

/// What a free run starts from: the prompt (question, `<bot>`, the written steps of the seed's
/// order), then `thoughts` fed vectors, then `<eot>` fed when `feeds_eot`
/// ([`SeedStage::feeds_eot`]); greedy tokens follow, read with [`Gpt2Vocab::answer_from`]. At
/// stage 0 nothing is fed: the model writes its steps and its own `<eot>` after
/// `"{a} + {b} = <bot>"`, and the answer is read after that; so it does after the thoughts at
/// stages 1-2 of the first-steps order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreePrompt {
    pub ids: Vec<u32>,
    pub thoughts: usize,
    pub feeds_eot: bool,
}

impl FreePrompt {
    pub fn new(
        vocab: &Gpt2Vocab,
        problem: &Problem,
        stage: SeedStage,
        count: ThoughtCount,
    ) -> FreePrompt {
        let (written, thoughts) = count.written_and_thoughts(problem, stage);
        let steps = problem.steps();
        FreePrompt {
            ids: encode(vocab, &prefix_text(problem, &steps[..written])),
            thoughts,
            feeds_eot: stage.feeds_eot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_counts_and_protocols() {
        let [s0, s1, s2, s3] = SeedStage::ALL;
        assert_eq!(SeedStage::new(4), None);
        assert_eq!([s0, s1, s2, s3].map(|s| s.latent_steps(3)), [0, 1, 2, 3]);
        assert_eq!(s2.latent_steps(1), 1);
        let carry = Problem::new(85, 27); // 3 steps, 2 columns
        let plain = Problem::new(12, 34); // 2 steps, 2 columns
        let wt = |c: ThoughtCount, p: &Problem, s| c.written_and_thoughts(p, s);
        assert_eq!(wt(ThoughtCount::Gold, &carry, s1), (2, 1));
        assert_eq!(wt(ThoughtCount::Columns, &carry, s1), (1, 1));
        assert_eq!(wt(ThoughtCount::Columns, &carry, s3), (0, 2));
        assert_eq!(wt(ThoughtCount::ColumnsPlusOne, &plain, s3), (0, 3));
        assert_eq!(wt(ThoughtCount::ColumnsPlusOne, &plain, s1), (2, 1));
        assert_eq!(wt(ThoughtCount::Gold, &carry, s0), (0, 0));
        // The first-steps order writes nothing before its thoughts and feeds <eot> only when
        // every step is latent.
        let first = |s: SeedStage| s.with_order(LatentOrder::First);
        assert_eq!(wt(ThoughtCount::Gold, &carry, first(s1)), (0, 1));
        assert_eq!(wt(ThoughtCount::Columns, &carry, first(s3)), (0, 2));
        assert_eq!(wt(ThoughtCount::Gold, &carry, first(s0)), (0, 0));
        assert_eq!(
            [s0, s1, s2, s3].map(|s| (s.feeds_eot(), first(s).feeds_eot())),
            [(false, false), (true, false), (true, false), (true, true)]
        );
        assert_eq!(
            (first(s2).index(), first(s2).order()),
            (2, LatentOrder::First)
        );
        assert_eq!(s2.order(), LatentOrder::Last);
    }

    #[test]
    fn texts_are_the_seeds() {
        let p = Problem::new(347, 285);
        assert_eq!(
            stage0_text(&p),
            "347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep> 4+8+1=13 write 3 carry 1 <sep> \
             3+2+1=6 write 6 <eot> 632"
        );
        assert_eq!(
            prefix_text(&p, &p.steps()[..1]),
            "347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep>"
        );
        assert_eq!(answer_text(&p), "<eot> 632");
        let steps: Vec<String> = Problem::new(99, 99)
            .steps()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            steps,
            [
                "9+9=18 write 8 carry 1",
                "9+9+1=19 write 9 carry 1",
                "carry 1 write 1"
            ]
        );
    }

    #[cfg(feature = "hf-tokenizer")]
    mod against_goldens {
        use super::super::*;
        use serde_json::Value;

        fn golden() -> Value {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/seed-standin/golden.json"
            );
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        }

        fn ids(v: &Value) -> Vec<u32> {
            let raw: Vec<i64> = serde_json::from_value(v.clone()).unwrap();
            raw.iter()
                .map(|&id| if id < 0 { THOUGHT_SLOT } else { id as u32 })
                .collect()
        }

        fn positions(v: &Value) -> Vec<usize> {
            serde_json::from_value(v.clone()).unwrap()
        }

        #[test]
        fn teacher_forced_layouts_equal_the_goldens() {
            let (fx, tok) = (golden(), crate::seed::tokenizer::shared());
            for case in fx["problems"].as_array().unwrap() {
                let p = Problem::new(case["a"].as_u64().unwrap(), case["b"].as_u64().unwrap());
                let steps: Vec<String> = p.steps().iter().map(|s| s.to_string()).collect();
                assert_eq!(steps, positions_str(&case["steps"]), "{p}");
                for stage in SeedStage::ALL {
                    let g = &case["stages"][format!("stage{}", stage.index())]["teacher_forced"];
                    let l = SeedLayout::new(tok, &p, stage);
                    let at = format!("{p} stage {}", stage.index());
                    assert_eq!(l.ids, ids(&g["ids"]), "{at}");
                    assert_eq!(
                        l.thoughts.clone().collect::<Vec<_>>(),
                        positions(&g["thought_positions"])
                    );
                    let answer: Vec<usize> = l.answer_positions.clone().collect();
                    assert_eq!(answer, positions(&g["answer_positions"]), "{at}");
                    assert_eq!(l.answer_targets, ids(&g["answer_ids"]), "{at}");
                    let targets: Vec<usize> =
                        (0..l.ids.len()).filter(|&t| l.loss_mask[t]).collect();
                    let answer_targets: Vec<usize> = answer.iter().map(|t| t + 1).collect();
                    if stage.index() == 0 {
                        assert_eq!(targets, (1..l.ids.len()).collect::<Vec<_>>());
                    } else {
                        assert_eq!(targets, answer_targets);
                    }
                    // As core's layout: the answer tokens are its only targets, the thoughts
                    // where they were, absolute positions.
                    let m = l.metric_layout();
                    let masked: Vec<usize> = (0..m.ids.len()).filter(|&t| m.loss_mask[t]).collect();
                    assert_eq!(masked, answer_targets, "{at}");
                    assert_eq!(m.thought_positions(), l.thoughts, "{at}");
                    assert!(m.ids.iter().all(|&id| (id as usize) < crate::seed::VOCAB));
                    assert_eq!(m.positions.len(), m.ids.len());
                    let trained = l.training_layout();
                    assert_eq!(trained.loss_mask, l.loss_mask, "{at}");
                    assert_eq!((&trained.ids, &trained.positions), (&m.ids, &m.positions));
                    assert!(m
                        .positions
                        .iter()
                        .enumerate()
                        .all(|(t, &p)| p as usize == t));
                }
            }
        }

        /// This project's order on the seed's texts is stage 0's tokens with the first `m` steps
        /// (each with its `<sep>`) made thoughts: the tokens after them are stage 0's, read
        /// from its own tokenization, and they are the targets.
        #[test]
        fn first_steps_order_is_stage_0_with_its_first_steps_thought() {
            let tok = crate::seed::tokenizer::shared();
            let (bot_id, sep_id, eot_id) = (crate::seed::BOT, crate::seed::SEP, crate::seed::EOT);
            for (a, b) in [(347, 285), (99, 99), (12, 34), (5555, 4445), (10, 90)] {
                let p = Problem::new(a, b);
                let n = p.steps().len();
                let zero = SeedLayout::new(tok, &p, SeedStage::ALL[0]);
                let at = |id| zero.ids.iter().position(|&x| x == id).unwrap();
                let (bot, eot) = (at(bot_id), at(eot_id));
                let seps: Vec<usize> = (0..zero.ids.len())
                    .filter(|&t| zero.ids[t] == sep_id)
                    .collect();
                assert_eq!(seps.len(), n - 1, "{p}");
                let targets = |l: &SeedLayout| -> Vec<usize> {
                    (0..l.ids.len()).filter(|&t| l.loss_mask[t]).collect()
                };
                for stage in SeedStage::ALL {
                    let first = stage.with_order(LatentOrder::First);
                    let l = SeedLayout::new(tok, &p, first);
                    let m = first.latent_steps(n);
                    let at = format!("{p} stage {}", stage.index());
                    // What follows <bot> and the thoughts, in this layout and in stage 0's.
                    let (after, rest) = match m {
                        0 => (bot + 1, bot + 1),
                        m if m < n => (bot + 1 + m, seps[m - 1] + 1),
                        _ => (bot + 1 + m, eot),
                    };
                    if m == 0 {
                        assert!(l.thoughts.is_empty(), "{at}");
                    } else {
                        assert_eq!(l.thoughts, bot + 1..after, "{at}");
                    }
                    assert_eq!(l.ids[..=bot], zero.ids[..=bot], "{at}");
                    assert!(l.ids[l.thoughts.clone()]
                        .iter()
                        .all(|&id| id == THOUGHT_SLOT));
                    assert_eq!(l.ids[after..], zero.ids[rest..], "{at}");
                    let expected: Vec<usize> = (after..l.ids.len()).collect();
                    assert_eq!(targets(&l), expected, "{at}");
                    assert_eq!(l.answer_targets, zero.answer_targets, "{at}");
                    let free = FreePrompt::new(tok, &p, first, ThoughtCount::Gold);
                    assert_eq!(free.ids, zero.ids[..=bot], "{at}");
                    assert_eq!(
                        (free.thoughts, free.feeds_eot),
                        (m, first.feeds_eot()),
                        "{at}"
                    );
                }
                // Every step latent: the seed's ids in both orders (its targets also hold <eot>).
                let all = SeedStage::ALL[3];
                let first = SeedLayout::new(tok, &p, all.with_order(LatentOrder::First));
                assert_eq!(first.ids, SeedLayout::new(tok, &p, all).ids, "{p}");
            }
        }

        fn positions_str(v: &Value) -> Vec<String> {
            serde_json::from_value(v.clone()).unwrap()
        }

        #[test]
        fn free_prompts_equal_the_goldens() {
            let (fx, tok) = (golden(), crate::seed::tokenizer::shared());
            let runs = [
                ("free_gold", ThoughtCount::Gold),
                ("free_columns", ThoughtCount::Columns),
                ("free_columns_plus_one", ThoughtCount::ColumnsPlusOne),
            ];
            let mut checked = 0;
            for case in fx["problems"].as_array().unwrap() {
                let p = Problem::new(case["a"].as_u64().unwrap(), case["b"].as_u64().unwrap());
                let stage0 = FreePrompt::new(tok, &p, SeedStage::ALL[0], ThoughtCount::Gold);
                let g0 = &case["stages"]["stage0"]["free"];
                assert_eq!(stage0.ids, ids(&g0["prefix_ids"]));
                assert_eq!((stage0.thoughts, stage0.feeds_eot), (0, false));
                for stage in &SeedStage::ALL[1..] {
                    for (name, count) in runs {
                        let g = &case["stages"][format!("stage{}", stage.index())][name];
                        if g.is_null() {
                            continue;
                        }
                        let f = FreePrompt::new(tok, &p, *stage, count);
                        let len = g["prefix_len"].as_u64().unwrap() as usize;
                        let at = format!("{p} stage {} {name}", stage.index());
                        assert_eq!(f.ids, ids(&g["ids"])[..len], "{at}");
                        assert_eq!(f.thoughts as u64, g["n_thoughts"], "{at}");
                        assert_eq!(count.steps_counted(&p) as u64, g["steps_counted"]);
                        assert_eq!(
                            positions(&g["thought_positions"]),
                            (len..len + f.thoughts).collect::<Vec<_>>()
                        );
                        assert_eq!(ids(&g["ids"])[len + f.thoughts], crate::seed::EOT);
                        assert!(f.feeds_eot);
                        checked += 1;
                    }
                }
            }
            assert_eq!(checked, 16 * (2 + 2 + 3));
        }
    }
}
