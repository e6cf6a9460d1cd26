"""Time one training step of the independent PyTorch yardstick (a one-file PyTorch implementation
of this curriculum, kept outside this repository; scripts/bench-train.sh passes its path, taken
from YARDSTICK), exactly as its training loop runs it (seq_loss, backward, clip_grad_norm_,
AdamW step), at one stage; print one JSON line like trainer/benches/train_step.rs. The yardstick is imported from
where it lives, not copied: this file only drives it.

python3 bench_train_reference.py --yardstick PATH/coconut_ref.py --stage 0|5 [--batch 256]
    [--steps 6] [--threads 2]
"""
import argparse
import importlib.util
import json
import random
import resource
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--yardstick", required=True)
    p.add_argument("--stage", type=int, required=True, help="k: 0 = all written, 5 = all latent")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    a = p.parse_args()

    spec = importlib.util.spec_from_file_location("coconut_ref", a.yardstick)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    torch, np = ref.torch, ref.np
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")

    pairs = ref.gen_pairs(a.batch * (a.steps + 1), random.Random(0), set())
    train = ref.Split("train", pairs, a.stage + 1, False, device)
    model = ref.GPT(len(ref.VOCAB), 128, a.layers, a.width, a.heads).to(device)
    opt = ref.make_optimizer(model, argparse.Namespace(wd=0.1, lr=1e-3, beta2=0.98), device)
    st_np = np.full(a.batch, a.stage, dtype=np.int64)
    st_t = torch.from_numpy(st_np)

    def step(i):
        idx_np = np.arange(i * a.batch, (i + 1) * a.batch)
        idx_t = torch.from_numpy(idx_np)
        tok, bot_t, k_t, lens_t, bot_np, k_np = ref.get_batch(train, idx_np, st_np, idx_t, st_t)
        loss = ref.seq_loss(model, tok, bot_t, k_t, lens_t, a.stage, bot_np, k_np, "coconut")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach()), int(train.lens[a.stage, idx_np].sum())

    step(0)  # warm-up
    times, tokens, loss = [], 0, 0.0
    for i in range(1, a.steps + 1):
        t0 = time.perf_counter()
        loss, n = step(i)
        times.append(time.perf_counter() - t0)
        tokens += n
    times.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "stage": f"stage{a.stage}", "batch": a.batch, "steps": a.steps,
        "ms_per_step": times[len(times) // 2] * 1e3, "ms_min": times[0] * 1e3, "ms_max": times[-1] * 1e3,
        "tokens_per_step": tokens / a.steps, "loss": loss, "peak_rss_mib": peak,
        "params": sum(q.numel() for q in model.parameters()),
    }))


if __name__ == "__main__":
    sys.exit(main())
