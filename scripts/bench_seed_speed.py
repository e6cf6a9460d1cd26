#!/usr/bin/env python3
"""transformers' time per decoded token for a Hugging Face GPT-2 folder on this CPU: the yardstick
beside `core/examples/reference_speed.rs` (scripts/bench-seed-speed.sh runs both in one run).

A token is one position with the KV cache (`past_key_values`), the LM head and argmax, the
token fed next: what `model.generate` does per step, without its bookkeeping. Two forms:
  f32   the model as loaded;
  int8  torch's dynamic quantization (int8 weights, activations quantized per call, fbgemm),
        after GPT-2's Conv1D layers are turned into nn.Linear (dynamic quantization only
        rewrites nn.Linear), LM head included: torch's best int8 on a CPU without a compiler.
Prints one JSON line per form: median milliseconds per token over POSITIONS positions.

Usage (in .venv-bench): python scripts/bench_seed_speed.py HF_DIR [--positions 24] [--forms f32,int8]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D


def conv1d_to_linear(model):
    """Every Conv1D (weight [in, out]) replaced by the equal nn.Linear (weight [out, in])."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = torch.nn.Linear(n_in, n_out)
                linear.weight.data = child.weight.data.t().contiguous()
                linear.bias.data = child.bias.data.clone()
                setattr(module, name, linear)
    return model


def token_times(model, positions):
    times = []
    past = None
    token = torch.tensor([[0]])
    with torch.inference_mode():
        for _ in range(positions):
            started = time.perf_counter()
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            times.append((time.perf_counter() - started) * 1e3)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("--positions", type=int, default=24)
    ap.add_argument("--forms", default="f32,int8")
    args = ap.parse_args()
    for form in args.forms.split(","):
        model = GPT2LMHeadModel.from_pretrained(args.hf_dir, torch_dtype=torch.float32).eval()
        if form == "int8":
            model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone())
            model = torch.ao.quantization.quantize_dynamic(
                conv1d_to_linear(model), {torch.nn.Linear}, dtype=torch.qint8)
        elif form != "f32":
            raise SystemExit(f"unknown form {form}: f32 or int8")
        times = token_times(model, args.positions)
        print(json.dumps({
            "engine": "transformers", "form": form, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "positions": args.positions,
            "ms_per_token": round(statistics.median(times), 1),
        }), flush=True)
        del model


if __name__ == "__main__":
    main()
