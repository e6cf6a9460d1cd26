//! What each stage of the loaded folder is, in the words the page shows (the stage menu, the
//! line under it, the accuracy table, the walkthrough): from the manifest's `kind`, never from an
//! id, and written here once so the page only draws them.

use coconut_core::family::LayoutFamily;
use coconut_core::manifest::{Manifest, StageEntry};
use coconut_core::seed::layout::{LatentOrder, SeedStage};
use coconut_core::stage::StageKind;
use serde::Serialize;

/// One stage as the page describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageText {
    pub id: String,
    /// `latent`, `nocot` or `pause`.
    pub kind: &'static str,
    /// Latent steps (0 for the written chain of thought and the baselines).
    pub k: usize,
    /// The curriculum's last stage: every step a thought.
    pub all_latent: bool,
    /// The stage menu's entry, e.g. "Stage 2: 2 thoughts, then written steps".
    pub label: String,
    /// One or two sentences on what the stage does, with its measured test accuracy.
    pub about: String,
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The texts of every stage of `manifest`, in its order.
pub fn stage_texts(manifest: &Manifest) -> Vec<StageText> {
    let latent_k = |s: &StageEntry| match s.kind {
        StageKind::Latent { k } => k,
        _ => 0,
    };
    let most = manifest.stages.iter().map(latent_k).max().unwrap_or(0);
    manifest
        .stages
        .iter()
        .map(|s| {
            let k = latent_k(s);
            // The seed's stages are 0-3 whichever a folder holds; stage 3 is all latent.
            let seed = manifest.family.layout == LayoutFamily::Seed;
            let last = if seed { 3 } else { most };
            let (kind, all_latent) = match s.kind {
                StageKind::Latent { .. } => ("latent", k > 0 && k == last),
                StageKind::NoCot => ("nocot", false),
                StageKind::Pause => ("pause", false),
            };
            let (label, about) = if manifest.family.layout == LayoutFamily::Seed {
                seed_texts(s)
            } else {
                (
                    label(s, k, all_latent, manifest.thoughts_per_step),
                    about(s, k, all_latent, manifest),
                )
            };
            StageText {
                id: s.id.clone(),
                kind,
                k,
                all_latent,
                label,
                about,
            }
        })
        .collect()
}

/// A stage of the seed's GPT-2 (docs/seed-format.md): its last `k` steps latent, or its first
/// ones when it was fine-tuned with this project's recipe (`latent_order`), the thoughts counted
/// from the operands, as `coconut solve` runs it.
fn seed_texts(entry: &StageEntry) -> (String, String) {
    // Its figures are `coconut eval`'s, by digit count: none go in the manifest, so none here.
    let Ok(stage) = SeedStage::of_entry(entry) else {
        return (entry.id.clone(), String::new()); // the manifest check refuses such a stage
    };
    let k = stage.index() as usize;
    let (model, order) = match stage.order() {
        LatentOrder::Last => ("the seed's GPT-2", "last"),
        LatentOrder::First => ("the seed's GPT-2, this project's recipe", "first"),
    };
    let label = match k {
        0 => format!("Stage 0: written chain of thought ({model})"),
        3 => format!("Stage 3: all latent ({model})"),
        1 => format!("Stage 1: the {order} step a thought ({model})"),
        _ => format!("Stage {k}: the {order} {k} steps thoughts ({model})"),
    };
    let what = match (k, stage.order()) {
        (0, _) => {
            "Writes every column as a step, units first, then <eot> and the answer.".to_string()
        }
        (3, _) => "Every column is one continuous thought (as many as the operands have digits), \
             then <eot> is fed and the answer follows."
            .to_string(),
        (_, LatentOrder::Last) => format!(
            "The first steps are given written (units first), the last {} happen as continuous \
             thoughts, then <eot> is fed and the answer follows.",
            plural(k, "column")
        ),
        (_, LatentOrder::First) => format!(
            "The first {} happen as continuous thoughts right after <bot>; then the model writes \
             the remaining steps, <eot> and the answer.",
            plural(k, "column")
        ),
    };
    (label, what)
}

/// `c`: thoughts per step (`thoughts_per_step`). With coupled ids the number of thoughts follows
/// the problem's columns, so only the count per column is named.
fn label(s: &StageEntry, k: usize, all_latent: bool, c: usize) -> String {
    let thoughts = plural(s.thoughts, "thought");
    match s.kind {
        StageKind::NoCot => "Baseline: no chain of thought".into(),
        StageKind::Pause if coupled(s) => format!("Baseline: pause positions ({c} per column)"),
        StageKind::Pause => format!("Baseline: {}", plural(s.thoughts, "pause position")),
        _ if k == 0 => format!("Stage {k}: written chain of thought"),
        _ if all_latent && coupled(s) => {
            format!(
                "Stage {k}: all latent ({} per column)",
                plural(c, "thought")
            )
        }
        _ if all_latent => format!("Stage {k}: all latent ({thoughts})"),
        _ if coupled(s) => format!(
            "Stage {k}: {} as thoughts, then written steps",
            plural(k, "column")
        ),
        _ => format!("Stage {k}: {thoughts}, then written steps"),
    }
}

fn coupled(s: &StageEntry) -> bool {
    !s.positions.is_absolute()
}

/// A stage with padded operands writes (and thinks) its columns of leading zeros too. Short:
/// the page shows this text above the answer on a first visit.
fn padding(s: &StageEntry) -> &'static str {
    match s.positions.operand_pad() {
        Some(_) => " (padding included)",
        None => "",
    }
}

fn about(s: &StageEntry, k: usize, all_latent: bool, manifest: &Manifest) -> String {
    let c = manifest.thoughts_per_step;
    let test = s
        .accuracy
        .as_ref()
        .and_then(|a| a.sets.iter().find(|set| set.set == "test"));
    let measured = test.map_or(String::new(), |t| {
        format!(
            " Measured: {:.2}% of {} held-out problems of 1 to {} digits right (greedy).",
            t.greedy,
            t.n,
            manifest.test_data().max_digits
        )
    });
    let what = match s.kind {
        StageKind::NoCot => "Writes the answer right after the question: no steps, no thoughts.".into(),
        StageKind::Pause if coupled(s) => format!(
            "{} per column{} and as many for the carry column, each fed the same fixed \
             <latent> embedding (nothing is fed back), then the answer.",
            plural(c, "extra position"),
            padding(s)
        ),
        StageKind::Pause => format!(
            "{}, each fed the same fixed <latent> embedding (nothing is fed back), then the answer.",
            plural(s.thoughts, "extra position")
        ),
        _ if k == 0 => "Writes every column as a step, then the answer.".into(),
        _ if all_latent && coupled(s) => format!(
            "Every step happens in continuous thoughts, {c} per column{} and as many for the \
             carry column: {} for a {}-digit problem, more for a longer one; nothing is written \
             before the answer.",
            padding(s),
            manifest.stage_of(s).most_thoughts(manifest.max_digits),
            manifest.max_digits
        ),
        _ if all_latent => format!(
            "Every step happens in continuous thoughts ({}, {} per step); nothing is written \
             before the answer.",
            plural(s.thoughts, "thought"),
            s.thoughts / k.max(1)
        ),
        _ if coupled(s) => format!(
            "The first {} happen as continuous thoughts, {c} per column (a problem with fewer \
             columns gets fewer); the rest are written.",
            plural(k, "column")
        ),
        _ => format!(
            "The first {} happen as {}; the rest are written.",
            plural(k, "step"),
            plural(s.thoughts, "continuous thought")
        ),
    };
    what + &measured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_stages_read_as_the_page_shows_them() {
        let dir = coconut_core::manifest::WeightsDir::open(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights"),
        )
        .unwrap();
        let texts = stage_texts(&dir.manifest);
        let by_id = |id: &str| texts.iter().find(|t| t.id == id).unwrap();
        assert_eq!(by_id("stage0").label, "Stage 0: written chain of thought");
        // Coupled ids: a stage thinks its first k columns, however many the problem has.
        assert_eq!(
            by_id("stage1").label,
            "Stage 1: 1 column as thoughts, then written steps"
        );
        assert_eq!(
            by_id("stage2").label,
            "Stage 2: 2 columns as thoughts, then written steps"
        );
        let last = by_id("stage5");
        assert!(last.all_latent && last.kind == "latent" && last.k == 5);
        // Coupled ids: the thoughts follow the problem's columns.
        assert_eq!(last.label, "Stage 5: all latent (1 thought per column)");
        let entry = dir.manifest.stage("stage5").unwrap();
        let head = format!(
            "Every step happens in continuous thoughts, 1 per column{} and as many for the \
             carry column: {} for a 4-digit problem, more for a longer one",
            padding(entry),
            dir.manifest.stage_of(entry).most_thoughts(4)
        );
        assert!(last.about.starts_with(&head), "{}", last.about);
        assert!(last
            .about
            .contains("% of 5000 held-out problems of 1 to 4 digits right (greedy)."));
        let pause = by_id("pause");
        assert_eq!((pause.kind, pause.k, pause.all_latent), ("pause", 0, false));
        // Its positions follow the columns too (7 for a 6-digit problem): no fixed count.
        assert_eq!(pause.label, "Baseline: pause positions (1 per column)");
        assert!(pause.about.starts_with("1 extra position per column"));
        assert_eq!(by_id("nocot").label, "Baseline: no chain of thought");
        assert_eq!(
            by_id("stage2").about.split(" Measured").next().unwrap(),
            "The first 2 columns happen as continuous thoughts, 1 per column (a problem with \
             fewer columns gets fewer); the rest are written."
        );
        assert_eq!(texts.iter().filter(|t| t.all_latent).count(), 1);
    }

    #[test]
    fn the_seeds_stages_say_which_steps_they_think() {
        let dir = coconut_core::manifest::WeightsDir::open(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights"),
        )
        .unwrap();
        let base = dir.manifest.stages[0].clone();
        let entry = |k: usize, order: Option<LatentOrder>| StageEntry {
            id: format!("stage{k}"),
            kind: StageKind::Latent { k },
            latent_order: order,
            ..base.clone()
        };
        let seed = Manifest {
            family: coconut_core::family::Family::seed(),
            stages: vec![entry(0, None), entry(2, None)],
            ..dir.manifest.clone()
        };
        let texts = stage_texts(&seed);
        assert_eq!(
            texts[1].label,
            "Stage 2: the last 2 steps thoughts (the seed's GPT-2)"
        );
        assert!(
            !texts[1].all_latent,
            "the seed's all-latent stage is stage 3, whichever stages a folder holds"
        );
        let lab = Manifest {
            stages: vec![
                entry(2, Some(LatentOrder::First)),
                entry(3, Some(LatentOrder::First)),
            ],
            ..seed
        };
        let texts = stage_texts(&lab);
        assert_eq!(
            texts[0].label,
            "Stage 2: the first 2 steps thoughts (the seed's GPT-2, this project's recipe)"
        );
        assert!(texts[0]
            .about
            .starts_with("The first 2 columns happen as continuous thoughts right after <bot>"));
        assert!(texts[1].all_latent);
        assert_eq!(
            texts[1].label,
            "Stage 3: all latent (the seed's GPT-2, this project's recipe)"
        );
    }
}
