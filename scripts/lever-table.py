"""The model card's table of length-generalization levers: one row per lever, its seed spread.

Each argument is `label=DIR,DIR,...`, one evaluation folder per training seed, each holding the
all-latent stage's `stage5.json` (`coconut eval --pairs 5,6,7,8,12,16`, directly or under
`eval/`). Per row: how many seeds; the all-latent stage on the 5,000 test problems (lowest
seed); its worst operand-length pair with a 5- to 8-digit operand (lowest seed); the sets with a
12- and a 16-digit operand (every length pair sampled) and the worst 16-digit pair, min / median
/ max over the seeds; and on how many seeds the all-latent part of the length goal holds
(every 5-8 digit pair >= 99.5%, each of the 12- and 16-digit sets >= 95%).

Usage: python3 scripts/lever-table.py                   (the model card's rows, from the repository root)
       python3 scripts/lever-table.py 'label=DIR,DIR,...' ...
"""
import json, pathlib, statistics, sys

# The model card's table ("The levers, seed by seed"): label, folder prefix under
# weights/eval/padded/, seeds.
CARD = "weights/eval/padded"
CARD_ROWS = [
    ("1. padded operands, EMA 0.995", [("seed3-ema995", "")] + [("ema995-seed", s) for s in (4, 5, 6)]),
    ("2. row 1 + carry-heavy stages 4-5, stage 1 up to 8 epochs, two checks at 100%",
     [("ema995-confirm2-nines-seed", s) for s in (5, 6)]),
    ("3. row 2 + extra thoughts per column (rejected)", [("ema995-confirm2-nines-extra1-seed", 5)]),
    ("**4. row 2 + all-latent padding 0-14: the shipped recipe**",
     [("ema995-confirm2-nines-pad14-seed", s) for s in (3, 4, 5, 6, 7)]),
    ("5. row 4, stage 5 trained 10 epochs", [("ema995-confirm2-nines-pad14-s5e10-seed", s) for s in (3, 4, 5, 6, 7)]),
    ("6. row 4, stage 5 padded 0-18", [("ema995-confirm2-nines-pad18-seed", s) for s in (3, 4, 5, 6, 7)]),
    ("7. row 4 + dropout 0.1 in stage 5", [("ema995-confirm2-nines-pad14-dropout01-seed", s) for s in (3, 4, 5, 6, 7)]),
    ("8. row 4 + thought noise 0.1 in stage 5", [("ema995-confirm2-nines-pad14-noise01-seed", s) for s in (3, 4, 5, 6, 7)]),
    ("9. row 4 with 2 layers (whole curricula)", [("ema995-confirm2-nines-pad14-layers2-seed", s) for s in (3, 4, 5, 6, 7)]),
]


def card_rows():
    rows = []
    for label, runs in CARD_ROWS:
        folders = [f"{CARD}/{prefix}{seed}" for prefix, seed in runs]
        folders = [f for f in folders if pathlib.Path(f).is_dir()]
        rows.append(f"{label}={','.join(folders)}")
    return rows


def stage5(folder):
    folder = pathlib.Path(folder)
    for path in (folder / "stage5.json", folder / "eval" / "stage5.json"):
        if path.exists():
            return {s["set"]: s for s in json.loads(path.read_text())["sets"]}
    sys.exit(f"{folder}: no stage5.json")


def seed_figures(folder):
    sets = stage5(folder)
    pairs = sets["pairs"]["by_pair"]

    def longer(lo, hi):
        return [p for p in pairs if lo <= max(p["a_digits"], p["b_digits"]) <= hi]

    def whole(cells):
        n = sum(p["n"] for p in cells)
        return sum(p["greedy"] * p["n"] for p in cells) / n

    short, twelve, sixteen = longer(5, 8), longer(12, 12), longer(16, 16)
    if not (short and twelve and sixteen):
        sys.exit(f"{folder}: pairs with a 5-8, 12 and 16-digit operand are needed")
    figures = {
        "test": sets["test"]["greedy"],
        "worst_5_8": min(p["greedy"] for p in short),
        "12": whole(twelve),
        "16": whole(sixteen),
        "worst_16": min(p["greedy"] for p in sixteen),
    }
    figures["goal"] = figures["worst_5_8"] >= 99.5 and figures["12"] >= 95 and figures["16"] >= 95
    return figures


def spread(values, digits=1):
    values = sorted(values)
    return " / ".join(f"{v:.{digits}f}" for v in (values[0], statistics.median(values), values[-1]))


def main(rows):
    rows = rows or card_rows()
    print("| lever | seeds | stage 5, 1-4 digits (lowest) | worst 5-8 digit pair (lowest) "
          "| 12 digits: min / median / max | 16 digits: min / median / max "
          "| worst 16-digit pair: min / median / max | seeds meeting the all-latent goal |")
    print("|---" * 8 + "|")
    for row in rows:
        label, _, folders = row.partition("=")
        seeds = [seed_figures(f) for f in folders.split(",") if f]
        if not seeds:
            sys.exit(f"{label}: no evaluation folders (label=DIR,DIR,...)")
        print(f"| {label} | {len(seeds)} | {min(s['test'] for s in seeds):.2f} "
              f"| {min(s['worst_5_8'] for s in seeds):.1f} "
              f"| {spread([s['12'] for s in seeds], 2)} | {spread([s['16'] for s in seeds], 2)} "
              f"| {spread([s['worst_16'] for s in seeds])} "
              f"| {sum(s['goal'] for s in seeds)} of {len(seeds)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
