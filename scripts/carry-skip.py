#!/usr/bin/env python3
"""Does a carry stop where it should? A probe of one failure of two-layer models beyond 4 digits.

Each problem has an L-digit and a 4-digit operand and exactly one carry, out of column c (units
= 0) into column c+1, which absorbs it (its digits sum to 8 or less). In the "trap" set column
c+2's digits sum to 9: right only if the model knows the carry stopped at c+1. A model that
counts the carry again at c+2 gets the answer wrong by 10^(c+2) in the control set (a digit one
too large) and, in the trap set, by -9 * 10^(c+2) (the 9 turned to 0) or by 10^(c+3) (the 9
written, but a carry passed on out of it). The "control" set has no column summing to 9. Per
weights folder and L: the share answered right of each set (n per cell), and each set's two most
common errors (answer minus the right sum).
The problems are drawn at random, not checked against the training set: 4x4 problems may have
been trained on; longer ones cannot have been.
Usage: python3 scripts/carry-skip.py WEIGHTS... [--n N]   (200 per cell; BIN=target/release/coconut)
"""
import argparse
import collections
import json
import os
import random
import subprocess

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("weights", nargs="+", help="weights folders whose manifest measured 8-digit pairs")
parser.add_argument("--n", type=int, default=200, help="problems per cell")
args = parser.parse_args()
binary = os.environ.get("BIN", "target/release/coconut")


def column_sums(a, b, columns):
    return [(a // 10**k) % 10 + (b // 10**k) % 10 for k in range(columns)]


def draw(rng, digits, carry_column, trap):
    """An (a, b) with `digits` and 4 digits whose only carry leaves `carry_column`."""
    while True:
        a = rng.randrange(10 ** (digits - 1), 10**digits)
        b = rng.randrange(1000, 10000)
        sums = column_sums(a, b, digits)
        if sums[carry_column] < 10 or sums[carry_column + 1] > 8:
            continue
        others = [s for k, s in enumerate(sums) if k not in (carry_column, carry_column + 1)]
        if any(s >= 10 for s in others):
            continue
        nines = [k for k, s in enumerate(sums) if s == 9]
        if (trap and nines == [carry_column + 2]) or (not trap and not nines):
            return a, b


def solve(folder, problems):
    text = "".join(f"{a} + {b}\n" for a, b in problems)
    run = subprocess.run([binary, "solve", "--weights", folder, "--json"], input=text,
                         capture_output=True, text=True, check=True)
    answers = [json.loads(line)["answer"] for line in run.stdout.splitlines() if line.strip()]
    assert len(answers) == len(problems), run.stderr
    return [int(x) for x in answers]


for folder in args.weights:
    print(folder)
    for digits in (4, 5, 6, 8):
        cells = []
        for carry_column in (0, 1):
            rng = random.Random(digits * 10 + carry_column)
            shown = []
            for name, trap in (("control", False), ("trap", True)):
                problems = [draw(rng, digits, carry_column, trap) for _ in range(args.n)]
                got = solve(folder, problems)
                errors = collections.Counter(g - (a + b) for (a, b), g in zip(problems, got) if g != a + b)
                right = 100 * (args.n - sum(errors.values())) / args.n
                top = ", ".join(f"{e:+d} x{k}" for e, k in errors.most_common(2))
                shown.append(f"{name} {right:5.1f}%" + (f" ({top})" if top else ""))
            cells.append(f"carry out of column {carry_column}: " + ", ".join(shown))
        print(f"  {digits}x4 (n = {args.n} each)  " + "; ".join(cells))
