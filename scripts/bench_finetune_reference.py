"""PyTorch yardstick for one optimizer step of the seed's recipe (scripts/bench-finetune.sh).

A plain GPT-2 in PyTorch (eager, f32, its own code: embeddings, pre-LayerNorm blocks with the
tanh GELU, final LayerNorm, tied head) runs the batches `finetune_step --dump` wrote, the way
PyTorch Coconut implementations compute thoughts: thought j of every example is the final hidden
state of the position before it, found by running the model again over the prefix up to the
furthest such position; then one pass over the whole sequence gives the outputs. The loss is the
seed's (docs/training.md): per-group means of the target tokens' cross-entropy (logits only at
the rows that predict a target), plus lambda x each example's mean thought-output norm; then
clipping to norm 1 and AdamW over every parameter (decay 0.01).

--procedure batched runs a batch in one pass with per-group weights; --procedure seed runs it as
the seed did, one micro-batch (a group) at a time with loss / groups accumulated, then one step.
Prints one JSON line like the Rust bench's. `--device cuda` runs it on a GPU (eager, f32 with
PyTorch's default matmul precision), timed with the GPU synchronized, peak GPU memory reported.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

PAD = 50256


class Block(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = torch.nn.LayerNorm(width)
        self.c_attn = torch.nn.Linear(width, 3 * width)
        self.attn_proj = torch.nn.Linear(width, width)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.c_fc = torch.nn.Linear(width, 4 * width)
        self.mlp_proj = torch.nn.Linear(4 * width, width)

    def forward(self, x):  # (B, T, C)
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(torch.nn.Module):
    def __init__(self, vocab, positions, width, layers, heads):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, width)
        self.wpe = torch.nn.Embedding(positions, width)
        self.blocks = torch.nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(width)
        for p in self.parameters():
            if p.dim() >= 2:
                torch.nn.init.normal_(p, std=0.02)

    def hidden(self, embeds):  # (B, T, C) input embeddings -> final hidden states
        t = embeds.shape[1]
        x = embeds + self.wpe(torch.arange(t, device=embeds.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)


def loss_of(model, examples, weights, lam):
    """The weighted loss of `examples` (dicts from the dump), thoughts by re-running prefixes."""
    b, t = len(examples), max(len(e["ids"]) for e in examples)
    dev = model.wte.weight.device
    ids = torch.full((b, t), PAD, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e["ids"])] = torch.tensor(e["ids"])
    ids = ids.to(dev)
    embeds = model.wte(ids)
    most = max(e["thoughts"] for e in examples)
    for j in range(most):
        rows = [i for i, e in enumerate(examples) if e["thoughts"] > j]
        end = max(examples[i]["first_thought"] + j for i in rows)
        prefix = model.hidden(embeds[:, :end])
        embeds = embeds.clone()
        for i in rows:
            at = examples[i]["first_thought"] + j
            embeds[i, at] = prefix[i, at - 1]
    hidden = model.hidden(embeds)
    rows, targets, target_w = [], [], []
    norm_rows, norm_w = [], []
    for i, e in enumerate(examples):
        for pos, is_target in enumerate(e["loss_mask"]):
            if is_target and pos > 0:
                rows.append(i * t + pos - 1)
                targets.append(e["ids"][pos])
                target_w.append(weights[i][0])
        for pos in range(e["first_thought"], e["first_thought"] + e["thoughts"]):
            norm_rows.append(i * t + pos)
            norm_w.append(weights[i][1])
    flat = hidden.reshape(b * t, -1)
    logits = flat[rows] @ model.wte.weight.T  # (N, V)
    ce = F.cross_entropy(logits, torch.tensor(targets, device=dev), reduction="none")
    loss = (ce * torch.tensor(target_w, device=dev)).sum()
    if lam > 0 and norm_rows:
        loss = loss + (flat[norm_rows].norm(dim=1) * torch.tensor(norm_w, device=dev)).sum()
    return loss


def weights_of(examples, group, lam):
    """Per example (target weight, thought-norm weight), as trainer/src/objective.rs forms them."""
    b = len(examples)
    groups = math.ceil(b / group)
    out = []
    for g in range(groups):
        members = examples[g * group : (g + 1) * group]
        n = sum(sum(e["loss_mask"][1:]) for e in members)
        for e in members:
            m = e["thoughts"]
            out.append((1.0 / (groups * n), lam / (b * m) if m else 0.0))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", required=True)
    p.add_argument("--stage", type=int, required=True)
    p.add_argument("--group", type=int, required=True)
    p.add_argument("--procedure", choices=["batched", "seed"], default="batched")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (eager, f32 matmuls as PyTorch defaults)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    batches = json.load(open(a.batches))
    model = Gpt2(50261, 128, a.width, a.layers, a.heads).to(a.device)
    cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    lam = 0.0 if a.stage == 0 else 0.001

    def step(batch):
        if a.procedure == "batched":
            loss = loss_of(model, batch, weights_of(batch, a.group, lam), lam)
            loss.backward()
            total = loss.item()
        else:
            groups = [batch[i : i + a.group] for i in range(0, len(batch), a.group)]
            total = 0.0
            for members in groups:
                w = weights_of(members, a.group, lam)
                loss = loss_of(model, members, w, lam) / len(groups)
                loss.backward()
                total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    step(batches[0])  # warm-up
    times, tokens, last = [], 0, 0.0
    for batch in batches[1:]:
        sync()
        start = time.perf_counter()
        last = step(batch)
        sync()
        times.append(time.perf_counter() - start)
        tokens += sum(len(e["ids"]) for e in batch)
    times.sort()
    print(json.dumps({
        "impl": f"pytorch-{a.procedure}",
        "stage": a.stage,
        "batch": len(batches[0]),
        "steps": len(times),
        "ms_per_step": times[len(times) // 2] * 1e3,
        "ms_min": times[0] * 1e3,
        "ms_max": times[-1] * 1e3,
        "tokens_per_step": tokens / len(times),
        "loss": last,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": a.device,
        "params": sum(p.numel() for p in model.parameters()),
    }))


if __name__ == "__main__":
    main()
