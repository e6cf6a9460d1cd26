//! The `coconut` binary: a training run killed with SIGKILL resumes to the same weights as an
//! uninterrupted run, and `eval` prints a table and writes JSON.

use candle_core::Device;
use coconut_trainer::train::{train, RunDir, Silent, TrainOptions};
use coconut_trainer::{StagePlan, TrainConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::weight_bits;

fn config() -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.n_positions = 64;
    c.model.n_embd = 16;
    c.model.n_layer = 1;
    c.model.n_head = 2;
    c.data.n_train = 800;
    c.data.n_val = 100;
    c.data.n_test = 200;
    c.data.n_ood = 20;
    c.data.max_digits = 2;
    c.data.ood_digits = 3;
    c.stages = vec![
        StagePlan {
            stage: "stage0".into(),
            epochs: 4.0,
        },
        StagePlan {
            stage: "stage1".into(),
            epochs: 2.0,
        },
    ];
    c.batch_size = 16;
    c.warmup_steps = 5;
    c.checkpoint_every = 10;
    c.val_problems = 0;
    c
}

fn coconut(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coconut"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_survives_kill_9_and_eval_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string(&config()).unwrap()).unwrap();
    let killed = tmp.path().join("killed");
    let run = RunDir(killed.clone());

    // Start the binary and kill it (SIGKILL) once it has written a mid-stage checkpoint.
    let mut child = coconut(&[
        "train",
        "--config",
        path(&cfg_path),
        "--run-dir",
        path(&killed),
    ])
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run.checkpoint().exists() {
        assert!(
            Instant::now() < deadline,
            "no checkpoint within two minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the run finished before it could be killed: make it longer"
    );

    let resumed = coconut(&["train", "--resume", "--run-dir", path(&killed)])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );

    // The same settings, never interrupted, through the library.
    let whole = tmp.path().join("whole");
    train(
        &config(),
        &whole,
        &Device::Cpu,
        &TrainOptions::default(),
        &mut Silent,
    )
    .unwrap();
    for stage in ["stage0", "stage1"] {
        assert!(
            weight_bits(&killed, stage) == weight_bits(&whole, stage),
            "{stage}: weights differ after kill -9 and resume"
        );
    }
    let metrics = std::fs::read_to_string(run.metrics()).unwrap();
    assert!(metrics.lines().any(|l| l.contains("\"event\":\"resume\"")));

    // eval: a table on stdout, the numbers in JSON.
    let json = tmp.path().join("eval.json");
    let out = coconut(&[
        "eval",
        "--run-dir",
        path(&killed),
        "--stage",
        "1",
        "--n",
        "50",
        "--n-ood",
        "10",
        "--json",
        path(&json),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("greedy%") && table.contains("ood"),
        "{table}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["stage"], "stage1");
    assert_eq!(value["sets"][0]["n"], 50);
    assert_eq!(value["sets"][1]["n"], 10);
    let by_digits = value["sets"][0]["by_digits"].as_array().unwrap();
    assert_eq!(
        by_digits
            .iter()
            .map(|d| d["n"].as_u64().unwrap())
            .sum::<u64>(),
        50
    );
}
