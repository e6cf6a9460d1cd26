#!/usr/bin/env python3
"""Prints the model card's accuracy tables (markdown) from a weights folder: manifest.json (int8
accuracy) and eval/{f32,int8}-<stage>.json written by scripts/ship-weights.sh.
Usage: python3 scripts/accuracy-tables.py [weights]"""
import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "weights")
manifest = json.loads((folder / "manifest.json").read_text())


def sets(path):
    data = json.loads(path.read_text())
    return {s["set"]: s for s in data["sets"]}


def pct(v):
    return f"{v:.2f}"


stages = [s["id"] for s in manifest["stages"]]
digits = sorted({d["digits"] for s in manifest["stages"] for x in s["accuracy"]["sets"] if x["set"] == "test"
                 for d in x["by_digits"]})

print("### Greedy exact match, int8 weights (teacher-forced in brackets)\n")
head = ["stage", "thoughts", "test, all"] + [f"{d}-digit" for d in digits] + ["5-digit (OOD)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for s in manifest["stages"]:
    by = {x["set"]: x for x in s["accuracy"]["sets"]}
    t = by["test"]
    row = [s["id"], str(s["thoughts"]), f"**{pct(t['greedy'])}** ({pct(t['teacher_forced'])}), n={t['n']}"]
    for d in digits:
        cell = next((x for x in t["by_digits"] if x["digits"] == d), None)
        row.append(f"{pct(cell['greedy'])} ({pct(cell['teacher_forced'])}), n={cell['n']}" if cell else "-")
    o = by.get("ood")
    row.append(f"{pct(o['greedy'])} ({pct(o['teacher_forced'])}), n={o['n']}" if o else "-")
    print("| " + " | ".join(row) + " |")

print("\n### int8 against f32 (greedy exact match, test set)\n")
print("| stage | f32 | int8 | int8 - f32 (points) | n |")
print("|---|---|---|---|---|")
for stage in stages:
    f, q = folder / "eval" / f"f32-{stage}.json", folder / "eval" / f"int8-{stage}.json"
    if not (f.exists() and q.exists()):
        continue
    a, b = sets(f)["test"], sets(q)["test"]
    print(f"| {stage} | {pct(a['greedy'])} | {pct(b['greedy'])} | {b['greedy'] - a['greedy']:+.2f} | {a['n']} |")

print("\n### Training\n")
print("| stage | steps | seconds | trained by (commit) | hardware |")
print("|---|---|---|---|---|")
for s in manifest["stages"]:
    t = s["training"]
    commit = t["git_commit"][:7] + ("-dirty" if t["git_commit"].endswith("-dirty") else "")
    print(f"| {s['id']} | {t['steps']:,} | {t['seconds']:,.0f} | {commit} | {t['hardware']} |")
