"""Issue 33's table: per training seed, what the curriculum's stages answer in distribution and
how the all-latent stage does on every operand-length pair beyond it, then min / median / max
over the seeds. Reads the `eval/<stage>.json` files of scripts/length-seeds.sh's runs.

Usage: python3 scripts/seed-spread.py RUN_DIR...
"""
import json, pathlib, statistics, sys

STAGES = ["stage0", "stage1", "stage2", "stage3", "stage4", "stage5"]
LONGER = [5, 6, 7, 8, 12, 16]


def sets(run, stage):
    path = pathlib.Path(run) / "eval" / f"{stage}.json"
    return {s["set"]: s for s in json.loads(path.read_text())["sets"]} if path.exists() else None


def row(run):
    """One seed: the lowest in-distribution figure over the stages (overall and per digit
    class), and per longer length the all-latent stage's figure over its pairs and its worst pair."""
    ind, worst_class = [], []
    for stage in STAGES:
        s = sets(run, stage)
        if s is None:
            return None
        ind.append(s["test"]["greedy"])
        worst_class.append(min(d["greedy"] for d in s["test"]["by_digits"]))
    pairs = sets(run, "stage5")["pairs"]
    by_longer = {}
    for d in LONGER:
        cells = [p for p in pairs["by_pair"] if max(p["a_digits"], p["b_digits"]) == d]
        n = sum(p["n"] for p in cells)
        if n:
            right = sum(p["greedy"] * p["n"] for p in cells) / n
            by_longer[d] = (right, min(p["greedy"] for p in cells), n)
    return min(ind), min(worst_class), by_longer


def main(runs):
    if not runs:
        sys.exit(__doc__)
    head = "| seed run | in distribution, lowest stage | lowest digit class | " + " | ".join(
        f"{d} digits: all pairs / worst pair" for d in LONGER) + " |"
    print(head)
    print("|---" * (3 + len(LONGER)) + "|")
    rows = []
    for run in runs:
        r = row(run)
        if r is None:
            print(f"| {run} | (not evaluated) |")
            continue
        rows.append(r)
        cells = [f"{r[2][d][0]:.1f} / {r[2][d][1]:.1f}" if d in r[2] else "-" for d in LONGER]
        print(f"| {run} | {r[0]:.2f} | {r[1]:.2f} | " + " | ".join(cells) + " |")
    if len(rows) > 1:
        for name, f in [("min", min), ("median", statistics.median), ("max", max)]:
            cells = []
            for d in LONGER:
                values = [r[2][d][1] for r in rows if d in r[2]]
                cells.append(f"worst pair {f(values):.1f}" if values else "-")
            print(f"| {name} | {f([r[0] for r in rows]):.2f} | {f([r[1] for r in rows]):.2f} | "
                  + " | ".join(cells) + " |")
    n = {d: rows[0][2][d][2] for d in LONGER if rows and d in rows[0][2]}
    print(f"\nn per seed (all-latent stage, pairs of each longer length): {n}; test set 5,000 per stage")


if __name__ == "__main__":
    main(sys.argv[1:])
