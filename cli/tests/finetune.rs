//! `coconut train --init DIR --recipe seed|coconut-lab` on the seed's stand-in checkpoint: the
//! stages it writes are read by `eval` and `solve`; `--resume` of a finished run changes
//! nothing; the flags of this project's own curriculum and mixed-up starts are refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn coconut(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coconut"))
        .args(args)
        .output()
        .expect("coconut runs")
}

fn succeeded(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn refused(o: &Output, words: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains(words), "{stderr}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_init_fine_tunes_the_stand_in_and_eval_reads_its_stages() {
    let dir = tempfile::tempdir().unwrap();
    let (init, run, out) = (
        dir.path().join("standin"),
        dir.path().join("run"),
        dir.path().join("out"),
    );
    let pt =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed-standin/standin.pt");
    succeeded(&coconut(&[
        "import",
        "--pt",
        s(&pt),
        "--stage",
        "stage0",
        "--n-head",
        "2",
        "--dtype",
        "f32",
        "--out",
        s(&init),
    ]));
    // `train --init` of the stand-in with `recipe`, into a run directory and a weights folder.
    let fine_tune = |recipe: &str, run: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--init",
            s(&init),
            "--recipe",
            recipe,
            "--run-dir",
            s(run),
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        coconut(&args)
    };
    let train = |extra: &[&str]| fine_tune("seed", &run, &out, extra);
    refused(
        &train(&["--positions", "coupled", "--layers", "2"]),
        "--positions, --layers shape this project's own curriculum",
    );
    refused(
        &train(&["--stages", "stage4"]),
        "stage4 is not a stage of the seed",
    );
    refused(&train(&["--steps", "2", "--epochs", "1"]), "give one");
    refused(&coconut(&["train", "--recipe", "seed"]), "--init");
    let done = train(&[
        "--stages",
        "0,2",
        "--steps",
        "3",
        "--train-problems",
        "48",
        "--batch-size",
        "8",
        "--micro-batch",
        "3",
    ]);
    succeeded(&done);
    let note = String::from_utf8_lossy(&done.stderr);
    assert!(note.contains("every stage is trained (6 steps"), "{note}");
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("recipe.json")).unwrap()).unwrap();
    assert_eq!(recipe["recipe"]["stages"][1]["stage"], 2);
    assert_eq!(recipe["recipe"]["stages"][1]["batch"], 8);
    assert_eq!(
        recipe["recipe"]["stages"][0]["group"], 8,
        "16 capped at the batch"
    );

    let eval = coconut(&[
        "eval",
        "--weights",
        s(&out),
        "--stage",
        "stage2",
        "--n",
        "20",
    ]);
    succeeded(&eval);
    let table = String::from_utf8_lossy(&eval.stdout);
    assert!(table.contains("teacher-forced (seed's metric)"), "{table}");

    // A finished run resumes to nothing new; a new run in its directory is refused.
    let before = std::fs::read(out.join("stage2.safetensors")).unwrap();
    succeeded(&coconut(&["train", "--resume", "--run-dir", s(&run)]));
    assert_eq!(
        std::fs::read(out.join("stage2.safetensors")).unwrap(),
        before
    );
    refused(&train(&["--steps", "1"]), "already holds a run");
    refused(
        &coconut(&[
            "train",
            "--resume",
            "--run-dir",
            s(&run),
            "--init",
            s(&init),
            "--recipe",
            "seed",
        ]),
        "leave out --init",
    );

    // This project's recipe on the same model: the first steps latent, validated as it trains.
    let (lab_run, lab_out) = (dir.path().join("lab-run"), dir.path().join("lab-out"));
    refused(
        &train(&["--until-val", "99"]),
        "the seed's recipe trains each stage its epochs",
    );
    let lab = |extra: &[&str]| fine_tune("coconut-lab", &lab_run, &lab_out, extra);
    refused(&lab(&["--val-every", "0"]), "validation every 0 steps");
    let done = lab(&[
        "--stages",
        "0,2",
        "--steps",
        "4",
        "--train-problems",
        "48",
        "--batch-size",
        "8",
        "--val-every",
        "2",
        "--val-problems",
        "5",
    ]);
    succeeded(&done);
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab_run.join("recipe.json")).unwrap()).unwrap();
    assert_eq!(recipe["recipe"]["name"], "coconut-lab");
    assert_eq!(recipe["recipe"]["order"], "first");
    assert_eq!(recipe["recipe"]["thought_norm"], 0.0);
    assert_eq!(recipe["recipe"]["early_stop"]["every"], 2);
    assert_eq!(recipe["recipe"]["early_stop"]["problems"], 5);
    let note = String::from_utf8_lossy(&done.stderr);
    assert!(
        note.contains("stage2 step 2: validation greedy accuracy"),
        "{note}"
    );
    let manifest = std::fs::read_to_string(lab_out.join("manifest.json")).unwrap();
    assert!(
        manifest.contains(r#""latent_order": "first""#),
        "{manifest}"
    );
    // Read back in the order it was trained: the thought right after <bot>, then written steps.
    let solved = coconut(&[
        "solve",
        "--weights",
        s(&lab_out),
        "--stage",
        "stage2",
        "--json",
        "34 + 21",
    ]);
    succeeded(&solved);
    let line: serde_json::Value = serde_json::from_slice(&solved.stdout).unwrap();
    let text = line["text"].as_str().unwrap();
    assert!(
        text.starts_with("34 + 21 = <bot> [thought] [thought]"),
        "{line}"
    );
    succeeded(&coconut(&[
        "eval",
        "--weights",
        s(&lab_out),
        "--stage",
        "stage2",
        "--n",
        "10",
    ]));

    // Mixed precision and activation checkpointing on the candle model; the CPU engine refuses
    // them before it writes anything.
    let (bf16_run, bf16_out) = (dir.path().join("bf16-run"), dir.path().join("bf16-out"));
    let bf16 = |extra: &[&str]| {
        let mut args = vec![
            "--stages",
            "0,2",
            "--steps",
            "2",
            "--train-problems",
            "16",
            "--batch-size",
            "4",
        ];
        args.extend_from_slice(extra);
        fine_tune("seed", &bf16_run, &bf16_out, &args)
    };
    refused(&bf16(&["--precision", "fp16"]), "f32 or bf16");
    refused(
        &bf16(&["--precision", "bf16"]),
        "the CPU engine computes in f32",
    );
    refused(
        &bf16(&["--activation-checkpointing"]),
        "the CPU engine keeps its activations",
    );
    succeeded(&bf16(&[
        "--precision",
        "bf16",
        "--activation-checkpointing",
        "--engine",
        "candle",
    ]));
    let recipe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bf16_run.join("recipe.json")).unwrap()).unwrap();
    assert_eq!(recipe["recipe"]["precision"], "bf16");
    assert_eq!(recipe["recipe"]["activation_checkpointing"], true);
    let metrics = std::fs::read_to_string(bf16_run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
        .collect();
    assert_eq!(losses.len(), 4, "{metrics}");
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
}
