//! What the page draws for one solved problem: the token timeline with each token's role, and,
//! for every position the model ran, the vectors the animation and the inspector show.
//! Serialized to JSON once per solve; the page never reaches into the model itself.

use coconut_core::decoding::{Solution, Trace};
use coconut_core::layout::answer_matches;
use coconut_core::manifest::ClassFigure;
use coconut_core::probes::{ProbeReading, Quantity, ThoughtProbes};
use coconut_core::reference::ReferenceModel;
use coconut_core::seed::vocab::{DigitKind, Gpt2Vocab};
use coconut_core::tokenizer::{Tokenizer, BOT, EOS, EOT};
use coconut_core::Problem;
use serde::Serialize;
use std::ops::Range;

/// Tokens shown in the "what is it thinking of" list.
const TOP_K: usize = 5;

#[derive(Debug, Serialize)]
pub struct SolveView {
    pub stage: String,
    pub a: u64,
    pub b: u64,
    /// The true sum, for marking the answer.
    pub expected: String,
    /// The digits the model wrote between `<eot>` and `<eos>` (None: it wrote none).
    pub answer: Option<String>,
    /// `verdict.correct`: core's answer rule.
    pub correct: bool,
    /// The one verdict on the answer the page shows (core's rule, leading zeros read).
    pub verdict: Verdict,
    /// What the manifest measured for this problem's own kind (its operand-length pair, and its
    /// carry chain where that set counted it: core's `StageEntry::measured_for`); None when it
    /// measured nothing for it. Filled by the session.
    pub measured: Option<ClassFigure>,
    /// That figure in words, or "not measured for this kind of problem".
    pub measured_note: String,
    /// Which thoughts of this run can be edited, and why not where none can.
    pub edits: EditScope,
    /// How the stage's probes were measured (for a stage with probes): their scores are shown
    /// only for problems of the lengths they were scored on.
    pub probed: Option<Probed>,
    /// What the stage's carry flips did where they were measured (`coconut intervene
    /// --measure-flips`), at every thought, for the edit controls; None: not measured.
    pub flips: Option<FlipsMeasured>,
    /// Whether `<eos>` came before the position limit.
    pub finished: bool,
    /// The decoded sequence, exactly as `coconut solve` prints it.
    pub text: String,
    pub tokens: Vec<TokenView>,
    /// One entry per position the model ran (every token but the last, which is only
    /// predicted); empty when the solve was asked without a trace.
    pub positions: Vec<PositionView>,
}

#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: u32,
    pub text: String,
    pub kind: TokenKind,
}

/// The role of a token in the sequence; the timeline colours by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Question,
    Bot,
    /// A continuous thought: its input is the previous position's final hidden state.
    Thought,
    /// A pause slot (the pause baseline): its input is the fixed `<latent>` embedding, nothing
    /// is fed back.
    Pause,
    Step,
    Eot,
    Answer,
    Eos,
}

#[derive(Debug, Serialize)]
pub struct PositionView {
    /// What entered the bottom of the stack: the token's embedding, or at a thought slot the
    /// previous position's final hidden state (for pause thoughts, the `<latent>` embedding).
    pub input: Vec<f32>,
    /// The residual stream after each block, `[n_layer][C]`.
    pub layers: Vec<Vec<f32>>,
    /// The final hidden state `h_t = ln_f(residual)`: what the LM head reads and what a latent
    /// stage feeds to the next position.
    pub hidden: Vec<f32>,
    /// The LM head applied to `h_t`, most probable first.
    pub top: Vec<Candidate>,
    /// Cosine similarity of `h_t` to the input embeddings of the digits 0-9.
    pub digits: Vec<f32>,
    /// Attention weights `[n_layer][n_head][t + 1]` over the positions so far.
    pub attention: Vec<Vec<Vec<f32>>>,
    /// At a thought slot of a stage shipped with probes: what each probe reads from the thought
    /// fed in here (`input`), with its held-out accuracy where it was measured for problems of
    /// this length. Empty elsewhere.
    pub probes: Vec<ProbeView>,
}

/// One probe's reading of a thought, for the inspector.
#[derive(Debug, PartialEq, Serialize)]
pub struct ProbeView {
    pub column: usize,
    pub quantity: Quantity,
    pub value: usize,
    pub p: f32,
    /// The probe's held-out accuracy and its shuffled-label baseline (percent), measured on
    /// problems of 1 to `Probed::digits` digits; None for a longer problem: not measured there.
    pub accuracy: Option<f64>,
    pub shuffled: Option<f64>,
}

/// The probes' measurement: fitted on `n_fit` training problems and scored on `n_test`
/// held-out ones, every operand of 1 to `digits` digits (the manifest's data splits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Probed {
    pub digits: usize,
    pub n_fit: usize,
    pub n_test: usize,
    /// Whether this problem is of a length they were scored on.
    pub measured_here: bool,
}

/// How an answer reads against the sum, by core's rule (`layout::answer_matches`): written
/// plainly, or with the leading zeros of a coupled layout (0632 for 632).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub correct: bool,
    /// The digits as written (None: no answer).
    pub answer: Option<String>,
    /// The number they write, leading zeros dropped (None: no answer).
    pub reads: Option<String>,
    /// The true sum.
    pub expected: String,
    /// "✓" or "✗".
    pub mark: &'static str,
    /// Where the written digits start with zeros: why, in a sentence (the page says it once,
    /// beside the answer).
    pub leading_zeros: Option<String>,
}

/// The verdict on `answer` for `problem`, its question written with `columns` columns
/// (`Stage::columns_for`: more than the problem's own where the stage pads the operands).
pub fn verdict(problem: &Problem, answer: Option<&str>, columns: usize) -> Verdict {
    let correct = answer.is_some_and(|digits| answer_matches(problem, digits, columns));
    let reads = answer.map(|d| match d.trim_start_matches('0') {
        "" => "0".to_string(),
        rest => rest.to_string(),
    });
    let leading_zeros = answer.zip(reads.as_deref()).and_then(|(written, reads)| {
        (written.len() > reads.len()).then(|| {
            let width = columns.max(problem.columns()) + 1;
            if columns > problem.columns() {
                format!(
                    "{written} is {reads}: this stage writes the operands with {columns} digits \
                     (leading zeros), and the sum with a digit per column and one for a final \
                     carry ({width} here)."
                )
            } else {
                format!(
                    "{written} is {reads}: the model writes one digit per column and one for a \
                     final carry ({width} here), so a sum without that carry starts with 0."
                )
            }
        })
    });
    Verdict {
        correct,
        answer: answer.map(str::to_string),
        reads,
        expected: problem.answer().to_string(),
        mark: if correct { "✓" } else { "✗" },
        leading_zeros,
    }
}

/// The thoughts of one run that can be edited (`coconut intervene`'s rule): thought slots
/// `0..slots`; `why_not` says why when some or all cannot.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EditScope {
    pub slots: usize,
    pub why_not: Option<String>,
}

/// A stage's carry flips as measured (`coconut intervene --measure-flips`), on held-out
/// problems of 1 to `digits` digits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlipsMeasured {
    pub digits: usize,
    /// The largest share of problems whose answer moved as the flipped carry would, over every
    /// thought and column, and where.
    pub most: f64,
    pub most_slot: usize,
    pub most_column: usize,
    /// Per thought slot, per column: what the flip did.
    pub rows: Vec<FlipFigure>,
}

/// What flipping one column's carry probe at one thought did over the measured problems.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlipFigure {
    pub slot: usize,
    pub column: usize,
    pub problems: usize,
    pub unchanged: f64,
    pub as_the_carry_would: f64,
}

#[derive(Debug, Serialize)]
pub struct Candidate {
    pub token: String,
    pub p: f32,
}

/// What a view needs of a model family's vocabulary: this project's 22 tokens, or the seed's
/// GPT-2 BPE.
pub trait TokenTexts {
    /// A token's text as the timeline shows it.
    fn text(&self, id: u32) -> String;
    /// The ids of the digits 0-9, each a token of its own.
    fn digit_ids(&self) -> Vec<u32>;
    /// `<bot>`: the question ends there.
    fn bot(&self) -> u32;
    fn eot(&self) -> u32;
    /// The end-of-sequence token, where the family has one.
    fn eos(&self) -> Option<u32>;
    /// Whether token `id`, the `nth` after `<eot>`, ends the answer rather than continuing it.
    fn ends_answer(&self, id: u32, nth: usize) -> bool;
}

impl TokenTexts for Tokenizer {
    fn text(&self, id: u32) -> String {
        self.token(id).unwrap_or("<?>").to_string()
    }
    fn digit_ids(&self) -> Vec<u32> {
        (0..10)
            .filter_map(|d| self.encode(&d.to_string()).ok()?.first().copied())
            .collect()
    }
    fn bot(&self) -> u32 {
        BOT
    }
    fn eot(&self) -> u32 {
        EOT
    }
    fn eos(&self) -> Option<u32> {
        Some(EOS)
    }
    fn ends_answer(&self, id: u32, _: usize) -> bool {
        id == EOS
    }
}

/// The seed's answer rule: digits after `<eot>`, the first token may be spaced (`" 6"`).
impl TokenTexts for Gpt2Vocab {
    fn text(&self, id: u32) -> String {
        self.token_text(id).unwrap_or_else(|| "<?>".to_string())
    }
    fn digit_ids(&self) -> Vec<u32> {
        (0..10)
            .filter_map(|d| match self.encode(&d.to_string()).ok()?[..] {
                [id] => Some(id),
                _ => None,
            })
            .collect()
    }
    fn bot(&self) -> u32 {
        coconut_core::seed::BOT
    }
    fn eot(&self) -> u32 {
        coconut_core::seed::EOT
    }
    fn eos(&self) -> Option<u32> {
        None
    }
    fn ends_answer(&self, id: u32, nth: usize) -> bool {
        !matches!(
            (nth, self.digit_kind(id)),
            (_, DigitKind::Digits) | (0, DigitKind::SpacedDigits)
        )
    }
}

/// Builds the view of `solution`, using `model` (the same weights) for the LM head and the
/// embeddings. The trace may come from either engine. `feeds_back`: the stage's thought slots
/// take the previous hidden state (Coconut), not a fixed embedding (pause).
pub fn solve_view(
    stage_id: &str,
    feeds_back: bool,
    solution: &Solution,
    model: &ReferenceModel,
    probes: Option<(&ThoughtProbes, Probed)>,
    tokenizer: &dyn TokenTexts,
) -> SolveView {
    let generation = &solution.generation;
    let thought_slots = generation.prompt_len..generation.prompt_len + generation.thoughts.len();
    let slot = if feeds_back {
        TokenKind::Thought
    } else {
        TokenKind::Pause
    };
    let tokens = token_views(&generation.ids, thought_slots.clone(), slot, tokenizer);
    let positions = generation
        .trace
        .as_ref()
        .map(|trace| {
            position_views(
                trace,
                &generation.ids,
                thought_slots,
                &generation.thoughts,
                model,
                probes.filter(|_| feeds_back),
                tokenizer,
            )
        })
        .unwrap_or_default();
    let verdict = verdict(
        &solution.problem,
        solution.answer.as_deref(),
        solution.columns,
    );
    SolveView {
        stage: stage_id.to_string(),
        a: solution.problem.a,
        b: solution.problem.b,
        expected: solution.problem.answer().to_string(),
        answer: solution.answer.clone(),
        correct: verdict.correct,
        verdict,
        measured: None,
        measured_note: String::new(),
        edits: EditScope::default(),
        probed: probes.filter(|_| feeds_back).map(|(_, probed)| probed),
        flips: None,
        finished: generation.finished,
        text: solution.text.clone(),
        tokens,
        positions,
    }
}

/// Roles by position: the question up to the prompt's `<bot>`, written steps after it (the
/// seed's prompts hold some), thought slots, then `<eot>`, the answer and what ended it. The
/// model may itself write `<latent>` or `<bot>` later (untrained weights do), and those are
/// ordinary generated tokens.
fn token_views(
    ids: &[u32],
    thought_slots: Range<usize>,
    slot: TokenKind,
    tokenizer: &dyn TokenTexts,
) -> Vec<TokenView> {
    let prompt_len = thought_slots.start;
    let bot = ids[..prompt_len]
        .iter()
        .position(|&id| id == tokenizer.bot())
        .unwrap_or(prompt_len.saturating_sub(1));
    // Tokens seen after `<eot>`, once it came; whether the answer has ended.
    let mut after_eot: Option<usize> = None;
    let mut ended = false;
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let kind = match after_eot {
                _ if i < bot => TokenKind::Question,
                _ if i == bot => TokenKind::Bot,
                _ if thought_slots.contains(&i) => slot,
                None if id == tokenizer.eot() => {
                    after_eot = Some(0);
                    TokenKind::Eot
                }
                None if Some(id) == tokenizer.eos() => TokenKind::Eos,
                None => TokenKind::Step,
                Some(nth) => {
                    after_eot = Some(nth + 1);
                    if ended || tokenizer.ends_answer(id, nth) {
                        ended = true;
                        TokenKind::Eos
                    } else {
                        TokenKind::Answer
                    }
                }
            };
            TokenView {
                id,
                text: tokenizer.text(id),
                kind,
            }
        })
        .collect()
}

fn position_views(
    trace: &Trace,
    ids: &[u32],
    thought_slots: Range<usize>,
    thoughts: &[Vec<f32>],
    model: &ReferenceModel,
    probes: Option<(&ThoughtProbes, Probed)>,
    tokenizer: &dyn TokenTexts,
) -> Vec<PositionView> {
    let digit_embeddings: Vec<Vec<f32>> = tokenizer
        .digit_ids()
        .into_iter()
        .filter_map(|id| model.token_embedding(id).ok())
        .collect();
    let mut thought_inputs = thoughts.iter();
    trace
        .positions
        .iter()
        .zip(&trace.logits)
        .zip(ids)
        .enumerate()
        .map(|(i, ((position, logits), &id))| {
            let mut readings = Vec::new();
            let input = if thought_slots.contains(&i) {
                let thought = thought_inputs.next().cloned().unwrap_or_default();
                if let Some((probes, probed)) = probes {
                    readings = probes
                        .read(i - thought_slots.start, &thought)
                        .into_iter()
                        .map(|r| probe_view(r, probed.measured_here))
                        .collect();
                }
                thought
            } else {
                model.token_embedding(id).unwrap_or_default()
            };
            let hidden = position
                .residual
                .last()
                .map(|r| model.final_hidden(r))
                .unwrap_or_default();
            PositionView {
                top: top_k(logits, tokenizer),
                digits: digit_embeddings
                    .iter()
                    .map(|e| cosine(&hidden, e))
                    .map(round)
                    .collect(),
                input: input.into_iter().map(round).collect(),
                layers: position
                    .residual
                    .iter()
                    .map(|r| r.iter().copied().map(round).collect())
                    .collect(),
                hidden: hidden.into_iter().map(round).collect(),
                attention: position
                    .attention
                    .iter()
                    .map(|heads| {
                        heads
                            .iter()
                            .map(|w| w.iter().copied().map(round).collect())
                            .collect()
                    })
                    .collect(),
                probes: readings,
            }
        })
        .collect()
}

/// A reading as the inspector shows it: its score only where it was measured.
fn probe_view(r: ProbeReading, measured: bool) -> ProbeView {
    ProbeView {
        column: r.column,
        quantity: r.quantity,
        value: r.value,
        p: round(r.p),
        accuracy: measured.then_some(r.accuracy),
        shuffled: measured.then_some(r.shuffled),
    }
}

/// The `TOP_K` most probable next tokens under softmax(logits).
fn top_k(logits: &[f32], tokenizer: &dyn TokenTexts) -> Vec<Candidate> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Ties keep the lower id first, as the engines' argmax does.
    order.sort_by(|&i, &j| logits[j].total_cmp(&logits[i]).then(i.cmp(&j)));
    order
        .into_iter()
        .take(TOP_K)
        .map(|i| Candidate {
            token: tokenizer.text(i as u32),
            p: round(exp[i] / total),
        })
        .collect()
}

fn cosine(x: &[f32], y: &[f32]) -> f32 {
    let dot: f32 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
    let denom = norm(x) * norm(y);
    if denom > 0.0 {
        dot / denom
    } else {
        0.0
    }
}

/// Four decimals are plenty for drawing and keep a trace's JSON small.
fn round(x: f32) -> f32 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::problem::Problem;
    use coconut_core::stage::Stage;
    use coconut_core::weights::{random_weights, WeightDtype};
    use coconut_core::ModelConfig;

    fn model() -> ReferenceModel {
        let config = ModelConfig {
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        };
        ReferenceModel::new(&random_weights(&config, 7).convert(WeightDtype::Int8))
    }

    /// 347 + 285 solved with a trace on a 2-thought stage.
    fn stage2_solution() -> (ReferenceModel, Tokenizer, Solution) {
        let (model, tokenizer) = (model(), Tokenizer::new());
        let stage = Stage::latent(2, 1, 5);
        let solution = model
            .solve(&tokenizer, &Problem::new(347, 285), &stage, true)
            .unwrap();
        (model, tokenizer, solution)
    }

    #[test]
    fn a_traced_solve_has_one_view_per_position_the_model_ran() {
        let (model, tokenizer, solution) = stage2_solution();
        let view = solve_view("stage2", true, &solution, &model, None, &tokenizer);
        // The last token (`<eos>`, or the one at the position limit) is predicted, never run.
        assert_eq!(view.positions.len(), solution.generation.ids.len() - 1);
        assert_eq!(view.tokens.len(), solution.generation.ids.len());
        assert_eq!(view.text, solution.text);
        let thought_slots: Vec<usize> = view
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == TokenKind::Thought)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(thought_slots.len(), 2);
        // A thought's input is the previous position's final hidden state.
        for &slot in &thought_slots {
            assert_eq!(view.positions[slot].input, view.positions[slot - 1].hidden);
        }
        let first = &view.positions[0];
        assert_eq!(first.layers.len(), 2);
        assert_eq!(first.attention.len(), 2);
        assert_eq!(first.attention[0].len(), 2);
        assert_eq!(first.attention[0][0], vec![1.0]);
        assert_eq!(first.digits.len(), 10);
        assert_eq!(first.top.len(), TOP_K);
        let p: Vec<f32> = first.top.iter().map(|c| c.p).collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
        assert!(p.iter().sum::<f32>() <= 1.0001);
    }

    #[test]
    fn thoughts_show_what_the_probes_read_from_them() {
        use coconut_core::probes::{Probe, ProbeScore, Quantity};
        let (model, tokenizer, solution) = stage2_solution();
        let width = solution.generation.thoughts[0].len();
        let mut probes = ThoughtProbes::default();
        for slot in 0..2 {
            // Class 1 wins where the thought's first number exceeds the slot's threshold.
            let mut weight = vec![0.0; 2 * width];
            weight[width] = 1.0;
            let bias = vec![0.0, -(slot as f32) * 0.1];
            probes.scores.push(ProbeScore {
                stage: "stage2".into(),
                slot,
                column: 1,
                quantity: Quantity::Carry,
                accuracy: 97.5,
                shuffled: 60.0,
                majority: 61.0,
                n_fit: 1,
                n_test: 1,
            });
            probes.probes.push((
                slot,
                1,
                Quantity::Carry,
                Probe {
                    weight,
                    bias,
                    classes: 2,
                },
            ));
        }
        let probed = |measured_here| Probed {
            digits: 4,
            n_fit: 1,
            n_test: 1,
            measured_here,
        };
        let view = solve_view(
            "stage2",
            true,
            &solution,
            &model,
            Some((&probes, probed(true))),
            &tokenizer,
        );
        let prompt_len = solution.generation.prompt_len;
        for (i, position) in view.positions.iter().enumerate() {
            if let Some(slot) = i.checked_sub(prompt_len).filter(|&j| j < 2) {
                let want = probes.read(slot, &solution.generation.thoughts[slot]);
                assert_eq!(position.probes.len(), 1);
                assert_eq!(position.probes[0].value, want[0].value);
                assert!((position.probes[0].p - want[0].p).abs() < 1e-4);
                assert_eq!(
                    (position.probes[0].column, position.probes[0].accuracy),
                    (1, Some(97.5))
                );
            } else {
                assert!(position.probes.is_empty(), "position {i} is no thought");
            }
        }
        // A problem longer than the probes were scored on: the same readings, no score.
        let longer = solve_view(
            "stage2",
            true,
            &solution,
            &model,
            Some((&probes, probed(false))),
            &tokenizer,
        );
        for (seen, scored) in longer.positions.iter().zip(&view.positions) {
            assert_eq!(seen.probes.len(), scored.probes.len());
            for (r, s) in seen.probes.iter().zip(&scored.probes) {
                assert_eq!((r.value, r.accuracy, r.shuffled), (s.value, None, None));
            }
        }
        // A pause stage's slots hold no thought: no readings.
        let pause = solve_view(
            "pause",
            false,
            &solution,
            &model,
            Some((&probes, probed(true))),
            &tokenizer,
        );
        assert!(pause.positions.iter().all(|p| p.probes.is_empty()));
    }

    #[test]
    fn the_verdict_is_core_s_rule_and_explains_leading_zeros() {
        let p = Problem::new(347, 285);
        let verdict = |p: &Problem, answer| verdict(p, answer, p.columns());
        let padded = verdict(&p, Some("0632"));
        assert!(padded.correct);
        assert_eq!((padded.reads.as_deref(), padded.mark), (Some("632"), "✓"));
        let why = padded.leading_zeros.unwrap();
        assert!(why.starts_with("0632 is 632: "), "{why}");
        assert!(why.contains("one for a final carry (4 here)"), "{why}");
        let plain = verdict(&p, Some("632"));
        assert!(plain.correct && plain.leading_zeros.is_none());
        // Too many zeros for the layout, another number, no answer: wrong.
        for wrong in [Some("00632"), Some("0633"), None] {
            let v = verdict(&p, wrong);
            assert!(!v.correct, "{wrong:?}");
            assert_eq!(v.mark, "✗");
        }
        let zero = verdict(&Problem::new(0, 0), Some("00"));
        assert!(zero.correct);
        assert_eq!(zero.reads.as_deref(), Some("0"));
        assert!(zero.leading_zeros.unwrap().starts_with("00 is 0: "));
        // A stage that pads the operands by two columns: six digits, the padding explained.
        let six = super::verdict(&p, Some("000632"), 5);
        assert!(six.correct, "{six:?}");
        let why = six.leading_zeros.unwrap();
        assert!(
            why.contains("operands with 5 digits") && why.contains("(6 here)"),
            "{why}"
        );
        assert!(!super::verdict(&p, Some("0000632"), 5).correct);
        // The view's `correct` is the verdict's.
        let (model, tokenizer, solution) = stage2_solution();
        let view = solve_view("stage2", true, &solution, &model, None, &tokenizer);
        assert_eq!(view.correct, view.verdict.correct);
        assert_eq!(view.correct, solution.is_correct());
    }

    #[test]
    fn tokens_are_labelled_by_their_role() {
        let tokenizer = Tokenizer::new();
        let ids = tokenizer
            .encode("3 + 4 = <bot> <latent> 3+4=7 write 7 <eot> 7 <eos>")
            .unwrap();
        let prompt_len = tokenizer.encode("3 + 4 = <bot>").unwrap().len();
        use TokenKind::*;
        for slot in [Thought, Pause] {
            let kinds: Vec<TokenKind> =
                token_views(&ids, prompt_len..prompt_len + 1, slot, &tokenizer)
                    .into_iter()
                    .map(|t| t.kind)
                    .collect();
            let mut expected = vec![Question; prompt_len - 1];
            expected.extend([Bot, slot]);
            expected.extend(vec![Step; kinds.len() - prompt_len - 4]);
            expected.extend([Eot, Answer, Eos]);
            assert_eq!(kinds, expected);
        }
    }

    #[test]
    fn top_k_is_a_softmax_in_order() {
        let tokenizer = Tokenizer::new();
        let mut logits = vec![0.0; tokenizer.vocab_size()];
        logits[8] = 3.0; // "0"
        logits[9] = 3.0; // "1": a tie resolves to the lower id
        let top = top_k(&logits, &tokenizer);
        assert_eq!(top[0].token, "0");
        assert_eq!(top[1].token, "1");
        let e3 = 3f32.exp();
        let total = 2.0 * e3 + (logits.len() - 2) as f32;
        assert!((top[0].p - e3 / total).abs() < 1e-4);
    }
}
