//! What each stage of the loaded folder is, in the words the page shows (the stage menu, the
//! line under it, the accuracy table, the walkthrough): from the manifest's `kind`, never from an
//! id, and written here once so the page only draws them.

use coconut_core::family::LayoutFamily;
use coconut_core::manifest::{Manifest, StageEntry};
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
            let (kind, all_latent) = match s.kind {
                StageKind::Latent { .. } => ("latent", k > 0 && k == most),
                StageKind::NoCot => ("nocot", false),
                StageKind::Pause => ("pause", false),
            };
            let (label, about) = if manifest.family.layout == LayoutFamily::Seed {
                seed_texts(k, all_latent)
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

/// A stage of the seed's GPT-2 (docs/seed-format.md): its last `k` steps latent, the thoughts
/// counted from the operands, as `coconut solve` runs it.
fn seed_texts(k: usize, all_latent: bool) -> (String, String) {
    // Its figures are `coconut eval`'s, by digit count: none go in the manifest, so none here.
    let label = match k {
        0 => "Stage 0: written chain of thought (the seed's GPT-2)".to_string(),
        _ if all_latent => "Stage 3: all latent (the seed's GPT-2)".to_string(),
        1 => "Stage 1: the last step a thought (the seed's GPT-2)".to_string(),
        _ => format!("Stage {k}: the last {k} steps thoughts (the seed's GPT-2)"),
    };
    let what = match k {
        0 => "Writes every column as a step, units first, then <eot> and the answer.".to_string(),
        _ if all_latent => "Every column is one continuous thought (as many as the operands \
             have digits), then <eot> is fed and the answer follows."
            .to_string(),
        _ => format!(
            "The first steps are given written (units first), the last {} happen as continuous \
             thoughts, then <eot> is fed and the answer follows.",
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
            "{} per column and as many for the carry column, each fed the same fixed <latent> \
             embedding (nothing is fed back), then the answer.",
            plural(c, "extra position")
        ),
        StageKind::Pause => format!(
            "{}, each fed the same fixed <latent> embedding (nothing is fed back), then the answer.",
            plural(s.thoughts, "extra position")
        ),
        _ if k == 0 => "Writes every column as a step, then the answer.".into(),
        _ if all_latent && coupled(s) => format!(
            "Every step happens in continuous thoughts, {c} per column and as many for the carry \
             column, so a longer problem gets more ({} for the longest trained problems); nothing \
             is written before the answer.",
            s.thoughts
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
        assert!(last.about.starts_with(
            "Every step happens in continuous thoughts, 1 per column and as many for the carry \
             column, so a longer problem gets more (5 for the longest trained problems)"
        ));
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
}
