#!/usr/bin/env python3
"""What torch itself reads from a torch.save state dict, as a small JSON golden for the Rust reader
(trainer/src/import/torch_file.rs), whose tests run without Python or torch.

For each tensor, in the file's order: dtype, shape, stride, storage offset, the sha256 of its
values widened to f32 and written little-endian in row-major order (what the reader's read_f32
returns, byte for byte), and its first four values. `shared` lists the groups of names whose
tensors share one storage (the tied head). Loaded with weights_only=True, so writing the golden
runs no code from the file either.

Usage (in .venv-bench):
  python scripts/pt_dump.py tests/fixtures/seed-standin/standin.pt \
      --out tests/fixtures/seed-standin/standin-tensors.json
"""
import argparse
import hashlib
import json
import os

import torch


def describe(name, t):
    values = t.detach().to(torch.float32).contiguous().numpy().astype("<f4")
    flat = values.reshape(-1)
    return {
        "name": name,
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "sha256_f32_le": hashlib.sha256(flat.tobytes()).hexdigest(),
        # float() of an f32 is exact, and JSON keeps a double's every digit.
        "first": [float(v) for v in flat[:4]],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pt")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    sd = torch.load(args.pt, map_location="cpu", weights_only=True)
    by_storage = {}
    for name, t in sd.items():
        by_storage.setdefault(t.untyped_storage().data_ptr(), []).append(name)
    with open(args.pt, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    golden = {
        "file": os.path.basename(args.pt),
        "file_sha256": digest,
        "torch": torch.__version__,
        "tensors": [describe(name, t) for name, t in sd.items()],
        "shared": [names for names in by_storage.values() if len(names) > 1],
    }
    with open(args.out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"{args.out}: {len(golden['tensors'])} tensors, shared {golden['shared']}")


if __name__ == "__main__":
    main()
