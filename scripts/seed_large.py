#!/usr/bin/env python3
"""A GPT-2-large-shaped checkpoint with random weights, for speed measurements only (BENCHMARKS.md,
"The seed's size"): 36 layers, width 1280, 20 heads, 1024 positions, the seed's 50,261 tokens.

Nothing here is trained, so answers are meaningless; the shape, the file format (a Hugging Face
folder: config.json + model.safetensors) and the bytes read per token are those of the seed's
checkpoints. About 3.1 GB written; not committed.

Usage (in .venv-bench): python scripts/seed_large.py --out /tmp/gpt2-large-random
"""
import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the Hugging Face folder to write")
    ap.add_argument("--n-layer", type=int, default=36)
    ap.add_argument("--n-embd", type=int, default=1280)
    ap.add_argument("--n-head", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2412)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    config = GPT2Config(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head,
                        n_positions=1024, vocab_size=50261)
    model = GPT2LMHeadModel(config).eval()
    try:
        model.save_pretrained(args.out, safe_serialization=True)
    except TypeError:  # transformers 5 writes safetensors always and dropped the argument
        model.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {n / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
