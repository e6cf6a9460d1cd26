//! `coconut intervene` on a folder of the seed's family (the stand-in `torch.save` checkpoint
//! imported): edits run through the seed's decoder; what needs probes is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn coconut(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coconut"))
        .args(args)
        .output()
        .expect("coconut runs")
}

fn imported(dir: &Path) -> String {
    let pt =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed-standin/standin.pt");
    let out = dir.join("seed");
    let out_s = out.to_str().unwrap().to_string();
    let o = coconut(&[
        "import",
        "--pt",
        pt.to_str().unwrap(),
        "--stage",
        "stage3",
        "--n-head",
        "2",
        "--dtype",
        "f32",
        "--out",
        &out_s,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out_s
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn seed_thoughts_are_edited_and_flips_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = imported(tmp.path());
    // A thought replaced by the same problem's own thought changes nothing; the plain run is
    // what `solve` prints.
    let o = coconut(&[
        "intervene",
        "--weights",
        &weights,
        "--stage",
        "stage3",
        "--json",
        "--patch",
        "1=from:347+285",
        "347 + 285",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = &json_lines(&o)[0];
    assert_eq!(line["answer"], line["edited_answer"]);
    assert_eq!(line["text"], line["edited_text"]);
    assert_eq!(line["expected"], "632");
    let solved = coconut(&[
        "solve",
        "--weights",
        &weights,
        "--stage",
        "stage3",
        "--json",
        "347 + 285",
    ]);
    assert_eq!(json_lines(&solved)[0]["text"], line["text"]);
    // A thought the problem does not get is refused for that problem (exit 1), the others run.
    let o = coconut(&[
        "intervene",
        "--weights",
        &weights,
        "--json",
        "--patch",
        "3=zero",
        "12 + 34",
        "1234 + 5678",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let lines = json_lines(&o);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("thought 3 does not exist"),
        "{lines:?}"
    );
    assert!(lines[1].get("error").is_none(), "{lines:?}");
    assert_eq!(lines[1]["expected"], "6912");
    let solved = coconut(&["solve", "--weights", &weights, "--json", "1234 + 5678"]);
    assert_eq!(json_lines(&solved)[0]["text"], lines[1]["text"]);
    // Flips read probes the seed's thoughts do not have: refused before any problem.
    let o = coconut(&[
        "intervene",
        "--weights",
        &weights,
        "--patch",
        "0=flip:1",
        "12 + 34",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("none is fitted for the seed's thoughts"));
    assert!(o.stdout.is_empty());
}
