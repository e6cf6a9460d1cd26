#!/usr/bin/env python3
"""A stress set of long carry chains, answered by every stage of a weights folder.

Random problems rarely carry through many columns (each column has to sum to exactly 9 or 10), so
a 100% test score can hide a model that has not learned to pass a carry along. This draws
problems column by column: each column's digits sum to 9 or 10 most of the time (8, 11, 18 or 0
otherwise), with 1-4 digit operands, and prints, per stage, how many `coconut solve` answers
wrong and a few of them. The problems are not checked against the training set (a few may
have been trained on); they are a probe of a weakness, not a held-out score.
Usage: python3 scripts/carry-chains.py [WEIGHTS] [N]   (weights, 20000 draws; BIN=target/release/coconut)
"""
import json
import os
import random
import subprocess
import sys

folder = sys.argv[1] if len(sys.argv) > 1 else "weights"
draws = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
binary = os.environ.get("BIN", "target/release/coconut")

rng = random.Random(1)
problems = set()
for _ in range(draws):
    a = b = 0
    for column in range(rng.randint(1, 4)):
        total = rng.choice([9, 10, 9, 10, 11, 8, 18, 0])
        digit = rng.randint(max(0, total - 9), min(9, total))
        a += digit * 10**column
        b += (total - digit) * 10**column
    problems.add((a, b))
problems = sorted(problems)
lines = "".join(f"{a} + {b}\n" for a, b in problems)

def matches(answer, a, b, pad):
    """The sum written plainly, or with the leading zeros of a coupled stage's answer (columns + 1
    digits, the `pad` columns of padded operands among them; docs/positions.md and
    docs/data-format.md), as `coconut eval` counts it."""
    plain = str(a + b)
    columns = max(len(str(a)), len(str(b))) + pad
    return (answer is not None and len(plain) <= len(answer) <= columns + 1
            and answer.endswith(plain) and set(answer[:len(answer) - len(plain)]) <= {"0"})

manifest = json.load(open(os.path.join(folder, "manifest.json")))
pads = {s["id"]: s.get("operand_pad") or 0 for s in manifest["stages"]}
print(f"{len(problems)} distinct problems from {draws} draws")
print("| stage | wrong | of | examples |")
print("|---|---|---|---|")
for stage in (s["id"] for s in manifest["stages"]):
    out = subprocess.run([binary, "solve", "--weights", folder, "--stage", stage, "--json"],
                         input=lines, capture_output=True, text=True, check=True).stdout
    wrong = []
    for line in out.splitlines():
        solved = json.loads(line)
        a, b = map(int, solved["input"].split(" + "))
        if not matches(solved["answer"], a, b, pads[stage]):
            wrong.append(f"`{a} + {b}` -> {solved['answer']}")
    print(f"| {stage} | {len(wrong)} | {len(problems)} | {', '.join(wrong[:3])} |")
