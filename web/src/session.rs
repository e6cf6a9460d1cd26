//! The loaded weights folder: manifest, tokenizer and every stage, each checked against its
//! sha256 before it is parsed. Platform-neutral (tested natively); the GPU side lives in `lib.rs`.

use crate::operand::parse_operand;
use crate::view::{
    solve_view, verdict, EditScope, FlipFigure, FlipsMeasured, Probed, SolveView, TokenKind,
    Verdict,
};
use coconut_core::decoding::Solution;
use coconut_core::effects::{FlipEffect, FlipTally, PatchTally};
use coconut_core::intervention::{Intervention, PatchContext, PatchSpec};
use coconut_core::manifest::{Manifest, StageEntry};
use coconut_core::probes::{Quantity, ThoughtProbes};
use coconut_core::reference::ReferenceModel;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_core::{Problem, Stage};
use serde::Serialize;

pub struct LoadedStage {
    pub entry: StageEntry,
    pub stage: Stage,
    pub weights: ModelWeights,
    pub reference: ReferenceModel,
    /// The probes of its thoughts, once their file (listed in the manifest) has loaded.
    pub probes: Option<ThoughtProbes>,
}

pub struct Session {
    pub manifest: Manifest,
    pub tokenizer: Tokenizer,
    pub stages: Vec<LoadedStage>,
    /// The held-out test set of the manifest's figures, drawn on first use.
    test_set: std::cell::OnceCell<Vec<Problem>>,
    /// The carry flips measured on the folder's stages (`eval/flips.json`, the rows of
    /// `coconut intervene --measure-flips N --measure-json`), when the folder has them.
    flips: Vec<FlipEffect>,
}

/// A problem solved as trained and with edited thoughts: the fields `coconut intervene --json`
/// prints, so the page and the CLI can be compared field by field.
#[derive(Debug, PartialEq, Serialize)]
pub struct EditedView {
    pub stage: String,
    /// What each edit did, e.g. "thought 1 zeroed" (thoughts from 0).
    pub patches: Vec<String>,
    pub expected: String,
    pub answer: Option<String>,
    pub edited_answer: Option<String>,
    /// Core's answer rule on each answer (`verdict.correct`, `edited_verdict.correct`).
    pub correct: bool,
    pub edited_correct: bool,
    pub verdict: Verdict,
    pub edited_verdict: Verdict,
    pub text: String,
    pub edited_text: String,
    /// The same edit as a command line, each argument quoted for a POSIX shell.
    pub command: String,
}

/// A measurement of thought edits in progress ([`Session::start_measurement`]).
#[derive(Debug)]
pub struct Measurement {
    stage: String,
    /// Pairs (patching) or problems (flips) to count, and how many are counted.
    n: usize,
    done: usize,
    tally: Tally,
}

#[derive(Debug)]
enum Tally {
    Patching(PatchTally),
    Flips(FlipTally),
}

/// How far a measurement is, with the effects counted so far: the rows of
/// `coconut intervene --measure-json` once `done == n`.
#[derive(Debug, Serialize)]
pub struct MeasureProgress {
    pub stage: String,
    pub kind: &'static str,
    pub done: usize,
    pub n: usize,
    pub effects: serde_json::Value,
}

/// Per-field verdict on the two operands, for messages next to each field.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct FieldErrors {
    pub a: Option<String>,
    pub b: Option<String>,
}

impl FieldErrors {
    /// One line naming what is wrong, for `#error`.
    pub fn summary(&self) -> String {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) => format!("First number: {a} Second number: {b}"),
            (Some(a), None) => format!("First number: {a}"),
            (None, Some(b)) => format!("Second number: {b}"),
            (None, None) => String::new(),
        }
    }
}

impl Session {
    /// Parses and checks `manifest.json` with core's rules, the same as the command line's: every
    /// file name a plain name inside the weights folder, every number consistent with the model.
    /// The page calls this (through `App::check_manifest`) before it turns a single name into a
    /// URL, so a hostile manifest never makes it fetch anything.
    pub fn check_manifest(manifest_json: &str) -> Result<Manifest, String> {
        Manifest::from_json(manifest_json).map_err(|e| e.to_string())
    }

    pub fn new(manifest_json: &str, tokenizer_bytes: &[u8]) -> Result<Session, String> {
        let manifest = Session::check_manifest(manifest_json)?;
        let tokenizer = manifest
            .tokenizer(tokenizer_bytes)
            .map_err(|e| e.to_string())?;
        Ok(Session {
            manifest,
            tokenizer,
            stages: Vec::new(),
            test_set: std::cell::OnceCell::new(),
            flips: Vec::new(),
        })
    }

    /// Keeps the carry flips measured on this folder (`eval/flips.json`: the rows `coconut
    /// intervene --measure-flips N --measure-json` writes). A stage's rows are shown only while
    /// they match its probes file (checked against the manifest's sha256): each row names the
    /// held-out accuracy of the carry probe it flipped, which must be that file's score, so
    /// figures measured on other probes (other weights) are never shown as these ones'.
    pub fn add_flips(&mut self, json: &str) -> Result<(), String> {
        self.flips = serde_json::from_str(json)
            .map_err(|e| format!("eval/flips.json is not a list of carry-flip rows: {e}"))?;
        Ok(())
    }

    /// What the carry flips did on a stage where they were measured and match its probes.
    fn flips_measured(&self, loaded: &LoadedStage) -> Option<FlipsMeasured> {
        let probes = loaded.probes.as_ref()?;
        let rows: Vec<&FlipEffect> = self
            .flips
            .iter()
            .filter(|f| f.stage == loaded.entry.id)
            .collect();
        let matches = |f: &FlipEffect| {
            probes.scores.iter().any(|s| {
                (s.slot, s.column, s.quantity) == (f.slot, f.column, Quantity::Carry)
                    && (s.accuracy - f.probe_accuracy).abs() < 0.01
            })
        };
        if rows.is_empty() || !rows.iter().all(|f| matches(f)) {
            return None;
        }
        let most = rows
            .iter()
            .max_by(|x, y| x.as_the_carry_would.total_cmp(&y.as_the_carry_would))?;
        Some(FlipsMeasured {
            digits: self.manifest.test_data().max_digits,
            most: most.as_the_carry_would,
            most_slot: most.slot,
            most_column: most.column,
            rows: rows
                .iter()
                .map(|f| FlipFigure {
                    slot: f.slot,
                    column: f.column,
                    problems: f.problems,
                    unchanged: f.unchanged,
                    as_the_carry_would: f.as_the_carry_would,
                })
                .collect(),
        })
    }

    /// Verifies a stage file against the manifest (size, sha256, tensors) and loads it.
    pub fn add_stage(&mut self, id: &str, bytes: &[u8]) -> Result<(), String> {
        let (entry, weights) = verified_stage(&self.manifest, id, bytes)?;
        let stage = self.manifest.stage_of(&entry);
        let reference = ReferenceModel::new(&weights);
        self.stages.retain(|s| s.entry.id != entry.id);
        self.stages.push(LoadedStage {
            entry,
            stage,
            weights,
            reference,
            probes: None,
        });
        Ok(())
    }

    /// Verifies a loaded stage's probes file against the manifest (size, sha256, every probe
    /// shaped for the model and the stage) and keeps it: its thoughts then show what the probes
    /// read. A stage without probes in the manifest refuses any file.
    pub fn add_probes(&mut self, id: &str, bytes: &[u8]) -> Result<(), String> {
        let id = self.stage(id)?.entry.id.clone();
        let loaded = self
            .stages
            .iter_mut()
            .find(|s| s.entry.id == id)
            .expect("found above");
        loaded.probes = Some(verified_probes(&self.manifest, &loaded.entry, bytes)?);
        Ok(())
    }

    pub fn stage(&self, id: &str) -> Result<&LoadedStage, String> {
        let wanted = self.manifest.stage(id).map_err(|e| e.to_string())?;
        self.stages
            .iter()
            .find(|s| s.entry.id == wanted.id)
            .ok_or_else(|| format!("stage {} is not loaded yet", wanted.id))
    }

    /// The problem in the two fields for `stage`, or a message per refused field: operands of
    /// the trained lengths, or for a stage with coupled positions the longer ones its figures
    /// measured ([`Manifest::accepted_digits`]).
    pub fn problem(&self, a: &str, b: &str, stage: &str) -> Result<Problem, FieldErrors> {
        let trained = self.manifest.max_digits;
        let accepted = self
            .manifest
            .stage(stage)
            .map_or(trained, |entry| self.manifest.accepted_digits(entry));
        let parse = |text| parse_operand(text, trained, accepted);
        match (parse(a), parse(b)) {
            (Ok(a), Ok(b)) => Ok(Problem::new(a, b)),
            (a, b) => Err(FieldErrors {
                a: a.err(),
                b: b.err(),
            }),
        }
    }

    /// The held-out test problems the manifest's accuracy figures were measured on, drawn
    /// by core's rules ([`Manifest::test_data`]): problems the model never trained on.
    pub fn test_set(&self) -> Result<&[Problem], String> {
        if self.test_set.get().is_none() {
            let drawn = self
                .manifest
                .test_data()
                .test_set()
                .map_err(|e| e.to_string())?;
            let _ = self.test_set.set(drawn);
        }
        Ok(self.test_set.get().map(Vec::as_slice).unwrap_or_default())
    }

    /// The held-out test problems `start .. start + count` (cut at the set's end), refused when
    /// `start` is past it.
    pub fn test_slice(&self, start: usize, count: usize) -> Result<&[Problem], String> {
        let test = self.test_set()?;
        if start >= test.len() {
            return Err(format!(
                "the test set has {} problems; none start at {start}",
                test.len()
            ));
        }
        Ok(&test[start..(start + count).min(test.len())])
    }

    /// How many of `problems` the reference engine answers right on `stage_id`.
    pub fn count_correct_reference(
        &self,
        stage_id: &str,
        problems: &[Problem],
    ) -> Result<usize, String> {
        let loaded = self.stage(stage_id)?;
        let mut correct = 0;
        for p in problems {
            let solution = loaded
                .reference
                .solve(&self.tokenizer, p, &loaded.stage, false)
                .map_err(|e| e.to_string())?;
            correct += usize::from(solution.is_correct());
        }
        Ok(correct)
    }

    /// Solves on the reference engine (plain Rust, compiled to wasm in the browser).
    pub fn solve_reference(
        &self,
        stage_id: &str,
        problem: &Problem,
        trace: bool,
    ) -> Result<SolveView, String> {
        let loaded = self.stage(stage_id)?;
        let solution = loaded
            .reference
            .solve(&self.tokenizer, problem, &loaded.stage, trace)
            .map_err(|e| e.to_string())?;
        self.view(stage_id, &solution)
    }

    /// A stage with fed-back thoughts and the context its edits resolve in.
    fn thought_stage(&self, stage_id: &str) -> Result<(&LoadedStage, PatchContext<'_>), String> {
        let loaded = self.stage(stage_id)?;
        if !loaded.entry.feeds_back || loaded.entry.thoughts == 0 {
            return Err(format!(
                "{} feeds no thought back: there is no thought to edit",
                loaded.entry.id
            ));
        }
        let ctx = PatchContext {
            model: &loaded.reference,
            tokenizer: &self.tokenizer,
            stage: &loaded.stage,
            max_digits: self.manifest.max_digits,
            probes: loaded.probes.as_ref(),
        };
        Ok((loaded, ctx))
    }

    /// Starts `coconut intervene --measure N` (`kind` `patching`: N pairs) or `--measure-flips N`
    /// (`flips`: N problems) on one stage, in the page: the same code and numbers as the command
    /// line's, counted a few problems at a time by [`Session::measure_more`].
    pub fn start_measurement(
        &self,
        stage_id: &str,
        kind: &str,
        n: usize,
    ) -> Result<Measurement, String> {
        let (loaded, ctx) = self.thought_stage(stage_id)?;
        let (tally, problems) = match kind {
            "patching" => (
                Tally::Patching(PatchTally::new(
                    &loaded.entry.id,
                    self.manifest.max_digits + 1,
                )),
                2 * n,
            ),
            "flips" => (Tally::Flips(FlipTally::new(&ctx, &loaded.entry.id)?), n),
            other => return Err(format!("unknown measurement '{other}': patching or flips")),
        };
        self.held_out(problems)?;
        Ok(Measurement {
            stage: loaded.entry.id.clone(),
            n,
            done: 0,
            tally,
        })
    }

    /// Counts the next `k` pairs or problems of `m`; returns how far it is and the effects so far.
    pub fn measure_more(&self, m: &mut Measurement, k: usize) -> Result<MeasureProgress, String> {
        let (_, ctx) = self.thought_stage(&m.stage)?;
        let next = m.done..(m.done + k).min(m.n);
        let kind = match &mut m.tally {
            Tally::Patching(tally) => {
                let test = self.held_out(2 * next.end)?;
                let pairs: Vec<(Problem, Problem)> = test[2 * next.start..]
                    .chunks_exact(2)
                    .map(|p| (p[0], p[1]))
                    .collect();
                tally
                    .add(ctx.model, ctx.tokenizer, ctx.stage, &pairs)
                    .map_err(|e| e.to_string())?;
                "patching"
            }
            Tally::Flips(tally) => {
                tally.add(&ctx, &self.held_out(next.end)?[next.start..])?;
                "flips"
            }
        };
        m.done = next.end;
        let effects = match &m.tally {
            Tally::Patching(t) => serde_json::to_value(t.effects()),
            Tally::Flips(t) => serde_json::to_value(t.effects()),
        }
        .map_err(|e| e.to_string())?;
        Ok(MeasureProgress {
            stage: m.stage.clone(),
            kind,
            done: m.done,
            n: m.n,
            effects,
        })
    }

    /// The first `n` held-out test problems, refused past the set's size.
    fn held_out(&self, n: usize) -> Result<&[Problem], String> {
        let test = self.test_set()?;
        test.get(..n)
            .ok_or_else(|| format!("at most {} held-out test problems, {n} asked", test.len()))
    }

    /// Solves on the reference engine as trained and with the thoughts edited by `patches`
    /// (`J=zero`, `J=from:A+B`, `J=flip:C`, separated by `;` or `,`), the same edits as
    /// `coconut intervene --patch` resolved by the same core code.
    pub fn solve_edited(
        &self,
        stage_id: &str,
        problem: &Problem,
        patches: &str,
    ) -> Result<EditedView, String> {
        let (loaded, ctx) = self.thought_stage(stage_id)?;
        if let Some(why) = self.edit_scope(loaded, problem, usize::MAX).why_not {
            return Err(why);
        }
        let given: Vec<&str> = patches
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let specs = given
            .iter()
            .map(|s| s.parse::<PatchSpec>())
            .collect::<Result<Vec<_>, _>>()?;
        if specs.is_empty() {
            return Err("no edit given (J=zero, J=from:A+B or J=flip:C)".into());
        }
        let edits = specs
            .iter()
            .map(|spec| ctx.resolve(spec))
            .collect::<Result<Vec<_>, _>>()?;
        let solve = |edits: &[Intervention]| {
            loaded
                .reference
                .solve_edited(&self.tokenizer, problem, &loaded.stage, false, edits)
                .map_err(|e| e.to_string())
        };
        let (plain, edited) = (solve(&[])?, solve(&edits)?);
        let (plain_verdict, edited_verdict) = (
            verdict(problem, plain.answer.as_deref(), plain.columns),
            verdict(problem, edited.answer.as_deref(), edited.columns),
        );
        let mut command = vec![
            "coconut".to_string(),
            "intervene".into(),
            "--stage".into(),
            loaded.entry.id.clone(),
        ];
        for spec in &given {
            command.extend(["--patch".to_string(), shell_quote(spec)]);
        }
        command.push(shell_quote(&format!("{} + {}", problem.a, problem.b)));
        Ok(EditedView {
            stage: loaded.entry.id.clone(),
            patches: specs.iter().map(ToString::to_string).collect(),
            expected: problem.answer().to_string(),
            answer: plain.answer,
            edited_answer: edited.answer.clone(),
            correct: plain_verdict.correct,
            edited_correct: edited_verdict.correct,
            verdict: plain_verdict,
            edited_verdict,
            text: plain.text,
            edited_text: edited.text,
            command: command.join(" "),
        })
    }

    /// The thoughts of a run of `problem` (with `thoughts` slots) that `coconut intervene` can
    /// edit: only problems of the trained lengths (it parses its problems and a `from:` problem
    /// with the manifest's `max_digits`, and the edits and probes were measured on those), and
    /// only the stage's own slots ([`Stage::thoughts`], the most a problem of those lengths gets).
    fn edit_scope(&self, loaded: &LoadedStage, problem: &Problem, thoughts: usize) -> EditScope {
        let trained = self.manifest.max_digits;
        let why_not = if !loaded.entry.feeds_back || loaded.entry.thoughts == 0 {
            Some(format!(
                "{} feeds no thought back: there is no thought to edit",
                loaded.entry.id
            ))
        } else if problem.columns() > trained {
            Some(format!(
                "Thoughts are edited on problems of 1 to {trained} digits, as coconut intervene \
                 edits them: the edits, and the probes a flip reads, were fitted and measured on \
                 those; this problem has {}-digit numbers.",
                problem.columns()
            ))
        } else {
            None
        };
        let slots = match why_not {
            Some(_) => 0,
            None => thoughts.min(loaded.stage.most_thoughts(trained)),
        };
        EditScope { slots, why_not }
    }

    /// What the page draws for a stage's solution, from either engine: with what the manifest
    /// measured for the problem's own kind, the probes' scores only for the lengths they were
    /// scored on, which thoughts can be edited and what the stage's carry flips did.
    pub fn view(&self, stage_id: &str, solution: &Solution) -> Result<SolveView, String> {
        let loaded = self.stage(stage_id)?;
        let problem = &solution.problem;
        // The probes are fitted on the manifest's training split and scored on its test split
        // (`coconut probe`), whose operands have 1 to `test_data().max_digits` digits.
        let probe_digits = self.manifest.test_data().max_digits;
        let probed = loaded.probes.as_ref().and_then(|p| {
            let score = p.scores.first()?;
            Some((
                p,
                Probed {
                    digits: probe_digits,
                    n_fit: score.n_fit,
                    n_test: score.n_test,
                    measured_here: problem.columns() <= probe_digits,
                },
            ))
        });
        let mut view = solve_view(
            &loaded.entry.id,
            loaded.entry.feeds_back,
            solution,
            &loaded.reference,
            probed,
            &self.tokenizer,
        );
        view.measured = loaded.entry.measured_for(problem);
        view.measured_note = measured_note(view.measured.as_ref(), problem);
        let thoughts = view
            .tokens
            .iter()
            .filter(|t| t.kind == TokenKind::Thought)
            .count();
        view.edits = self.edit_scope(loaded, problem, thoughts);
        let slots = view.edits.slots;
        if view.edits.why_not.is_none() && thoughts > slots {
            view.edits.why_not = Some(format!(
                "Thought {} and later cannot be edited: coconut intervene edits the {slots} \
                 thoughts this stage has for problems of 1 to {} digits.",
                slots + 1,
                self.manifest.max_digits
            ));
        }
        view.flips = self.flips_measured(loaded);
        Ok(view)
    }
}

/// Stage `id`'s entry and its file's weights, verified against the manifest (size, sha256,
/// tensors), for either model family.
pub fn verified_stage(
    manifest: &Manifest,
    id: &str,
    bytes: &[u8],
) -> Result<(StageEntry, coconut_core::weights::ModelWeights), String> {
    let entry = manifest.stage(id).map_err(|e| e.to_string())?.clone();
    let weights = manifest
        .stage_weights(&entry, bytes)
        .map_err(|e| e.to_string())?;
    Ok((entry, weights))
}

/// A stage's probes file, verified against the manifest (size, sha256, every probe shaped for
/// the model and the stage); refused for a stage that lists none.
pub fn verified_probes(
    manifest: &Manifest,
    entry: &StageEntry,
    bytes: &[u8],
) -> Result<ThoughtProbes, String> {
    manifest
        .stage_probes(entry, bytes)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the manifest lists no probes for stage {}", entry.id))
}

/// What the manifest measured for `problem`'s kind, in a sentence (`coconut solve`'s note,
/// worded for the page): its operand-length pair, and its carry chain where the same set
/// counted it; never another kind's figure.
pub fn measured_note(
    figure: Option<&coconut_core::manifest::ClassFigure>,
    problem: &Problem,
) -> String {
    let (da, db) = problem.digit_counts();
    let Some(f) = figure else {
        return format!(
            "Not measured for this kind of problem: the weights' figures have no {da}-digit + \
             {db}-digit problems."
        );
    };
    let mut note = format!(
        "This stage answers {:.1}% of {da}-digit + {db}-digit problems right (n = {}, held-out \
         set '{}')",
        f.greedy, f.n, f.set
    );
    // A chain of one carry is every other problem; longer ones are the hard kind.
    if let Some(c) = f.carry_chain.as_ref().filter(|c| c.chain >= 2) {
        note += &format!(
            "; {:.1}% of that set's problems with a {}-column carry chain (n = {})",
            c.greedy, c.chain, c.n
        );
    }
    note + "."
}

/// `text` as one argument of a POSIX shell command line: as it is when it holds only characters
/// no shell reads specially, else in single quotes.
pub fn shell_quote(text: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"=:_.,/+@%-".contains(&b);
    if !text.is_empty() && text.bytes().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-weights")
    }

    fn session() -> Session {
        let dir = fixture();
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
        let mut session = Session::new(&manifest, &tokenizer).unwrap();
        for entry in session.manifest.stages.clone() {
            let bytes = std::fs::read(dir.join(&entry.file.file)).unwrap();
            session.add_stage(&entry.id, &bytes).unwrap();
        }
        session
    }

    #[test]
    fn a_measurement_counted_in_chunks_gives_the_command_line_s_numbers() {
        let session = session();
        let stage = "stage2";
        let mut m = session.start_measurement(stage, "patching", 5).unwrap();
        let first = session.measure_more(&mut m, 3).unwrap();
        assert_eq!((first.done, first.n), (3, 5));
        let last = session.measure_more(&mut m, 3).unwrap();
        assert_eq!((last.done, last.kind), (5, "patching"));
        // The same as core's one pass over the same held-out pairs (what the CLI runs).
        let loaded = session.stage(stage).unwrap();
        let test = &session.test_set().unwrap()[..10];
        let pairs: Vec<(Problem, Problem)> = test.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let columns = session.manifest.max_digits + 1;
        let whole = coconut_core::effects::patch_effects(
            &loaded.reference,
            &session.tokenizer,
            &loaded.stage,
            stage,
            &pairs,
            columns,
        )
        .unwrap();
        assert_eq!(last.effects, serde_json::to_value(whole).unwrap());
        // Refusals a page can show.
        let too_many = session.test_set().unwrap().len();
        assert!(session
            .start_measurement(stage, "patching", too_many)
            .is_err());
        assert!(session
            .start_measurement(stage, "banana", 5)
            .unwrap_err()
            .contains("banana"));
        assert!(session.start_measurement("nocot", "patching", 5).is_err());
    }

    #[test]
    fn test_slices_count_what_the_reference_solves_one_by_one() {
        let session = session();
        let len = session.test_set().unwrap().len();
        let slice = session.test_slice(3, 20).unwrap();
        assert_eq!(slice, &session.test_set().unwrap()[3..23]);
        assert_eq!(session.test_slice(len - 2, 20).unwrap().len(), 2);
        assert!(session
            .test_slice(len, 1)
            .unwrap_err()
            .contains("none start"));
        let stage = "stage2";
        let right = slice
            .iter()
            .filter(|p| session.solve_reference(stage, p, false).unwrap().correct)
            .count();
        assert_eq!(
            session.count_correct_reference(stage, slice).unwrap(),
            right
        );
        assert!(session.count_correct_reference("stage9", slice).is_err());
    }

    #[test]
    fn the_test_set_is_the_one_the_figures_were_measured_on() {
        let session = session();
        let test = session.test_set().unwrap();
        let data = coconut_core::data::DataConfig {
            max_digits: session.manifest.max_digits,
            splits: session.manifest.data_splits,
            ..Default::default()
        };
        assert_eq!(test, data.generate().unwrap().test.as_slice());
        // Drawn once.
        assert!(std::ptr::eq(test, session.test_set().unwrap()));
    }

    #[test]
    fn solves_like_the_reference_engine_on_a_weights_folder() {
        let session = session();
        let dir = coconut_core::manifest::WeightsDir::open(fixture()).unwrap();
        let tokenizer = dir.tokenizer().unwrap();
        for entry in &session.manifest.stages {
            let (_, stage, weights) = dir.stage(&entry.id).unwrap();
            let problem = Problem::new(347, 285);
            let expected = ReferenceModel::new(&weights)
                .solve(&tokenizer, &problem, &stage, false)
                .unwrap();
            let view = session.solve_reference(&entry.id, &problem, true).unwrap();
            assert_eq!(view.text, expected.text, "{}", entry.id);
            assert_eq!(view.answer, expected.answer, "{}", entry.id);
            assert!(!view.positions.is_empty());
        }
    }

    #[test]
    fn a_corrupt_stage_file_is_refused_and_the_session_keeps_working() {
        let mut session = session();
        let entry = session.manifest.stages[0].clone();
        let mut bytes = std::fs::read(fixture().join(&entry.file.file)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = session.add_stage(&entry.id, &bytes).unwrap_err();
        assert!(err.contains("sha256"), "{err}");
        assert!(err.contains(&entry.file.file), "{err}");
        let err = session.add_stage(&entry.id, &bytes[..100]).unwrap_err();
        assert!(err.contains(&entry.file.file), "{err}");
        assert!(session
            .solve_reference(&entry.id, &Problem::new(1, 2), false)
            .is_ok());
    }

    #[test]
    fn probes_are_refused_for_a_stage_that_lists_none() {
        let mut s = session();
        let e = s.add_probes("stage2", b"anything").unwrap_err();
        assert_eq!(e, "the manifest lists no probes for stage stage2");
        assert!(s
            .add_probes("stage9", b"")
            .unwrap_err()
            .contains("no stage"));
    }

    #[test]
    fn thoughts_are_edited_like_the_cli_does_and_bad_edits_are_refused() {
        let s = session();
        let p = Problem::new(347, 285);
        let edited = s
            .solve_edited("stage2", &p, "0=zero; 1=from:999+1")
            .unwrap();
        assert_eq!(edited.patches, ["thought 0 zeroed", "thought 1 from 999+1"]);
        let plain = s.solve_reference("stage2", &p, false).unwrap();
        assert_eq!((edited.answer, edited.text), (plain.answer, plain.text));
        // The same edits through core directly.
        let loaded = s.stage("stage2").unwrap();
        let other = loaded
            .reference
            .solve(&s.tokenizer, &Problem::new(999, 1), &loaded.stage, false)
            .unwrap();
        let edits = [
            Intervention {
                slot: 0,
                edit: coconut_core::intervention::Edit::Zero,
            },
            Intervention {
                slot: 1,
                edit: coconut_core::intervention::Edit::Replace(
                    other.generation.thoughts[1].clone(),
                ),
            },
        ];
        let want = loaded
            .reference
            .solve_edited(&s.tokenizer, &p, &loaded.stage, false, &edits)
            .unwrap();
        assert_eq!(edited.edited_text, want.text);
        let refused = |stage: &str, patches: &str| s.solve_edited(stage, &p, patches).unwrap_err();
        assert!(refused("stage2", "2=zero").contains("this stage has at most 2"));
        assert!(refused("stage2", "0=from:").contains("0=from:"));
        assert!(refused("stage2", "0=flip:1").contains("has no probes"));
        assert!(refused("stage2", " ; ").contains("no edit given"));
        assert!(refused("stage2", "zero").contains("expected J=zero"));
        assert!(refused("stage0", "0=zero").contains("no thought to edit"));
        assert!(refused("pause", "0=zero").contains("no thought to edit"));
    }

    /// The shipped folder with `ids` loaded (and their probes), and its measured carry flips.
    fn shipped(ids: &[&str]) -> Session {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights");
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
        let mut session = Session::new(&manifest, &tokenizer).unwrap();
        for id in ids {
            let entry = session.manifest.stage(id).unwrap().clone();
            session
                .add_stage(id, &std::fs::read(dir.join(&entry.file.file)).unwrap())
                .unwrap();
            if let Some(probes) = &entry.probes {
                let bytes = std::fs::read(dir.join(&probes.file)).unwrap();
                session.add_probes(id, &bytes).unwrap();
            }
        }
        let flips = std::fs::read_to_string(dir.join("eval/flips.json")).unwrap();
        session.add_flips(&flips).unwrap();
        session
    }

    #[test]
    fn a_solve_carries_the_figure_of_its_own_kind_of_problem() {
        let s = shipped(&["stage5"]);
        let entry = s.manifest.stage("stage5").unwrap();
        for (a, b) in [(654122, 299), (347, 285), (12345678, 9), (314159, 271828)] {
            let p = Problem::new(a, b);
            let view = s.solve_reference("stage5", &p, false).unwrap();
            let want = entry.measured_for(&p).unwrap();
            assert_eq!(view.measured.as_ref(), Some(&want), "{p}");
            let (da, db) = p.digit_counts();
            let head = format!(
                "This stage answers {:.1}% of {da}-digit + {db}-digit problems right (n = {}",
                want.greedy, want.n
            );
            assert!(
                view.measured_note.starts_with(&head),
                "{}",
                view.measured_note
            );
        }
        // 654122 + 299: the 6x3 pair's figure, never the 6x6 set's.
        let odd = s
            .solve_reference("stage5", &Problem::new(654122, 299), false)
            .unwrap();
        let f = odd.measured.unwrap();
        assert_eq!((f.a_digits, f.b_digits, f.n), (6, 3, 200));
        // Weights without figures for the pair say so.
        let fixture = session();
        let v = fixture
            .solve_reference("stage2", &Problem::new(347, 285), false)
            .unwrap();
        assert_eq!(v.measured, None);
        assert!(v
            .measured_note
            .starts_with("Not measured for this kind of problem"));
    }

    #[test]
    fn edits_exist_where_coconut_intervene_makes_them() {
        let s = shipped(&["stage5"]);
        let p = Problem::new(347, 285);
        let short = s.solve_reference("stage5", &p, true).unwrap();
        // Every thought of a trained length is editable: one per column the stage writes (3,
        // and its padding) and one for the carry column.
        let stage = s.manifest.stage_of(s.manifest.stage("stage5").unwrap());
        assert!(stage.thoughts_of(&p) >= 4);
        assert_eq!(
            (short.edits.slots, short.edits.why_not.as_deref()),
            (stage.thoughts_of(&p), None)
        );
        let long = Problem::new(314159, 271828);
        let view = s.solve_reference("stage5", &long, true).unwrap();
        assert_eq!(view.edits.slots, 0);
        assert!(view.edits.why_not.unwrap().contains("1 to 4 digits"));
        let refused = s.solve_edited("stage5", &long, "0=zero").unwrap_err();
        assert!(refused.contains("1 to 4 digits"), "{refused}");
        // The probes read it, without a score: they were scored on 1-4 digit problems only.
        let thought = view
            .positions
            .iter()
            .find(|p| !p.probes.is_empty())
            .unwrap();
        assert!(thought.probes.iter().all(|r| r.accuracy.is_none()));
        let scored = short
            .positions
            .iter()
            .find(|p| !p.probes.is_empty())
            .unwrap();
        assert!(scored.probes.iter().all(|r| r.accuracy.is_some()));
    }

    #[test]
    fn edit_results_use_core_s_answer_rule_and_a_command_a_shell_reads() {
        let s = shipped(&["stage5"]);
        let p = Problem::new(347, 285);
        let edited = s.solve_edited("stage5", &p, "0=flip:0").unwrap();
        // The coupled layout writes a digit per column and the carry column: 632 with leading
        // zeros (0632, or 000632 with two columns of padding).
        let columns = s
            .manifest
            .stage_of(s.manifest.stage("stage5").unwrap())
            .columns_for(&p);
        let written = format!("{:0>width$}", 632, width = columns + 1);
        assert_eq!(edited.answer.as_deref(), Some(written.as_str()));
        assert!(edited.correct && edited.verdict.correct);
        assert_eq!(edited.verdict.reads.as_deref(), Some("632"));
        assert_eq!(edited.edited_correct, edited.edited_verdict.correct);
        let spaced = s.solve_edited("stage5", &p, "0=from:999 + 1").unwrap();
        assert_eq!(
            spaced.command,
            "coconut intervene --stage stage5 --patch '0=from:999 + 1' '347 + 285'"
        );
        assert_eq!(shell_quote("1=zero"), "1=zero");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn measured_carry_flips_are_shown_only_for_the_probes_they_flipped() {
        let mut s = shipped(&["stage1", "stage5"]);
        let p = Problem::new(347, 285);
        let view = |s: &Session, id| s.solve_reference(id, &p, false).unwrap().flips;
        // What the file says, read apart from the session: each stage's rows and its largest
        // effect.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights");
        let file: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("eval/flips.json")).unwrap())
                .unwrap();
        let rows_of = |id: &str| -> Vec<&serde_json::Value> {
            file.iter().filter(|r| r["stage"] == id).collect()
        };
        for id in ["stage1", "stage5"] {
            let shown = view(&s, id).unwrap();
            let rows = rows_of(id);
            let most = rows
                .iter()
                .max_by(|x, y| {
                    let share = |r: &serde_json::Value| r["as_the_carry_would"].as_f64().unwrap();
                    share(x).total_cmp(&share(y))
                })
                .unwrap();
            assert_eq!(
                (shown.most, shown.most_slot as u64, shown.most_column as u64),
                (
                    most["as_the_carry_would"].as_f64().unwrap(),
                    most["slot"].as_u64().unwrap(),
                    most["column"].as_u64().unwrap()
                ),
                "{id}"
            );
            assert_eq!(shown.rows.len(), rows.len(), "{id}");
            assert_eq!(shown.digits, 4);
        }
        // Rows measured on other probes (another probe accuracy) are not these weights'.
        let mut rows: Vec<FlipEffect> = s.flips.clone();
        rows.iter_mut()
            .filter(|r| r.stage == "stage5")
            .for_each(|r| r.probe_accuracy -= 1.0);
        s.add_flips(&serde_json::to_string(&rows).unwrap()).unwrap();
        assert_eq!(view(&s, "stage5"), None);
        assert!(view(&s, "stage1").is_some());
        assert!(s.add_flips("{}").unwrap_err().contains("flips.json"));
    }

    #[test]
    fn refused_fields_each_get_their_message() {
        let session = session();
        let errors = session.problem("12a", "12345", "stage5").unwrap_err();
        assert!(errors.a.as_deref().unwrap().contains("'a'"));
        assert!(errors.b.as_deref().unwrap().contains("0 to 9999"));
        assert!(errors.summary().starts_with("First number:"));
        assert_eq!(
            session.problem("347", " 285", "stage5"),
            Ok(Problem::new(347, 285))
        );
        assert!(session.stage("stage9").is_err());
    }

    #[test]
    fn a_manifest_that_is_not_one_is_refused() {
        let tokenizer = std::fs::read(fixture().join("tokenizer.json")).unwrap();
        let err = Session::new("<html>404</html>", &tokenizer).err().unwrap();
        assert!(err.contains("manifest.json"), "{err}");
    }

    #[test]
    fn a_manifest_naming_files_outside_the_folder_is_refused_before_any_fetch() {
        let text = std::fs::read_to_string(fixture().join("manifest.json")).unwrap();
        Session::check_manifest(&text).unwrap();
        for (name, why) in [
            ("../../../etc/passwd", "climbs out of the weights folder"),
            ("/etc/passwd", "is an absolute path"),
            ("https:/evil.example/x", "names a file in another folder"),
            ("stage0.safetensors#x", "holds characters other than"),
        ] {
            let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
            manifest["stages"][1]["file"] = name.into();
            let id = manifest["stages"][1]["id"].as_str().unwrap().to_string();
            let err = Session::check_manifest(&manifest.to_string()).unwrap_err();
            let expected = format!("stages[1] ({id}).file {name:?} {why}");
            assert!(err.contains(&expected), "{err}");
            let tokenizer = std::fs::read(fixture().join("tokenizer.json")).unwrap();
            assert!(Session::new(&manifest.to_string(), &tokenizer).is_err());
        }
    }
}
