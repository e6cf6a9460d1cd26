#!/usr/bin/env python3
"""The seed's addition problems, drawn the way its data generator draws them.

The seed (the GPT-2-large Coconut checkpoints of issue 31) drew its train / validation / test
problems with CPython's `random` module; docs/seed-format.md states the procedure. This script
restates it over a Mersenne Twister written out here (the same generator CPython uses, seeded
the same way), so a port to another language has a plain reference, and checks every number it
draws against CPython's own `random.Random` as it goes.

It writes tests/fixtures/seed-standin/seed-problems.json: the first 200 problems of each split,
the size, distinct count and sha256 of each full split, and the first outputs of the generator
for each seed (to debug a port).

Usage: python3 scripts/seed_problems.py [--out PATH] [--first N]
No third-party packages; any Python 3.
"""
import argparse
import hashlib
import json
import random

# The splits the seed generated: (name, problems, seed, digit-count weights).
SPLITS = [
    ("train", 100_000, 42, {2: 0.3, 3: 0.4, 4: 0.3}),
    ("val", 5_000, 123, {2: 0.3, 3: 0.4, 4: 0.3}),
    ("test", 5_000, 456, {2: 0.3, 3: 0.4, 4: 0.3}),
    ("ood", 1_000, 789, {5: 1.0}),
]

MASK32 = 0xFFFFFFFF


class Twister:
    """MT19937 (Matsumoto and Nishimura, 1998) with CPython's integer seeding."""

    N = 624
    M = 397

    def __init__(self, seed: int):
        self.state = [0] * self.N
        self.pos = self.N
        self._seed_words(self._words_of(seed))

    @staticmethod
    def _words_of(seed: int) -> list:
        # CPython seeds with |seed| cut into 32-bit words, least significant first, at least one.
        n = abs(seed)
        words = []
        while n:
            words.append(n & MASK32)
            n >>= 32
        return words or [0]

    def _seed_one(self, s: int) -> None:
        st = self.state
        st[0] = s & MASK32
        for i in range(1, self.N):
            prev = st[i - 1]
            st[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & MASK32

    def _seed_words(self, key: list) -> None:
        # The reference "init_by_array": a fixed start, then the key mixed in twice over.
        self._seed_one(19650218)
        st = self.state
        i, j = 1, 0
        for _ in range(max(self.N, len(key))):
            prev = st[i - 1]
            st[i] = ((st[i] ^ ((prev ^ (prev >> 30)) * 1664525)) + key[j] + j) & MASK32
            i += 1
            j += 1
            if i >= self.N:
                st[0] = st[self.N - 1]
                i = 1
            if j >= len(key):
                j = 0
        for _ in range(self.N - 1):
            prev = st[i - 1]
            st[i] = ((st[i] ^ ((prev ^ (prev >> 30)) * 1566083941)) - i) & MASK32
            i += 1
            if i >= self.N:
                st[0] = st[self.N - 1]
                i = 1
        st[0] = 0x80000000
        self.pos = self.N

    def _refill(self) -> None:
        st = self.state
        for k in range(self.N):
            y = (st[k] & 0x80000000) | (st[(k + 1) % self.N] & 0x7FFFFFFF)
            st[k] = st[(k + self.M) % self.N] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self.pos = 0

    def next_u32(self) -> int:
        if self.pos >= self.N:
            self._refill()
        y = self.state[self.pos]
        self.pos += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y

    # The three CPython methods the seed's generator reaches.
    def unit_float(self) -> float:
        """random.random(): 53 bits from two outputs (27 high bits, then 26)."""
        hi = self.next_u32() >> 5
        lo = self.next_u32() >> 6
        return (hi * 67108864.0 + lo) * (1.0 / 9007199254740992.0)

    def bits(self, k: int) -> int:
        """random.getrandbits(k) for 1 <= k <= 32: the top k bits of one output."""
        assert 1 <= k <= 32
        return self.next_u32() >> (32 - k)

    def below(self, n: int) -> int:
        """random._randbelow(n): k = n.bit_length() bits, drawn again until < n."""
        k = n.bit_length()
        r = self.bits(k)
        while r >= n:
            r = self.bits(k)
        return r

    def int_between(self, lo: int, hi: int) -> int:
        """random.randint(lo, hi), both ends included."""
        return lo + self.below(hi - lo + 1)

    def pick_weighted(self, choices: list, weights: list):
        """random.choices(choices, weights=weights, k=1)[0]: one unit_float, scaled by the
        total of the weights, placed among their running sums by bisect_right (never past the
        last choice)."""
        running, acc = [], 0.0
        for w in weights:
            acc += w
            running.append(acc)
        x = self.unit_float() * (running[-1] + 0.0)
        idx = 0
        while idx < len(running) - 1 and running[idx] <= x:
            idx += 1
        return choices[idx]


def draw_split(n: int, seed: int, weights: dict, check: bool = True) -> list:
    """n problems (a, b) as the seed draws them: per problem the digit count, then a, then b,
    each operand uniform over the numbers with exactly that many digits."""
    tw = Twister(seed)
    ref = random.Random(seed) if check else None
    counts, ws = list(weights.keys()), list(weights.values())
    out = []
    for _ in range(n):
        d = tw.pick_weighted(counts, ws)
        lo, hi = 10 ** (d - 1), 10**d - 1
        a = tw.int_between(lo, hi)
        b = tw.int_between(lo, hi)
        if ref is not None:
            d2 = ref.choices(counts, weights=ws, k=1)[0]
            lo2, hi2 = 10 ** (d2 - 1), 10**d2 - 1
            a2 = ref.randint(lo2, hi2)
            b2 = ref.randint(lo2, hi2)
            if (d, a, b) != (d2, a2, b2):
                raise SystemExit(f"seed {seed}: problem {len(out)} differs from CPython's random")
        out.append((a, b))
    return out


def canonical_text(problems: list) -> str:
    """The form the sha256 is taken over: one "a+b" line per problem, in draw order, each ending
    with a newline, ASCII."""
    return "".join(f"{a}+{b}\n" for a, b in problems)


def steps_of(a: int, b: int) -> list:
    """The seed's written chain of thought for a + b (units column first)."""
    da = [int(c) for c in reversed(str(a))]
    db = [int(c) for c in reversed(str(b))]
    carry, steps = 0, []
    for col in range(max(len(da), len(db))):
        x = da[col] if col < len(da) else 0
        y = db[col] if col < len(db) else 0
        s = x + y + carry
        text = f"{x}+{y}+{carry}={s}" if carry else f"{x}+{y}={s}"
        text += f" write {s % 10}"
        if s >= 10:
            text += f" carry {s // 10}"
        carry = s // 10
        steps.append(text)
    if carry:
        steps.append(f"carry {carry} write {carry}")
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/seed-standin/seed-problems.json")
    ap.add_argument("--first", type=int, default=200, help="problems listed per split")
    args = ap.parse_args()

    doc = {
        "what": "the seed's problems, drawn as its generator draws them (docs/seed-format.md)",
        "canonical_text": "one line \"a+b\\n\" per problem in draw order (duplicates kept), ASCII; "
        "sha256 is over that text",
        "splits": {},
    }
    for name, n, seed, weights in SPLITS:
        problems = draw_split(n, seed, weights)
        digest = hashlib.sha256(canonical_text(problems).encode("ascii")).hexdigest()
        by_digits = {}
        for a, _ in problems:
            by_digits[str(len(str(a)))] = by_digits.get(str(len(str(a))), 0) + 1
        carry_out = sum(1 for a, b in problems if len(str(a + b)) > len(str(a)))
        tw = Twister(seed)
        doc["splits"][name] = {
            "seed": seed,
            "count": n,
            "digit_weights": {str(k): v for k, v in weights.items()},
            "distinct_ordered_pairs": len(set(problems)),
            "by_digits": by_digits,
            "with_extra_carry_step": carry_out,
            "sha256": digest,
            "first_u32": [tw.next_u32() for _ in range(8)],
            "first": [[a, b] for a, b in problems[: args.first]],
        }
        print(f"{name}: {n} problems, {len(set(problems))} distinct, sha256 {digest}")
    # Cross-split overlaps, which an honest evaluation has to know about.
    lists = {name: draw_split(n, seed, w, check=False) for name, n, seed, w in SPLITS}
    sets = {name: set(v) for name, v in lists.items()}
    first20k = set(lists["train"][:20_000])  # what the seed's stages 1-3 trained on
    doc["overlaps"] = {
        "what": "distinct ordered pairs (a, b) of the first split that occur in the second",
        "val_in_train": len(sets["val"] & sets["train"]),
        "test_in_train": len(sets["test"] & sets["train"]),
        "test_in_val": len(sets["test"] & sets["val"]),
        "val_first500_problems_in_train": sum(1 for p in lists["val"][:500] if p in sets["train"]),
        "val_first500_problems_in_train_first20000": sum(
            1 for p in lists["val"][:500] if p in first20k
        ),
    }
    doc["example_steps"] = {
        "347+285": steps_of(347, 285),
        "999+999": steps_of(999, 999),
        "12+34": steps_of(12, 34),
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("overlaps:", doc["overlaps"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
