"""CPU fine-tuning steps of MSM4SR on full ML-1M, each variant in a fresh process, side by
side. Two comparisons:

    .venv/bin/python bench/bench_cpu_steps.py [--steps 40]             # allocator
    .venv/bin/python bench/bench_cpu_steps.py --ref bde513f [--steps 40]  # code: REF against now

The first runs glibc's default allocator behaviour against core.train.keep_freed_memory().
The second runs the same steps with the code of a git ref (checked out in a temporary
worktree, with its own defaults) and with the working tree, both keeping freed memory, in
alternating order (--repeats). Prints items/s, user and kernel CPU seconds and minor page
faults of each, and the ratio. Uses the workspace that bench_model.py caches (run it once).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WS = REPO / "bench" / "results" / "ws-ml-1m" / "ws"

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


def child(tree: Path, keep: bool, steps: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(WS), "1" if keep else "0", str(steps)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def show(name: str, o: dict) -> None:
    print(f"{name:<18} {o['items_per_s']:>8.0f} items/s  user {o['user_s']:.1f}s  "
          f"kernel {o['sys_s']:.1f}s  minor faults {o['minor_faults']:,}", flush=True)


def compare_ref(ref: str, steps: int, repeats: int) -> None:
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="cpu-steps-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tmp), ref],
                   check=True, capture_output=True)
    try:
        runs = {ref: [], "now": []}
        for i in range(repeats):   # alternate, so drift on a shared machine hits both
            for name, tree in ((ref, tmp), ("now", REPO))[:: 1 if i % 2 == 0 else -1]:
                runs[name].append(child(tree, True, steps))
                show(f"{name} #{i + 1}", runs[name][-1])
        best = {k: max(o["items_per_s"] for o in v) for k, v in runs.items()}
        print(f"best items/s: {ref} {best[ref]:.0f}, now {best['now']:.0f}; "
              f"now / {ref} = {best['now'] / best[ref]:.3f}")
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp)], check=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ref", default=None, help="compare this git ref's code with the working tree")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    if not (WS / "features" / "text.safetensors").is_file():
        print(f"{WS} is not built: run bench/bench_model.py --dataset ml-1m once first")
        return 2
    if args.ref:
        compare_ref(args.ref, args.steps, args.repeats)
        return 0
    out = {}
    for name, keep in (("default", False), ("keep_freed_memory", True)):
        out[name] = child(REPO, keep, args.steps)
        show(name, out[name])
    print(f"speed-up {out['keep_freed_memory']['items_per_s'] / out['default']['items_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
