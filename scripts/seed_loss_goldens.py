#!/usr/bin/env python3
"""Golden loss and gradients of the seed's training procedure on the stand-in checkpoint.

For a few of the seed's training problems and each stage 0..3, runs one accumulated optimizer
step's worth of the seed's procedure (docs/seed-format.md, section 7; an independent
restatement) in transformers, f32 on the CPU, dropout off so the numbers are deterministic:

  stage 0     one micro-batch of the stage-0 texts, right-padded with <|endoftext|>, labels the
              ids with padding at -100, the model's shifted cross-entropy (mean over targets);
  stages 1-3  per example: the prefix on a KV cache, m thoughts fed back (last_hidden_state as
              inputs_embeds), <eot> and the answer tokens; cross-entropy (mean) of the logits at
              <eot> and every answer token but the last against the answer tokens, plus
              0.001 x the mean L2 norm of the outputs at the m thought positions; each example's
              loss divided by the number of examples and accumulated.

Writes tests/fixtures/seed-standin/finetune-golden.json: per stage the problems, the loss, the
global gradient norm and the full gradients of a few tensors. `trainer/tests/finetune.rs`
checks that `train --init --recipe seed`'s objective gives the same on the imported stand-in.

Usage (in .venv-bench, transformers 4.44): python scripts/seed_loss_goldens.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from seed_goldens import latent_count, prefix_text, r9  # noqa: E402
from seed_problems import draw_split, steps_of  # noqa: E402
from seed_standin import EOT, seed_tokenizer, stage0_text  # noqa: E402

PROBLEMS = 4  # the first four of the seed's training split (seed 42)
NORM_WEIGHT = 0.001
KEPT = ["transformer.ln_f.weight", "transformer.h.1.attn.c_attn.bias", "transformer.wpe.weight"]


def stage0_loss(model, tok, problems):
    texts = [tok.encode(stage0_text(a, b)) for a, b in problems]
    width = max(len(t) for t in texts)
    pad = tok.eos_token_id
    ids = torch.tensor([t + [pad] * (width - len(t)) for t in texts])
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in texts])
    return model(input_ids=ids, labels=labels).loss


def latent_loss(model, tok, a, b, stage):
    steps = steps_of(a, b)
    m = latent_count(stage, len(steps))
    prefix = tok.encode(prefix_text(a, b, steps[: len(steps) - m]))
    out = model.transformer(input_ids=torch.tensor([prefix]), use_cache=True)
    past, h = out.past_key_values, out.last_hidden_state[0, -1]
    norms = []
    for _ in range(m):
        out = model.transformer(inputs_embeds=h.view(1, 1, -1), past_key_values=past,
                                use_cache=True)
        past, h = out.past_key_values, out.last_hidden_state[0, -1]
        norms.append(h.norm())
    answer = tok.encode(f"{EOT} {a + b}", add_special_tokens=False)
    out = model.transformer(input_ids=torch.tensor([answer]), past_key_values=past)
    logits = model.lm_head(out.last_hidden_state[0, :-1])
    ce = F.cross_entropy(logits, torch.tensor(answer[1:]))
    return ce + NORM_WEIGHT * torch.stack(norms).mean()


def main():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)
    tok = seed_tokenizer()
    weights = os.path.join(HERE, "..", "tests", "fixtures", "seed-standin", "standin.pt")
    sd = torch.load(weights, map_location="cpu", weights_only=True)
    cfg = GPT2Config(n_layer=2, n_embd=sd["transformer.wte.weight"].shape[1], n_head=2,
                     n_positions=sd["transformer.wpe.weight"].shape[0], vocab_size=len(tok))
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(sd)
    model.eval()  # dropout off: deterministic; gradients still flow
    problems = draw_split(PROBLEMS, 42, {2: 0.3, 3: 0.4, 4: 0.3}, check=False)
    stages = {}
    for stage in range(4):
        model.zero_grad(set_to_none=True)
        if stage == 0:
            loss = stage0_loss(model, tok, problems)
            loss.backward()
            total = loss.item()
        else:
            total = 0.0
            for a, b in problems:
                loss = latent_loss(model, tok, a, b, stage) / len(problems)
                loss.backward()
                total += loss.item()
        params = dict(model.named_parameters())
        grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item()
        stages[f"stage{stage}"] = {
            "loss": r9(total),
            "grad_norm": r9(grad_norm),
            "grads": {name.removeprefix("transformer."): [r9(x) for x in params[name].grad.flatten().tolist()]
                      for name in KEPT},
        }
        print(f"stage {stage}: loss {total:.6f}, gradient norm {grad_norm:.6f}")
    import transformers
    golden = {
        "problems": [[a, b] for a, b in problems],
        "norm_weight": NORM_WEIGHT,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "stages": stages,
    }
    path = os.path.join(HERE, "..", "tests", "fixtures", "seed-standin", "finetune-golden.json")
    with open(path, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
