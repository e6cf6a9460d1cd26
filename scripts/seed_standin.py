#!/usr/bin/env python3
"""Stand-ins for the seed's GPT-2 Coconut checkpoints, in their exact file format.

The seed (issue 31; docs/seed-format.md) published `torch.save(model.state_dict(), path)` files
of a Hugging Face `GPT2LMHeadModel` whose vocabulary was resized to 50261 (GPT-2's 50257 plus
`<bot> <sep> <eot> <act>`). Those files cannot be fetched here, so this script makes a small
model of the same kind and saves it the same way:

  * GPT2LMHeadModel from a GPT2Config (defaults as gpt2-large's: gelu_new, LayerNorm eps 1e-5),
    initialised from a fixed torch seed;
  * the tokenizer built as the seed builds it (GPT-2's BPE, pad = eos, the four specials added
    as additional special tokens) and `resize_token_embeddings(len(tokenizer))`, so the new rows
    are initialised the way the seed's transformers version does it;
  * optionally a few hundred deterministic training steps on the seed's stage-0 text, so that
    the model writes digits, separators and `<eot>` (a purely random model almost never emits a
    digit, which would leave the answer rules untested); this changes values, not the format;
  * saved with `torch.save(model.state_dict(), path)`; the storages are tagged with the device
    the seed saved from (`cuda:0` by default: it trained on a GPU), so loading needs
    map_location exactly as the seed's files do.

`--variant` writes other files from the same weights, for loaders' tests (docs/seed-format.md,
"Stand-in variants"): standin (the default), legacy-buffers and untied-equal (files a loader may
accept), and the hostile ones a loader must refuse: foreign-global, truncated, wrong-shapes,
untied-head, bf16, absurd-shape, absurd-storage. `--variant all` writes every one.

Usage (in .venv-bench):
  python scripts/seed_standin.py
  python scripts/seed_standin.py --variant all --out /tmp/hostile/x.pt
"""
import argparse
import collections
import hashlib
import io
import os
import pickle
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ASSETS = os.path.join(ROOT, "core", "assets", "gpt2")
sys.path.insert(0, HERE)
from seed_problems import draw_split, steps_of  # noqa: E402

SPECIALS = ["<bot>", "<sep>", "<eot>", "<act>"]
BOT, SEP, EOT, ACT = SPECIALS

VARIANTS = [
    "standin",
    "legacy-buffers",
    "untied-equal",
    "foreign-global",
    "truncated",
    "wrong-shapes",
    "untied-head",
    "bf16",
    "absurd-shape",
    "absurd-storage",
    "hand-pickled",
]


def seed_tokenizer():
    """GPT-2's tokenizer as the seed builds it, from the vocabulary files in core/assets/gpt2
    (the same files transformers downloads as vocab.json / merges.txt for "gpt2")."""
    from transformers import GPT2Tokenizer

    tok = GPT2Tokenizer(
        vocab_file=os.path.join(ASSETS, "encoder.json"),
        merges_file=os.path.join(ASSETS, "vocab.bpe"),
        model_max_length=1024,
        clean_up_tokenization_spaces=True,  # what transformers 4.44 assumed when unset
    )
    tok.pad_token = tok.eos_token
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    assert len(tok) == 50261
    assert tok.convert_tokens_to_ids(SPECIALS) == [50257, 50258, 50259, 50260]
    return tok


def stage0_text(a: int, b: int) -> str:
    """The seed's full written example: question, <bot>, steps joined by " <sep> ", <eot>, sum."""
    return f"{a} + {b} = {BOT} " + f" {SEP} ".join(steps_of(a, b)) + f" {EOT} {a + b}"


def build_model(args, tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    cfg = GPT2Config(
        n_layer=args.n_layer,
        n_embd=args.n_embd,
        n_head=args.n_head,
        n_positions=args.n_positions,
    )
    model = GPT2LMHeadModel(cfg)
    model.resize_token_embeddings(len(tok))
    if args.train_steps:
        train(model, tok, args)
    model.eval()
    return model


def train(model, tok, args):
    """Next-token training on stage-0 texts of the seed's training problems, every real token,
    padding masked (the seed's stage-0 loss), except that the softmax runs over the tokens these
    texts use rather than all 50261 (40 times cheaper on a CPU; only values change, which is all
    a stand-in needs). One thread, fixed order and seed: deterministic."""
    torch.set_num_threads(1)
    torch.manual_seed(args.seed + 1)
    problems = draw_split(args.train_steps * args.batch, 42, {2: 0.3, 3: 0.4, 4: 0.3}, check=False)
    texts = [stage0_text(a, b) for a, b in problems]
    used = sorted({i for t in texts for i in tok.encode(t)} | {tok.eos_token_id})
    remap = torch.full((len(tok),), -100, dtype=torch.long)
    remap[torch.tensor(used)] = torch.arange(len(used))
    used = torch.tensor(used)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    for step in range(args.train_steps):
        enc = tok(texts[step * args.batch : (step + 1) * args.batch], padding=True,
                  return_tensors="pt")
        ids = enc["input_ids"]
        labels = remap[ids]
        labels[ids == tok.pad_token_id] = -100
        hidden = model.transformer(ids).last_hidden_state
        logits = hidden @ model.lm_head.weight[used].t()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, len(used)), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.train_steps - 1:
            print(f"  train step {step}: loss {loss.item():.3f}", file=sys.stderr)


def _tag_device(location):
    """Make torch.save tag CPU storages with `location` (what a save from that device writes)."""
    if location == "cpu":
        return

    def tagger(storage):
        return location if storage.device.type == "cpu" else None

    torch.serialization.register_package(1, tagger, lambda storage, loc: None)


def save_state_dict(sd, path):
    torch.save(sd, path)


class _Foreign:
    """Pickles as a call of os.system (GLOBAL 'posix system' on Linux), as a malicious file would.
    The command is `true`: harmless if some loader ever ran it."""

    def __reduce__(self):
        return (os.system, ("true",))


def _write_raw_archive(path, records):
    """Write a torch-style zip archive from (name, bytes) records with torch's own writer, so the
    layout (folder name, alignment, byteorder, version) is what torch.save produces."""
    w = torch._C.PyTorchFileWriter(path)
    for name, data in records:
        w.write_record(name, data, len(data))
    w.write_end_of_file()


def _absurd_archive(sd, path, mode):
    """A state dict pickled exactly as torch.save pickles it, except one declaration is absurd:
    mode "shape": transformer.wte.weight claims size [2**31, 2**31] over its real storage;
    mode "storage": its storage claims 2**40 elements while the record holds the real bytes;
    mode "none": nothing changed (checks this writer against torch.save)."""

    class StorageRef:
        def __init__(self, key, numel):
            self.key, self.numel = key, numel

    class TensorRef:
        def __init__(self, storage, size, stride):
            self.storage, self.size, self.stride = storage, size, stride

        def __reduce__(self):
            return (
                torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()),
            )

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", torch.FloatStorage, obj.key, "cuda:0", obj.numel)
            return None

    out = collections.OrderedDict()
    records = []
    keys = {}  # one storage per distinct tensor, as torch.save writes a tied head
    for name, t in sd.items():
        numel = t.numel()
        size, stride = tuple(t.shape), tuple(t.stride())
        if t.data_ptr() not in keys:
            keys[t.data_ptr()] = str(len(keys))
            records.append((f"data/{keys[t.data_ptr()]}", t.contiguous().numpy().tobytes()))
        if name == "transformer.wte.weight" and mode == "shape":
            size, stride = (2**31, 2**31), (2**31, 1)
        if name == "transformer.wte.weight" and mode == "storage":
            numel = 2**40
        out[name] = TensorRef(StorageRef(keys[t.data_ptr()], numel), size, stride)
    buf = io.BytesIO()
    P(buf, protocol=2).dump(out)
    _write_raw_archive(path, [("data.pkl", buf.getvalue())] + records)


def write_variant(model, variant, path, n_positions):
    sd = model.state_dict()
    if variant == "standin":
        save_state_dict(sd, path)
    elif variant == "legacy-buffers":
        # What transformers before the buffers became non-persistent saved in every block.
        legacy = collections.OrderedDict()
        for k, v in sd.items():
            legacy[k] = v
            if k.endswith(".attn.c_proj.bias"):
                block = k[: -len(".attn.c_proj.bias")]
                mask = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.bool))
                legacy[f"{block}.attn.bias"] = mask.view(1, 1, n_positions, n_positions)
                legacy[f"{block}.attn.masked_bias"] = torch.tensor(-1e4)
        save_state_dict(legacy, path)
    elif variant == "untied-equal":
        sd = collections.OrderedDict(sd)
        sd["lm_head.weight"] = sd["lm_head.weight"].clone()  # own storage, same values
        save_state_dict(sd, path)
    elif variant == "untied-head":
        sd = collections.OrderedDict(sd)
        sd["lm_head.weight"] = sd["lm_head.weight"].clone() + 0.01
        save_state_dict(sd, path)
    elif variant == "foreign-global":
        sd = collections.OrderedDict(sd)
        sd["transformer.h.0.attn.bias"] = _Foreign()
        save_state_dict(sd, path)
    elif variant == "truncated":
        buf = io.BytesIO()
        torch.save(sd, buf)
        data = buf.getvalue()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    elif variant == "wrong-shapes":
        # c_attn stored as nn.Linear would store it ([out, in]) instead of Conv1D's [in, out].
        sd = collections.OrderedDict(sd)
        name = "transformer.h.0.attn.c_attn.weight"
        sd[name] = sd[name].t().contiguous()
        save_state_dict(sd, path)
    elif variant == "bf16":
        sd = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in sd.items())
        sd["lm_head.weight"] = sd["transformer.wte.weight"]  # keep the tie
        save_state_dict(sd, path)
    elif variant == "absurd-shape":
        _absurd_archive(sd, path, "shape")
    elif variant == "absurd-storage":
        _absurd_archive(sd, path, "storage")
    elif variant == "hand-pickled":
        # The writer of the absurd variants with nothing absurd: must load as the stand-in does.
        _absurd_archive(sd, path, "none")
    else:
        raise SystemExit(f"unknown variant {variant}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/seed-standin/standin.pt",
                    help="file to write; with --variant all, the folder of this path gets "
                    "one file per variant, named <variant>.pt")
    ap.add_argument("--variant", default="standin", choices=VARIANTS + ["all"])
    ap.add_argument("--seed", type=int, default=31, help="torch seed of the initialisation")
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=16)
    ap.add_argument("--n-head", type=int, default=2)
    ap.add_argument("--n-positions", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=400,
                    help="stage-0 training steps before saving (0: the random initialisation)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--location", default="cuda:0",
                    help="device tag written for every storage (the seed saved from cuda:0)")
    args = ap.parse_args()

    tok = seed_tokenizer()
    model = build_model(args, tok)
    _tag_device(args.location)
    variants = VARIANTS if args.variant == "all" else [args.variant]
    for v in variants:
        path = args.out
        if args.variant == "all":
            path = os.path.join(os.path.dirname(args.out) or ".", f"{v}.pt")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write_variant(model, v, path, args.n_positions)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f"{v}: {path} ({os.path.getsize(path)} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
