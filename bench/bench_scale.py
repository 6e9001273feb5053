"""Large catalogs, measured side by side in one run: fine-tuning steps with the full and the
sampled softmax, full-ranking evaluation and recommendation, each case in a fresh process
(peak RSS is the child's own).

    .venv/bin/python bench/bench_scale.py --items 100000 [--interactions 1000000] [--json]
    .venv/bin/python bench/bench_scale.py --sweep 5000,20000,50000,100000   # the auto threshold

Items get random float16 text features (--vectors x 384, as Sentence-BERT gives) and
sequences are drawn from a Zipf-like popularity, so a batch looks like a real one. The
model is MSM4SR with the defaults (hidden 64, batch 128 x 50). The sweep prints the step
time of both losses at each size: `full_softmax_max_items` is set where the full softmax
stops being cheap. Nothing here is a test: figures vary with the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from core.config import load_config
from core.data import batches, windows
from core.evaluate import rank_cases
from core.model import build
from core.model.sampled import NegativeSampler
from core.optim import make_optimizer
from core.train import keep_freed_memory
keep_freed_memory()
torch.set_num_threads(int(sys.argv[7]) or torch.get_num_threads())
what, n, m, V, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rng = np.random.default_rng(0)
users = max(m // 20, 1)
p = 1.0 / np.arange(1, n + 1) ** 0.8
p /= p.sum()
seqs = list(rng.choice(n, size=(users, 20), p=p) + 1)   # 20 per user, one draw
cfg = load_config(overrides={"softmax": "sampled" if what == "sampled" else "full"})
g = torch.Generator().manual_seed(0)
x = torch.empty(n + 1, V, 384, dtype=torch.float16)
for lo in range(0, n + 1, 65536):   # in chunks: a float32 draw of 1M x 10 x 384 is 15 GB
    x[lo:lo + 65536] = torch.randn(len(x[lo:lo + 65536]), V, 384, generator=g).half()
mask = torch.ones(n + 1, V, dtype=torch.bool)
mask[0] = False
model = build(cfg, n, 384, None)
model.set_features({"text": (x, mask)})
model.seen[1:] = 1
model.use_ids = True
out = {"case": what, "items": n, "interactions": users * 20}
if what in ("full", "sampled"):
    model.sampler = NegativeSampler.for_dataset(seqs, n, cfg.sampled_negatives)
    opt = make_optimizer(model, cfg, "finetune")
    it = batches(windows(seqs, cfg.max_len), cfg.max_len, cfg.finetune_batch, rng)
    times = []
    for step in range(steps + 1):
        inp, tgt = next(it)
        t0 = time.perf_counter()
        loss, _ = model.loss(inp, tgt, "finetune", g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:   # the first step allocates: left out
            times.append(time.perf_counter() - t0)
    out["step_s"] = float(np.median(times))
else:
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        table = model.item_table().float()
        inputs = model.all_item_vectors()
    out["item_table_s"] = time.perf_counter() - t0
    cases = [(s[:-1], int(s[-1])) for s in seqs[:512]]
    t0 = time.perf_counter()
    rank_cases(model, cases, cfg.max_len, batch=512, table=table)
    out["eval_512_users_s"] = time.perf_counter() - t0
    hist = torch.as_tensor(seqs[0][None, :]).long()
    lat = []
    with torch.no_grad():
        for _ in range(30):
            t0 = time.perf_counter()
            emb = {"text": inputs["text"][hist]}
            user = model.user_vectors_from(emb, hist == 0).float()[0]
            top = torch.topk(table @ user, 10)
            lat.append(time.perf_counter() - t0)
    out["recommend_ms"] = 1000 * float(np.median(lat))
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
print(json.dumps(out))
"""


def run(case: str, items: int, interactions: int, vectors: int, steps: int, threads: int) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO), case, str(items), str(interactions),
                        str(vectors), str(steps), str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"case": case, "items": items, "error": r.stderr.strip().splitlines()[-1][:200]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--interactions", type=int, default=None, help="default: 10 per item")
    ap.add_argument("--sweep", default=None, help="comma-separated item counts: step times only")
    ap.add_argument("--vectors", type=int, default=10, help="text vectors per item")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-full", action="store_true", help="skip the full softmax (too slow at N)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    sizes = [int(s) for s in a.sweep.split(",")] if a.sweep else [a.items]
    for n in sizes:
        m = a.interactions or 10 * n
        cases = ["sampled"] + ([] if a.no_full else ["full"]) + ([] if a.sweep else ["serve"])
        for case in cases:
            rows.append(run(case, n, m, a.vectors, a.steps, a.threads))
            if not a.json:
                print(json.dumps(rows[-1]), flush=True)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"\n{'items':>9} {'full step s':>12} {'sampled s':>10} {'ratio':>6} {'full GB':>8} {'sampled GB':>11}")
    for n in sizes:
        got = {r["case"]: r for r in rows if r["items"] == n}
        f, s = got.get("full", {}), got.get("sampled", {})
        ratio = f["step_s"] / s["step_s"] if "step_s" in f and "step_s" in s else float("nan")
        print(f"{n:>9,} {f.get('step_s', float('nan')):>12.2f} {s.get('step_s', float('nan')):>10.2f} "
              f"{ratio:>6.2f} {f.get('peak_rss_gb', float('nan')):>8.2f} {s.get('peak_rss_gb', float('nan')):>11.2f}")
        if "serve" in got and "recommend_ms" in got["serve"]:
            sv = got["serve"]
            print(f"          item table {sv['item_table_s']:.1f} s, eval of 512 users {sv['eval_512_users_s']:.1f} s, "
                  f"recommend {sv['recommend_ms']:.1f} ms, peak {sv['peak_rss_gb']:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
