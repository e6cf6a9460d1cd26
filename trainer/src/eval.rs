//! Evaluation: greedy exact match of the answer with the stage's fixed thought count (batched,
//! KV cache), and teacher-forced accuracy (every target token right given the gold prefix,
//! thoughts still fed back), overall and by digit count.

use crate::batch::{target_logits, Batch};
use crate::cpu::CpuTrainer;
use crate::model::{to_host, Gpt};
use anyhow::{Context, Result};
use candle_core::Tensor;
use coconut_core::decoder::{Decoder, Feed};
use coconut_core::decoding::argmax;
use coconut_core::layout::{answer_digits, answer_matches, prompt, wrong_significances, Layout};
use coconut_core::manifest::{ChainAccuracy, DigitAccuracy, PairAccuracy, SetAccuracy};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::{Problem, Stage};
use std::collections::BTreeMap;

/// Greedy generation for prompts of one length and one thought count, each row driven by its
/// own core [`Decoder`] (with coupled ids their position ids differ). Returns, per
/// prompt, the whole sequence as the reference engine does: prompt, `<latent>` slots, generated
/// tokens.
pub fn generate(model: &Gpt, prompts: &[Vec<u32>], stage: &Stage) -> Result<Vec<Vec<u32>>> {
    let n_positions = model.config().n_positions;
    let decoders = prompts
        .iter()
        .map(|x| Decoder::new(x, stage, n_positions))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(run_decoders(model, decoders)?
        .into_iter()
        .map(Decoder::into_ids)
        .collect())
}

/// Runs decodings of any model family, as core's [`Decoder`]s drive them, in lockstep: their
/// prompts must share one length and their thoughts after the prompt one count (one row is
/// always fine). Returns the decoders, stopped.
pub fn run_decoders(model: &Gpt, mut decoders: Vec<Decoder>) -> Result<Vec<Decoder>> {
    let b = decoders.len();
    let p = decoders.first().map_or(0, |d| d.plan().prompt_len);
    anyhow::ensure!(
        p > 0 && decoders.iter().all(|d| d.plan().prompt_len == p),
        "prompts of a batch must share one non-zero length"
    );
    let prompts: Vec<Vec<u32>> = decoders.iter().map(|d| d.ids()[..p].to_vec()).collect();
    let prefixes: Vec<Vec<Feed>> = decoders.iter_mut().map(Decoder::prefix).collect();
    anyhow::ensure!(
        prefixes.iter().all(|x| x.len() == prefixes[0].len()),
        "prompts of a batch must share one thought count"
    );
    let device = model.device();
    // A stopped row runs on in lockstep (at row 0); what it computes is never read.
    let position_of = |feed: &Feed| feed.position_id().unwrap_or(0) as u32;
    // Position ids of the rows' feeds at one position, as a (B, 1) column.
    let column = |feeds: &[Feed]| -> Result<Tensor> {
        let ids: Vec<u32> = feeds.iter().map(position_of).collect();
        Ok(Tensor::from_vec(ids, (b, 1), device)?)
    };
    let mut cache = model.new_cache();
    let ids = Tensor::from_vec(prompts.concat(), (b, p), device)?;
    let prompt_positions: Vec<u32> = prefixes
        .iter()
        .flat_map(|x| x[..p].iter().map(position_of))
        .collect();
    let prompt_positions = Tensor::from_vec(prompt_positions, (b, p), device)?;
    let hidden = model.forward_at(
        &model.embed(&ids)?,
        Some(&prompt_positions),
        Some(&mut cache),
    )?; // (B, P, C)
    let mut last = hidden.narrow(1, p - 1, 1)?; // (B, 1, C)
    let slot_token = decoders[0].plan().slot_token;
    let feeds_back = decoders[0].plan().feeds_back;
    // Runs one position of every row: a token's embedding, or for a thought the row's last
    // hidden state (fed back) or the slot token's embedding (`<latent>`: the pause baseline).
    // A stopped row's token is a placeholder, never read.
    let mut step = |feeds: &[Feed], last: &Tensor| -> Result<Tensor> {
        let token_of = |f: &Feed| match *f {
            Feed::Token { id, .. } => id,
            Feed::Thought { .. } | Feed::Stop { .. } => slot_token,
        };
        let is_thought: Vec<u8> = feeds
            .iter()
            .map(|f| u8::from(feeds_back && matches!(f, Feed::Thought { .. })))
            .collect();
        let ids = Tensor::from_vec(feeds.iter().map(token_of).collect(), (b, 1), device)?;
        let mut input = model.embed(&ids)?; // (B, 1, C)
        if is_thought.contains(&1) {
            let mask =
                Tensor::from_vec(is_thought, (b, 1, 1), device)?.broadcast_as(input.shape())?;
            input = mask.where_cond(last, &input)?;
        }
        model.forward_at(&input, Some(&column(feeds)?), Some(&mut cache))
    };
    // The rest of the prefix: the thoughts after the prompt, and a token the plan feeds after
    // them (the seed's `<eot>`).
    for t in p..prefixes[0].len() {
        let feeds: Vec<Feed> = prefixes.iter().map(|x| x[t]).collect();
        last = step(&feeds, &last)?;
    }
    loop {
        let logits = to_host(&model.logits(&last)?)?; // (B * V)
        let v = model.config().vocab_size;
        let feeds: Vec<Feed> = decoders
            .iter_mut()
            .zip(logits.chunks_exact(v))
            .map(|(d, row)| d.next(|| argmax(row)))
            .collect();
        if feeds.iter().all(|f| matches!(f, Feed::Stop { .. })) {
            break;
        }
        last = step(&feeds, &last)?;
    }
    Ok(decoders)
}

/// Solves one problem with the candle engine: the generated ids (prompt, thought slots, answer).
pub fn solve(
    model: &Gpt,
    tokenizer: &Tokenizer,
    problem: &Problem,
    stage: &Stage,
) -> Result<Vec<u32>> {
    let prompt = prompt(tokenizer, problem, stage)?;
    Ok(generate(model, &[prompt], stage)?.remove(0))
}

/// What an evaluation scores: problems at a stage, decoded `batch_size` at a time.
#[derive(Clone, Copy)]
pub struct EvalSet<'a> {
    pub tokenizer: &'a Tokenizer,
    pub problems: &'a [Problem],
    pub stage: &'a Stage,
    pub batch_size: usize,
}

/// Per problem, the greedily generated sequence ([`generate`]'s).
pub fn greedy_generations(model: &Gpt, set: EvalSet) -> Result<Vec<Vec<u32>>> {
    let EvalSet {
        tokenizer,
        problems,
        stage,
        batch_size,
    } = set;
    // Batch problems whose prompts have the same length and thought count, so every row runs
    // in lockstep.
    // (prompt length, thoughts) -> (problem index, prompt)
    type Group = Vec<(usize, Vec<u32>)>;
    let mut by_len: BTreeMap<(usize, usize), Group> = BTreeMap::new();
    for (i, p) in problems.iter().enumerate() {
        let ids = prompt(tokenizer, p, stage)?;
        let thoughts = stage.thoughts_of(p);
        by_len
            .entry((ids.len(), thoughts))
            .or_default()
            .push((i, ids));
    }
    let mut generations = vec![Vec::new(); problems.len()];
    for group in by_len.values() {
        for chunk in group.chunks(batch_size.max(1)) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
            let generated = generate(model, &prompts, stage)?;
            for ((i, _), ids) in chunk.iter().zip(generated) {
                generations[*i] = ids;
            }
        }
    }
    Ok(generations)
}

/// [`greedy_generations`] through the CPU engine (token for token the same generation).
pub fn cpu_greedy_generations(engine: &mut CpuTrainer, set: EvalSet) -> Result<Vec<Vec<u32>>> {
    let prompts = set
        .problems
        .iter()
        .map(|p| prompt(set.tokenizer, p, set.stage))
        .collect::<Result<Vec<_>, _>>()?;
    engine.generate(&prompts, set.stage, set.batch_size)
}

/// Per problem: whether the greedily generated answer is exactly right.
pub fn greedy_correct(model: &Gpt, set: EvalSet) -> Result<Vec<bool>> {
    Ok(judge(set, &greedy_generations(model, set)?))
}

/// [`greedy_correct`] through the CPU engine.
pub fn cpu_greedy_correct(engine: &mut CpuTrainer, set: EvalSet) -> Result<Vec<bool>> {
    Ok(judge(set, &cpu_greedy_generations(engine, set)?))
}

/// Whether each problem's generated sequence holds its answer.
fn judge(set: EvalSet, generations: &[Vec<u32>]) -> Vec<bool> {
    set.problems
        .iter()
        .zip(generations)
        .map(|(p, ids)| answer_is_right(set.tokenizer, p, set.stage, ids))
        .collect()
}

/// Whether the answer in a generated sequence at `stage` is exactly the problem's.
pub fn answer_is_right(
    tokenizer: &Tokenizer,
    problem: &Problem,
    stage: &Stage,
    generated: &[u32],
) -> bool {
    answer_digits(tokenizer, generated, stage.answer_order)
        .is_some_and(|digits| answer_matches(problem, &digits, stage.columns_for(problem)))
}

/// Each problem laid out for `stage`, as inference sees it (coupled ids at offset 0).
fn layouts(set: EvalSet) -> Result<Vec<Layout>> {
    Ok(set
        .problems
        .iter()
        .map(|p| Layout::new(set.tokenizer, p, set.stage))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Per problem: whether every target token is the argmax given the gold prefix.
pub fn teacher_forced_correct(model: &Gpt, set: EvalSet) -> Result<Vec<bool>> {
    let layouts = layouts(set)?;
    let mut correct = Vec::with_capacity(set.problems.len());
    for chunk in layouts.chunks(set.batch_size.max(1)) {
        let refs: Vec<&Layout> = chunk.iter().collect();
        let batch = Batch::new(&refs, set.stage, model.device())?;
        let logits = to_host(&target_logits(model, &batch)?)?; // (N * V)
        let targets = batch.targets.to_vec1::<u32>()?;
        let mut ok = vec![true; chunk.len()];
        let v = model.config().vocab_size;
        for (n, row) in logits.chunks_exact(v).enumerate() {
            if argmax(row) != targets[n] {
                ok[batch.target_owner[n]] = false;
            }
        }
        correct.extend(ok);
    }
    Ok(correct)
}

/// Greedy and teacher-forced accuracy on `problems`, overall and by digit count.
pub fn evaluate(model: &Gpt, name: &str, set: EvalSet) -> Result<SetAccuracy> {
    let (generations, forced) = if model.device().is_cpu() {
        cpu_generations_and_forced(model, name, set)?
    } else {
        let generations = greedy_generations(model, set)
            .with_context(|| format!("greedy evaluation of {name}"))?;
        let forced = teacher_forced_correct(model, set)
            .with_context(|| format!("teacher-forced evaluation of {name}"))?;
        (generations, forced)
    };
    let greedy = judge(set, &generations);
    let (wrong_by_significance, unreadable) = wrong_digits(set, &generations);
    Ok(tally(
        name,
        set.problems,
        &greedy,
        &forced,
        wrong_by_significance,
        unreadable,
    ))
}

/// On the CPU the CPU engine runs both evaluations (token for token the same generation as the
/// candle model, see the tests of crate::cpu), many times faster.
fn cpu_generations_and_forced(
    model: &Gpt,
    name: &str,
    set: EvalSet,
) -> Result<(Vec<Vec<u32>>, Vec<bool>)> {
    let mut engine = CpuTrainer::for_inference(&model.to_weights()?)?;
    let generations = cpu_greedy_generations(&mut engine, set)
        .with_context(|| format!("greedy evaluation of {name}"))?;
    let layouts = layouts(set)?;
    // A layout longer than the model's positions (a long problem written out) cannot be
    // teacher-forced: it counts as wrong.
    let fits = |l: &Layout| l.ids.len() <= model.config().n_positions;
    let refs: Vec<&Layout> = layouts.iter().filter(|l| fits(l)).collect();
    let mut fitted = if refs.is_empty() {
        Vec::new()
    } else {
        engine
            .teacher_forced_correct(&refs, set.stage.feeds_back(), set.batch_size)
            .with_context(|| format!("teacher-forced evaluation of {name}"))?
    }
    .into_iter();
    let forced = layouts
        .iter()
        .map(|l| fits(l) && fitted.next().unwrap_or(false))
        .collect();
    Ok((generations, forced))
}

/// The accuracies of a set from each problem's greedy and teacher-forced verdicts: overall, by
/// digit count, by operand-length pair and by longest carry chain.
fn tally(
    name: &str,
    problems: &[Problem],
    greedy: &[bool],
    forced: &[bool],
    wrong_by_significance: Vec<usize>,
    unreadable: usize,
) -> SetAccuracy {
    let percent = |hits: usize, n: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * hits as f64 / n as f64
        }
    };
    // Per class: (n, greedy right, teacher-forced right).
    let mut by_digits: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
    let mut by_pair: BTreeMap<(usize, usize), (usize, usize, usize)> = BTreeMap::new();
    let mut by_chain: BTreeMap<usize, (usize, usize, usize)> = BTreeMap::new();
    for (i, p) in problems.iter().enumerate() {
        for e in [
            by_digits.entry(p.columns()).or_default(),
            by_pair.entry(p.digit_counts()).or_default(),
            by_chain.entry(p.carry_chain()).or_default(),
        ] {
            e.0 += 1;
            e.1 += greedy[i] as usize;
            e.2 += forced[i] as usize;
        }
    }
    SetAccuracy {
        set: name.to_string(),
        n: problems.len(),
        greedy: percent(greedy.iter().filter(|&&c| c).count(), problems.len()),
        teacher_forced: percent(forced.iter().filter(|&&c| c).count(), problems.len()),
        by_digits: by_digits
            .into_iter()
            .map(|(digits, (n, g, f))| DigitAccuracy {
                digits,
                n,
                greedy: percent(g, n),
                teacher_forced: percent(f, n),
            })
            .collect(),
        wrong_by_significance,
        unreadable,
        by_pair: by_pair
            .into_iter()
            .map(|((a_digits, b_digits), (n, g, f))| PairAccuracy {
                a_digits,
                b_digits,
                n,
                greedy: percent(g, n),
                teacher_forced: percent(f, n),
            })
            .collect(),
        by_carry_chain: by_chain
            .into_iter()
            .map(|(chain, (n, g, _))| ChainAccuracy {
                chain,
                n,
                greedy: percent(g, n),
            })
            .collect(),
    }
}

/// Over a set's greedy answers: how many got the digit of each significance wrong (units
/// first, through the longest problem's carry column), and how many had no digit to compare
/// ([`wrong_significances`]).
fn wrong_digits(set: EvalSet, generations: &[Vec<u32>]) -> (Vec<usize>, usize) {
    let width = set
        .problems
        .iter()
        .map(|p| set.stage.columns_for(p) + 1)
        .max()
        .unwrap_or(0);
    let mut wrong = vec![0; width];
    let mut unreadable = 0;
    for (p, ids) in set.problems.iter().zip(generations) {
        let digits = answer_digits(set.tokenizer, ids, set.stage.answer_order);
        match wrong_significances(p, digits.as_deref(), set.stage.columns_for(p)) {
            Some(js) => js.into_iter().for_each(|j| wrong[j] += 1),
            None => unreadable += 1,
        }
    }
    (wrong, unreadable)
}

/// A set's greedy accuracy as a grid of operand lengths (rows: the first operand's digits,
/// columns: the second's; `.` where the set has no such pair), then by carry-chain length.
fn pair_grid(set: &SetAccuracy) -> String {
    let longest = |f: fn(&PairAccuracy) -> usize| set.by_pair.iter().map(f).max().unwrap_or(0);
    let (rows, cols) = (longest(|p| p.a_digits), longest(|p| p.b_digits));
    let mut out = format!(
        "{} by operand lengths (greedy %, a digits down, b digits across)\n",
        set.set
    );
    out += &format!("{:>4}", "a\\b");
    out += &(1..=cols).map(|b| format!("{b:>7}")).collect::<String>();
    out += "\n";
    for a in 1..=rows {
        out += &format!("{a:>4}");
        for b in 1..=cols {
            out += &match set
                .by_pair
                .iter()
                .find(|p| (p.a_digits, p.b_digits) == (a, b))
            {
                Some(p) => format!("{:>7.1}", p.greedy),
                None => format!("{:>7}", "."),
            };
        }
        out += "\n";
    }
    let chains: Vec<String> = set
        .by_carry_chain
        .iter()
        .map(|c| format!("{}: {:.1}% (n {})", c.chain, c.greedy, c.n))
        .collect();
    out += &format!(
        "{} by longest carry chain: {}\n",
        set.set,
        chains.join(", ")
    );
    out
}

/// A plain-text table of accuracies, one row per set and digit count, then a grid by operand
/// lengths for each set that mixes them.
pub fn table(stage: &str, sets: &[SetAccuracy]) -> String {
    let mut out = format!(
        "{:<8} {:<6} {:>6} {:>6} {:>9} {:>9}\n",
        "stage", "set", "digits", "n", "greedy%", "forced%"
    );
    for s in sets {
        for d in &s.by_digits {
            out += &format!(
                "{:<8} {:<6} {:>6} {:>6} {:>9.2} {:>9.2}\n",
                stage, s.set, d.digits, d.n, d.greedy, d.teacher_forced
            );
        }
        out += &format!(
            "{:<8} {:<6} {:>6} {:>6} {:>9.2} {:>9.2}\n",
            stage, s.set, "all", s.n, s.greedy, s.teacher_forced
        );
    }
    for s in sets.iter().filter(|s| s.by_pair.len() > s.by_digits.len()) {
        out += &pair_grid(s);
    }
    // Where the wrong answers go wrong: one line per set that has any.
    for s in sets {
        if s.unreadable > 0 || s.wrong_by_significance.iter().any(|&n| n > 0) {
            let counts: Vec<String> = s
                .wrong_by_significance
                .iter()
                .map(usize::to_string)
                .collect();
            out += &format!(
                "{stage} {}: wrong digits by significance, units first: {}; unreadable: {}\n",
                s.set,
                counts.join(" "),
                s.unreadable
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::tokenizer::LATENT;
    use coconut_core::ModelConfig;

    #[test]
    fn generation_matches_the_reference_engine() {
        let (reference, model, tok) = crate::test_support::oracle_and_candle(21);
        for stage in crate::test_support::every_kind_of_stage() {
            // Two prompts of one length in one batch (their coupled ids differ), each equal to
            // the reference's generation.
            let problems = [Problem::new(123, 45), Problem::new(12, 345)];
            let prompts: Vec<Vec<u32>> = problems
                .iter()
                .map(|p| prompt(&tok, p, &stage).unwrap())
                .collect();
            let ours = generate(&model, &prompts, &stage).unwrap();
            for (p, got) in problems.iter().zip(&ours) {
                let want = reference
                    .solve(&tok, p, &stage, false)
                    .unwrap()
                    .generation
                    .ids;
                assert_eq!(got, &want, "{} {p}", stage.id());
            }
            assert_eq!(solve(&model, &tok, &problems[0], &stage).unwrap(), ours[0]);
        }
    }

    /// The last-steps order: rows of one batch start their thoughts at different positions (or
    /// never), each generation still the reference's.
    #[test]
    fn last_steps_generation_matches_the_reference_engine() {
        let weights = crate::test_support::trigger_prone_weights(4);
        let reference = coconut_core::reference::ReferenceModel::new(&weights);
        let model = Gpt::from_weights(&weights, &candle_core::Device::Cpu).unwrap();
        let tok = Tokenizer::new();
        let stage = crate::test_support::last_steps_stage();
        let problems: Vec<Problem> = (0..24)
            .map(|i| Problem::new(100 + 37 * i, 58 + i))
            .collect();
        let prompts: Vec<Vec<u32>> = problems
            .iter()
            .map(|p| prompt(&tok, p, &stage).unwrap())
            .collect();
        let ours = generate(&model, &prompts, &stage).unwrap();
        let mut starts = std::collections::BTreeSet::new();
        for (p, got) in problems.iter().zip(&ours) {
            let want = reference.solve(&tok, p, &stage, false).unwrap().generation;
            assert_eq!(got, &want.ids, "{p}");
            if !want.thoughts.is_empty() {
                starts.insert(want.ids.iter().position(|&id| id == LATENT));
            }
        }
        assert!(starts.len() >= 2, "thoughts started at {starts:?} only");
    }

    #[test]
    fn accuracy_is_counted_by_digits() {
        let config = ModelConfig {
            n_embd: 16,
            n_layer: 1,
            n_head: 2,
            ..ModelConfig::default()
        };
        let model = Gpt::new_random(&config, 1, &candle_core::Device::Cpu).unwrap();
        let tok = Tokenizer::new();
        let problems = [
            Problem::new(1, 2),
            Problem::new(12, 3),
            Problem::new(345, 6),
            Problem::new(4, 999),
        ];
        let stage = Stage::latent(1, 1, 5);
        let set = EvalSet {
            tokenizer: &tok,
            problems: &problems,
            stage: &stage,
            batch_size: 2,
        };
        let acc = evaluate(&model, "test", set).unwrap();
        assert_eq!(acc.n, 4);
        let digits: Vec<(usize, usize)> = acc.by_digits.iter().map(|d| (d.digits, d.n)).collect();
        assert_eq!(digits, [(1, 1), (2, 1), (3, 2)]);
        let pairs: Vec<(usize, usize, usize)> = acc
            .by_pair
            .iter()
            .map(|p| (p.a_digits, p.b_digits, p.n))
            .collect();
        assert_eq!(pairs, [(1, 1, 1), (1, 3, 1), (2, 1, 1), (3, 1, 1)]);
        let chains: Vec<(usize, usize)> =
            acc.by_carry_chain.iter().map(|c| (c.chain, c.n)).collect();
        assert_eq!(chains, [(0, 2), (1, 1), (3, 1)], "345 + 6 carries once");
        // An untrained model gets nothing right.
        assert_eq!((acc.greedy, acc.teacher_forced), (0.0, 0.0));
        // ... so each answer is unreadable or has a wrong digit, through the carry column of
        // the longest problem (3 columns).
        assert_eq!(acc.wrong_by_significance.len(), 4);
        let wrong_digits: usize = acc.wrong_by_significance.iter().sum();
        assert!(acc.unreadable == 4 || wrong_digits >= 4 - acc.unreadable);
        let text = table("stage1", &[acc]);
        assert!(text.contains("all") && text.contains("wrong digits by significance"));
        assert!(text.contains("test by operand lengths"), "{text}");
    }

    #[test]
    fn a_units_first_answer_is_scored_in_its_own_order() {
        use coconut_core::stage::{AnswerOrder, Positions};
        let tok = Tokenizer::new();
        let msd = Stage::latent(5, 2, 5).with_positions(Positions::COUPLED);
        let lsd = msd.with_answer_order(AnswerOrder::LeastSignificantFirst);
        for p in [
            Problem::new(347, 285),
            Problem::new(9999, 1),
            Problem::new(5, 4),
        ] {
            // The gold sequence of each order is right in its order and wrong read the other
            // way (unless the padded answer is a palindrome, which these are not).
            let gold = Layout::new(&tok, &p, &lsd).unwrap().ids;
            assert!(answer_is_right(&tok, &p, &lsd, &gold), "{p:?}");
            assert!(!answer_is_right(&tok, &p, &msd, &gold), "{p:?}");
            let gold = Layout::new(&tok, &p, &msd).unwrap().ids;
            assert!(answer_is_right(&tok, &p, &msd, &gold), "{p:?}");
            assert!(!answer_is_right(&tok, &p, &lsd, &gold), "{p:?}");
        }
    }
}
