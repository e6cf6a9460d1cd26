#!/usr/bin/env python3
"""Golden outputs of the seed's procedure on the stand-in checkpoint, and tokenizer parity.

Runs the seed's Coconut procedure (docs/seed-format.md states it; this is an independent
restatement) in transformers, f32 on the CPU, on tests/fixtures/seed-standin/standin.pt, and
writes:

  golden.json            per problem and stage 0..3: the teacher-forced sequence (ids, thought
                         positions, the thought vectors fed), the logits' argmax and top values,
                         the seed's teacher-forced metric, and greedy free-running runs under each
                         thought-count protocol with the answers the rules read from them;
  tokenizer-parity.json  a few thousand seed-format strings with GPT2Tokenizer's ids.

Usage (in .venv-bench): python scripts/seed_goldens.py [--weights PT] [--out-dir DIR]
                        [--check-fast]   (also compare the `tokenizers` library's ids)
"""
import argparse
import hashlib
import itertools
import json
import os
import random
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from seed_problems import draw_split, steps_of  # noqa: E402
from seed_standin import ASSETS, BOT, EOT, SEP, SPECIALS, seed_tokenizer, stage0_text  # noqa: E402

# The problems of the goldens: equal-length operands with 2-4 digits, several whose sum has an
# extra digit (a final "carry 1 write 1" step), and the first two of the seed's validation set.
FIXED = [
    (12, 34), (47, 38), (85, 27), (99, 99),
    (347, 285), (123, 456), (555, 445), (909, 191), (100, 100),
    (1234, 5678), (2718, 3141), (4821, 7365), (9999, 9999), (5000, 5000),
]
STAGES = [0, 1, 2, 3]  # stage 3 = every step latent ("stage3_alllatent")
ANSWER_TOKENS = 8  # greedy tokens generated after <eot> in every free run
STAGE0_TEXT_CAP = 72  # stage 0 free run: tokens the model may write before it writes <eot>
TOP = 5  # logits kept per answer position
TOP_ALL = 3  # logits kept per position of the whole sequence


def r9(x):
    """A float32 written with 9 significant digits (enough to get the same float32 back)."""
    return float(f"{x:.9g}")


def latent_count(stage, steps):
    """How many of a problem's steps the seed makes latent at a stage (the last ones)."""
    return steps if stage == 3 else min(stage, steps)


def prefix_text(a, b, text_steps):
    """The seed's prefix: question, <bot>, then each written step followed by " <sep>"."""
    return f"{a} + {b} = {BOT}" + "".join(f" {s} {SEP}" for s in text_steps)


class Runner:
    """The seed's forward passes: token ids or fed vectors, one chunk at a time, on a KV cache.
    Positions continue from the cache (the seed passes neither position ids nor a mask)."""

    def __init__(self, model):
        self.m = model
        self.past = None
        self.length = 0
        self.rows = []  # per position: (token id or -1 for a fed vector, final hidden state)

    def ids(self, ids):
        x = torch.tensor([ids])
        out = self.m.transformer(input_ids=x, past_key_values=self.past, use_cache=True)
        self._take(out, ids)
        return out.last_hidden_state[0]

    def vector(self, h):
        out = self.m.transformer(inputs_embeds=h.view(1, 1, -1), past_key_values=self.past,
                                 use_cache=True)
        self._take(out, [-1])
        return out.last_hidden_state[0]

    def _take(self, out, ids):
        self.past = out.past_key_values
        for i, t in enumerate(ids):
            self.rows.append((t, out.last_hidden_state[0, i]))
        self.length += len(ids)

    def logits(self, pos):
        return self.m.lm_head(self.rows[pos][1])

    def last_hidden(self):
        return self.rows[-1][1]


def top_of(logits, k):
    v, i = torch.topk(logits, k)  # ties: torch.topk and argmax both prefer the lower id here
    return [[int(a), r9(b)] for a, b in zip(i.tolist(), v.tolist())]


def argmax(logits):
    return int(torch.argmax(logits))


def token_texts(tok, ids):
    return [tok.convert_tokens_to_string([t]) for t in tok.convert_ids_to_tokens(ids)]


def answer_rule(tok, ids):
    """Our reading of an answer (issue 31): the tokens after <eot> while each is all digits (the
    first may begin with one space); it ends at the first other token, <|endoftext|> included."""
    out = ""
    for n, t in enumerate(token_texts(tok, ids)):
        body = t[1:] if n == 0 and t.startswith(" ") else t
        if not body or not all("0" <= c <= "9" for c in body):
            break
        out += body
    return out


def answer_interactive(tok, ids):
    """The seed's interactive loop's reading (docs/seed-format.md): stop at <|endoftext|>;
    after each token decode all so far and strip; once that text holds a non-digit, return its
    first run of digits (if any), else the decoded text itself."""
    got = []
    for t in ids:
        if t == tok.eos_token_id:
            break
        got.append(t)
        text = tok.decode(got).strip()
        if text and not text.isdigit():
            rest = itertools.dropwhile(lambda ch: not ch.isdigit(), text)
            run = "".join(itertools.takewhile(str.isdigit, rest))
            return run or text
    return tok.decode(got).strip()


def margin(logits):
    """How far the chosen logit is above the next one: a port's error must stay below it."""
    v = torch.topk(logits, 2).values
    return r9(float(v[0] - v[1]))


def greedy_after(run, first_id, count):
    """Feed first_id, then `count` greedy tokens (each fed in turn); returns the greedy ids and
    each choice's margin."""
    out, gaps = [], []
    h = run.ids([first_id])[-1]
    for _ in range(count):
        logits = run.m.lm_head(h)
        out.append(argmax(logits))
        gaps.append(margin(logits))
        if len(out) < count:
            h = run.ids([out[-1]])[-1]
    return out, gaps


def thought_run(model, tok, a, b, text_steps, n_thoughts, answer_ids=None):
    """prefix ids, n_thoughts fed vectors, then either the teacher-forced answer ids (<eot> and
    the answer) or <eot> and greedy tokens. Returns the run and its pieces."""
    run = Runner(model)
    prefix = tok.encode(prefix_text(a, b, text_steps))
    h = run.ids(prefix)[-1]
    fed = []
    for _ in range(n_thoughts):
        fed.append(h)
        h = run.vector(h)[-1]
    if answer_ids is not None:
        run.ids(answer_ids)
        return run, prefix, fed, None
    gen = greedy_after(run, tok.convert_tokens_to_ids(EOT), ANSWER_TOKENS)
    return run, prefix, fed, gen


def describe_run(run, tok, prefix, fed, with_top_all=True):
    seq = [t for t, _ in run.rows]
    d = {
        "ids": seq,
        "prefix_len": len(prefix),
        "thought_positions": [i for i, t in enumerate(seq) if t == -1],
        "thoughts": [[r9(x) for x in v.tolist()] for v in fed],
        "argmax": [argmax(run.logits(p)) for p in range(len(seq))],
    }
    if with_top_all:
        d["top"] = [top_of(run.logits(p), TOP_ALL) for p in range(len(seq))]
    return d


def teacher_forced(model, tok, a, b, stage):
    steps = steps_of(a, b)
    ans = str(a + b)
    answer_ids = tok.encode(f"{EOT} {ans}", add_special_tokens=False)
    if stage == 0:
        run = Runner(model)
        ids = tok.encode(stage0_text(a, b))
        run.ids(ids)
        prefix, fed = ids, []
        eot_pos = ids.index(tok.convert_tokens_to_ids(EOT))
        text = stage0_text(a, b)
    else:
        n_lat = latent_count(stage, len(steps))
        run, prefix, fed, _ = thought_run(model, tok, a, b, steps[: len(steps) - n_lat], n_lat,
                                          answer_ids)
        eot_pos = len(prefix) + n_lat
        text = prefix_text(a, b, steps[: len(steps) - n_lat]) + "".join(
            " [thought]" for _ in range(n_lat)) + f" {EOT} {ans}"
    d = describe_run(run, tok, prefix, fed)
    assert d["ids"][eot_pos:] == answer_ids
    # The seed's metric: argmax at <eot> and at every answer token but the last, decoded,
    # stripped, compared as text with the answer.
    positions = list(range(eot_pos, len(d["ids"]) - 1))
    pred = [d["argmax"][p] for p in positions]
    decoded = tok.decode(pred).strip()
    d.update({
        "text": text,
        "answer_ids": answer_ids[1:],
        "answer_positions": positions,
        "answer_argmax": pred,
        "answer_top": [top_of(run.logits(p), TOP) for p in positions],
        "decoded": decoded,
        "correct": decoded == ans,
    })
    return d


def free_thoughts(model, tok, a, b, stage, steps_total):
    """A free run with a given step count: the first written steps from the gold chain as the
    prefix (the seed's layout), the last latent_count(stage, steps_total) as thoughts, then
    <eot> and greedy tokens."""
    steps = steps_of(a, b)
    n_lat = latent_count(stage, steps_total)
    text_steps = steps[: steps_total - n_lat]
    run, prefix, fed, (gen, gaps) = thought_run(model, tok, a, b, text_steps, n_lat)
    d = describe_run(run, tok, prefix, fed, with_top_all=False)
    d.update({
        "steps_counted": steps_total,
        "n_thoughts": n_lat,
        "generated": gen,
        "margins": gaps,
        "answer": answer_rule(tok, gen),
        "answer_interactive": answer_interactive(tok, gen),
    })
    return d


def free_stage0(model, tok, a, b):
    """Stage 0 free run: the model writes everything after "a + b = <bot>"; once it writes
    <eot>, ANSWER_TOKENS more greedy tokens; no <eot> within STAGE0_TEXT_CAP tokens: no answer."""
    eot = tok.convert_tokens_to_ids(EOT)
    run = Runner(model)
    prefix = tok.encode(prefix_text(a, b, []))
    h = run.ids(prefix)[-1]
    gen, gaps, eot_at = [], [], None
    while True:
        logits = model.lm_head(h)
        nxt = argmax(logits)
        gen.append(nxt)
        gaps.append(margin(logits))
        if eot_at is None and nxt == eot:
            eot_at = len(gen) - 1
        if eot_at is None and len(gen) >= STAGE0_TEXT_CAP:
            break
        if eot_at is not None and len(gen) - 1 - eot_at >= ANSWER_TOKENS:
            break
        h = run.ids([nxt])[-1]
    after = gen[eot_at + 1 :] if eot_at is not None else []
    return {
        "prefix_ids": prefix,
        "generated": gen,
        "margins": gaps,
        "eot_index": eot_at,
        "argmax": [argmax(run.logits(p)) for p in range(run.length)],
        "answer": answer_rule(tok, after) if eot_at is not None else "",
        "answer_interactive": answer_interactive(tok, after) if eot_at is not None else "",
    }


def goldens(model, tok, weights_path):
    val = draw_split(2, 123, {2: 0.3, 3: 0.4, 4: 0.3}, check=False)
    problems = FIXED + val
    out = []
    for a, b in problems:
        steps = steps_of(a, b)
        digits = len(str(a))
        entry = {
            "a": a, "b": b, "digits": digits, "steps": steps, "answer": str(a + b),
            "extra_carry_step": len(steps) > digits, "stages": {},
        }
        for s in STAGES:
            st = {"teacher_forced": teacher_forced(model, tok, a, b, s)}
            if s == 0:
                st["free"] = free_stage0(model, tok, a, b)
            else:
                st["free_gold"] = free_thoughts(model, tok, a, b, s, len(steps))
                st["free_columns"] = free_thoughts(model, tok, a, b, s, digits)
                if s == 3:
                    st["free_columns_plus_one"] = free_thoughts(model, tok, a, b, s, digits + 1)
            entry["stages"][f"stage{s}"] = st
        out.append(entry)
    with open(weights_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    cfg = model.config
    return {
        "what": "the seed's procedure on the stand-in, f32 on the CPU (docs/seed-format.md)",
        "weights": {"file": os.path.basename(weights_path), "sha256": digest,
                    "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head,
                    "n_positions": cfg.n_positions, "vocab_size": cfg.vocab_size,
                    "layer_norm_epsilon": cfg.layer_norm_epsilon,
                    "activation_function": cfg.activation_function,
                    "attn_implementation": cfg._attn_implementation},
        "versions": {"torch": torch.__version__, "transformers": _tf_version()},
        "special_ids": dict(zip(SPECIALS, tok.convert_tokens_to_ids(SPECIALS))),
        "eos_id": tok.eos_token_id,
        "answer_tokens_generated": ANSWER_TOKENS,
        "stage0_text_cap": STAGE0_TEXT_CAP,
        "fields": {
            "ids": "the whole sequence, -1 where a thought vector is fed",
            "thoughts": "the vectors fed at thought_positions, in order (final hidden state, "
                        "after ln_f, of the position before; wpe is added by the model)",
            "argmax": "argmax of the logits at every position (lowest id on ties)",
            "top": "[id, logit] of the largest logits at every position",
            "answer_positions": "positions whose logits predict the answer tokens (<eot> and "
                                "every answer token but the last)",
            "correct": "the seed's teacher-forced metric: decode(answer_argmax).strip() == answer",
            "free_gold": "thought count from the gold step count (the seed's rule)",
            "free_columns": "step count = operand digits (no final carry step ever)",
            "free_columns_plus_one": "step count = operand digits + 1 (stage 3 only)",
            "generated": "greedy ids after the fed <eot>, answer_tokens_generated of them, "
                         "each fed in turn; every stop rule cuts this list",
            "margins": "per generated token, its logit minus the runner-up's",
            "answer": "issue 31's rule: digits up to the first token that is not all digits",
            "answer_interactive": "the seed's interactive loop's rule",
        },
        "problems": out,
    }


def _tf_version():
    import transformers

    return transformers.__version__


def parity_strings():
    """Seed-format strings: full stage-0 texts, prompts, stage-1/2 prefixes, answer pieces,
    5-6 digit texts, and a few edge cases."""
    rng = random.Random(2024)
    train = draw_split(1500, 42, {2: 0.3, 3: 0.4, 4: 0.3}, check=False)
    val = draw_split(600, 123, {2: 0.3, 3: 0.4, 4: 0.3}, check=False)
    ood = draw_split(200, 789, {5: 1.0}, check=False)
    out = []
    for a, b in train[:900] + val[:300] + ood[:150]:
        out.append(stage0_text(a, b))
    for a, b in train[900:1400]:
        out.append(prefix_text(a, b, []))
    for a, b in val[300:600]:
        steps = steps_of(a, b)
        k = rng.choice([1, 2])
        out.append(prefix_text(a, b, steps[: len(steps) - k]))
    for a, b in train[1400:1500] + ood[150:200]:
        out.append(f"{EOT} {a + b}")
        out.append(" ".join(steps_of(a, b)))
    for _ in range(300):
        d = rng.randint(1, 8)
        a, b = rng.randint(0, 10**d - 1), rng.randint(0, 10**rng.randint(1, 8) - 1)
        out.append(f"{a} + {b} = {BOT}")
    out += [
        "347 + 285 = <bot>", "347 + 285 = <bot> 7+5=12 write 2 carry 1 <sep>",
        "<bot><sep><eot><act>", "<eot>632", "<eot> 632", "<eot>  632", " <eot> 632 ",
        "347+285=<bot>", "007 + 5 = <bot>", "0 + 0 = <bot>", "Layer 18: <act> What is this?",
        "347 + 285 = <bot> 7+5=12 write 2 carry 1\n<sep>", "<|endoftext|>632", "<bot <sep>",
        "carry 1 write 1", "12\t+ 34", "९ + १ = <bot>", "3.14 + 2,718 = <bot>", "",
        " ", "   ", "<act><act>", "1000000000 + 1 = <bot>", "'s 've 're n't",
    ]
    return out


def parity(tok, check_fast):
    strings = parity_strings()
    ids = [tok.encode(s) for s in strings]
    if check_fast:
        from tokenizers import AddedToken, Tokenizer
        from tokenizers.decoders import ByteLevel as ByteLevelDecoder
        from tokenizers.models import BPE
        from tokenizers.pre_tokenizers import ByteLevel

        fast = Tokenizer(BPE.from_file(os.path.join(ASSETS, "encoder.json"),
                                       os.path.join(ASSETS, "vocab.bpe")))
        fast.pre_tokenizer = ByteLevel(add_prefix_space=False)
        fast.decoder = ByteLevelDecoder()
        fast.add_special_tokens([AddedToken("<|endoftext|>", special=True)] +
                                [AddedToken(s, special=True) for s in SPECIALS])
        bad = [s for s, i in zip(strings, ids) if fast.encode(s).ids != i]
        print(f"tokenizers library: {len(strings) - len(bad)}/{len(strings)} equal", file=sys.stderr)
        for s in bad[:10]:
            print(f"  differs: {s!r}", file=sys.stderr)
    return {
        "what": "transformers GPT2Tokenizer ids (the seed's tokenizer: GPT-2 BPE from "
                "core/assets/gpt2, pad = eos, <bot> <sep> <eot> <act> added as special tokens) "
                "of seed-format strings; encode(s) with no BOS",
        "special_ids": dict(zip(SPECIALS, tok.convert_tokens_to_ids(SPECIALS))),
        "strings": strings,
        "ids": ids,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="tests/fixtures/seed-standin/standin.pt")
    ap.add_argument("--out-dir", default="tests/fixtures/seed-standin")
    ap.add_argument("--n-head", type=int, default=2, help="heads (a state dict does not say)")
    ap.add_argument("--check-fast", action="store_true")
    args = ap.parse_args()

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)
    tok = seed_tokenizer()
    sd = torch.load(args.weights, map_location="cpu", weights_only=True)
    width = sd["transformer.wte.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.h."))
    cfg = GPT2Config(n_layer=layers, n_embd=width, n_head=args.n_head,
                     n_positions=sd["transformer.wpe.weight"].shape[0], vocab_size=len(tok))
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        g = goldens(model, tok, args.weights)
    path = os.path.join(args.out_dir, "golden.json")
    with open(path, "w") as f:
        json.dump(g, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    p = parity(tok, args.check_fast)
    path = os.path.join(args.out_dir, "tokenizer-parity.json")
    with open(path, "w") as f:
        json.dump(p, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(p['strings'])} strings)")
    # A summary of what the goldens exercise.
    for s in STAGES:
        key = f"stage{s}"
        tf = sum(pr["stages"][key]["teacher_forced"]["correct"] for pr in g["problems"])
        fr = [pr["stages"][key].get("free_gold", pr["stages"][key].get("free"))["answer"]
              for pr in g["problems"]]
        print(f"{key}: teacher-forced correct {tf}/{len(g['problems'])}; free answers {fr}")


if __name__ == "__main__":
    main()
