//! A weights folder of the seed's family in the page (an imported GPT-2 Coconut checkpoint,
//! docs/seed-format.md): GPT-2's BPE read from the folder's `tokenizer.json` without the
//! `tokenizers` crate, the seed's layouts and answer rule through core's seed decoder, on the
//! reference engine. It answers what `coconut solve --weights DIR --stage S` prints (the
//! `columns` thought count, its default: counted from the operands alone) and hands the page
//! the same [`SolveView`] as this project's own models, with the folder's probes where `coconut
//! probe --ship` fitted them, without edits (`coconut intervene` edits its thoughts).

use crate::operand::parse_operand;
use crate::session::{measured_note, verified_probes, verified_stage, FieldErrors};
use crate::view::{solve_view, EditScope, Probed, SolveView, Verdict};
use coconut_core::decoding::{AnswerTokens, Generation, Solution};
use coconut_core::manifest::{Manifest, StageEntry};
use coconut_core::probes::ThoughtProbes;
use coconut_core::reference::ReferenceModel;
use coconut_core::seed::decode::{answer, answer_tokens, decoder, text};
use coconut_core::seed::layout::{check_problem, SeedStage, ThoughtCount};
use coconut_core::seed::problems::{split, SeedSplit, TrainingSet};
use coconut_core::seed::vocab::Gpt2Vocab;
use coconut_core::Problem;
use std::cell::OnceCell;
use std::sync::Arc;

/// The digits of the seed's operands: both of one length, 2 to 4 (its training data).
const SEED_DIGITS: usize = 4;
/// How many of the seed's held-out validation problems "test it here" offers.
const HELD_OUT: usize = 1000;

struct SeedLoaded {
    entry: StageEntry,
    stage: SeedStage,
    reference: ReferenceModel,
    /// Its probes (`coconut probe --ship` on the folder), once their file has loaded.
    probes: Option<ThoughtProbes>,
}

pub struct SeedSession {
    pub manifest: Manifest,
    vocab: Gpt2Vocab,
    tokens: Arc<AnswerTokens>,
    stages: Vec<SeedLoaded>,
    /// The seed's validation problems, drawn on first use.
    held_out: OnceCell<Vec<Problem>>,
}

impl SeedSession {
    /// A checked manifest of the seed's family and its `tokenizer.json` (checked against the
    /// manifest's sha256, then against GPT-2's ids for a probe text).
    pub fn new(manifest: Manifest, tokenizer_bytes: &[u8]) -> Result<SeedSession, String> {
        let vocab = manifest
            .seed_vocab(tokenizer_bytes)
            .map_err(|e| e.to_string())?;
        Ok(SeedSession {
            tokens: answer_tokens(&vocab),
            vocab,
            manifest,
            stages: Vec::new(),
            held_out: OnceCell::new(),
        })
    }

    /// Verifies a stage file against the manifest (size, sha256, tensors) and loads it.
    pub fn add_stage(&mut self, id: &str, bytes: &[u8]) -> Result<(), String> {
        let (entry, weights) = verified_stage(&self.manifest, id, bytes)?;
        let stage = SeedStage::of_entry(&entry)?;
        let reference = ReferenceModel::new(&weights);
        self.stages.retain(|s| s.entry.id != entry.id);
        self.stages.push(SeedLoaded {
            entry,
            stage,
            reference,
            probes: None,
        });
        Ok(())
    }

    /// Verifies a loaded stage's probes file against the manifest and keeps it: its thoughts
    /// then show what the probes read (fitted on the seed's own problems).
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

    fn stage(&self, id: &str) -> Result<&SeedLoaded, String> {
        let wanted = self.manifest.stage(id).map_err(|e| e.to_string())?;
        self.stages
            .iter()
            .find(|s| s.entry.id == wanted.id)
            .ok_or_else(|| format!("stage {} is not loaded yet", wanted.id))
    }

    /// The problem in the two fields, or a message per refused field: numbers of up to four
    /// digits, then the seed's kind (the same length, 2 to 4 digits), as `coconut solve`
    /// refuses.
    pub fn problem(&self, a: &str, b: &str) -> Result<Problem, FieldErrors> {
        let parse = |text| parse_operand(text, SEED_DIGITS, SEED_DIGITS);
        match (parse(a), parse(b)) {
            (Ok(a), Ok(b)) => {
                let problem = Problem::new(a, b);
                check_problem(&problem).map_err(|reason| FieldErrors {
                    a: None,
                    b: Some(format!("{reason}.")),
                })?;
                Ok(problem)
            }
            (a, b) => Err(FieldErrors {
                a: a.err(),
                b: b.err(),
            }),
        }
    }

    /// The seed's validation problems (its own generator, seed 123) that are not in its
    /// training set (regenerated): the held-out problems `coconut eval` measures on.
    pub fn test_set(&self) -> &[Problem] {
        self.held_out.get_or_init(|| {
            let training = TrainingSet::new();
            split(SeedSplit::Validation)
                .into_iter()
                .filter(|p| !training.contains(p))
                .take(HELD_OUT)
                .collect()
        })
    }

    /// Solves `problem` on a stage by the seed's free run (thoughts counted from the operands),
    /// with the view the page draws.
    pub fn solve(
        &self,
        stage_id: &str,
        problem: &Problem,
        trace: bool,
    ) -> Result<SolveView, String> {
        let loaded = self.stage(stage_id)?;
        check_problem(problem)?;
        let n_positions = loaded.reference.config().n_positions;
        let d = decoder(
            &self.vocab,
            &self.tokens,
            problem,
            loaded.stage,
            ThoughtCount::Columns,
            n_positions,
        )
        .map_err(|e| e.to_string())?;
        let generation: Generation = loaded
            .reference
            .run_decoder(d, trace)
            .map_err(|e| e.to_string())?;
        let solution = Solution {
            problem: *problem,
            columns: problem.columns(),
            answer: answer(&self.vocab, &generation.ids, generation.prompt_len),
            text: text(&self.vocab, &generation.ids),
            generation,
        };
        // Probes are fitted and scored on the seed's kind of problem, the only kind it solves.
        let probed = loaded.probes.as_ref().and_then(|p| {
            let score = p.scores.first()?;
            let probed = Probed {
                digits: SEED_DIGITS,
                n_fit: score.n_fit,
                n_test: score.n_test,
                measured_here: true,
            };
            Some((p, probed))
        });
        let mut view = solve_view(
            &loaded.entry.id,
            true,
            &solution,
            &loaded.reference,
            probed,
            &self.vocab,
        );
        // The seed's answers are read as written (`coconut solve`'s rule for its family).
        view.verdict = exact_verdict(problem, solution.answer.as_deref());
        view.correct = view.verdict.correct;
        view.measured = loaded.entry.measured_for(problem);
        view.measured_note = measured_note(view.measured.as_ref(), problem);
        view.edits = EditScope {
            slots: 0,
            why_not: Some(
                "The seed's thoughts are edited with coconut intervene on the command line; \
                 the page edits this project's own models."
                    .into(),
            ),
        };
        Ok(view)
    }

    /// How many of `problems` a stage answers right, on the reference engine.
    pub fn count_correct(&self, stage_id: &str, problems: &[Problem]) -> Result<usize, String> {
        let mut right = 0;
        for p in problems {
            right += usize::from(self.solve(stage_id, p, false)?.correct);
        }
        Ok(right)
    }
}

fn exact_verdict(problem: &Problem, answer: Option<&str>) -> Verdict {
    let expected = problem.answer().to_string();
    let correct = answer == Some(expected.as_str());
    Verdict {
        correct,
        answer: answer.map(str::to_string),
        reads: answer.map(str::to_string),
        expected,
        mark: if correct { "✓" } else { "✗" },
        leading_zeros: None,
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::view::TokenKind;
    use coconut_core::family::LayoutFamily;
    use coconut_core::weights::WeightDtype;
    use coconut_trainer::import::{import, ImportRequest, Source};
    use serde_json::Value;
    use std::path::{Path, PathBuf};

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/seed-standin")
            .join(name)
    }

    /// The stand-in checkpoint imported as the seed's four stages (one set of weights), loaded
    /// as the page loads a folder: the manifest, the tokenizer, every stage file.
    fn session(dir: &Path) -> SeedSession {
        for k in 0..4 {
            import(&ImportRequest {
                source: Source::Pt(fixture("standin.pt")),
                stage: format!("stage{k}"),
                layout: LayoutFamily::Seed,
                n_head: Some(2),
                dtype: WeightDtype::F32,
                out: dir.to_path_buf(),
                shard_bytes: coconut_core::manifest::MAX_SHARD_BYTES,
            })
            .unwrap();
        }
        load(dir)
    }

    /// The folder `dir` loaded as the page loads it: the manifest, the tokenizer, every stage.
    fn load(dir: &Path) -> SeedSession {
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        let manifest = crate::session::Session::check_manifest(&manifest).unwrap();
        let tokenizer = std::fs::read(dir.join(&manifest.tokenizer.file)).unwrap();
        let mut session = SeedSession::new(manifest, &tokenizer).unwrap();
        for entry in session.manifest.stages.clone() {
            let bytes = std::fs::read(dir.join(&entry.file.file)).unwrap();
            session.add_stage(&entry.id, &bytes).unwrap();
        }
        session
    }

    #[test]
    fn the_page_solves_the_stand_in_as_the_seed_s_procedure_did() {
        let dir = tempfile::tempdir().unwrap();
        let session = session(dir.path());
        let golden: Value =
            serde_json::from_slice(&std::fs::read(fixture("golden.json")).unwrap()).unwrap();
        let mut compared = 0;
        for g in golden["problems"].as_array().unwrap() {
            let (a, b) = (g["a"].as_u64().unwrap(), g["b"].as_u64().unwrap());
            let problem = session.problem(&a.to_string(), &b.to_string()).unwrap();
            for k in 0..4 {
                let stage = &g["stages"][format!("stage{k}")];
                // Stage 0 thinks nothing: its one free run; later stages: thoughts counted
                // from the operands, the page's (and `coconut solve`'s) default.
                let free = if k == 0 {
                    &stage["free"]
                } else {
                    &stage["free_columns"]
                };
                let view = session.solve(&format!("stage{k}"), &problem, true).unwrap();
                let want = free["answer"].as_str().filter(|a| !a.is_empty());
                assert_eq!(view.answer.as_deref(), want, "{a} + {b} stage{k}");
                let thoughts = view.tokens.iter().filter(|t| t.kind == TokenKind::Thought);
                let want_thoughts = free.get("n_thoughts").map_or(0, |n| n.as_u64().unwrap());
                assert_eq!(thoughts.count() as u64, want_thoughts, "{a} + {b} stage{k}");
                // The traced thoughts are the goldens' fed vectors.
                let fed: Vec<&Vec<f32>> = view
                    .tokens
                    .iter()
                    .zip(&view.positions)
                    .filter(|(t, _)| t.kind == TokenKind::Thought)
                    .map(|(_, p)| &p.input)
                    .collect();
                if let Some(want) = free.get("thoughts") {
                    let want: Vec<Vec<f32>> = serde_json::from_value(want.clone()).unwrap();
                    for (got, want) in fed.iter().zip(&want) {
                        let worst = got
                            .iter()
                            .zip(want)
                            .map(|(x, y)| (x - y).abs())
                            .fold(0.0, f32::max);
                        // The view rounds to 4 decimals.
                        assert!(worst < 2e-4, "{a} + {b} stage{k}: thought off by {worst}");
                    }
                }
                assert_eq!(view.correct, want == Some((a + b).to_string().as_str()));
                let kinds: Vec<TokenKind> = view.tokens.iter().map(|t| t.kind).collect();
                assert_eq!(kinds[0], TokenKind::Question);
                assert_eq!(kinds.iter().filter(|&&t| t == TokenKind::Bot).count(), 1);
                if k > 0 {
                    assert!(
                        kinds.contains(&TokenKind::Eot),
                        "{a} + {b} stage{k}: fed <eot>"
                    );
                }
                compared += 1;
            }
        }
        assert_eq!(compared, 64);
    }

    #[test]
    fn probes_shipped_with_a_seed_folder_read_its_thoughts() {
        use coconut_trainer::folder::{FolderWrite, Start};
        use coconut_trainer::probe::{probe_folder, ship, ProbeSizes};
        let dir = tempfile::tempdir().unwrap();
        drop(session(dir.path()));
        let folder = coconut_core::manifest::WeightsDir::open(dir.path()).unwrap();
        let sizes = ProbeSizes { fit: 200, test: 50 };
        let probed = probe_folder(&folder, &["stage3".into()], sizes, |_| {}).unwrap();
        ship(
            FolderWrite::begin(dir.path(), Start::Keep).unwrap(),
            &folder,
            &probed,
        )
        .unwrap();
        let mut session = load(dir.path());
        let entry = session.manifest.stage("stage3").unwrap().clone();
        let file = entry.probes.as_ref().unwrap();
        let bytes = std::fs::read(dir.path().join(&file.file)).unwrap();
        session.add_probes("stage3", &bytes).unwrap();
        assert!(
            session.add_probes("stage1", &bytes).is_err(),
            "stage1 lists no probes"
        );
        let view = session
            .solve("stage3", &Problem::new(347, 285), true)
            .unwrap();
        let at_thoughts: Vec<usize> = view
            .tokens
            .iter()
            .zip(&view.positions)
            .filter(|(t, _)| t.kind == TokenKind::Thought)
            .map(|(_, p)| p.probes.len())
            .collect();
        // Three thoughts, each read by a digit and a carry probe per column.
        assert_eq!(at_thoughts, [8, 8, 8]);
        assert!(view
            .probed
            .is_some_and(|p| p.measured_here && p.n_fit == 200));
    }

    #[test]
    fn fields_outside_the_seed_s_data_are_refused_and_the_test_set_is_held_out() {
        let dir = tempfile::tempdir().unwrap();
        let session = session(dir.path());
        let err = session.problem("347", "85").unwrap_err();
        assert!(err.b.unwrap().contains("same length, 2 to 4 digits"));
        assert!(session.problem("34567", "12345").unwrap_err().a.is_some());
        assert!(session.problem("7", "5").is_err());
        assert!(session.problem("x", "5").unwrap_err().a.is_some());
        let test = session.test_set();
        assert_eq!(test.len(), HELD_OUT);
        let training = coconut_core::seed::problems::TrainingSet::new();
        assert!(test
            .iter()
            .all(|p| !training.contains(p) && check_problem(p).is_ok()));
        // A wrong tokenizer file is refused before anything is loaded.
        let manifest = session.manifest.clone();
        let ours = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../weights/tokenizer.json"),
        )
        .unwrap();
        assert!(SeedSession::new(manifest, &ours).is_err());
    }
}
