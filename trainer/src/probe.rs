//! Linear probes: what a continuous thought holds. For every thought slot of a latent stage and
//! every column of the sum, a linear classifier reads from the thought (the hidden state fed in
//! at that slot) one quantity of the column: the digit it writes, whether it carries out, and the
//! sum of its two operand digits (its input, before the carry comes in).
//!
//! A probe is multinomial logistic regression (softmax of `W z + b` on the standardised hidden
//! state, a little L2, full-batch Adam): least squares onto one-hot labels would not do, since
//! it masks the middle classes of a quantity coded along one direction (the unit test's case).
//! Each is fitted on training problems and scored on held-out test problems, beside the same
//! probe fitted to shuffled labels (what the label distribution alone gives). Saved with the
//! standardisation folded in, a probe reads a raw hidden state `h` as `argmax(W h + b)`.

use crate::folder::FolderWrite;
use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use coconut_core::family::LayoutFamily;
use coconut_core::manifest::{FileEntry, StageEntry, WeightsDir, MANIFEST_FILE};
use coconut_core::probes::{Probe, ProbeDtype, ProbeScore, Quantity, ThoughtProbes};
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The thoughts of a stage on each problem: per problem, the vector fed in at each slot.
pub fn thoughts(
    model: &ReferenceModel,
    tokenizer: &Tokenizer,
    problems: &[Problem],
    stage: &Stage,
) -> Result<Vec<Vec<Vec<f32>>>> {
    problems
        .iter()
        .map(|p| Ok(model.solve(tokenizer, p, stage, false)?.generation.thoughts))
        .collect()
}

/// The standardised features of a set of thoughts, shared by every probe of one slot.
struct Design {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `(n, C + 1)`: standardised features and a trailing 1 (the bias).
    z: Tensor,
}

/// L2 strength on the weights (not the bias), per problem.
const L2: f64 = 1e-4;
/// Full-batch Adam steps and rate.
const STEPS: usize = 300;
const LR: f64 = 0.05;

impl Design {
    fn new(x: &[&[f32]]) -> Result<Design> {
        let (n, d) = (x.len(), x.first().map_or(0, |r| r.len()));
        ensure!(n > 0 && d > 0, "no thoughts to probe");
        let mut mean = vec![0f32; d];
        for row in x {
            for (m, &v) in mean.iter_mut().zip(*row) {
                *m += v / n as f32;
            }
        }
        let mut var = vec![0f32; d];
        for row in x {
            for ((s, &v), m) in var.iter_mut().zip(*row).zip(&mean) {
                *s += (v - m).powi(2) / n as f32;
            }
        }
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / v.sqrt().max(1e-6)).collect();
        let mut z = Vec::with_capacity(n * (d + 1));
        for row in x {
            z.extend(
                row.iter()
                    .zip(&mean)
                    .zip(&inv_std)
                    .map(|((&v, m), s)| (v - m) * s),
            );
            z.push(1.0);
        }
        let z = Tensor::from_vec(z, (n, d + 1), &Device::Cpu)?;
        Ok(Design { mean, inv_std, z })
    }

    /// The probe for `labels` (one per row), on raw features.
    fn fit(&self, labels: &[usize], classes: usize) -> Result<Probe> {
        let (n, w) = self.z.dims2()?;
        let dev = &Device::Cpu;
        let mut one_hot = vec![0f32; n * classes];
        for (i, &y) in labels.iter().enumerate() {
            one_hot[i * classes + y] = 1.0;
        }
        let y = Tensor::from_vec(one_hot, (n, classes), dev)?;
        let zt = self.z.t()?.contiguous()?;
        // No L2 on the bias row.
        let mut decay = vec![L2 as f32; w * classes];
        decay[(w - 1) * classes..].fill(0.0);
        let decay = Tensor::from_vec(decay, (w, classes), dev)?;
        let mut beta = Tensor::zeros((w, classes), DType::F32, dev)?;
        let (mut m, mut v) = (beta.zeros_like()?, beta.zeros_like()?);
        let (b1, b2) = (0.9f64, 0.999f64);
        for t in 1..=STEPS {
            let p = candle_nn::ops::softmax_last_dim(&self.z.matmul(&beta)?)?;
            let grad = ((zt.matmul(&(p - &y)?)? / n as f64)? + (&decay * &beta)?)?;
            m = ((m * b1)? + (&grad * (1.0 - b1))?)?;
            v = ((v * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&m / (1.0 - b1.powi(t as i32)))?;
            let v_hat = (&v / (1.0 - b2.powi(t as i32)))?;
            beta = (beta - ((m_hat / (v_hat.sqrt()? + 1e-8)?)? * LR)?)?;
        }
        let beta = beta.t()?.contiguous()?.to_vec2::<f32>()?; // [classes][w]
        let d = w - 1;
        let mut weight = vec![0f32; classes * d];
        let mut bias = vec![0f32; classes];
        for (k, row) in beta.iter().enumerate() {
            // Fold the standardisation in: w·((h - mean) / std) + c = (w / std)·h + c - Σ w mean / std.
            let mut c = row[d] as f64;
            for i in 0..d {
                let wi = row[i] * self.inv_std[i];
                weight[k * d + i] = wi;
                c -= (wi * self.mean[i]) as f64;
            }
            bias[k] = c as f32;
        }
        Ok(Probe {
            weight,
            bias,
            classes,
        })
    }
}

/// Percent of `x` a probe classifies as `labels` says.
fn accuracy(probe: &Probe, x: &[&[f32]], labels: &[usize]) -> f64 {
    let right = x
        .iter()
        .zip(labels)
        .filter(|(h, &y)| probe.predict(h) == y)
        .count();
    100.0 * right as f64 / labels.len().max(1) as f64
}

/// Fits and scores every probe of a stage with `slots` thoughts over `columns` columns.
pub fn probe_stage(
    stage_id: &str,
    fit: (&[Problem], &[Vec<Vec<f32>>]),
    test: (&[Problem], &[Vec<Vec<f32>>]),
    columns: usize,
    seed: u64,
) -> Result<ThoughtProbes> {
    let slots = fit.1.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = ThoughtProbes {
        scores: Vec::new(),
        probes: Vec::new(),
    };
    for slot in 0..slots {
        // With coupled ids a shorter problem has fewer thoughts: a slot is probed on the
        // problems that have it.
        let having = |set: &[Vec<Vec<f32>>]| -> Vec<usize> {
            (0..set.len()).filter(|&i| set[i].len() > slot).collect()
        };
        let (fit_rows, test_rows) = (having(fit.1), having(test.1));
        if test_rows.is_empty() {
            continue;
        }
        let fit_problems: Vec<Problem> = fit_rows.iter().map(|&i| fit.0[i]).collect();
        let test_problems: Vec<Problem> = test_rows.iter().map(|&i| test.0[i]).collect();
        let fit = (
            &fit_problems[..],
            fit_rows.iter().map(|&i| &fit.1[i]).collect::<Vec<_>>(),
        );
        let test = (
            &test_problems[..],
            test_rows.iter().map(|&i| &test.1[i]).collect::<Vec<_>>(),
        );
        let x_fit: Vec<&[f32]> = fit.1.iter().map(|t| t[slot].as_slice()).collect();
        let x_test: Vec<&[f32]> = test.1.iter().map(|t| t[slot].as_slice()).collect();
        let design = Design::new(&x_fit)?;
        for column in 0..columns {
            for quantity in Quantity::ALL {
                let label = |p: &Problem| quantity.label(p, column);
                let y_fit: Vec<usize> = fit.0.iter().map(label).collect();
                let y_test: Vec<usize> = test.0.iter().map(label).collect();
                let probe = design.fit(&y_fit, quantity.classes())?;
                let mut shuffled_labels = y_fit.clone();
                shuffled_labels.shuffle(&mut ChaCha8Rng::seed_from_u64(seed + slot as u64));
                let shuffled = design.fit(&shuffled_labels, quantity.classes())?;
                let mut counts = vec![0usize; quantity.classes()];
                y_test.iter().for_each(|&y| counts[y] += 1);
                let majority = counts.iter().max().copied().unwrap_or(0);
                out.scores.push(ProbeScore {
                    stage: stage_id.to_string(),
                    slot,
                    column,
                    quantity,
                    accuracy: accuracy(&probe, &x_test, &y_test),
                    shuffled: accuracy(&shuffled, &x_test, &y_test),
                    majority: 100.0 * majority as f64 / y_test.len().max(1) as f64,
                    n_fit: y_fit.len(),
                    n_test: y_test.len(),
                });
                out.probes.push((slot, column, quantity, probe));
            }
        }
    }
    Ok(out)
}

/// How many problems to fit and score on.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSizes {
    pub fit: usize,
    pub test: usize,
}

/// Probes every latent stage named in `stages` (all of them when empty) of a weights folder: its
/// thoughts on the first `sizes.fit` training problems and `sizes.test` held-out test problems
/// (the sets of its manifest's figures, [`Manifest::test_data`]).
///
/// [`Manifest::test_data`]: coconut_core::manifest::Manifest::test_data
pub fn probe_folder(
    dir: &WeightsDir,
    stages: &[String],
    sizes: ProbeSizes,
    mut progress: impl FnMut(&str),
) -> Result<Vec<ThoughtProbes>> {
    if dir.manifest.family.layout == LayoutFamily::Seed {
        return probe_seed_folder(dir, stages, sizes, progress);
    }
    let tokenizer = dir.tokenizer()?;
    let splits = dir.manifest.test_data().generate()?;
    ensure!(
        sizes.fit <= splits.train.len() && sizes.test <= splits.test.len(),
        "at most {} fit and {} test problems",
        splits.train.len(),
        splits.test.len()
    );
    let (fit, test) = (&splits.train[..sizes.fit], &splits.test[..sizes.test]);
    let entries = thought_stages(dir, stages)?;
    on_each_stage(dir, &entries, &mut progress, |id, stage, model| {
        let fit_thoughts = thoughts(model, &tokenizer, fit, stage)?;
        let test_thoughts = thoughts(model, &tokenizer, test, stage)?;
        Ok(vec![probe_stage(
            id,
            (fit, &fit_thoughts),
            (test, &test_thoughts),
            dir.manifest.max_digits,
            1234,
        )?])
    })
}

/// [`probe_folder`] for a folder of the seed's family (an imported GPT-2): each latent stage's
/// thoughts in its free runs (thoughts counted from the operands, `coconut solve`'s default) on
/// the first `sizes.fit` problems of the seed's training set, scored on `sizes.test` of its
/// validation problems that are not training problems (`coconut eval`'s held-out set). A slot is
/// probed for every operand column, so the table says which column each thought holds (the seed
/// thinks its last steps, units first).
fn probe_seed_folder(
    dir: &WeightsDir,
    stages: &[String],
    sizes: ProbeSizes,
    mut progress: impl FnMut(&str),
) -> Result<Vec<ThoughtProbes>> {
    use coconut_core::seed::decode::{answer_tokens, decoder};
    use coconut_core::seed::layout::{SeedStage, ThoughtCount};
    use coconut_core::seed::problems::{split, SeedSplit, TrainingSet};
    let vocab = dir.seed_vocab()?;
    let tokens = answer_tokens(&vocab);
    let training = split(SeedSplit::Train);
    let in_training = TrainingSet::new();
    let held_out: Vec<Problem> = split(SeedSplit::Validation)
        .into_iter()
        .filter(|p| !in_training.contains(p))
        .collect();
    ensure!(
        sizes.fit <= training.len() && sizes.test <= held_out.len(),
        "at most {} fit and {} test problems",
        training.len(),
        held_out.len()
    );
    let (fit, test) = (&training[..sizes.fit], &held_out[..sizes.test]);
    let entries = thought_stages(dir, stages)?;
    on_each_stage(dir, &entries, &mut progress, |id, _, model| {
        let seed_stage =
            SeedStage::of_entry(dir.manifest.stage(id)?).map_err(anyhow::Error::msg)?;
        let n_positions = model.config().n_positions;
        let thoughts_of = |problems: &[Problem]| -> Result<Vec<Vec<Vec<f32>>>> {
            problems
                .iter()
                .map(|p| {
                    let d = decoder(
                        &vocab,
                        &tokens,
                        p,
                        seed_stage,
                        ThoughtCount::Columns,
                        n_positions,
                    )?;
                    Ok(model.run_decoder(d, false)?.thoughts)
                })
                .collect()
        };
        let (fit_thoughts, test_thoughts) = (thoughts_of(fit)?, thoughts_of(test)?);
        Ok(vec![probe_stage(
            id,
            (fit, &fit_thoughts),
            (test, &test_thoughts),
            dir.manifest.max_digits,
            1234,
        )?])
    })
}

/// Runs `work` on each of `entries` (stage id, stage, its weights in the reference engine), loaded
/// one at a time and announced to `progress` first, and gathers what it returns.
pub fn on_each_stage<T>(
    dir: &WeightsDir,
    entries: &[&StageEntry],
    progress: &mut impl FnMut(&str),
    mut work: impl FnMut(&str, &Stage, &ReferenceModel) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in entries {
        progress(&entry.id);
        let (_, stage, weights) = dir.stage(&entry.id)?;
        out.extend(work(&entry.id, &stage, &ReferenceModel::new(&weights))?);
    }
    Ok(out)
}

/// The stages of `dir` with fed-back thoughts named in `wanted` (all of them when it is empty);
/// refuses a name that is not one of them, before any work.
pub fn thought_stages<'a>(dir: &'a WeightsDir, wanted: &[String]) -> Result<Vec<&'a StageEntry>> {
    let latent: Vec<&StageEntry> = dir
        .manifest
        .stages
        .iter()
        .filter(|e| e.feeds_back && e.thoughts > 0)
        .collect();
    let ids = |entries: &mut dyn Iterator<Item = &StageEntry>| {
        entries
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in wanted {
        ensure!(
            dir.manifest.stages.iter().any(|e| &e.id == name),
            "{name}: no such stage in {} (it has {})",
            dir.dir.display(),
            ids(&mut dir.manifest.stages.iter())
        );
        ensure!(
            latent.iter().any(|e| &e.id == name),
            "{name}: not a stage with fed-back thoughts (those of {} are {})",
            dir.dir.display(),
            ids(&mut latent.iter().copied())
        );
    }
    Ok(latent
        .into_iter()
        .filter(|e| wanted.is_empty() || wanted.contains(&e.id))
        .collect())
}

/// The file a stage's probes are shipped and written in.
pub fn probes_file(stage: &ThoughtProbes) -> Result<String> {
    let id = stage.stage().map_err(anyhow::Error::msg)?;
    Ok(format!("{id}.probes.safetensors"))
}

/// Ships `probed` with the weights folder `dir` (`coconut probe --ship`): each stage's digit and
/// carry probes (f16, with their scores) listed in its manifest entry, written through `folder`
/// (begun on `dir` before the probes were fitted), so the manifest and the files change together
/// or not at all. Returns each file written with its size.
pub fn ship(
    mut folder: FolderWrite,
    dir: &WeightsDir,
    probed: &[ThoughtProbes],
) -> Result<Vec<(String, usize)>> {
    let mut manifest = dir.manifest.clone();
    let mut written = Vec::new();
    for stage in probed {
        let file = probes_file(stage)?;
        let bytes = stage
            .only(&[Quantity::Digit, Quantity::Carry])
            .to_safetensors(ProbeDtype::F16);
        let id = stage.stage().map_err(anyhow::Error::msg)?;
        let entry = manifest
            .stages
            .iter_mut()
            .find(|e| e.id == id)
            .with_context(|| format!("{id}: not a stage of {}", dir.dir.display()))?;
        entry.probes = Some(FileEntry::describe(&file, &bytes));
        // What a reader will check, checked before anything is written.
        manifest.stage_probes(manifest.stage(id)?, &bytes)?;
        folder.write(&file, &bytes)?;
        written.push((file, bytes.len()));
    }
    folder.write(MANIFEST_FILE, manifest.to_json().as_bytes())?;
    folder.commit(crate::export::check_weights_folder)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_recovers_a_linearly_coded_label_and_not_a_shuffled_one() {
        // Features that code the label in one direction, plus noise elsewhere.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut sample = |n: usize| -> (Vec<Vec<f32>>, Vec<usize>) {
            use rand::Rng;
            (0..n)
                .map(|_| {
                    let y = rng.random_range(0..3usize);
                    let mut h: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0..1.0)).collect();
                    h[2] += 3.0 * y as f32;
                    h[5] -= 2.0 * y as f32;
                    (h, y)
                })
                .unzip()
        };
        let (x, y) = sample(600);
        let (xt, yt) = sample(300);
        let rows: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
        let test: Vec<&[f32]> = xt.iter().map(Vec::as_slice).collect();
        let design = Design::new(&rows).unwrap();
        let probe = design.fit(&y, 3).unwrap();
        let got = accuracy(&probe, &test, &yt);
        assert!(got > 95.0, "{got}%");
        let mut shuffled = y.clone();
        shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(1));
        let chance = accuracy(&design.fit(&shuffled, 3).unwrap(), &test, &yt);
        assert!(chance < 60.0, "{chance}%");
    }
}
