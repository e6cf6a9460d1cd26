"""The length-generalization table of the model card: greedy exact match per stage on the
in-distribution test set (1-4 digit operands) and on held-out sets whose operands both have 5, 6
or 8 digits, for absolute and coupled position ids, from `coconut eval --longer 6,8 --json`
files (the `ood` set is the 5-digit one; `oodN` the N-digit ones).

Usage: python3 scripts/length-table.py LABEL=DIR[:DIR...] [LABEL=DIR ...]
  where each DIR holds <stage>.json or f32-<stage>.json files; a set measured in several takes
  the largest sample, e.g. absolute=weights/eval:runs/lengths/absolute coupled=runs/lengths/coupled
"""
import json, pathlib, sys

STAGES = ["stage0", "stage1", "stage2", "stage3", "stage4", "stage5", "nocot", "pause"]
COLUMNS = [("test", "1-4 digits"), ("ood", "5 digits"), ("ood6", "6 digits"), ("ood8", "8 digits")]


def cell(sets, name):
    s = sets.get(name)
    if s is None:
        return "-"
    return f"{s['greedy']:.2f} (n = {s['n']:,})"


def main(args):
    if not args:
        sys.exit(__doc__)
    print("| positions | stage | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for arg in args:
        label, _, folder = arg.partition("=")
        for stage in STAGES:
            sets = {}
            for d in folder.split(":"):
                for name in (f"{stage}.json", f"f32-{stage}.json"):
                    path = pathlib.Path(d) / name
                    if path.exists():
                        for s in json.loads(path.read_text())["sets"]:
                            if s["n"] > sets.get(s["set"], {"n": -1})["n"]:
                                sets[s["set"]] = s
            if not sets:
                continue
            cells = [cell(sets, name) for name, _ in COLUMNS]
            print(f"| {label} | {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
