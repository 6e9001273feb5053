"""CPU fine-tuning steps of MSM4SR on full ML-1M, each variant in a fresh process, side by
side: glibc's default allocator behaviour against core.train.keep_freed_memory().

    .venv/bin/python bench/bench_cpu_steps.py [--steps 40]

Prints items/s, user and kernel CPU seconds and minor page faults of each, and the ratio.
Uses the workspace that bench_model.py caches (run it once first).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WS = REPO / "bench" / "results" / "ws-ml1m"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from core.config import load_config
from core.data import batches, load_dataset, windows
from core.model import build
from core.train import keep_freed_memory
from core.workspace import Workspace
kept = keep_freed_memory() if sys.argv[3] == "1" else False
ws = Workspace.open(sys.argv[2])
cfg = load_config(overrides={"finetune_lr": 1e-3, "finetune_weight_decay": 0.0})
ds = load_dataset(ws, cfg)
torch.manual_seed(0)
model = build(cfg, ds.n_items, ds.dims().get("text"), ds.dims().get("image"))
model.seen.copy_(torch.from_numpy(ds.seen).float())
model.set_features(ds.features)
model.use_ids = True
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
r0, t0, n = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
for step, (inp, tgt) in enumerate(batches(windows(ds.train, cfg.max_len), cfg.max_len,
                                          cfg.finetune_batch, rng), 1):
    loss, _ = model.loss(inp, tgt, "finetune")
    opt.zero_grad()
    loss.backward()
    opt.step()
    n += int((tgt > 0).sum())
    if step == int(sys.argv[4]):
        break
r1, dt = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
print(json.dumps({"kept": kept, "steps": step, "seconds": dt, "items_per_s": n / dt,
                  "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                  "minor_faults": r1.ru_minflt - r0.ru_minflt}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args(argv)
    if not (WS / "features" / "text.safetensors").is_file():
        print(f"{WS} is not built: run bench/bench_model.py once first")
        return 2
    out = {}
    for name, flag in (("default", "0"), ("keep_freed_memory", "1")):
        r = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(WS), flag, str(args.steps)],
                           capture_output=True, text=True, check=True)
        out[name] = json.loads(r.stdout.strip().splitlines()[-1])
        o = out[name]
        print(f"{name:<18} {o['items_per_s']:>8.0f} items/s  user {o['user_s']:.1f}s  "
              f"kernel {o['sys_s']:.1f}s  minor faults {o['minor_faults']:,}")
    print(f"speed-up {out['keep_freed_memory']['items_per_s'] / out['default']['items_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
